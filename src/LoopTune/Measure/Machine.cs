using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using System.Text.Json.Nodes;
using LoopTune.Jit;

namespace LoopTune.Measure;

/// <summary>The processor as <c>/proc/cpuinfo</c> describes its first CPU: model string, vendor, family, model number and
/// instruction-set flags (x86 <c>flags</c>, Arm <c>Features</c>).</summary>
public sealed record CpuInfo(string Model, string Vendor, int Family, int ModelNumber, IReadOnlyList<string> Flags)
{
    /// <summary>Reads the first processor's block of <c>/proc/cpuinfo</c> text. Fields it lacks are "unknown" or 0.</summary>
    public static CpuInfo Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var f = new Dictionary<string, string>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Trim().Length == 0)
            {
                if (f.ContainsKey("processor")) break; // the end of the first processor's block
                continue;
            }
            int colon = line.IndexOf(':');
            if (colon > 0) f.TryAdd(line[..colon].Trim(), line[(colon + 1)..].Trim());
        }
        string? Get(params string[] keys) => keys.Select(k => f.GetValueOrDefault(k)).FirstOrDefault(v => !string.IsNullOrEmpty(v));
        static int Int(string? s) => s is null ? 0
            : s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? int.TryParse(s[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int h) ? h : 0
            : int.TryParse(s, CultureInfo.InvariantCulture, out int d) ? d : 0;
        return new CpuInfo(Get("model name", "Processor", "cpu model") ?? RuntimeInformation.ProcessArchitecture.ToString(),
            Get("vendor_id", "CPU implementer") ?? "unknown", Int(Get("cpu family", "CPU architecture")), Int(Get("model", "CPU part")),
            [.. (Get("flags", "Features") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries)]);
    }

    /// <summary>This machine's, read once (an empty description where /proc/cpuinfo cannot be read).</summary>
    public static CpuInfo Current { get; } = ReadCurrent();

    static CpuInfo ReadCurrent()
    {
        try { return Parse(File.ReadAllText("/proc/cpuinfo")); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return Parse(""); }
    }

    public bool Has(string flag) => Flags.Contains(flag);

    /// <summary>The widest SIMD the instruction set has, in bits: 512 with AVX-512F, 256 with AVX, 128 with SSE2 or Arm's
    /// Advanced SIMD, 0 otherwise.</summary>
    public int VectorBits => Has("avx512f") ? 512 : Has("avx") ? 256 : Has("sse2") || Has("asimd") ? 128 : 0;

    /// <summary>The SIMD registers its vector instructions can name: 32 with AVX-512 (EVEX encoding) and on Arm, 16 on other x86-64.</summary>
    public int VectorRegisters => Has("avx512f") || Has("asimd") ? 32 : 16;

    /// <summary>The instruction set's name, for people: AVX-512, AVX2, AVX, NEON, SSE2 or scalar.</summary>
    public string Isa => Has("avx512f") ? "AVX-512" : Has("avx2") ? "AVX2" : Has("avx") ? "AVX" : Has("asimd") ? "NEON" : Has("sse2") ? "SSE2" : "scalar";
}

/// <summary>The FMA unit at one vector width, measured: the clock (a chain of dependent integer adds, one per cycle), the
/// latency of a vector FMA in cycles (a chain of dependent FMAs) and the peak (<see cref="Peak.Chains"/> independent
/// chains). From these: how many FMAs of this width start per cycle, and how many independent accumulators a register
/// tile needs to keep them all busy.</summary>
public sealed record FmaTiming(int VectorBits, double ClockGhz, double LatencyCycles, double PeakGflops)
{
    public int Lanes => Math.Max(1, VectorBits / 32);

    /// <summary>FMAs of this width started per cycle: the peak over (clock x lanes x 2 flops), rounded, at least 1.</summary>
    public int Pipes => ClockGhz > 0 ? Math.Max(1, (int)Math.Round(PeakGflops / (ClockGhz * Lanes * 2))) : 1;

    /// <summary>Independent accumulators that keep every pipe busy: pipes x latency (rounded).</summary>
    public int Accumulators => Pipes * Math.Max(1, (int)Math.Round(LatencyCycles));

