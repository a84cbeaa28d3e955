using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LoopTune.Ir;

namespace LoopTune.Compare;

/// <summary>A <see cref="ComparisonRow"/> as one line of a comparison's journal (<see cref="RunJournal"/>): every field,
/// its actions by name, its peers as <see cref="Measure.PeerResult"/>s, a missing figure as NaN; read back into the same row.</summary>
public static class ComparisonRowJson
{
    static readonly JsonSerializerOptions Style = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new ActionName(), new JsonStringEnumConverter() },
    };

    public static JsonObject ToJson(ComparisonRow row) => JsonSerializer.SerializeToNode(row, Style)!.AsObject();

    /// <summary>The row of <paramref name="line"/>; a line that is no row is a <see cref="RunJournalError"/>.</summary>
    public static ComparisonRow FromJson(JsonObject line)
    {
        try { return line.Deserialize<ComparisonRow>(Style) ?? throw new JsonException("null"); }
        catch (Exception e) when (e is JsonException or LoopTuneException or NotSupportedException)
        {
            throw new RunJournalError($"a journal line is no comparison row ({e.Message}); the journal is damaged (delete it to start the run over)", e);
        }
    }

    sealed class ActionName : JsonConverter<LoopAction>
    {
        public override LoopAction Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => Actions.Get(reader.GetString()!);

        public override void Write(Utf8JsonWriter writer, LoopAction value, JsonSerializerOptions options) => writer.WriteStringValue(value.Name);
    }
}
