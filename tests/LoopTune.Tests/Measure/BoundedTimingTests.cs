using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;

namespace LoopTune.Tests.Measure;

/// <summary>Runs alone: its estimates are checked against whole timings of memory-bound kernels (a 16 MB gather a run),
/// which the tests beside them slowed threefold in a full run (59 GFLOPS whole alone, 18.5 in CI beside the others).</summary>
[CollectionDefinition(nameof(TimingOracle), DisableParallelization = true)]
public sealed class TimingOracle;

/// <summary>Timing that never overruns: a slice of a kernel computes exactly the part of the work it says, its speed
/// estimates the whole kernel's, and a kernel too slow to run whole is never run whole.</summary>
[Collection(nameof(TimingOracle))]
public sealed class BoundedTimingTests
{
    /// <summary>C[m,n] += A[m,k] * B[k,n] over m in [0, rows) and k in [0, depth), by hand: the oracle of a slice.</summary>
    static float[] Partial(int m, int n, int k, float[] a, float[] b, int rows, int depth)
    {
        var c = new float[m * n];
        for (int i = 0; i < rows; i++)
            for (int p = 0; p < depth; p++)
                for (int j = 0; j < n; j++) c[i * n + j] += a[i * k + p] * b[p * n + j];
        return c;
    }

    [Theory]
    [InlineData(">m:12 n:2+8 k:20 m:4u n:16v", 3, 48, 40, 20)]        // an output loop outermost: 3 iterations of m (12 rows)
    [InlineData(">k:5 m:3+1 n:2 k:4 m:4u n:16v", 2, 13, 32, 20)]      // a reduction outermost: the first 8 of k's 20
    [InlineData(">m:6+1 n:32 k:17 m:2u n:1v", 7, 13, 32, 17)]         // every iteration, the tail's too: the whole kernel
    public void A_slice_computes_its_share_of_the_work_and_no_more(string schedule, int iterations, int m, int n, int k)
    {
        var nest = Nest.Parse(Computation.Matmul(m, n, k), schedule);
        var slice = Kernel.CompileSlice(nest, iterations);
        var rng = new Random(3);
        var a = Enumerable.Range(0, m * k).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var b = Enumerable.Range(0, k * n).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var c = new float[m * n];
        slice.Run(c, a, b);
        bool overM = nest[0].Var == 0;
        int covered = Math.Min(overM ? m : k, iterations * nest.InnerStep(0));
        var expected = Partial(m, n, k, a, b, overM ? covered : m, overM ? k : covered);
        for (int i = 0; i < c.Length; i++) Assert.Equal(expected[i], c[i], 1e-4f);
        Assert.Equal(covered / (double)(overM ? m : k), slice.Fraction, 12);
        Assert.Equal(slice.Fraction * nest.Computation.Flops, slice.Flops, 6);
        Assert.Throws<ArgumentOutOfRangeException>(() => Kernel.CompileSlice(nest, Kernel.OuterIterations(nest) + 1));
    }

    [Fact]
    public void A_kernel_too_slow_to_run_whole_is_estimated_from_a_slice_within_a_factor_of_two()
    {
        // the unscheduled mm 512 512 512: about 0.1-0.3 s a run here, well past a limit of 20 ms
        var nest = Nest.Initial(Computation.Matmul(512, 512, 512));
        var kernel = Kernel.Compile(nest);
        using var buffers = new KernelTiming.Workspace(nest.Computation);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (estimate, estimated) = KernelTiming.MeasureBounded(nest, kernel, MeasureOptions.Env, buffers, maxRunSeconds: 0.02);
        double spent = clock.Elapsed.TotalSeconds;
        Assert.True(estimated);
        var whole = KernelTiming.Measure(kernel, MeasureOptions.Env with { MinSamples = 1 }, buffers);
        Assert.True(spent < whole.MedianSeconds, $"the estimate took {spent:F3} s, a whole run {whole.MedianSeconds:F3} s");
        Assert.InRange(estimate.Gflops / whole.Gflops, 0.5, 2.0);
        Assert.Equal(whole.Flops, estimate.Flops);

        // a fast kernel is timed whole
        var small = Nest.Initial(Computation.Matmul(64, 64, 64));
        using var few = new KernelTiming.Workspace(small.Computation);
        Assert.False(KernelTiming.MeasureBounded(small, Kernel.Compile(small), MeasureOptions.Env, few, 0.02).Estimated);
    }

