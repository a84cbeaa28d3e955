using System.Globalization;

namespace LoopTune.Measure;

/// <summary>How the CPUs this process may use (<see cref="Affinity.ProcessCores"/>) sit on physical cores, as Linux's
/// sysfs says (<c>/sys/devices/system/cpu/cpuN/topology</c>: <c>physical_package_id</c>, <c>core_id</c>): two CPUs with
/// the same pair are two hardware threads (hyperthreads, SMT) of one core, which share its FMA units and caches, so a kernel
/// on both runs far below twice its one-thread speed. A VM shows what its hypervisor tells it, which may hide siblings.</summary>
/// <param name="Cpus">The CPUs the process may use.</param>
/// <param name="PhysicalCores">The distinct physical cores they are on (equal to <paramref name="Cpus"/> when unknown).</param>
/// <param name="Source">"sysfs", or "unknown" when the topology could not be read.</param>
public sealed record CpuTopology(int Cpus, int PhysicalCores, string Source)
{
    /// <summary>Hardware threads per physical core among the process's CPUs (1 without SMT, 2 with hyperthreads).</summary>
    public int ThreadsPerCore => Math.Max(1, (int)Math.Round(Cpus / (double)Math.Max(1, PhysicalCores)));

    /// <summary>This process's, read once.</summary>
    public static CpuTopology Current { get; } = Read("/sys/devices/system/cpu", Affinity.ProcessCores());

    /// <summary>The topology of <paramref name="cpus"/> under <paramref name="root"/> (a sysfs cpu folder).</summary>
    public static CpuTopology Read(string root, IReadOnlyList<int> cpus)
    {
        ArgumentNullException.ThrowIfNull(cpus);
        var cores = new HashSet<(int, int)>();
        foreach (int cpu in cpus)
        {
            string dir = Path.Combine(root, $"cpu{cpu}", "topology");
            if (Number(Path.Combine(dir, "physical_package_id")) is not int package || Number(Path.Combine(dir, "core_id")) is not int core)
                return new CpuTopology(cpus.Count, cpus.Count, "unknown");
            cores.Add((package, core));
        }
        return new CpuTopology(cpus.Count, cores.Count, "sysfs");
    }

    static int? Number(string file)
    {
        try { return int.TryParse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture, out int n) ? n : null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>One line for people: "2 CPUs on 2 physical cores" or "2 CPUs on 1 physical core (2 hardware threads each:
    /// threads on one core share its FMA units)".</summary>
    public string Describe() => Source != "sysfs" ? $"{Cpus} CPUs (physical cores unknown)"
        : ThreadsPerCore > 1 ? $"{Cpus} CPUs on {PhysicalCores} physical core{(PhysicalCores == 1 ? "" : "s")} ({ThreadsPerCore} hardware threads each: threads on one core share its FMA units)"
        : $"{Cpus} CPUs on {PhysicalCores} physical cores, one hardware thread each";
}
