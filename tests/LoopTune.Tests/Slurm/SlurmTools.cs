using System.Diagnostics;
using LoopTune.Cli;
using LoopTune.Cli.Slurm;

namespace LoopTune.Tests.Slurm;

/// <summary>What the SLURM tests run outside the test process: bash, the SLURM clients, looptune.dll.</summary>
static class SlurmTools
{
    /// <summary>Runs <paramref name="file"/> to its end (at most <paramref name="timeoutSeconds"/>) and returns its exit code
    /// and output; <paramref name="env"/> replaces variables of its environment.</summary>
    public static (int Code, string Out, string Err) Run(string file, IEnumerable<string> args, IDictionary<string, string>? env = null, int timeoutSeconds = 60)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) start.Environment[k] = v;
        using var p = Process.Start(start)!;
        var (o, e) = (p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync());
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} ran over {timeoutSeconds} s");
        }
        return (p.ExitCode, o.Result, e.Result);
    }

    /// <summary>looptune.dll next to the tests, as a command line (the dotnet host first).</summary>
    public static string[] Looptune()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "looptune.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing");
        return [Sbatch.OnPath("dotnet") ?? Environment.ProcessPath!, dll];
    }

    /// <summary>Why SLURM cannot run a job here, or null when sinfo shows a node that takes jobs.</summary>
    public static string? WhyNoSlurm()
    {
        if (Sbatch.OnPath("sinfo") is not { } sinfo) return "SLURM is not installed here (no sinfo on PATH); `bash scripts/local-slurm.sh start` (as root) sets one up";
        var (code, output, err) = Run(sinfo, ["-h", "-o", "%t"], timeoutSeconds: 30);
        if (code != 0 || !output.Split('\n').Any(s => s.Trim() is "idle" or "mix"))
            return $"SLURM is not running here (sinfo: {(code != 0 ? err.Trim() : output.Trim())}); `bash scripts/local-slurm.sh start` (as root) starts a local one";
        if (Sbatch.OnPath("redis-server") is null) return "redis-server is not installed (the jobs start one); `bash scripts/local-slurm.sh start` installs it";
        return null;
    }

    /// <summary>Null when this looptune has the silo command the jobs start on every node, else why not.</summary>
    public static string? WhyNoSilo()
    {
        var help = new StringWriter();
        Program.Run(["--help"], help, new StringWriter());
        return System.Text.RegularExpressions.Regex.IsMatch(help.ToString(), @"(?m)^\s+silo\s") ? null
            : "this looptune has no 'silo' command yet (the cluster layer is not merged), so a job's silos cannot start";
    }
}

/// <summary>A fact that needs sbatch on PATH; skipped with the reason where it is not.</summary>
public sealed class SbatchFactAttribute : FactAttribute
{
    public SbatchFactAttribute()
    {
        if (Sbatch.OnPath("sbatch") is null) Skip = "sbatch is not on PATH (SLURM is not installed); `bash scripts/local-slurm.sh start` installs it";
    }
}

/// <summary>A fact that submits jobs: needs a running SLURM and redis-server; skipped with the reason where one is missing.</summary>
public sealed class SlurmFactAttribute : FactAttribute
{
    public SlurmFactAttribute()
    {
        if (SlurmTools.WhyNoSlurm() is { } why) Skip = why;
    }
}

/// <summary>A fact that runs jobs to their end: needs a running SLURM, redis-server and looptune's silo command; skipped
/// with the reason where one is missing.</summary>
public sealed class SlurmJobFactAttribute : FactAttribute
{
    public SlurmJobFactAttribute()
    {
        if ((SlurmTools.WhyNoSlurm() ?? SlurmTools.WhyNoSilo()) is { } why) Skip = why;
    }
}
