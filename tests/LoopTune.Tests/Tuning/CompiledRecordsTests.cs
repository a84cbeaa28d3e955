using LoopTune.Export;
using LoopTune.Ir;
using LoopTune.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Tuning;

/// <summary>Compiled records (<see cref="CompiledRecords"/>): a tune's record is built by the C compiler in the background,
/// checked, and loaded by a later tuner's recall, whose runs match the reference; a library changed since its check, or
/// described as something else, is not loaded (the JIT compiles the record, and the library is built again); without the
/// option, or on more threads, the JIT as before.</summary>
public sealed class CompiledRecordsTests
{
    static readonly TunerOptions Rollout = new() { Budget = "0" };

    static string[] Files(TempFolder dir) =>
        Directory.Exists(dir["kernels"]) ? [.. Directory.EnumerateFiles(dir["kernels"]).Select(Path.GetFileName).OfType<string>().Order()] : [];

    [Theory]
    [InlineData("mm 40 24 56")]
    [InlineData("conv 3 12 10 8 3 3")]
    [InlineData("C[m,n] += A[k,m] * B[n,k] m=24 n=20 k=36")]
    public void A_recall_loads_the_library_built_after_the_tune_and_its_runs_match_the_reference(string spec)
    {
        Assert.True(CCompiler.Available, $"no C compiler ({CCompiler.Command})");
        using var dir = new TempFolder();
        string db = dir["records.db"];
        TunedKernel tuned;
        Tuner first;
        using (first = Tuner.Open(db, Rollout))
        {
            tuned = first.Get(spec);
            Assert.False(tuned.Native); // the JIT's, while the library builds
        }
        string build = Assert.Single(first.Builds);
        Assert.EndsWith(": kept", build);
        var files = Files(dir);
        Assert.Equal(4, files.Length); // NAME.c, NAME.h, NAME.so, NAME.txt: no temporary left
        Assert.Equal([".c", ".h", ".so", ".txt"], files.Select(Path.GetExtension).Order());
        Assert.Single(Directory.EnumerateDirectories(dir["kernels"], "pch-*")); // the headers, precompiled
        string description = File.ReadAllText(Path.Combine(dir["kernels"], files.Single(f => f.EndsWith(".txt", StringComparison.Ordinal))));
        Assert.Contains($"schedule: {tuned.Schedule}\n", description);
        string source = Path.Combine(dir["kernels"], files.Single(f => f.EndsWith(".c", StringComparison.Ordinal)));
        CCompiler.SharedLibrary([source], dir["again.so"], CompiledRecords.Flags); // the kept source builds on its own

        using var again = Tuner.Open(db, Rollout);
        var recalled = again.Get(spec);
        Assert.True(recalled.Native);
        Assert.True(recalled.Recalled);
        Assert.Equal((0, 1), (again.Searches, again.Recalls));
        Assert.Equal(tuned.Schedule, recalled.Schedule);
        Assert.True(File.Exists(recalled.Library));
        Assert.Equal(1, recalled.Threads);
        TunerTests.AssertMatchesReference(recalled, seed: 5);
        Assert.Throws<ArgumentException>(() => recalled.Run(new float[recalled.Computation.Output.Length - 1], new float[recalled.Computation.Left.Length], new float[recalled.Computation.Right.Length]));
        again.Dispose();
        Assert.Empty(again.Builds); // loaded: nothing to build
    }

    [Fact]
    public void A_library_changed_since_its_check_or_describing_another_schedule_is_not_loaded_and_is_built_again()
    {
        using var dir = new TempFolder();
        string db = dir["records.db"];
        using (var t = Tuner.Open(db, Rollout)) t.Get("mm 24 16 40");
        string library = Directory.EnumerateFiles(dir["kernels"], "*.so").Single();
        var bytes = File.ReadAllBytes(library);
        bytes[^1] ^= 0xff; // one byte of the file, past the code: the SHA-256 no longer matches
        File.WriteAllBytes(library, bytes);

        Tuner changed;
        using (changed = Tuner.Open(db, Rollout))
        {
            var k = changed.Get("mm 24 16 40");
            Assert.False(k.Native);
            Assert.True(k.Recalled);
            TunerTests.AssertMatchesReference(k);
        }
        Assert.EndsWith(": kept", Assert.Single(changed.Builds));

        string description = Directory.EnumerateFiles(dir["kernels"], "*.txt").Single();
        var text = File.ReadAllText(description);
        using (var t = Tuner.Open(db, Rollout)) Assert.True(t.Get("mm 24 16 40").Native); // built again
        // another schedule, whatever the tuned one is (the cursor need not lead it)
        var other = text.Replace("\nschedule: ", "\nschedule:  ", StringComparison.Ordinal);
        Assert.NotEqual(text, other);
        File.WriteAllText(description, other);
        using (var t = Tuner.Open(db, Rollout)) Assert.False(t.Get("mm 24 16 40").Native);
    }

    [Fact]
    public void Without_the_option_a_recall_is_the_JITs_and_nothing_is_built()
    {
        using var dir = new TempFolder();
        var off = Rollout with { CompiledRecords = false };
        Tuner t;
        using (t = Tuner.Open(dir["records.db"], off)) Assert.False(t.Get("mm 16 8 24").Native);
        using (var again = Tuner.Open(dir["records.db"], off))
        {
            var k = again.Get("mm 16 8 24");
            Assert.False(k.Native);
            Assert.True(k.Recalled);
            Assert.Null(k.Library);
        }
        Assert.Empty(t.Builds);
        Assert.Empty(Files(dir));
    }

    [Fact]
    public void Records_of_one_schedule_are_named_by_machine_computation_and_schedule()
    {
        var a = new CompiledRecords("k", "machine A");
        var c = Computation.Parse("mm 8 8 8");
        Assert.Equal(a.Name(c, ">m:8 n:8 k:8"), new CompiledRecords("elsewhere", "machine A").Name(c, ">m:8 n:8 k:8"));
        Assert.NotEqual(a.Name(c, ">m:8 n:8 k:8"), new CompiledRecords("k", "machine B").Name(c, ">m:8 n:8 k:8"));
        Assert.NotEqual(a.Name(c, ">m:8 n:8 k:8"), a.Name(c, ">m:8 k:8 n:8"));
        Assert.NotEqual(a.Name(c, ">m:8 n:8 k:8"), a.Name(Computation.Parse("mm 8 8 16"), ">m:8 n:8 k:8"));
        Assert.Matches("^[0-9a-f]{32}$", a.Name(c, ">m:8 n:8 k:8"));
    }
}