    /// <summary>Measures the clock and the FMA latency at <paramref name="bits"/>; the peak is given (measured once per machine).</summary>
    public static FmaTiming Measure(int bits, double peakGflops, MeasureOptions options)
    {
        var clock = ClockKernel.Run;
        long sink = 0;
        const long iterations = 4096;
        Measurement adds;
        using (ThreadPinning.Pin()) adds = Timing.Measure(() => sink += clock(iterations, 3), iterations * ClockKernel.AddsPerIteration, Peak.Short(options));
        // the fastest samples, as the peak's (Peak.MeasureGflops): neither loop touches memory, so only other work on the
        // core slows a sample, and a clock or a chain timed slow on a busy moment skews the pipes and the latency (remembered
        // once as 3 pipes of latency 6.7 at 2.37 GHz on a Zen 5 of 2 pipes of latency 4)
        double ghz = adds.BestGflops; // "flops" here are adds: adds per ns
        var chain = Peak.Measure(options, bits, chains: 1); // one dependent FMA after another
        double fmasPerNs = chain.BestGflops / (2.0 * Math.Max(1, bits / 32));
        GC.KeepAlive(sink);
        return new FmaTiming(bits, ghz, ghz / fmasPerNs, peakGflops);
    }
}

/// <summary>Which kernels a peer library runs here: OpenBLAS's core (<c>openblas_get_corename</c>) and build
/// (<c>openblas_get_config</c>), BLIS's architecture (<c>bli_arch_string</c>), oneDNN's instruction set
/// (<c>dnnl_get_effective_cpu_isa</c>); their vector width when known; and what forced or limited the choice.</summary>
public sealed record LibraryKernels(string Key, bool Available, string? Kernels, int? VectorBits, string? Config, string? ForcedBy)
{
    /// <summary>The vector width of a library's kernels from their name (null when the name says nothing of it).</summary>
    public static int? BitsOf(string key, string? kernels)
    {
        var k = kernels?.ToLowerInvariant() ?? "";
        if (k.Length == 0 || k == "generic") return null;
        if (k.Contains("avx512") || k.Contains("amx") || k is "skylakex" or "cooperlake" or "sapphirerapids" or "skx" or "knl" or "zen4" or "zen5") return 512;
        if (k.Contains("avx") || k is "haswell" or "zen" or "zen2" or "zen3" or "sandybridge" or "bulldozer" or "piledriver" or "steamroller" or "excavator") return 256;
        if (k.Contains("sse") || k is "nehalem" or "core2" or "penryn" or "atom" or "barcelona" or "prescott" || k.StartsWith("armv8", StringComparison.Ordinal)
            || k.StartsWith("cortex", StringComparison.Ordinal) || k.StartsWith("neoverse", StringComparison.Ordinal)) return 128;
        return key == "onednn" && k.Contains("sse41") ? 128 : null;
    }
}

/// <summary>
/// What tuning depends on, for the machine this process runs on, at the vector width the JIT uses: the processor, the
/// vector width and registers, the FMA pipes and latency (measured), the peak (measured), the caches, and which kernels
/// the peer libraries run. <c>looptune machine</c> prints it; every report carries it (<see cref="ToJson"/>).
/// </summary>
public sealed record MachineInfo(CpuInfo Cpu, int Cpus, int VectorBits, int VectorRegisters, FmaTiming Fma, CacheSizes Caches, IReadOnlyList<LibraryKernels> Libraries)
{
    /// <summary>The widest vector of the CPU, whatever the JIT was limited to.</summary>
    public int CpuVectorBits => Cpu.VectorBits;

    public int FmaPipes => Fma.Pipes;
    public double PeakGflops => Fma.PeakGflops;

    /// <summary>The machine's key (<see cref="Machine.Key"/>) at this width.</summary>
    public string Key => Machine.KeyOf(Cpu, Cpus, VectorBits);

    /// <summary>A name for folders of things learned on this kind of machine: vendor, family, model and vector width, e.g.
    /// <c>authenticamd-26-2-512bit</c>.</summary>
    public string Slug => Machine.SlugOf(Cpu, VectorBits);

    /// <summary>The library called <paramref name="key"/> ("openblas", "blis", "onednn"; a convolution peer's key names its library).</summary>
    public LibraryKernels? Library(string key) =>
        Libraries.FirstOrDefault(l => key == l.Key || key.EndsWith("_" + l.Key, StringComparison.Ordinal) || key.StartsWith(l.Key + "_", StringComparison.Ordinal));

    /// <summary>When the library runs kernels narrower than the machine's vectors, or generic ones, or (with the process
    /// limited to narrower vectors) wider ones than ours: a short note saying so and why (the variable that forced it);
    /// null when it runs at our width or nothing is known.</summary>
    public string? LibraryNote(string key)
    {
        if (Library(key) is not { Available: true } l) return null;
        string forced = l.ForcedBy is { } f ? $", forced by {f}" : "";
        if (l.Kernels == "generic") return $"generic kernels (none for this CPU in this build){forced}";
        if (l.ForcedBy?.StartsWith("this process", StringComparison.Ordinal) == true) return $"limited to {l.Kernels} to match {l.ForcedBy}";
        if (l.VectorBits is int bits && bits < VectorBits) return $"{l.Kernels} kernels ({bits}-bit) on this {VectorBits}-bit machine{forced}";
        if (l.VectorBits is int wider && wider > VectorBits) return $"{l.Kernels} kernels ({wider}-bit), wider than this process's {VectorBits}-bit vectors{forced}";
        return null;
    }