    [Fact]
    public void A_slice_estimate_counts_the_copy_of_a_packed_input_that_a_whole_run_makes_every_time()
    {
        // A packed with m innermost: a transposing copy of 64 MB across 16 KiB rows, about as dear as the product's 268 MFLOP;
        // a slice copies its share once, so its loops alone say more than the whole's speed. (A of 16 MB with n = 32 held
        // the same work: once the copy was made 8 x 8 floats at a time in vectors, estimates were 0.82-0.88x the loops alone
        // on the Zen 3.)
        var c = Computation.Matmul(4096, 8, 4096);
        var nest = Nest.Parse(c, ">k:16 m:512 k:256 m:8u n:8v pack=A");
        var kernel = Kernel.Compile(nest);
        using var buffers = new KernelTiming.Workspace(c);
        var whole = KernelTiming.Measure(kernel, MeasureOptions.Quick, buffers);
        var (estimate, estimated) = KernelTiming.MeasureBounded(nest, kernel, MeasureOptions.Quick, buffers, whole.MedianSeconds / 8);
        Assert.True(estimated);
        // the copy is counted: the estimate is well below what the slice's loops alone say
        var slice = KernelTiming.Plan(nest, buffers, whole.MedianSeconds / 8).Slice!;
        var loops = KernelTiming.Scaled(KernelTiming.Measure(slice, MeasureOptions.Quick, buffers), slice, kernel);
        Assert.True(estimate.Gflops < 0.8 * loops.Gflops, $"estimated {estimate.Gflops:F1} GFLOPS, the loops alone {loops.Gflops:F1}, whole {whole.Gflops:F1}");
        // and near the whole's: within 3x, as the whole's gather across 4 KiB rows slows with the memory's state (59 GFLOPS
        // alone, 33.6 after the whole suite in CI, where the estimate said 68)
        double ratio = estimate.Gflops / whole.Gflops;
        Assert.True(ratio is > 1 / 3.0 and < 3, $"estimated {estimate.Gflops:F1} GFLOPS, whole {whole.Gflops:F1}");
    }

    [Fact]
    public void The_probe_never_cuts_a_sum_at_its_innermost_loop()
    {
        // cutting k to one term would load and store the output tile for each multiply-add (a slice at 4.6 GFLOPS of a
        // kernel at 190): the output loops are cut, the sum kept whole
        var nest = Nest.Parse(Computation.Matmul(2048, 1024, 384), ">n:4 m:16 n:8 m:16 k:384 m:8u n:32v");
        Assert.Equal([128, 256, 384], Kernel.ProbeSizes(nest, 1e5));
        // a blocked sum is cut at its outer loop, its block kept whole
        var blocked = Nest.Parse(Computation.Matmul(512, 512, 512), ">k:4 m:64 n:16 k:128 m:8u n:32v");
        Assert.Equal(128, Kernel.ProbeSizes(blocked, 1e5)[2]);
        // nor at its innermost loop outside the register tile (here k:16 above k:2u): the sum keeps its 32 terms
        var tiled = Nest.Parse(Computation.Matmul(96, 128, 32), ">m:3 m:4 n:2 n:2 k:16 m:8u k:2u n:32v");
        Assert.Equal([32, 64, 32], Kernel.ProbeSizes(tiled, 1e3));
        Assert.Equal(32, Kernel.PrefixSizes(tiled, 1e3)[2]);
    }

    [Fact]
    public void A_timed_slice_is_a_prefix_of_the_outer_loops_iterations()
    {
        // k's first half (k:2), then as many of k:16's iterations as fit, everything inside whole
        var nest = Nest.Parse(Computation.Matmul(512, 512, 512), ">k:2 k:16 m:8 n:2 m:2u k:16 m:32 n:16 n:16v");
        double w = nest.Computation.Flops;
        Assert.Equal([512, 512, 256], Kernel.PrefixSizes(nest, w / 2));
        Assert.Equal([512, 512, 16], Kernel.PrefixSizes(nest, w / 32));
        Assert.Equal([512, 512, 48], Kernel.PrefixSizes(nest, w / 10)); // three of k:16's 16-element iterations
        // then the next variable's outermost loop; an unrolled loop outside the register tile (m:2u) is cut like a counted
        // one, to its first copy; the sum's innermost loop (k:16) never is, and m is cut further in, at m:32
        Assert.Equal([64, 512, 16], Kernel.PrefixSizes(nest, w / 256));
        Assert.Equal([3, 256, 16], Kernel.PrefixSizes(nest, w / 10000));
        Assert.Equal(3 / 32768.0, Kernel.Share(nest.Computation, [3, 256, 16]), 12);
        // what the slice computes is the first elements of each variable: checked against the partial product
        Assert.True(Verifier.VerifySlice(nest, [64, 512, 48]).Passed);
        Assert.True(Verifier.VerifySlice(nest, [3, 256, 16]).Passed);
    }

