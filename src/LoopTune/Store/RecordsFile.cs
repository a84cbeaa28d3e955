using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoopTune.Ir;

namespace LoopTune.Store;

/// <summary>A records file that cannot be read or written, or holds a line that is not a record of this machine: its
/// message names the file (and the line).</summary>
public sealed class RecordsFileError(string message, Exception? inner = null) : LoopTuneException(message, inner);

/// <summary>
/// Tuning records as a JSON lines file, what <c>looptune records export|import</c> write and read to share one machine's
/// records with another machine of the same key. One object a line:
/// <c>{"spec", "threads", "schedule", "gflops", "method", "budget", "tuned_at", "runtime", "timed", "machine": {...}}</c>: the
/// computation's text, the threads its kernel runs on, the schedule's compact form, the GFLOPS when tuned, the search and
/// its budget, the UTC time, the runtime key (<see cref="MeasurementStore.CurrentRuntime"/>, which names the timing context
/// when not hot: <see cref="MeasurementStore.RuntimeAt(int, Measure.TimingContext)"/>), that context for people
/// (<c>hot</c>, <c>cold left</c>, <c>cold right</c>; the runtime key is what counts) and the machine block of the
/// machine that tuned it (<c>MachineInfo.ToJson</c>, whose <c>key</c> is the store's machine key).
/// Records of another machine key or runtime are refused, whole files at a time: a schedule is fast on the machine it was
/// measured on, and a record recalled elsewhere would be trusted without being measured there.
/// </summary>
public static class RecordsFile
{
    /// <summary>Writes <paramref name="records"/> to <paramref name="path"/>, each with the machine block
    /// <paramref name="machine"/>: to a temporary name in the same folder, then renamed, so the file is whole or absent.
    /// A path that cannot be written is a <see cref="RecordsFileError"/> naming it.</summary>
    public static void Write(string path, IEnumerable<KeyedRecord> records, JsonObject machine)
    {
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(machine);
        var text = new StringBuilder();
        foreach (var k in records) text.Append(ToJson(k, machine).ToJsonString(Plain)).Append('\n');
        string full = Path.GetFullPath(path), tmp = $"{full}.{Environment.ProcessId}.tmp";
        try
        {
            File.WriteAllText(tmp, text.ToString());
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); }
            catch (Exception again) when (again is IOException or UnauthorizedAccessException) { /* nothing was written there */ }
            string why = e switch { DirectoryNotFoundException => "no such folder", UnauthorizedAccessException => "permission denied", _ => e.Message };
            throw new RecordsFileError($"cannot write the records file {path}: {why}", e);
        }
    }

    /// <summary>Lines as people read them: <c>+</c> and <c>&gt;</c> (in specs and schedules) written as themselves.</summary>
    static readonly JsonSerializerOptions Plain = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>One record as a line of the file.</summary>
    public static JsonObject ToJson(KeyedRecord k, JsonObject machine)
    {
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(machine);
        return new()
        {
            ["spec"] = k.Spec, ["threads"] = k.Threads, ["schedule"] = k.Record.Schedule, ["gflops"] = k.Record.Gflops,
            ["method"] = k.Record.Method, ["budget"] = k.Record.Budget,
            ["tuned_at"] = k.Record.TunedAt.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture),
            ["runtime"] = k.Runtime, ["timed"] = k.Context.ToString(), ["machine"] = machine.DeepClone(),
        };
    }

    /// <summary>Reads the records of <paramref name="path"/>, checking each line: an object with the fields above, a spec
    /// that parses, a schedule of that computation, finite non-negative GFLOPS. Anything else is a
    /// <see cref="RecordsFileError"/> naming the file and the line.</summary>
    public static IReadOnlyList<KeyedRecord> Read(string path)
    {
        string[] lines;
        try { lines = File.ReadAllLines(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RecordsFileError($"cannot read the records file {path}: {e.Message}", e);
        }
        var records = new List<KeyedRecord>();
        for (int i = 0; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i])) continue;
            try { records.Add(FromJson(lines[i])); }
            catch (Exception e) when (e is LoopTuneException or JsonException or InvalidOperationException or FormatException or ArgumentException)
            {
                throw new RecordsFileError($"{path}, line {i + 1}: not a tuning record ({e.Message})", e);
            }
        }
        return records;
    }

    static KeyedRecord FromJson(string line)
    {
        var o = JsonNode.Parse(line) as JsonObject ?? throw new FormatException("not a JSON object");
        string Text(JsonNode? node, string name) => node?.GetValue<string>() ?? throw new FormatException($"no \"{name}\"");
        var c = Computation.Parse(Text(o["spec"], "spec"));
        var nest = Nest.Parse(c, Text(o["schedule"], "schedule"));
        double gflops = o["gflops"]?.GetValue<double>() ?? throw new FormatException("no \"gflops\"");
        if (!double.IsFinite(gflops) || gflops < 0) throw new FormatException($"gflops {gflops}: finite and not negative");
        int threads = o["threads"]?.GetValue<int>() ?? 1;
        if (threads < 1) throw new FormatException($"threads {threads}: at least 1");
        var at = DateTime.Parse(Text(o["tuned_at"], "tuned_at"), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
        var record = new TuningRecord(nest.Serialize(), Text(o["method"], "method"), Text(o["budget"], "budget"), gflops, at);
        return new KeyedRecord(c.Text, threads, Text(o["machine"]?["key"], "machine.key"), Text(o["runtime"], "runtime"), record);
    }

    /// <summary>Imports the records of <paramref name="path"/> into <paramref name="store"/> (<see cref="MeasurementStore.Import"/>:
    /// all or none, a record kept where the store's is faster), after reading the whole file: a line of another machine key
    /// or runtime than the store's refuses the file (a <see cref="RecordsFileError"/> naming the line and both keys), with
    /// nothing imported. Returns the records read and those written.</summary>
    public static (int Read, int Written) Import(MeasurementStore store, string path)
    {
        ArgumentNullException.ThrowIfNull(store);
        var records = Read(path);
        int foreign = records.Count(k => !store.IsOurs(k));
        if (records.FirstOrDefault(k => !store.IsOurs(k)) is { } first)
        {
            string which = first.Machine != store.Machine ? $"machine '{first.Machine}', and this one is '{store.Machine}'"
                : $"runtime '{MeasurementStore.BaseRuntime(first.Runtime)}', and this one is '{MeasurementStore.BaseRuntime(store.Runtime)}'";
            throw new RecordsFileError($"{path}: {foreign} of its {records.Count} records were tuned elsewhere (the first, {first.Spec}, on {which}); nothing imported: a record answers only on a machine and runtime of its own key");
        }
        return (records.Count, store.Import(records));
    }
}
