using LoopTune.Env;
using LoopTune.Jit;
using LoopTune.Measure;
using LoopTune.Tests.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Measure;

/// <summary>The machine's description from fixtures of <c>/proc/cpuinfo</c> and sysfs cache folders of the three kinds of
/// CPU the project has met (AVX2 with two 256-bit FMA pipes, AVX-512 on one pipe, AVX-512 on two), the FMA pipes derived
/// from measured figures, the report block, and the notes on libraries that run below the machine.</summary>
public sealed class MachineTests
{
    const string Avx2Epyc = """
        processor	: 0
        vendor_id	: AuthenticAMD
        cpu family	: 23
        model		: 49
        model name	: AMD EPYC 7B12
        flags		: fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 bmi2

        processor	: 1
        vendor_id	: AuthenticAMD
        cpu family	: 23
        model		: 49
        model name	: AMD EPYC 7B12
        flags		: fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 bmi2 avx512f
        """;

    const string Zen4 = """
        processor	: 0
        vendor_id	: AuthenticAMD
        cpu family	: 25
        model		: 17
        model name	: AMD EPYC 9B14
        flags		: fpu sse sse2 fma avx avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16
        """;

    const string Zen5 = """
        processor	: 0
        vendor_id	: AuthenticAMD
        cpu family	: 26
        model		: 2
        model name	: AMD EPYC
        flags		: fpu sse sse2 fma avx avx2 avx512f avx512dq avx512bw avx512vl avx512_vp2intersect
        """;

    [Theory]
    [InlineData(Avx2Epyc, "AMD EPYC 7B12", 23, 49, 256, 16, "AVX2")]
    [InlineData(Zen4, "AMD EPYC 9B14", 25, 17, 512, 32, "AVX-512")]
    [InlineData(Zen5, "AMD EPYC", 26, 2, 512, 32, "AVX-512")]
    public void The_first_processor_of_cpuinfo_is_described(string cpuinfo, string model, int family, int number, int bits, int registers, string isa)
    {
        var cpu = CpuInfo.Parse(cpuinfo.Replace("\r", ""));
        Assert.Equal((model, "AuthenticAMD", family, number), (cpu.Model, cpu.Vendor, cpu.Family, cpu.ModelNumber));
        Assert.Equal((bits, registers, isa), (cpu.VectorBits, cpu.VectorRegisters, cpu.Isa)); // the second processor's avx512f is not the first's
    }

    [Fact]
    public void An_arm_cpuinfo_and_an_empty_one_are_described_too()
    {
        var arm = CpuInfo.Parse("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: 0xd0c\n");
        Assert.Equal((128, 32, "NEON", "0x41", 8, 0xd0c), (arm.VectorBits, arm.VectorRegisters, arm.Isa, arm.Vendor, arm.Family, arm.ModelNumber));
        var none = CpuInfo.Parse("");
        Assert.Equal((0, "unknown", "scalar"), (none.VectorBits, none.Vendor, none.Isa));
    }

    static string SysfsCaches(TempFolder temp, params (int Level, string Type, string Size)[] caches)
    {
        var root = temp["cache"];
        for (int i = 0; i < caches.Length; i++)
        {
            var dir = Directory.CreateDirectory(Path.Combine(root, $"index{i}")).FullName;
            File.WriteAllText(Path.Combine(dir, "level"), caches[i].Level + "\n");
            File.WriteAllText(Path.Combine(dir, "type"), caches[i].Type + "\n");
            File.WriteAllText(Path.Combine(dir, "size"), caches[i].Size + "\n");
        }
        return root;
    }

