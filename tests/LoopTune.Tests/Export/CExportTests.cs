using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LoopTune.Export;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using LoopTune.Tests.TestUtil;
using Xunit.Abstractions;

namespace LoopTune.Tests.Export;

/// <summary>Schedules exported as C (<see cref="CExport"/>), compiled by gcc into one shared library in the test, called
/// through function pointers on guarded random inputs and checked against the reference; and the export command's bad input.</summary>
public class CExportTests(ITestOutputHelper output)
{
    /// <summary>The ISAs this machine and its compiler take (generic always).</summary>
    static readonly Isa[] Targets = [.. Isas.All.Where(i => CCompiler.Refuses(i) is null && Isas.Default(CpuInfo.Current.Flags) >= i)];

    /// <summary>Random computations (matmuls, convolutions, strided convolutions, transposed products and the other
    /// shapes of <see cref="RandomSchedules"/>) under random legal walks, half of them ending vectorized, each for one of
    /// the ISAs in turn; plus the schedules the measurements use.</summary>
    static List<(Nest Nest, Isa Isa, string Repro)> Cases()
    {
        var cases = new List<(Nest, Isa, string)>();
        string[] kinds = ["mm", "mm", "conv", "conv", "strided", "other", "transposed"];
        for (int i = 0; i < 245; i++)
        {
            var rng = new Random(7919 * i + 3);
            string kind = kinds[i % kinds.Length];
            var c = kind == "transposed"
                ? Computation.Parse($"C[m,n] += A[k,m] * B[n,k] m={Size(rng)} n={Size(rng)} k={Size(rng)}")
                : RandomSchedules.Of(kind, rng);
            var (nest, actions) = RandomSchedules.Walk(Nest.Initial(c), rng, rng.Next(4, 26));
            if (i % 2 == 1) nest = RandomSchedules.FinishVectorized(nest, actions);
            cases.Add((nest, Targets[i % Targets.Length], RandomSchedules.Describe(c, actions)));
        }
        foreach (var (spec, schedule) in new[] { ("mm 256 256 256", "m:64 n:8 k:256 m:4u n:2u >n:16v"), ("conv 16 34 34 32 3 3", "f:8 h:32 w:2 c:16 r:3 s:3 f:4u >w:16v"),
                                                ("mm 200 144 176", "n:9 >m:50 k:176 m:4u n:16v pack=B"), ("mm 64 96 80", ">m:16p n:6 k:80 m:4u n:16v") })
            foreach (var isa in Targets)
                cases.Add((Nest.Parse(Computation.Parse(spec), schedule), isa, $"spec '{spec}' schedule '{schedule}'"));
        return cases;
    }

    static int Size(Random rng) => RandomSchedules.MmSizes[rng.Next(RandomSchedules.MmSizes.Length)];