    [Fact]
    public void An_unrolled_outer_loop_is_cut_to_its_first_copies()
    {
        // k's first full iteration (2048 of 3072: its tail dropped), then the first of k:4u's copies, then m's first 3072
        // rows: what the whole runs first. Kept whole, the unroll had m cut inside it, each copy running the first rows;
        // with m and n unrolled outside, the sum alone was cut (mm 3072 1024 1536 below: its slice ran 179 GFLOPS, the
        // whole 133, every tile summing over a prefix of A's rows and B's columns that the whole never keeps)
        var nest = Nest.Parse(Computation.Matmul(4096, 256, 3072), ">k:1+1024 k:4u m:512 k:8 n:8 k:64 m:8u n:32v");
        double w = nest.Computation.Flops;
        int[] sizes = Kernel.PrefixSizes(nest, w / 8 * 1.0001);
        Assert.Equal([3072, 256, 512], sizes);
        Assert.Equal(1 / 8.0, Kernel.Share(nest.Computation, sizes), 9);
        var outer = Nest.Parse(Computation.Matmul(3072, 1024, 1536), ">m:1+1024u n:4u n:4 m:8 m:32 k:96 k:16 m:8u n:2u n:32v pack=A");
        Assert.Equal([2048, 256, 1536], Kernel.PrefixSizes(outer, outer.Computation.Flops / 6 * 1.0001));
        Assert.Equal([256, 64, 1536], Kernel.PrefixSizes(outer, outer.Computation.Flops / 192 * 1.0001));
        // the slice's code is the whole's with fewer copies and shorter ranges: checked against the partial product
        var small = Nest.Parse(Computation.Matmul(64, 32, 80), ">k:2+16 k:2u m:8 k:2 n:2 k:8 m:8u n:16v");
        int[] cut = Kernel.PrefixSizes(small, small.Computation.Flops / 8 * 1.0001);
        Assert.Equal([40, 32, 16], cut);
        Assert.True(Verifier.VerifySlice(small, cut).Passed);
        var tail = Nest.Parse(Computation.Matmul(48, 64, 24), ">m:1+16u n:2u n:2 m:2 m:2 k:3 k:8 m:8u n:16v pack=A");
        int[] first = Kernel.PrefixSizes(tail, tail.Computation.Flops / 12 * 1.0001);
        Assert.True(Verifier.VerifySlice(tail, first).Passed, string.Join(",", first));
    }

    [Fact]
    public void Kernels_too_slow_to_run_whole_are_timed_side_by_side_on_their_slices()
    {
        // mm 1024^3 unscheduled (seconds a run) and blocked around a register tile (about 15 ms), both past 5 ms
        var c = Computation.Matmul(1024, 1024, 1024);
        Nest[] nests = [Nest.Initial(c), Nest.Parse(c, ">k:4 n:32 m:128 k:256 m:8u n:32v")];
        var kernels = nests.Select(n => Kernel.Compile(n)).ToList();
        using var buffers = new KernelTiming.Workspace(c);
        var together = KernelTiming.MeasureBoundedTogether(nests, kernels, MeasureOptions.Quick, buffers, 0.005);
        Assert.All(together, m => Assert.True(m.Estimated));
        Assert.All(together, m => Assert.Equal(c.Flops, m.Measurement.Flops));
        var whole = KernelTiming.Measure(kernels[1], MeasureOptions.Quick, buffers);
        Assert.InRange(together[1].Measurement.Gflops / whole.Gflops, 0.5, 2.0);
        Assert.True(together[1].Measurement.Gflops > 10 * together[0].Measurement.Gflops, $"{together[1].Measurement.Gflops:F1} against {together[0].Measurement.Gflops:F1}");
        // within the limit, a kernel is timed whole
        Assert.False(Assert.Single(KernelTiming.MeasureBoundedTogether(nests[1..], kernels[1..], MeasureOptions.Quick, buffers, 10)).Estimated);
        // and the evaluator's choice among estimated schedules rests on that timing
        using var evaluator = new KernelEvaluator(MeasureOptions.Env) { MaxRunSeconds = 0.005 };
        Assert.All(nests, n => Assert.True(evaluator.Evaluate(n).Estimated));
        Assert.Equal(1, evaluator.Fastest(nests));
    }