    [Fact]
    public void The_data_caches_are_read_from_sysfs_and_the_instruction_cache_is_left_out()
    {
        using var temp = new TempFolder();
        var root = SysfsCaches(temp, (1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"), (3, "Unified", "32M"));
        Assert.Equal(new CacheSizes(48, 1024, 32768, "sysfs"), CacheSizes.FromSysfs(root));
        Assert.Null(CacheSizes.FromSysfs(Path.Combine(temp.Path, "none")));
        Assert.Equal(512, CacheSizes.ParseSize("524288"));
        Assert.Null(CacheSizes.ParseSize("big"));
    }

    /// <summary>Measured figures of the three machines (clock from a chain of integer adds, FMA latency, peak), from
    /// this project's runs on each (docs/results.md).</summary>
    [Theory]
    [InlineData(256, 3.05, 4.0, 97.9, 2, 8)]     // AVX2 EPYC: two 256-bit FMA pipes
    [InlineData(512, 3.6, 4.0, 115.0, 1, 4)]     // Zen 4: 512-bit FMAs on 256-bit units, one a cycle
    [InlineData(512, 3.55, 3.97, 226.6, 2, 8)]   // Zen 5: two full 512-bit pipes
    public void Fma_pipes_and_the_accumulators_a_tile_needs_follow_from_the_measurements(int bits, double ghz, double latency, double peak, int pipes, int accumulators)
    {
        var fma = new FmaTiming(bits, ghz, latency, peak);
        Assert.Equal(pipes, fma.Pipes);
        Assert.Equal(accumulators, fma.Accumulators);
    }

    static MachineInfo Describe(string cpuinfo, int bits, double ghz, double peak, string? openblasCore = "Haswell", string? forced = "OPENBLAS_CORETYPE=Haswell", string blisArch = "zen3", string dnnlIsa = "avx512_core")
    {
        var cpu = CpuInfo.Parse(cpuinfo);
        return new MachineInfo(cpu, 2, bits, cpu.VectorRegisters, new FmaTiming(bits, ghz, 4, peak), new CacheSizes(48, 1024, 32768, "sysfs"),
        [
            new LibraryKernels("openblas", true, openblasCore, LibraryKernels.BitsOf("openblas", openblasCore), "OpenBLAS 0.3.21 DYNAMIC_ARCH", forced),
            new LibraryKernels("blis", true, blisArch, LibraryKernels.BitsOf("blis", blisArch), "BLIS 0.9.0", null),
            new LibraryKernels("onednn", true, dnnlIsa, LibraryKernels.BitsOf("onednn", dnnlIsa), "oneDNN 2.7.3", null),
        ]);
    }

    [Fact]
    public void The_report_block_has_every_key_the_reports_need()
    {
        var json = Describe(Zen5, 512, 3.55, 226.6).ToJson();
        foreach (var key in new[] { "cpu", "vector_bits", "vector_registers", "fma_pipes", "peak_gflops", "l1d_kib", "l2_kib", "l3_kib", "openblas", "blis", "onednn" })
            Assert.True(json.ContainsKey(key), key);
        Assert.Equal(("AMD EPYC", "AuthenticAMD", 26, 2), ((string)json["cpu"]!["model"]!, (string)json["cpu"]!["vendor"]!, (int)json["cpu"]!["family"]!, (int)json["cpu"]!["model_number"]!));
        Assert.Equal((512, 32, 2), ((int)json["vector_bits"]!, (int)json["vector_registers"]!, (int)json["fma_pipes"]!));
        Assert.Equal(("Haswell", "OPENBLAS_CORETYPE=Haswell"), ((string)json["openblas"]!["core"]!, (string)json["openblas"]!["forced_by"]!));
        Assert.Equal("zen3", (string)json["blis"]!["arch"]!);
        Assert.Equal("avx512_core", (string)json["onednn"]!["isa"]!);
    }

    [Fact]
    public void A_library_below_the_machines_vectors_is_named_with_what_forced_it()
    {
        var zen5 = Describe(Zen5, 512, 3.55, 226.6, blisArch: "generic");
        Assert.Contains("Haswell kernels (256-bit) on this 512-bit machine, forced by OPENBLAS_CORETYPE=Haswell", zen5.LibraryNote("openblas"));
        Assert.Contains("generic kernels", zen5.LibraryNote("blis"));
        Assert.Null(zen5.LibraryNote("onednn"));
        Assert.Equal(zen5.LibraryNote("onednn"), zen5.LibraryNote("onednn_conv")); // a convolution peer is its library
        Assert.Contains("Haswell", zen5.LibraryNote("im2col_openblas"));
        var narrowed = Describe(Zen5, 128, 3.55, 57.0);
        Assert.Contains("wider than this process's 128-bit vectors", narrowed.LibraryNote("openblas"));
        var avx2 = Describe(Avx2Epyc, 256, 3.05, 97.9, forced: null, dnnlIsa: "avx2");
        Assert.Null(avx2.LibraryNote("openblas")); // Haswell kernels are this machine's width
        Assert.Null(avx2.LibraryNote("onednn"));
    }

    [Fact]
    public void The_machine_tensor_tells_the_three_machines_apart()
    {
        var tensors = new[] { Describe(Avx2Epyc, 256, 3.05, 97.9), Describe(Zen4, 512, 3.6, 115), Describe(Zen5, 512, 3.55, 226.6) }.Select(Observations.MachineTensor).ToList();
        Assert.All(tensors, t => Assert.Equal(Observations.MachineFeatures, t.Length));
        Assert.All(tensors, t => Assert.All(t, x => Assert.InRange(x, 0f, 1.5f)));
        for (int i = 0; i < tensors.Count; i++)
            for (int j = i + 1; j < tensors.Count; j++) Assert.NotEqual(tensors[i], tensors[j]);
        Assert.Equal([0.5f, 1f, 1f], tensors.Select(t => t[0])); // lanes / 16
        Assert.Equal([0.5f, 0.25f, 0.5f], tensors.Select(t => t[3])); // pipes / 4
    }

    /// <summary>The register tile sized from a machine's pipes, latency and registers is the tile measured best on it
    /// (`looptune bench` on each, docs/results.md): 6 x 16 on the AVX2 EPYC, 4 x 32 on Zen 4, 8 x 32
    /// on Zen 5; and its schedules are legal nests of their computations.</summary>
    [Theory]
    [InlineData(Avx2Epyc, 256, 3.05, 97.9, 6, 16)]
    [InlineData(Zen4, 512, 3.6, 115.0, 4, 32)]
    [InlineData(Zen5, 512, 3.55, 226.6, 8, 32)]
    public void The_register_tile_is_the_one_measured_best_on_each_machine(string cpuinfo, int bits, double ghz, double peak, int rows, int width)
    {
        var tile = RegisterTile.For(Describe(cpuinfo, bits, ghz, peak));
        Assert.Equal((rows, width), (tile.Rows, tile.Width));
        Assert.EndsWith($"k:4u m:{rows}u n:{width}v", tile.Matmul(256, 256, 256).ScheduleKey);
        Assert.EndsWith($"m:{tile.WalkRows}u >n:{width}v", LoopTune.Ir.Transforms.ApplyAll(LoopTune.Ir.Nest.Initial(LoopTune.Ir.Computation.Matmul(64, 64, 64)),
            LoopTune.Ir.Actions.ParseList(tile.MatmulWalk())).Serialize());
        var conv = tile.Convolution(new LoopTune.Ir.ConvShape(32, 18, 18, 64, 3, 3));
        Assert.Contains("f:", conv.ScheduleKey);
        Assert.EndsWith("v", conv.ScheduleKey);
    }

    [Fact]
    public void This_machine_is_described_once_per_width()
    {
        var m = Machine.Current;
        Assert.Equal(LoopTune.Jit.JitOptions.Default.VectorBits, m.VectorBits);
        Assert.True(m.FmaPipes >= 1 && m.PeakGflops > 0 && m.Fma.ClockGhz > 0.2 && m.Fma.LatencyCycles > 0.5, m.Describe());
        Assert.Same(m, Machine.At(m.VectorBits));
        Assert.Contains($"{m.VectorBits}-bit vectors", m.Key);
    }

    [Theory]
    [InlineData("machine", "--vector-bits", "100")]
    [InlineData("tune", "--spec", "mm 8 8 8", "--vector-bits", "1024")]
    [InlineData("search", "--spec", "mm 8 8 8", "--method", "greedy1", "--actions", "nope")]
    public void A_width_the_machine_lacks_or_an_unknown_space_is_bad_input(params string[] args)
    {
        var (code, _, err) = TestHome.Run(args);
        Assert.Equal(2, code);
        Assert.Contains(args[^1], err);
    }

    [Fact]
    public void The_machine_command_prints_the_block_as_json()
    {
        var (code, stdout, err) = TestHome.Run("machine", "--json");
        Assert.True(code == 0, err);
        var json = System.Text.Json.Nodes.JsonNode.Parse(stdout)!.AsObject();
        Assert.Equal(Machine.Current.Key, (string)json["key"]!);
        Assert.Equal(Machine.Current.FmaPipes, (int)json["fma_pipes"]!);
    }
}