    [Fact]
    public unsafe void Random_schedules_exported_to_C_match_the_reference()
    {
        Assert.True(CCompiler.Available, $"no C compiler ({CCompiler.Command})");
        var cases = Cases();
        using var folder = new TempFolder("looptune-export");
        var clock = Stopwatch.StartNew();
        var sources = new List<string>();
        for (int i = 0; i < cases.Count; i++)
        {
            var exported = CExport.Write(cases[i].Nest, $"k{i}", cases[i].Isa, "the test machine");
            ExportFiles.Write(folder[$"k{i}.c"], exported);
            sources.Add(folder[$"k{i}.c"]);
        }
        double exportSeconds = clock.Elapsed.TotalSeconds;
        // one library for every case, one translation unit including every source (gcc parses immintrin.h once, not 250
        // times), built with the widest ISA's flags (which take the narrower ones' intrinsics) and OpenMP, warnings as
        // errors; the narrower ISAs' sources also checked on their own flags, the generic ones as strict C99
        string Unity(string file, Func<Isa, bool> which)
        {
            File.WriteAllLines(folder[file], sources.Where((_, i) => which(cases[i].Isa)).Select(f => $"#include \"{Path.GetFileName(f)}\""));
            return folder[file];
        }
        string library = folder["exported.so"];
        CCompiler.SharedLibrary([Unity("all.c", _ => true)], library, $"-std=c99 -O2 -fopenmp -Wall -Wextra -Werror {Targets.Max().CompilerFlags()}");
        foreach (var isa in Targets.Where(t => t != Targets.Max()))
            CCompiler.Compile([.. $"-std=c99 -fsyntax-only -Wall -Wextra -Werror{(isa == Isa.Generic ? " -pedantic" : " " + isa.CompilerFlags())}".Split(' '), Unity($"{isa.Name()}.c", i => i == isa)]);
        double compileSeconds = clock.Elapsed.TotalSeconds - exportSeconds;
        var handle = NativeLibrary.Load(library);
        try
        {
            // the parallel loops run on 3 OpenMP threads, whatever cores the test may use
            ((delegate* unmanaged<int, void>)NativeLibrary.GetExport(handle, "omp_set_num_threads"))(3);
            var failures = new List<string>();
            for (int i = 0; i < cases.Count; i++)
            {
                var fn = (delegate* unmanaged<float*, float*, float*, void>)NativeLibrary.GetExport(handle, $"k{i}");
                var (nest, isa, repro) = cases[i];
                if (KernelCheck.Problems(nest.Computation, new Random(i), (o, l, r) => fn((float*)o, (float*)l, (float*)r)) is string problem)
                    failures.Add($"[k{i} {isa.Name()}] {repro} nest '{nest.Serialize()}': {problem}");
            }
            int Count(Func<Nest, bool> has) => cases.Count(c => has(c.Nest));
            output.WriteLine($"{cases.Count} schedules ({string.Join(", ", Targets.Select(t => $"{cases.Count(c => c.Isa == t)} {t.Name()}"))}): " +
                $"{Count(n => n.Loops.Any(l => l.Tail > 0))} with tails, {Count(n => n.Loops.Any(l => l.IsUnrolled))} unrolled, " +
                $"{Count(n => n.Loops.Any(l => l.IsVectorized))} vectorized, {Count(n => n.Computation.HasWindows)} convolutions, " +
                $"{Count(n => n.Packed != 0)} packed, {Count(n => n.ParallelLoop >= 0)} parallel; exported in {exportSeconds:F1} s, compiled in {compileSeconds:F1} s");
            Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} exported kernels wrong:\n" + string.Join("\n", failures.Take(8)));
            Assert.True(cases.Count >= 200);
            Assert.True(Count(n => n.Loops.Any(l => l.Tail > 0)) >= 40 && Count(n => n.Loops.Any(l => l.IsUnrolled)) >= 40 && Count(n => n.Loops.Any(l => l.IsVectorized)) >= 100);
            Assert.True(Count(n => n.Computation.HasWindows) >= 40 && Count(n => n.Computation.Left.Name == "A" && n.Computation.Left.Index[0][0].Var == 2) >= 20);
            Assert.True(Count(n => n.Packed != 0) >= 5 && Count(n => n.ParallelLoop >= 0) >= 5);
        }
        finally
        {
            NativeLibrary.Free(handle);
        }
    }

    static (int Code, string Out, string Err) Run(params string[] args) => TestHome.Run(args);

    [Fact]
    public unsafe void Export_command_writes_a_tuned_schedule_that_compiles_and_matches()
    {
        using var folder = new TempFolder("looptune-export");
        using var records = new TempFolder("looptune-records");
        var (code, stdout, err) = Run("export", "--spec", "mm 64 48 40", "--policy", "default", "--budget", "0", "--records", records["r.db"], "--out", folder["tuned.c"], "--isa", "generic", "--name", "tuned_mm");
        Assert.True(code == 0, err);
        Assert.Contains("tuned mm 64 48 40", err);
        // the policy's rollout, or the machine's tile timed beside it (CacheBlockedTiles) when faster
        Assert.Matches(@"tuned now with policy(, beaten by the machine's tile)? \(budget 0\) at ", stdout);
        string header = File.ReadAllText(folder["tuned.h"]), source = File.ReadAllText(folder["tuned.c"]);
        Assert.Contains("void tuned_mm(float *restrict out, const float *restrict in0, const float *restrict in1);", header);
        Assert.Contains("spec      C[m,n] += A[m,k] * B[k,n] m=64 n=48 k=40", source);
        Assert.Contains("machine   ", source);
        Assert.Contains("schedule", stdout);
        CCompiler.SharedLibrary([folder["tuned.c"]], folder["tuned.so"], "-std=c99 -O2 -Wall -Wextra -Werror -pedantic");
        var handle = NativeLibrary.Load(folder["tuned.so"]);
        try
        {
            var fn = (delegate* unmanaged<float*, float*, float*, void>)NativeLibrary.GetExport(handle, "tuned_mm");
            Assert.Null(KernelCheck.Problems(Computation.Parse("mm 64 48 40"), new Random(5), (o, l, r) => fn((float*)o, (float*)l, (float*)r)));
        }
        finally
        {
            NativeLibrary.Free(handle);
        }
        Assert.Equal(["tuned.c", "tuned.h", "tuned.so"], Directory.GetFiles(folder.Path).Select(Path.GetFileName).Order());
    }

    /// <summary>A schedule whose panel of B (64 KB) is read by two row tiles: the JIT prefetches the next panel spread over
    /// them (<see cref="JitOptions.PrefetchSpreadBytes"/>, on a machine whose L1d is smaller and half its L2 larger), and
    /// the export writes the same prefetches under the same guards on its loop counters; built with -Werror, the function
    /// matches the reference.</summary>
    [Fact]
    public unsafe void Exported_prefetches_keep_their_guards_and_the_function_matches()
    {
        var c = Computation.Parse("mm 16 512 256");
        var nest = Nest.Parse(c, ">n:8 m:2 k:256 m:8u n:64v");
        var isa = Isas.Default(CpuInfo.Current.Flags);
        var exported = CExport.Write(nest, "spread", isa, "this machine");
        var options = JitOptions.Default;
        bool spreads = options.PrefetchSpreadMinBytes < 64 * 1024 && options.PrefetchSpreadBytes >= 64 * 1024;
        Assert.Equal(spreads, Kernel.Compile(nest).Prefetches);
        if (spreads) Assert.Matches(@"if \(i\d+ == \d\) __builtin_prefetch\(", exported.Code);
        using var folder = new TempFolder("looptune-export");
        ExportFiles.Write(folder["spread.c"], exported);
        CCompiler.SharedLibrary([folder["spread.c"]], folder["spread.so"], $"-std=c99 -O2 -Wall -Wextra -Werror -pedantic {isa.CompilerFlags()}");
        var handle = NativeLibrary.Load(folder["spread.so"]);
        try
        {
            var fn = (delegate* unmanaged<float*, float*, float*, void>)NativeLibrary.GetExport(handle, "spread");
            Assert.Null(KernelCheck.Problems(c, new Random(6), (o, l, r) => fn((float*)o, (float*)l, (float*)r)));
        }
        finally
        {
            NativeLibrary.Free(handle);
        }
    }

    /// <summary><c>export --policy</c> goes through the tuning records as <see cref="Tuner.Get(string)"/> does: the first
    /// export tunes and records, the second recalls the record untouched and writes the same code, a <see cref="Tuner"/>
    /// over the file recalls the same schedule, and a schedule a tuner recorded is what export recalls.</summary>
    [Fact]
    public void Export_with_a_policy_recalls_the_tuning_records_and_records_what_it_tunes()
    {
        using var folder = new TempFolder("looptune-export");
        using var records = new TempFolder("looptune-records");
        string db = records["records.db"];
        JsonNode Export(string spec, string file)
        {
            var (code, stdout, err) = Run("export", "--spec", spec, "--policy", "default", "--budget", "0", "--records", db, "--isa", "generic", "--name", "k", "--out", folder[file], "--json");
            Assert.True(code == 0, err);
            return JsonNode.Parse(stdout)!;
        }
        var first = Export("mm 40 24 56", "first.c");
        var second = Export("mm 40 24 56", "second.c");
        Assert.Equal(("tuned", "recalled"), ((string?)first["schedule_from"], (string?)second["schedule_from"]));
        Assert.Equal(first["schedule"]!.ToJsonString(), second["schedule"]!.ToJsonString());
        Assert.Equal(first["record"]!.ToJsonString(), second["record"]!.ToJsonString()); // the same record: not tuned again
        Assert.Equal((db, "0"), ((string?)second["record"]!["records"], (string?)second["record"]!["budget"]));
        Assert.Equal(File.ReadAllText(folder["first.c"]).Replace("first.h", "second.h", StringComparison.Ordinal), File.ReadAllText(folder["second.c"]));

        using var tuner = Tuner.Open(db, new TunerOptions { Budget = "0" });
        var recalled = tuner.Get("mm 40 24 56");
        Assert.True(recalled.Recalled);
        Assert.Equal((string?)first["schedule"], recalled.Kernel.Nest.ScheduleKey);
        var got = tuner.Get("mm 24 40 16"); // tuned and recorded by the tuner: the export recalls it
        Assert.False(got.Recalled);
        var exported = Export("mm 24 40 16", "third.c");
        Assert.Equal(("recalled", got.Kernel.Nest.ScheduleKey), ((string?)exported["schedule_from"], (string?)exported["schedule"]));

        var (human, stdoutText, _) = Run("export", "--spec", "mm 40 24 56", "--policy", "default", "--records", db, "--out", folder["fourth.c"]);
        Assert.Equal(0, human);
        // the method is the policy's, or "policy, beaten by the machine's tile" where a rival of the tune won (the AVX2 Zen 3)
        Assert.Matches($@"recalled from the tuning records in {Regex.Escape(db)} \(tuned with policy(, beaten by the machine's tile)?, budget 0, at ", stdoutText);
    }

    [Fact]
    public void Export_refuses_a_records_file_it_cannot_use_and_leaves_it_as_it_was()
    {
        using var folder = new TempFolder("looptune-export");
        File.WriteAllText(folder["junk.db"], "not a database");
        var (code, _, err) = Run("export", "--spec", "mm 8 8 8", "--policy", "default", "--budget", "0", "--records", folder["junk.db"], "--out", folder["k.c"]);
        Assert.Equal(2, code);
        Assert.Contains(folder["junk.db"], err);
        Assert.Equal("not a database", File.ReadAllText(folder["junk.db"]));
        Assert.Equal(["junk.db"], Directory.GetFiles(folder.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void Export_time_checks_the_gcc_build_and_times_it_next_to_the_jit()
    {
        using var folder = new TempFolder("looptune-export");
        var (code, stdout, err) = Run("export", "--spec", "conv 4 12 20 8 3 3", "-s", "f:2 c:4 r:3 s:3 f:4u h:10 w:18v", "--out", folder["conv.c"], "--time", "--quick", "--json");
        Assert.True(code == 0, err);
        var timed = System.Text.Json.Nodes.JsonNode.Parse(stdout)!["timed"]!;
        foreach (var field in new[] { "jit_gflops", "c_gflops", "c_vs_jit", "plain_jit_gflops", "plain_c_gflops", "plain_c_vs_jit" })
            Assert.True(timed[field]!.GetValue<double>() > 0, field);
        Assert.Equal(["conv.c", "conv.h"], Directory.GetFiles(folder.Path).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void Export_command_takes_one_benchmark_file_and_refuses_a_folder()
    {
        using var folder = new TempFolder("looptune-export");
        File.WriteAllText(folder["conv_8.txt"], "# conv_8: a test\nconv 3 10 10 4 3 3\n");
        var (code, _, err) = Run("export", "--bench", folder["conv_8.txt"], "-s", "f:4 c:3 r:3 s:3 h:8 w:8v", "--out", folder["conv.c"]);
        Assert.True(code == 0, err);
        Assert.Contains("void conv(float *restrict out", File.ReadAllText(folder["conv.h"]));
        (code, _, err) = Run("export", "--bench", folder.Path, "--out", folder["all.c"]);
        Assert.Equal(2, code);
        Assert.Contains("is a folder", err);
    }

    public static TheoryData<string[], string> BadInputs() => new()
    {
        { ["--spec", "mm 8 8"], "mm 8 8" },
        { ["--spec", "mm 8 8 8", "-s", "m:4 n:8 k:8 m:2u n:16v"], "m:4 n:8 k:8 m:2u n:16v" },
        { ["--spec", "mm 8 8 8", "-s", "f:8 h:32 c:16"], "f:8 h:32 c:16" },
        { ["--spec", "mm 8 8 8", "-s", "m:8 n:8 k:8 >", "--policy", "default"], "not both" },
        { ["--spec", "mm 8 8 8", "--isa", "neon"], "neon" },
        { ["--spec", "mm 8 8 8", "--lang", "rust"], "rust" },
        { ["--spec", "mm 8 8 8", "--name", "int"], "int" },
        { ["--spec", "mm 8 8 8", "--name", "9lives"], "9lives" },
        { ["--spec", "mm 8 8 8", "--policy", "/nonexistent/policy.safetensors"], "/nonexistent/policy.safetensors" },
        { ["--spec", "mm 8 8 8", "--policy", "default", "--budget", "0", "--records", "/proc/looptune-records.db"], "/proc/looptune-records.db" },
        { ["--spec", "mm 8 8 8", "--records", "/tmp/looptune-records.db"], "--policy" },
        { ["--spec", "mm 8 8 8", "--policy", "default", "--budget", "soon"], "soon" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Export_command_refuses_bad_input_naming_it_and_writes_nothing(string[] args, string named)
    {
        using var folder = new TempFolder("looptune-export");
        var (code, _, err) = Run(["export", .. args, "--out", folder["k.c"]]);
        Assert.Equal(2, code);
        Assert.Contains(named, err);
        Assert.Empty(Directory.GetFiles(folder.Path));
    }

    [Fact]
    public void Export_command_refuses_an_unwritable_path_and_keeps_what_was_there()
    {
        using var folder = new TempFolder("looptune-export");
        foreach (var path in new[] { "/proc/looptune-export.c", folder["missing/k.c"], folder["k.txt"], folder.Path })
        {
            var (code, _, err) = Run("export", "--spec", "mm 8 8 8", "--out", path);
            Assert.Equal(2, code);
            Assert.Contains(path, err);
        }
        Assert.False(File.Exists("/proc/looptune-export.c") || File.Exists("/proc/looptune-export.h"));
        // a failed export leaves an earlier one as it was
        File.WriteAllText(folder["k.c"], "old");
        Assert.Equal(2, Run("export", "--spec", "mm 8 8 8", "-s", "m:3 n:8 k:8", "--out", folder["k.c"]).Code);
        Assert.Equal("old", File.ReadAllText(folder["k.c"]));
        Assert.Equal(["k.c"], Directory.GetFiles(folder.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void An_isa_the_cpu_or_the_compiler_cannot_take_is_refused_naming_what_is_missing()
    {
        var e = Assert.Throws<LoopTuneException>(() => Isas.Check(Isa.Avx512, ["avx2", "fma", "avx512f"]));
        Assert.Contains("avx512vl", e.Message);
        Assert.Contains("avx2", Assert.Throws<LoopTuneException>(() => Isas.Check(Isa.Avx2, ["avx", "sse4_1"])).Message);
        Assert.Equal(Isa.Generic, Isas.Check(Isa.Generic, []));
        Assert.Equal(Isa.Generic, Isas.Default(["sse2"]));
        Assert.Contains("/nonexistent/cc", CCompiler.Refuses(Isa.Avx2, "/nonexistent/cc"));
        Assert.Null(CCompiler.Refuses(Isa.Generic, "/nonexistent/cc")); // plain C needs no flag to check
        if (!OperatingSystem.IsLinux()) return;
        using var folder = new TempFolder("looptune-export");
        // a compiler that runs but rejects the flags, as an old gcc rejects -mavx512vl
        File.WriteAllText(folder["cc"], "#!/bin/sh\nfor a; do [ \"$a\" = --version ] && exit 0; done\necho \"cc: error: unrecognized command-line option '-mavx512vl'\" >&2\nexit 1\n");
        File.SetUnixFileMode(folder["cc"], UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Assert.Contains("-mavx512vl", CCompiler.Refuses(Isa.Avx512, folder["cc"]));
        Assert.Null(CCompiler.Refuses(Isa.Generic, folder["cc"]));
    }

    [Fact]
    public void Export_names_the_operands_schedule_and_notes_in_its_comment_block()
    {
        var nest = Nest.Parse(Computation.Parse("conv 3 10 10 4 3 3"), ">f:4p c:3 r:3 s:3 h:2u h:4 w:8v");
        var exported = CExport.Write(nest, "conv_k", Isa.Generic, "a machine line");
        Assert.Contains("in0 = I: [3][10][10] floats", exported.Code);
        Assert.Contains("in1 = W: [4][3][3][3] floats", exported.Code);
        Assert.Contains("schedule  f:4p c:3 r:3 s:3 h:2u h:4 w:8v", exported.Code);
        Assert.Contains("machine   a machine line", exported.Code);
        Assert.Contains("#pragma omp parallel for", exported.Code);
        Assert.Contains(exported.Notes, n => n.Contains("parallel", StringComparison.Ordinal));
        Assert.DoesNotContain("immintrin", exported.Code);
        Assert.Throws<LoopTuneException>(() => CExport.Write(nest, "for", Isa.Generic, ""));
        Assert.Equal("mm_256", CExport.NameFor("out/mm-256.c"));
        Assert.Equal("lt_2d", CExport.NameFor("2d.c"));
    }
}
