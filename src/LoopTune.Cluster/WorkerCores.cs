using System.Globalization;
using LoopTune.Learning;
using LoopTune.Measure;

namespace LoopTune.Cluster;

/// <summary>The cores a silo's workers get: <c>--workers N</c> (the first N cores this process may run on), <c>--cores
/// 0,2</c> (those cores), or every core this process may run on when neither is given. At N threads
/// (<see cref="Jit.RunThreads"/>) each worker's kernels also take the N - 1 cores after its own
/// (<see cref="ThreadPinning.TeamCores"/>), which no other worker may have.</summary>
public static class WorkerCores
{
    /// <summary>The cores asked for; a <see cref="LoopTuneException"/> naming the option when they cannot be had.</summary>
    public static int[] Choose(int? workers, string? cores)
    {
        if (workers is not null && cores is not null) throw new ClusterError("give --workers N or --cores LIST, not both");
        if (cores is null) return WorkerPool.ChooseCores(workers ?? Math.Max(1, WorkerPool.AvailableCores / Jit.RunThreads.Default));
        var allowed = ThreadPinning.CurrentAffinity() is { Count: > 0 } a ? a : [.. Enumerable.Range(0, Environment.ProcessorCount)];
        var list = new List<int>();
        foreach (var part in cores.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int core))
                throw new ClusterError($"--cores '{cores}': '{part}' is not a core number (give a comma-separated list such as 0,2)");
            if (!allowed.Contains(core))
                throw new ClusterError($"--cores '{cores}': core {core} is not one this process may run on ({string.Join(",", allowed)})");
            if (list.Contains(core)) throw new ClusterError($"--cores '{cores}' names core {core} twice: a core is never shared by two workers");
            list.Add(core);
        }
        int threads = Jit.RunThreads.Default;
        if (threads > 1)
        {
            var taken = new Dictionary<int, int>();
            foreach (int core in list)
            {
                int[] team = ThreadPinning.TeamCores(threads, core);
                if (team.Distinct().Count() < threads)
                    throw new ClusterError($"--cores '{cores}' --threads {threads}: core {core}'s team of {threads} needs {threads} cores; this process may use {allowed.Count}");
                foreach (int c in team)
                    if (!taken.TryAdd(c, core))
                        throw new ClusterError($"--cores '{cores}' --threads {threads}: the teams of the workers on cores {taken[c]} and {core} both need core {c} (a worker's team takes the {threads - 1} core(s) after its own)");
            }
        }
        return [.. list];
    }
}
