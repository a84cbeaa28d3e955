using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoopTune.Measure;

/// <summary>
/// The FMA peak of one core, measured once per machine and vector width and remembered in <c>peak.json</c> in the data
/// folder (<see cref="LoopTune.DataFolder"/>), keyed by <see cref="Machine.Key"/> (processor, core count, vector width, runtime),
/// so the reward and the reports never need a figure set by hand.
/// </summary>
public static class PeakCache
{
    /// <summary>A description of this machine, at the JIT's vector width, precise enough that a peak measured on it holds
    /// (<see cref="Machine.Key"/>).</summary>
    public static string MachineKey => Machine.Key;

    static string PeakFile => Path.Combine(DataFolder.Root, "peak.json");

    /// <summary>The remembered peak for this machine at <paramref name="bits"/> (default: the JIT's vector width),
    /// measuring and storing it first if there is none.</summary>
    public static double GetOrMeasure(MeasureOptions? options = null) => GetOrMeasure(Jit.JitOptions.Default.VectorBits, options);

    /// <inheritdoc cref="GetOrMeasure(MeasureOptions?)"/>
    public static double GetOrMeasure(int bits, MeasureOptions? options = null)
    {
        var table = ReadTable(PeakFile);
        string key = Machine.KeyAt(bits);
        if (table[key] is JsonValue v && v.TryGetValue(out double g) && g > 0) return g;
        double gflops = Peak.MeasureGflops(options ?? MeasureOptions.Default, bits);
        Remember(gflops, bits);
        return gflops;
    }

    /// <summary>A kernel faster than the remembered peak by more than this factor shows the peak was measured slow.</summary>
    public const double Tolerance = 1.05;

    /// <summary>The remembered peak at <paramref name="bits"/> (default: the JIT's width), checked against
    /// <paramref name="observedGflops"/>, the speed of a kernel timed whole just now, per core. No kernel runs faster than the
    /// FMA peak, so one more than <see cref="Tolerance"/> above it shows the remembered figure was measured on a busy
    /// moment: the peak is measured again and the higher of that and the kernel's speed remembered (the kernel's is a lower
    /// bound of the peak, so the same kernel does not set this off again) in its place (<see cref="Replace"/>), and a warning
    /// names the figures. Returns the peak to report against.</summary>
    public static double Checked(double observedGflops, int? bits = null)
    {
        int b = bits ?? Jit.JitOptions.Default.VectorBits;
        double peak = GetOrMeasure(b);
        if (!(observedGflops > peak * Tolerance) || !double.IsFinite(observedGflops)) return peak;
        double again = Peak.MeasureGflops(MeasureOptions.Default, b), kept = Math.Max(again, observedGflops);
        Replace(kept, b);
        Warnings.Write($"the remembered peak of {peak:F1} GFLOPS ({PeakFile}) is below a kernel just timed at {observedGflops:F1} GFLOPS: "
            + $"measured again, {again:F1}; remembering {kept:F1}");
        return kept;
    }

    /// <summary><see cref="Remember"/> of a peak measured again, as <c>looptune peak</c> and <see cref="Checked"/> do: the FMA
    /// timing derived from the one it replaces (its pipes are the peak over the clock) is forgotten too
    /// (<see cref="Machine.Forget"/>), so the next description measures it again.</summary>
    public static void Replace(double gflops, int? bits = null)
    {
        int b = bits ?? Jit.JitOptions.Default.VectorBits;
        Remember(gflops, b);
        Machine.Forget(b);
    }

    /// <summary>Stores a fresh measurement at <paramref name="bits"/> (default: the JIT's width).</summary>
    public static void Remember(double gflops, int? bits = null)
    {
        var table = ReadTable(PeakFile);
        table[Machine.KeyAt(bits ?? Jit.JitOptions.Default.VectorBits)] = gflops;
        WriteTable(PeakFile, table);
    }

    /// <summary>A JSON object file of the data folder (<c>peak.json</c>, <c>machine.json</c>); empty when it is missing. It is a
    /// cache: a damaged one (not JSON, not an object, a key twice, unreadable) is read as empty, with one line in
    /// <see cref="Warnings"/> naming it, so what it held is measured again and the file rewritten whole.</summary>
    internal static JsonObject ReadTable(string path)
    {
        string problem;
        try
        {
            var node = JsonNode.Parse(File.ReadAllText(path));
            if (node is JsonObject table)
            {
                _ = table.Count; // a key twice shows here, not at the first lookup
                return table;
            }
            problem = node is null ? "it holds null" : $"it holds a JSON {node.GetValueKind()}, not an object";
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return []; }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException or ArgumentException or InvalidOperationException) { problem = e.Message; }
        Warnings.Write($"{path} is damaged ({problem}); it is a cache: measuring what it held again and rewriting it");
        return [];
    }

    /// <summary>Writes a JSON object file of the data folder atomically; best effort (remembering is a cache).</summary>
    internal static void WriteTable(string path, JsonObject table)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            AtomicFile.WriteText(path, table.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        catch (Exception e) when (FileWriteError.IsIo(e) || e is FileWriteError) { /* remembering is best effort */ }
    }
}