    /// <summary>The report block: <c>cpu</c> {model, vendor, family, model_number}, <c>vector_bits</c>, <c>vector_registers</c>,
    /// <c>fma_pipes</c>, <c>peak_gflops</c>, <c>l1d_kib</c>, <c>l2_kib</c>, <c>l3_kib</c>, <c>openblas</c> {config, core, forced_by},
    /// <c>blis</c> {arch}, <c>onednn</c> {isa}, and the measurements behind them.</summary>
    public JsonObject ToJson()
    {
        JsonObject Lib(string key, string kernelsName)
        {
            var l = Library(key);
            var o = new JsonObject { ["available"] = l?.Available ?? false, [kernelsName] = l?.Kernels, ["vector_bits"] = l?.VectorBits };
            if (key == "openblas") o["config"] = l?.Config;
            if (l?.ForcedBy is not null || key == "openblas") o["forced_by"] = l?.ForcedBy;
            if (LibraryNote(key) is { } note) o["note"] = note;
            return o;
        }
        return new JsonObject
        {
            ["key"] = Key,
            ["cpu"] = new JsonObject { ["model"] = Cpu.Model, ["vendor"] = Cpu.Vendor, ["family"] = Cpu.Family, ["model_number"] = Cpu.ModelNumber, ["isa"] = Cpu.Isa },
            ["cpus"] = Cpus,
            ["process_cpus"] = CpuTopology.Current.Cpus,
            ["physical_cores"] = CpuTopology.Current.PhysicalCores,
            ["threads_per_core"] = CpuTopology.Current.ThreadsPerCore,
            ["topology_source"] = CpuTopology.Current.Source,
            ["vector_bits"] = VectorBits,
            ["cpu_vector_bits"] = CpuVectorBits,
            ["vector_registers"] = VectorRegisters,
            ["fma_pipes"] = FmaPipes,
            ["fma_latency_cycles"] = Math.Round(Fma.LatencyCycles, 2),
            ["accumulators_needed"] = Fma.Accumulators,
            ["clock_ghz"] = Math.Round(Fma.ClockGhz, 3),
            ["peak_gflops"] = Math.Round(PeakGflops, 2),
            ["l1d_kib"] = Caches.L1dKib,
            ["l2_kib"] = Caches.L2Kib,
            ["l3_kib"] = Caches.L3Kib,
            ["cache_source"] = Caches.Source,
            ["openblas"] = Lib("openblas", "core"),
            ["blis"] = Lib("blis", "arch"),
            ["onednn"] = Lib("onednn", "isa"),
        };
    }

    /// <summary>One line for people, e.g. <c>AMD EPYC (AuthenticAMD family 26 model 2): AVX-512, 512-bit vectors, 32 registers,
    /// 2 FMA pipes (latency 4.0), peak 227.8 GFLOPS; L1d 48 KiB, L2 1024 KiB</c>.</summary>
    public string Describe()
    {
        var caches = string.Join(", ", new[] { ("L1d", Caches.L1dKib), ("L2", Caches.L2Kib), ("L3", Caches.L3Kib) }.Where(c => c.Item2 is not null).Select(c => $"{c.Item1} {c.Item2} KiB"));
        string limited = VectorBits < CpuVectorBits ? $" (limited from {CpuVectorBits})" : "";
        return FormattableString.Invariant(
            $"{Cpu.Model} ({Cpu.Vendor} family {Cpu.Family} model {Cpu.ModelNumber}): {Cpu.Isa}, {VectorBits}-bit vectors{limited}, {VectorRegisters} registers, {FmaPipes} FMA pipe{(FmaPipes == 1 ? "" : "s")} (latency {Fma.LatencyCycles:F1} cycles, {Fma.Accumulators} accumulators), peak {PeakGflops:F1} GFLOPS") + (caches.Length > 0 ? $"; {caches}" : "");
    }
}

/// <summary>
/// This machine, described (<see cref="MachineInfo"/>) at the vector width the JIT uses, or at any width it accelerates.
/// The measured parts (peak, clock, FMA latency) are measured once per machine key and width and remembered in
/// <c>machine.json</c> in the data folder (<see cref="DataFolder.Root"/>).
/// </summary>
public static class Machine
{
    static readonly ConcurrentDictionary<int, MachineInfo> described = new();
    static readonly Lock fileGate = new();

