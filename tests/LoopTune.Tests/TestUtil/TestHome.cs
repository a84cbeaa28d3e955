using System.Runtime.CompilerServices;
using LoopTune.Cli;

namespace LoopTune.Tests.TestUtil;

/// <summary>Gives the whole test run its own LoopTune data folder (peak, store, datasets), deleted when the run ends, so
/// tests never read or write the user's. The test host is often ended before its exit handlers run, which left a folder
/// (some 22 MB) behind per run; so each run also deletes the folders of runs whose process is gone.</summary>
static class TestHome
{
    const string Prefix = "looptune-tests-";

    public static string Folder { get; } = Path.Combine(Path.GetTempPath(), $"{Prefix}{Environment.ProcessId}");

    [ModuleInitializer]
    internal static void Set()
    {
        Environment.SetEnvironmentVariable("LOOPTUNE_HOME", Folder);
        foreach (var stale in Directory.EnumerateDirectories(Path.GetTempPath(), Prefix + "*"))
            if (int.TryParse(Path.GetFileName(stale)[Prefix.Length..], out int pid) && pid != Environment.ProcessId && !Alive(pid))
            {
                try { Directory.Delete(stale, recursive: true); }
                catch (IOException) { }
                catch (UnauthorizedAccessException) { }
            }
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { if (Directory.Exists(Folder)) Directory.Delete(Folder, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        };
    }

    /// <summary>Whether process <paramref name="pid"/> is running.</summary>
    static bool Alive(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    /// <summary>Runs the looptune command line in-process and returns its exit code and what it wrote.</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (o, e) = (new StringWriter(), new StringWriter());
        int code = Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }
}