    [Fact]
    public void The_evaluator_reports_an_estimate_and_keeps_it_out_of_the_store()
    {
        var db = Path.Combine(Path.GetTempPath(), $"looptune-bounded-{Guid.NewGuid():N}.db");
        try
        {
            using var evaluator = Evaluators.Default(db);
            var big = Nest.Initial(Computation.Matmul(512, 512, 512));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var e = evaluator.Evaluate(big);
            Assert.True(e.Estimated);
            Assert.True(clock.Elapsed.TotalSeconds < 1, $"{clock.Elapsed.TotalSeconds:F2} s for one evaluation");
            Assert.Equal(0, evaluator.Store!.Count);
            Assert.True(evaluator.Evaluate(big).Recalled); // this run remembers it
        }
        finally
        {
            foreach (var f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(db) + "*")) File.Delete(f);
        }
    }
}

/// <summary>Checks that stay cheap on large computations: the exact result of a sample of output elements is the full
/// reference's at those elements, and a sampled check still catches a wrong element among them.</summary>
public sealed class SampledCheckTests
{
    [Theory]
    [InlineData("mm 13 17 19")]
    [InlineData("conv 3 9 8 4 3 2")]
    [InlineData("C[b,n,m] += A[b,m,k] * B[b,k,n] b=3 m=5 n=7 k=4")]
    [InlineData("C[m,n] += A[m,k,l] * B[k,l,n] m=6 n=5 k=3 l=4")]
    public void The_exact_result_of_some_elements_is_the_full_references_there(string spec)
    {
        var c = Computation.Parse(spec);
        var rng = new Random(5);
        float[] Random(long n) => [.. Enumerable.Range(0, (int)n).Select(_ => (float)rng.NextDouble() - 0.5f)];
        float[] o = Random(c.Output.Length), l = Random(c.Left.Length), r = Random(c.Right.Length);
        var (exact, magnitude) = Reference.Exact(c, o, l, r);
        long[] some = [0, c.Output.Length / 3, c.Output.Length / 2 + 1, c.Output.Length - 1];
        var (at, mag) = Reference.ExactAt(c, some, o, l, r);
        for (int i = 0; i < some.Length; i++)
        {
            Assert.Equal(exact[some[i]], at[i], 9);
            Assert.Equal(magnitude[some[i]], mag[i], 9);
        }
    }

    [Fact]
    public void A_large_computation_is_checked_on_a_sample_that_still_catches_a_wrong_element()
    {
        var small = Computation.Matmul(64, 64, 64);
        Assert.Equal(small.Output.Length, Reference.CheckedElements(small).Length);
        var large = Computation.Matmul(512, 512, 512);
        var sample = Reference.CheckedElements(large);
        Assert.Equal(Reference.SampleSize, sample.Length);
        Assert.Equal(sample, Reference.CheckedElements(large)); // the same sample every time
        Assert.Equal((0L, large.Output.Length - 1), (sample[0], sample[^1]));

        var kernel = Kernel.Compile(Nest.Parse(large, ">m:64 n:16 k:512 m:8u n:32v"));
        var v = Verifier.Verify(kernel);
        Assert.True(v.Passed, v.Problem);
        Assert.Equal(Reference.SampleSize, v.Checked);
        Assert.Contains("a sample of 2048", v.Describe(large.Output.Length));

        // a wrong value at a sampled element is caught
        var rng = new Random(2);
        float[] o = new float[large.Output.Length], l = [.. Enumerable.Range(0, (int)large.Left.Length).Select(_ => (float)rng.NextDouble())],
            r = [.. Enumerable.Range(0, (int)large.Right.Length).Select(_ => (float)rng.NextDouble())];
        var (exact, magnitude) = Reference.ExactAt(large, sample, o, l, r);
        var got = new float[o.Length];
        for (int i = 0; i < sample.Length; i++) got[sample[i]] = (float)exact[i];
        Assert.Null(Verifier.Compare(large, got, sample, exact, magnitude, out _));
        got[sample[sample.Length / 2]] += 0.5f;
        Assert.Contains($"element {sample[sample.Length / 2]}", Verifier.Compare(large, got, sample, exact, magnitude, out _));
    }

