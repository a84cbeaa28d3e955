using System.Globalization;
using System.Text.RegularExpressions;

namespace LoopTune.Cli.Slurm;

/// <summary>A looptune job for SLURM, validated: <see cref="Nodes"/> nodes of <see cref="CpusPerNode"/> CPUs for
/// <see cref="Time"/>; on each node a silo of that many workers runs <see cref="Program"/>, and <see cref="Command"/> (the
/// looptune command line without the program) runs on the first node. <see cref="Output"/> is SLURM's output file pattern
/// (<c>%j</c> is the job id); <see cref="WorkDir"/> is where the command runs, so its relative paths mean what they meant
/// where the launcher ran.</summary>
sealed partial record SlurmJob(int Nodes, int CpusPerNode, string Time, string? Partition, string JobName, int RedisPort,
    string Output, string WorkDir, IReadOnlyList<string> Program, IReadOnlyList<string> Command)
{
    /// <summary>The options the launcher appends to the command; the user must not give them.</summary>
    public static readonly string[] AddedOptions = ["--cluster", "--min-workers", "--tls-cert", "--tls-key"];

    /// <summary>The job's secrets (<see cref="JobSecrets"/>): a folder beside the script, readable by its owner only.</summary>
    public string Secrets => Path.Combine(Path.GetDirectoryName(Output)!, $"{JobName}.secrets");

    /// <summary>The threads each worker's kernels run on: the command's <c>--threads</c> (<c>all</c>: every CPU of a node),
    /// else 1. Each silo gets as many (<c>looptune silo --threads</c>).</summary>
    public int Threads { get; init; } = 1;

    /// <summary>The measuring workers of a node: one per <see cref="Threads"/> of its CPUs (its team on the others).</summary>
    public int WorkersPerNode => CpusPerNode / Threads;

    /// <summary>The measuring workers of the whole job.</summary>
    public int Workers => Nodes * WorkersPerNode;

    /// <summary>The output file of the job <paramref name="jobId"/>.</summary>
    public string OutputOf(string jobId) => Output.Replace("%j", jobId, StringComparison.Ordinal);

    /// <summary>Checks every value and builds the job; the script goes into <paramref name="outDir"/>. Throws
    /// <see cref="LoopTuneException"/> naming the first bad value.</summary>
    public static SlurmJob Create(int nodes, int cpusPerNode, string time, string? partition, string? jobName, int redisPort,
        string outDir, string workDir, IReadOnlyList<string> program, IReadOnlyList<string> command)
    {
        if (nodes < 1) throw new LoopTuneException($"--nodes {nodes}: at least 1");
        if (cpusPerNode < 1) throw new LoopTuneException($"--cpus-per-node {cpusPerNode}: at least 1");
        if (redisPort is < 1 or > 65535) throw new LoopTuneException($"--redis-port {redisPort}: a TCP port, 1 to 65535");
        if (command.Count == 0)
            throw new LoopTuneException("no command after --: give the looptune command to run on the cluster, e.g. -- compare-searches --dataset NAME --out DIR");
        if (command[0] is "slurm" or "silo")
            throw new LoopTuneException($"-- {command[0]}: the job starts the silos itself; give the command to run on them (train, compare-searches, ...)");
        if (command.FirstOrDefault(w => AddedOptions.Any(o => w == o || w.StartsWith(o + "=", StringComparison.Ordinal))) is { } added)
            throw new LoopTuneException($"{added} in the command: the launcher adds {string.Join(", ", AddedOptions)} itself; leave them out");
        if (partition is not null && !Name().IsMatch(partition)) throw new LoopTuneException($"--partition '{partition}': letters, digits, '.', '_', '-' (',' between partitions)");
        jobName ??= $"looptune-{command[0]}";
        if (!Name().IsMatch(jobName) || jobName.Contains(',')) throw new LoopTuneException($"--job-name '{jobName}': letters, digits, '.', '_' and '-' only");
        string output = Path.Combine(SbatchPath(Path.GetFullPath(outDir), "--out"), $"{jobName}-%j.out");
        return new(nodes, cpusPerNode, ParseTime(time), partition, jobName, redisPort, output, SbatchPath(Path.GetFullPath(workDir), "the current directory"),
            program, command)
        { Threads = ThreadsOf(command, cpusPerNode) };
    }

    /// <summary>The command's <c>--threads N|all</c> (1 without it), which a node's CPUs must hold.</summary>
    static int ThreadsOf(IReadOnlyList<string> command, int cpusPerNode)
    {
        int at = command.ToList().FindIndex(w => w == "--threads" || w.StartsWith("--threads=", StringComparison.Ordinal));
        if (at < 0) return 1;
        string? value = command[at].Contains('=') ? command[at]["--threads=".Length..] : at + 1 < command.Count ? command[at + 1] : null;
        if (value is not null && value.Equals("all", StringComparison.OrdinalIgnoreCase)) return cpusPerNode;
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < 1 || n > cpusPerNode)
            throw new LoopTuneException($"--threads {value} in the command: a number from 1 to --cpus-per-node ({cpusPerNode}), or all");
        return n;
    }

    /// <summary>A SLURM time limit, <c>H:MM:SS</c> or <c>D-H:MM:SS</c>, more than zero; returned as given.</summary>
    public static string ParseTime(string time)
    {
        var m = TimeFormat().Match(time);
        if (!m.Success) throw new LoopTuneException($"--time '{time}': expected H:MM:SS (e.g. 1:00:00) or D-H:MM:SS (e.g. 2-00:00:00)");
        long Part(int g) => m.Groups[g].Success ? long.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture) : 0;
        if (Part(1) + Part(2) + Part(3) + Part(4) == 0) throw new LoopTuneException($"--time '{time}': the job needs more than no time");
        return time;
    }

    /// <summary>A path that an <c>#SBATCH</c> line can hold (sbatch reads double quotes, and expands '%' and '\' in file names).</summary>
    static string SbatchPath(string path, string what) =>
        path.Any(c => c is '"' or '%' or '\\' || char.IsControl(c))
            ? throw new LoopTuneException($"{what} '{path}': SLURM cannot take a path with '\"', '%', '\\' or control characters; choose another folder")
            : path;

    [GeneratedRegex(@"^(?:(\d{1,4})-)?(\d{1,5}):([0-5]\d):([0-5]\d)$")]
    private static partial Regex TimeFormat();

    [GeneratedRegex(@"^[A-Za-z0-9._,-]{1,128}$")]
    private static partial Regex Name();
}
