using System.Diagnostics;

namespace LoopTune.Cli.Slurm;

/// <summary>SLURM's <c>sbatch</c>, found on PATH, and the looptune program the jobs run.</summary>
static class Sbatch
{
    /// <summary>The absolute path of the executable <paramref name="name"/> on PATH, or null.</summary>
    public static string? OnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(Path.GetFullPath(dir), name))
            .FirstOrDefault(f => File.Exists(f) && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(f) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0));

    /// <summary>sbatch, or a <see cref="LoopTuneException"/> saying SLURM is not installed.</summary>
    public static string Find() => OnPath("sbatch")
        ?? throw new LoopTuneException("sbatch is not on PATH: SLURM is not installed here (run on a SLURM login node; --dry-run writes and prints the script without it)");

    /// <summary>Submits <paramref name="script"/> and returns the job id, or throws a <see cref="LoopTuneException"/> with
    /// what sbatch said when it refuses the job.</summary>
    public static string Submit(string sbatch, string script)
    {
        var start = new ProcessStartInfo(sbatch) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--parsable", script }) start.ArgumentList.Add(a);
        using var p = Process.Start(start) ?? throw new LoopTuneException($"could not run {sbatch}");
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        string said = stderr.Result.Trim();
        // --parsable prints "JOBID" or "JOBID;CLUSTER"
        string id = stdout.Trim().Split(';')[0];
        if (p.ExitCode != 0 || id.Length == 0 || !id.All(char.IsAsciiDigit))
            throw new LoopTuneException($"sbatch refused the job (exit {p.ExitCode}): {(said.Length > 0 ? said : stdout.Trim())}");
        return id;
    }

    /// <summary>The command line that runs this looptune program, absolute: the apphost when it runs as one, else the dotnet
    /// host and looptune.dll.</summary>
    public static IReadOnlyList<string> Self()
    {
        string dll = typeof(Program).Assembly.Location, process = Environment.ProcessPath ?? "";
        if (dll.Length == 0 || Path.GetFileNameWithoutExtension(process) == Path.GetFileNameWithoutExtension(dll)) return [process];
        string host = Path.GetFileNameWithoutExtension(process) == "dotnet" ? process
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h && File.Exists(h) ? h
            : OnPath("dotnet") ?? "dotnet";
        return [host, dll];
    }
}
