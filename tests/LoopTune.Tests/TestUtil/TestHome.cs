using System.Runtime.CompilerServices;
using LoopTune.Cli;

namespace LoopTune.Tests.TestUtil;

/// <summary>Gives the whole test run its own LoopTune data folder (peak, store, datasets), deleted when the run ends, so
/// tests never read or write the user's.</summary>
static class TestHome
{
    public static string Folder { get; } = Path.Combine(Path.GetTempPath(), $"looptune-tests-{Environment.ProcessId}");

    [ModuleInitializer]
    internal static void Set()
    {
        Environment.SetEnvironmentVariable("LOOPTUNE_HOME", Folder);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { if (Directory.Exists(Folder)) Directory.Delete(Folder, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        };
    }

    /// <summary>Runs the looptune command line in-process and returns its exit code and what it wrote.</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (o, e) = (new StringWriter(), new StringWriter());
        int code = Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }
}