    /// <summary>The description at the JIT's vector width (<see cref="JitOptions.Default"/>).</summary>
    public static MachineInfo Current => At(JitOptions.Default.VectorBits);

    /// <summary>The description at <paramref name="bits"/> (a width this machine accelerates), measuring what is not remembered.</summary>
    public static MachineInfo At(int bits) => described.GetOrAdd(bits, b => new MachineInfo(CpuInfo.Current, OnlineCpus(), b, Registers(),
        Timing(b), CacheSizes.Current, LibraryInfo()));

    /// <summary>The key of this machine at the JIT's vector width: measurements, peaks and stores of one key compare.</summary>
    public static string Key => KeyOf(CpuInfo.Current, OnlineCpus(), JitOptions.Default.VectorBits);

    /// <summary>The folder name of things learned on this kind of machine at the JIT's width (<see cref="MachineInfo.Slug"/>),
    /// known without measuring anything.</summary>
    public static string Slug => SlugOf(CpuInfo.Current, JitOptions.Default.VectorBits);

    /// <summary>The key at <paramref name="bits"/>.</summary>
    public static string KeyAt(int bits) => KeyOf(CpuInfo.Current, OnlineCpus(), bits);

    internal static string KeyOf(CpuInfo cpu, int cpus, int bits) =>
        $"{cpu.Model} ({cpu.Vendor} family {cpu.Family} model {cpu.ModelNumber}) | {cpus} cpus | {bits}-bit vectors | {RuntimeInformation.FrameworkDescription}";

    internal static string SlugOf(CpuInfo cpu, int bits) =>
        string.Concat($"{cpu.Vendor}-{cpu.Family}-{cpu.ModelNumber}-{bits}bit".ToLowerInvariant().Select(ch => char.IsAsciiLetterOrDigit(ch) ? ch : '-'));

    /// <summary>The SIMD registers RyuJIT allocates: 32 where it uses AVX-512's encoding or on Arm, else 16.</summary>
    static int Registers() => Avx512F.IsSupported || AdvSimd.IsSupported ? 32 : 16;

    /// <summary>The CPUs of the machine, whatever this process's affinity (Environment.ProcessorCount follows the affinity,
    /// so a process started under taskset would see another machine).</summary>
    internal static int OnlineCpus()
    {
        try
        {
            var text = File.ReadAllText("/sys/devices/system/cpu/online").Trim();
            return text.Split(',').Sum(r => r.Split('-') is [var a, var b] ? int.Parse(b, CultureInfo.InvariantCulture) - int.Parse(a, CultureInfo.InvariantCulture) + 1 : 1);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return Environment.ProcessorCount; }
    }

    /// <summary>Forgets the FMA timing at <paramref name="bits"/>, in this process and in <c>machine.json</c>, so the next
    /// description measures it again (after the peak it derives the pipes from was measured again:
    /// <see cref="PeakCache.Replace"/>).</summary>
    public static void Forget(int bits)
    {
        string path = Path.Combine(DataFolder.Root, "machine.json");
        lock (fileGate)
        {
            described.TryRemove(bits, out _);
            var table = PeakCache.ReadTable(path);
            if (table.Remove(KeyAt(bits))) PeakCache.WriteTable(path, table);
        }
    }

    /// <summary>The FMA timing at <paramref name="bits"/>: remembered, or measured now (about a second) and remembered.</summary>
    static FmaTiming Timing(int bits)
    {
        double peak = PeakCache.GetOrMeasure(bits);
        string key = KeyAt(bits), path = Path.Combine(DataFolder.Root, "machine.json");
        lock (fileGate)
        {
            var table = PeakCache.ReadTable(path);
            if (table[key] is JsonObject o && Positive(o["clock_ghz"]) is double ghz && Positive(o["fma_latency_cycles"]) is double latency)
                return new FmaTiming(bits, ghz, latency, peak);
            var t = FmaTiming.Measure(bits, peak, new MeasureOptions(0.01, 0.1, 5, 0.002, 200));
            table[key] = new JsonObject { ["clock_ghz"] = t.ClockGhz, ["fma_latency_cycles"] = t.LatencyCycles, ["measured_at"] = DateTime.UtcNow.ToString("O") };
            PeakCache.WriteTable(path, table);
            return t;
        }
    }

    static double? Positive(JsonNode? n) => n is JsonValue v && v.TryGetValue(out double x) && x > 0 && double.IsFinite(x) ? x : null;

    /// <summary>Which kernels OpenBLAS, BLIS and oneDNN run (loading them if they are installed).</summary>
    static IReadOnlyList<LibraryKernels> LibraryInfo() => [.. Peers.All.Select(p => p.Kernels)];
}
