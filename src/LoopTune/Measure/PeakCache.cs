using System.Runtime.InteropServices;
using System.Text.Json;

namespace LoopTune.Measure;

/// <summary>
/// The FMA peak of one core, measured once per machine and remembered in <c>peak.json</c> in the data folder
/// (<see cref="DataFolder"/>), keyed by processor, core count, vector width and runtime version, so the reward and the
/// reports never need a figure set by hand.
/// </summary>
public static class PeakCache
{
    /// <summary>Where LoopTune keeps what it remembers: $LOOPTUNE_HOME if set, else the user's local data folder + /looptune.</summary>
    public static string DataFolder =>
        Environment.GetEnvironmentVariable("LOOPTUNE_HOME") is { Length: > 0 } home ? home
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "looptune");

    /// <summary>A description of this machine precise enough that a peak measured on it holds.</summary>
    public static string MachineKey { get; } =
        $"{CpuModel()} | {OnlineCpus()} cpus | {(Jit.JitOptions.Default.VectorWidths.FirstOrDefault() * 32)}-bit vectors | {RuntimeInformation.FrameworkDescription}";

    /// <summary>The CPUs of the machine, whatever this process's affinity (Environment.ProcessorCount follows the affinity,
    /// so a process started under taskset would see another machine and measure another peak).</summary>
    static int OnlineCpus()
    {
        try
        {
            var text = File.ReadAllText("/sys/devices/system/cpu/online").Trim();
            return text.Split(',').Sum(r => r.Split('-') is [var a, var b] ? int.Parse(b, System.Globalization.CultureInfo.InvariantCulture) - int.Parse(a, System.Globalization.CultureInfo.InvariantCulture) + 1 : 1);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return Environment.ProcessorCount; }
    }

    /// <summary>The remembered peak for this machine, measuring and storing it first if there is none.</summary>
    public static double GetOrMeasure(MeasureOptions? options = null)
    {
        var path = Path.Combine(DataFolder, "peak.json");
        var table = Read(path);
        if (table.TryGetValue(MachineKey, out double gflops) && gflops > 0) return gflops;
        gflops = Peak.MeasureGflops(options ?? MeasureOptions.Default);
        table[MachineKey] = gflops;
        Write(path, table);
        return gflops;
    }

    /// <summary>Stores a fresh measurement (what <c>looptune peak</c> does).</summary>
    public static void Remember(double gflops)
    {
        var path = Path.Combine(DataFolder, "peak.json");
        var table = Read(path);
        table[MachineKey] = gflops;
        Write(path, table);
    }

    static Dictionary<string, double> Read(string path)
    {
        try { return JsonSerializer.Deserialize<Dictionary<string, double>>(File.ReadAllText(path)) ?? []; }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException) { return []; }
    }

    static void Write(string path, Dictionary<string, double> table)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var tmp = $"{path}.{Environment.ProcessId}.tmp";
            File.WriteAllText(tmp, JsonSerializer.Serialize(table, new JsonSerializerOptions { WriteIndented = true }));
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* remembering is best effort */ }
    }

    static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null) return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }
}