    [Fact]
    public void A_kernel_too_slow_to_run_whole_is_checked_on_a_slice_of_its_rows()
    {
        var large = Computation.Matmul(512, 512, 512);
        var v = Verifier.VerifySlice(Nest.Parse(large, ">m:64 n:16 k:512 m:8u n:32v"), 2);
        Assert.NotNull(v);
        Assert.True(v.Value.Passed, v.Value.Problem);
        Assert.InRange(v.Value.Checked, 100, Reference.SampleSize); // the sample folded into rows 0..15
        // a reduction outermost leaves partial sums in a slice: every sampled element is checked against its partial sum
        var k = Verifier.VerifySlice(Nest.Parse(large, ">k:512 m:64 n:16 m:8u n:32v"), 2);
        Assert.NotNull(k);
        Assert.True(k.Value.Passed, k.Value.Problem);
        Assert.Equal(Reference.SampleSize, k.Value.Checked);
        Assert.Null(Verifier.VerifySlice(Nest.Parse(large, ">m:1 n:16 k:512 m:512 n:32v"), 2)); // one iteration: no slice
    }

    [Fact]
    public void A_kernel_is_checked_within_a_time_limit_on_a_slice_of_several_loops()
    {
        var large = Computation.Matmul(512, 512, 512);
        var nest = Nest.Parse(large, ">n:16 k:4 m:64 k:128 m:8u n:32v");
        // columns 0..31 with the sum over k's first 128 terms: the sample folded into them, checked against partial sums
        var v = Verifier.VerifySlice(nest, [512, 32, 128]);
        Assert.True(v.Passed, v.Problem);
        Assert.InRange(v.Checked, 500, 512 * 32);
        // a whole run predicted at 100 times the limit: the slice of Kernel.ProbeSizes for a hundredth of the work,
        // here n, k and m cut to one iteration of their outermost loops (8 x 32 outputs, 128 terms each)
        var within = Verifier.VerifyWithin(nest, Kernel.Compile(nest), predictedSeconds: 100, maxSeconds: 1);
        Assert.True(within.Passed, within.Problem);
        Assert.InRange(within.Checked, 1, 8 * 32);
        Assert.Equal(Reference.SampleSize, Verifier.VerifyWithin(nest, Kernel.Compile(nest), predictedSeconds: 0.5, maxSeconds: 1).Checked);
    }

    [Fact]
    public void Partial_sums_run_each_reduction_over_its_first_values()
    {
        var c = Computation.Matmul(3, 4, 5);
        var rng = new Random(2);
        float[] a = [.. Enumerable.Range(0, 15).Select(_ => (float)rng.NextDouble())], b = [.. Enumerable.Range(0, 20).Select(_ => (float)rng.NextDouble())];
        var output = new float[12];
        output[6] = 0.25f; // C[1,2]
        var (exact, _) = Reference.ExactAt(c, [6], output, a, b, [3, 4, 2]);
        Assert.Equal(0.25 + (double)a[5] * b[2] + (double)a[6] * b[6], exact[0], 12);
        Assert.Equal(Reference.ExactAt(c, [6], output, a, b).Exact[0], Reference.ExactAt(c, [6], output, a, b, [3, 4, 5]).Exact[0]);
    }

    [Fact]
    public void Peers_of_a_problem_too_large_to_run_whole_are_checked_and_timed_on_a_slice_of_its_rows()
    {
        var small = Computation.Matmul(512, 512, 512);
        Assert.Same(small, Peers.Slice(small).Slice);
        var huge = Computation.Matmul(4096, 4096, 4096);
        var (slice, note) = Peers.Slice(huge);
        double limit = KernelReport.MaxRunSeconds / 4 * Peers.SlowestPeerShare * PeakCache.GetOrMeasure() * 1e9;
        int rows = slice.AsMatmul()!.Value.M;
        Assert.Equal((0, 4096, 4096), (rows % 64, slice.Sizes[1], slice.Sizes[2]));
        Assert.True(rows < 4096 && (rows == 64 || slice.Flops <= limit), $"{rows} rows, limit {limit:E2} flops");
        Assert.Equal($"; estimated on m < {rows} of 4096", note);
        var peer = Peers.All.First(p => p.Available);
        using var prepared = Peers.PrepareGemm(peer, huge);
        Assert.Null(prepared.Result); // checked on the slice against the reference, and right
        Assert.True(prepared.Estimated);
        Assert.Equal(slice.Flops, prepared.Flops);
        Assert.EndsWith(note!, prepared.Via);
        var timed = prepared.Time(MeasureOptions.Quick with { MaxSeconds = 0.2 });
        Assert.True(timed.Estimated && timed.Gflops > 0);
    }
}
