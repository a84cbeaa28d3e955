using System.CommandLine;
using System.Text.Json;

namespace LoopTune.Cli.Commands;

static class Options
{
    public static Option<bool> Json() => new("--json") { Description = "Print one JSON object instead of tables." };
    /// <summary>Waits for async work from a synchronous command, running it on the thread pool so that no synchronization
    /// context of the caller (a test runner's) can deadlock it.</summary>
    public static T Wait<T>(Func<Task<T>> work) => Task.Run(work).GetAwaiter().GetResult();

    public static void Wait(Func<Task> work) => Task.Run(work).GetAwaiter().GetResult();

    public static readonly JsonSerializerOptions JsonStyle = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
