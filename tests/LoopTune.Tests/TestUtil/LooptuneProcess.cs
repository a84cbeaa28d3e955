using System.Diagnostics;

namespace LoopTune.Tests.TestUtil;

/// <summary>Starts the looptune.dll next to the tests as a child process, its output redirected.</summary>
static class LooptuneProcess
{
    public static Process Start(params string[] args) => Start(new Dictionary<string, string>(), args);

    /// <summary>Starts it with <paramref name="env"/> added to its environment.</summary>
    public static Process Start(IDictionary<string, string> env, params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "looptune.dll");
        var start = new ProcessStartInfo(DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])["exec", dll, .. args]) start.ArgumentList.Add(a);
        foreach (var (k, v) in env) start.Environment[k] = v;
        return Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet");
    }

    public static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host
        : Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";
}
