using System.CommandLine;
using System.Text.Json;

namespace LoopTune.Cli.Commands;

static class Options
{
    public static Option<bool> Json() => new("--json") { Description = "Print one JSON object instead of tables." };

    public static readonly JsonSerializerOptions JsonStyle = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
