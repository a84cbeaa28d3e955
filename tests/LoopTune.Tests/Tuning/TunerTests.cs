using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Learning;
using LoopTune.Search;
using LoopTune.Store;
using LoopTune.Tests.Jit;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Tuning;

/// <summary>The library's <see cref="Tuner"/>: a first Get tunes and records, a later one (another tuner, as in another
/// process) compiles the record without searching or measuring, concurrent Gets tune once, every kernel it gives matches
/// the reference, bad input is a <see cref="LoopTuneException"/>.</summary>
public sealed class TunerTests
{
    /// <summary>The greedy rollout alone: a real tuning, in well under a second on small problems.</summary>
    static readonly TunerOptions Rollout = new() { Budget = "0" };

    /// <summary>Runs <paramref name="k"/> through its span API on random operands (a non-zero output, as it accumulates)
    /// and checks every element against <see cref="Reference.Exact"/>; then on guarded buffers (<see cref="KernelCheck"/>).</summary>
    internal static void AssertMatchesReference(TunedKernel k, int seed = 1)
    {
        var c = k.Computation;
        var rng = new Random(seed);
        float[] Random(long n) => [.. Enumerable.Range(0, (int)n).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
        float[] output = Random(c.Output.Length), left = Random(c.Left.Length), right = Random(c.Right.Length);
        var (exact, magnitude) = Reference.Exact(c, output, left, right);
        k.Run(output, left, right);
        double tolerance = Reference.Tolerance(c);
        for (int i = 0; i < output.Length; i++)
            Assert.True(Math.Abs(output[i] - exact[i]) <= tolerance * magnitude[i] + 1e-30, $"{k}: element {i} is {output[i]}, exact {exact[i]}");
        Assert.Null(KernelCheck.Verify(k.Kernel, rng));
    }

    [Fact]
    public void A_first_Get_tunes_and_records_and_another_tuner_recalls_it_without_searching_or_measuring()
    {
        using var dir = new TempFolder();
        string db = dir["records.db"];
        TunedKernel first;
        using (var tuner = Tuner.Open(db, Rollout))
        {
            first = tuner.Get("mm 40 24 56");
            Assert.False(first.Recalled);
            Assert.Equal((1, 0), (tuner.Searches, tuner.Recalls));
            Assert.Same(first, tuner.Get("C[m,n] += A[m,k] * B[k,n] m=40 n=24 k=56")); // the same computation, kept
            Assert.Equal(1, tuner.Searches);
            Assert.True(first.Gflops > 0);
            Assert.Equal(first.Schedule, Nest.Parse(first.Computation, first.Schedule).Serialize());
            AssertMatchesReference(first);
        }
        using (var store = new MeasurementStore(db))
        {
            Assert.True(store.TryGetRecord(Computation.Parse("mm 40 24 56"), out var record));
            Assert.Equal((first.Schedule, first.Gflops, "0"), (record.Schedule, record.Gflops, record.Budget));
        }
        using var again = Tuner.Open(db, Rollout);
        var recalled = again.Get("mm 40 24 56");
        Assert.True(recalled.Recalled);
        Assert.Equal((0, 1), (again.Searches, again.Recalls));
        // the record's figures, not a new timing's (which would be recorded anew, with another time)
        Assert.Equal((first.Schedule, first.Gflops, first.Record.TunedAt), (recalled.Schedule, recalled.Gflops, recalled.Record.TunedAt));
        AssertMatchesReference(recalled, seed: 2);
        using var check = new MeasurementStore(db);
        Assert.True(check.TryGetRecord(recalled.Computation, out var kept));
        Assert.Equal(first.Record, kept);
    }

    [Fact]
    public void A_kernel_tuned_with_an_operand_cold_is_recorded_apart_from_the_hot_one_and_each_tuner_recalls_its_own()
    {
        using var dir = new TempFolder();
        string db = dir["records.db"];
        var c = Computation.Parse("mm 40 24 56");
        var cold = Rollout with { Cold = LoopTune.Ir.Operand.Right };
        var coldRight = LoopTune.Measure.TimingContext.ColdOperand(LoopTune.Ir.Operand.Right);
        TunedKernel first;
        using (var tuner = Tuner.Open(db, cold))
        {
            first = tuner.Get(c);
            Assert.False(first.Recalled);
            AssertMatchesReference(first);
        }
        using (var store = new MeasurementStore(db))
        {
            Assert.False(store.TryGetRecord(c, 1, out _)); // no hot record
            Assert.True(store.TryGetRecord(c, 1, coldRight, out var record));
            Assert.Equal(first.Schedule, record.Schedule);
        }
        using (var hot = Tuner.Open(db, Rollout))
        {
            var k = hot.Get(c);
            Assert.Equal((false, 1, 0), (k.Recalled, hot.Searches, hot.Recalls)); // the cold record does not answer
            AssertMatchesReference(k, seed: 3);
        }
        using var again = Tuner.Open(db, cold);
        var recalled = again.Get(c);
        Assert.Equal((true, 0, 1), (recalled.Recalled, again.Searches, again.Recalls));
        Assert.Equal((first.Schedule, first.Gflops), (recalled.Schedule, recalled.Gflops));
        AssertMatchesReference(recalled, seed: 2);
    }

    [Fact]
    public void Many_threads_getting_one_spec_from_two_tuners_tune_it_once()
    {
        using var dir = new TempFolder();
        using var a = Tuner.Open(dir["records.db"], Rollout);
        using var b = Tuner.Open(dir["records.db"], Rollout);
        const int threads = 8;
        using var start = new Barrier(threads);
        var got = new TunedKernel[threads];
        var workers = Enumerable.Range(0, threads).Select(i => new Thread(() =>
        {
            start.SignalAndWait();
            got[i] = (i % 2 == 0 ? a : b).Get("mm 24 40 32");
        })).ToList();
        workers.ForEach(t => t.Start());
        workers.ForEach(t => t.Join());
        Assert.Equal(1, a.Searches + b.Searches);
        Assert.Equal(1, got.Distinct().Count(k => !k.Recalled));
        Assert.All(got, k => Assert.Equal(got[0].Schedule, k.Schedule));
        Assert.Single(got.Where((_, i) => i % 2 == 0).Distinct());
        Assert.Single(got.Where((_, i) => i % 2 == 1).Distinct());
        AssertMatchesReference(got[0]);
        AssertMatchesReference(got[1], seed: 3);
    }

    [Fact]
    public async Task GetAsync_gives_the_kernel_Get_gives()
    {
        using var dir = new TempFolder();
        using var tuner = Tuner.Open(dir["records.db"], Rollout);
        var k = await tuner.GetAsync("mm 16 48 8");
        Assert.Same(k, tuner.Get("mm 16 48 8"));
        Assert.Equal(1, tuner.Searches);
        AssertMatchesReference(k);
        await Assert.ThrowsAsync<SpecError>(() => tuner.GetAsync("mm 16 48"));
    }

    [Fact]
    public void Bad_input_is_a_LoopTuneException_naming_it_and_a_failed_Get_is_not_kept()
    {
        using var dir = new TempFolder();
        Assert.Contains("fast", Assert.Throws<SearchError>(() => Tuner.Open(dir["a.db"], new() { Budget = "fast" })).Message);
        Assert.Throws<ThreadCountError>(() => Tuner.Open(dir["a.db"], new() { Threads = 0 }));
        Assert.Throws<ThreadCountError>(() => Tuner.Open(dir["a.db"], new() { Threads = ThreadCountError.Max + 1 }));
        Assert.Contains("nope", Assert.Throws<PolicyError>(() => Tuner.Open(dir["a.db"], new() { Policy = "nope" })).Message);
        using var tuner = Tuner.Open(dir["a.db"], Rollout);
        var e = Assert.Throws<SpecError>(() => tuner.Get("mm 2 2"));
        Assert.Contains("^", e.Message);
        Assert.Throws<SpecError>(() => tuner.Get("mm 2 2")); // thrown again, not a kept failure
        Assert.Equal(0, tuner.Searches);
    }

    [Fact]
    public void An_unusable_record_is_tuned_again_and_replaced()
    {
        using var dir = new TempFolder();
        var c = Computation.Parse("mm 8 16 24");
        using (var store = new MeasurementStore(dir["r.db"]))
            store.PutRecord(c, new TuningRecord(">m:8 n:16 k:12 k:2 k:5v", "hand", "0", 1, DateTime.UtcNow)); // k covered 120 times, not 24
        using var tuner = Tuner.Open(dir["r.db"], Rollout);
        var k = tuner.Get(c);
        Assert.False(k.Recalled);
        Assert.Equal(1, tuner.Searches);
        AssertMatchesReference(k);
        using var check = new MeasurementStore(dir["r.db"]);
        Assert.True(check.TryGetRecord(c, out var record));
        Assert.Equal(k.Schedule, record.Schedule);
    }
}

/// <summary><see cref="Tuner.Parallel"/>: the schedule a tuner for N threads times beside the one-thread search's best. Runs
/// alone, as the other tests of kernels on a thread team do (3 threads, more than the cores).</summary>
[Collection(nameof(AllCores))]
public sealed class TunerParallelFormTests
{
    [Theory]
    [InlineData("mm 64 48 32", ">m:8 n:3 k:32 m:8u n:16v", ">m:8p n:3 k:32 m:8u n:16v")]
    [InlineData("mm 64 48 32", ">k:32 m:8 n:3 m:8u n:16v", ">k:32 m:8p n:3 m:8u n:16v")]
    [InlineData("mm 64 48 32", ">m:64p n:48 k:32", ">m:64p n:48 k:32")]
    public void The_parallel_form_makes_the_outermost_loop_that_may_be_parallel_so(string spec, string schedule, string expected)
    {
        var c = Computation.Parse(spec);
        var parallel = Transforms.Parallelize(Nest.Parse(c, schedule), 2);
        Assert.Equal(Nest.Parse(c, expected).ScheduleKey, parallel.ScheduleKey);
        var kernel = Kernel.Compile(parallel);
        kernel.SetThreads(3);
        Assert.Null(KernelCheck.Verify(kernel, new Random(5)));
    }
}
