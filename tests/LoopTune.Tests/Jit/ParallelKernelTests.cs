using System.Runtime.InteropServices;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Jit;

/// <summary>Runs alone: its thread teams keep every core busy (3 threads on 2 cores, 10,000 runs in a row), which starved
/// the timing tests run beside it (a 4 ms spin measured as long as an 8 ms one).</summary>
[CollectionDefinition(nameof(AllCores), DisableParallelization = true)]
public sealed class AllCores;

/// <summary>Kernels with a parallel loop on 1, 2 and 3 threads (3 more than this machine's cores: the team's workers share
/// them): against the reference with guard zones, to the bit against one thread, many calls in a row, several callers at
/// once, and the chunks.</summary>
[Collection(nameof(AllCores))]
public class ParallelKernelTests
{
    static readonly LoopAction Parallel = Actions.Get("parallel");

    /// <summary>A random walk, sometimes ended by a vectorized innermost loop, then parallel on a random loop where it is
    /// legal (none when no loop allows it).</summary>
    static Nest? RandomParallel(Computation c, Random rng)
    {
        var (nest, actions) = RandomSchedules.Walk(Nest.Initial(c), rng, rng.Next(2, 12));
        if (rng.Next(2) == 0) nest = RandomSchedules.FinishVectorized(nest, actions);
        if (nest.ParallelLoop >= 0) return nest;
        var legal = Enumerable.Range(0, nest.Count).Where(i => Transforms.IsLegal(nest.With(nest.Loops, i), Parallel)).ToArray();
        return legal.Length == 0 ? null : Transforms.Apply(nest.With(nest.Loops, legal[rng.Next(legal.Length)]), Parallel);
    }

    [Theory]
    [InlineData("mm", 1)]
    [InlineData("mm", 2)]
    [InlineData("conv", 3)]
    [InlineData("conv", 4)]
    public void Random_parallel_schedules_match_the_reference_and_one_thread_at_1_2_and_3_threads(string kind, int seed)
    {
        var rng = new Random(seed);
        int tried = 0;
        while (tried < 25)
        {
            var c = RandomSchedules.Of(kind, rng);
            if (RandomParallel(c, rng) is not { } nest) continue;
            tried++;
            var kernel = Kernel.Compile(nest);
            var single = RunOnce(kernel, 1, seed);
            foreach (int threads in new[] { 1, 2, 3 })
            {
                kernel.SetThreads(threads);
                Assert.Null(KernelCheck.Verify(kernel, new Random(seed)));
                Assert.True(single.AsSpan().SequenceEqual(RunOnce(kernel, threads, seed)), $"{nest.Serialize()} on {threads} threads differs from 1 thread");
            }
        }
    }

    /// <summary>A packed kernel on several threads makes its copies on them, each a share of the copy's outermost loop (a
    /// tail among them): the result is the reference's, and one thread's to the bit.</summary>
    [Theory]
    [InlineData("mm 50 48 70", ">k:2 m:2p n:3 m:4+1 k:7 k:5u m:6u n:16v pack=A,B")]
    [InlineData("mm 37 45 29", ">k:3+5 n:1+13 m:37p k:8 n:2u n:16v pack=A,B")]
    [InlineData("mm 37 45 29", ">n:1+13p m:4+5 k:29 m:8u n:2u n:16v pack=B")]
    public void Packed_copies_made_on_the_threads_give_one_threads_result(string spec, string schedule)
    {
        var kernel = Kernel.Compile(Nest.Parse(Computation.Parse(spec), schedule));
        var single = RunOnce(kernel, 1, 5);
        foreach (int threads in new[] { 2, 3 })
        {
            kernel.SetThreads(threads);
            Assert.Null(KernelCheck.Verify(kernel, new Random(5)));
            Assert.True(single.AsSpan().SequenceEqual(RunOnce(kernel, threads, 5)), $"{schedule} on {threads} threads differs from 1 thread");
        }
    }

    /// <summary>The output's bits after one run from fixed inputs and a non-zero output on <paramref name="threads"/> threads.</summary>
    static int[] RunOnce(Kernel kernel, int threads, int seed)
    {
        kernel.SetThreads(threads);
        var c = kernel.Computation;
        var rng = new Random(seed);
        float[] Fill(long n) => [.. Enumerable.Range(0, (int)n + kernel.ReadsPast).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
        var (output, left, right) = (Fill(c.Output.Length), Fill(c.Left.Length), Fill(c.Right.Length));
        kernel.Run(output, left, right);
        return MemoryMarshal.Cast<float, int>(output.AsSpan()).ToArray();
    }

    /// <summary>10,000 runs in a row on 2 and 3 threads: every chunk of every run is done (small integers keep the sums
    /// exact), no run waits forever (a lost wake-up would hang past the bound), no thread is started after the first and
    /// the calling thread allocates nothing, its packed copies made on the threads included.</summary>
    [Theory]
    [InlineData(">m:6p k:8 m:4u n:16v")]
    [InlineData(">m:6p k:8 m:4u n:16v pack=A,B")]
    public async Task Ten_thousand_runs_in_a_row_lose_no_wake_up_and_start_no_thread(string schedule)
    {
        var c = Computation.Parse("mm 24 16 8");
        var kernel = Kernel.Compile(Nest.Parse(c, schedule));
        float[] left = [.. Enumerable.Range(0, 24 * 8 + kernel.ReadsPast).Select(i => (float)(i % 3))];
        float[] right = [.. Enumerable.Range(0, 8 * 16 + kernel.ReadsPast).Select(i => (float)(i % 4))];
        var once = new float[24 * 16];
        kernel.Run(once, left, right);
        foreach (int threads in new[] { 2, 3 })
        {
            kernel.SetThreads(threads);
            var output = new float[24 * 16];
            const int Runs = 10_000;
            var all = Task.Run(() =>
            {
                // a team serves the core its caller runs on: the caller stays on one, as a measuring thread does
                using var pin = LoopTune.Measure.ThreadPinning.Pin();
                kernel.Run(output, left, right); // the team starts its workers here
                int started = ThreadTeam.Started;
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 1; i < Runs; i++) kernel.Run(output, left, right);
                return (Allocated: GC.GetAllocatedBytesForCurrentThread() - before, Started: ThreadTeam.Started - started);
            });
            var (allocated, startedSince) = await all.WaitAsync(TimeSpan.FromSeconds(60)); // a TimeoutException when a run waits forever
            Assert.Equal(0, allocated);
            Assert.Equal(0, startedSince);
            for (int i = 0; i < once.Length; i++) Assert.Equal(once[i] * Runs, output[i]);
        }
    }

    /// <summary>Callers on several threads at once each get their whole result (runs on one team take turns).</summary>
    [Fact]
    public async Task Several_callers_at_once_each_get_the_right_result()
    {
        var c = Computation.Parse("conv 4 12 10 8 3 3");
        var kernel = Kernel.Compile(Nest.Parse(c, ">f:8 h:10p c:4 r:3 s:3 w:8v"));
        kernel.SetThreads(2);
        var callers = Enumerable.Range(0, 4).Select(i => Task.Run(() => KernelCheck.Verify(kernel, new Random(i)))).ToArray();
        var problems = await Task.WhenAll(callers).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.All(problems, Assert.Null);
    }

    [Theory]
    [InlineData(10, 3, 1, new[] { 0, 4, 7, int.MaxValue })]
    [InlineData(56, 2, 2, new[] { 0, 28, int.MaxValue })]
    [InlineData(7, 2, 2, new[] { 0, 4, int.MaxValue })]
    [InlineData(2, 3, 1, new[] { 0, 1, 2, int.MaxValue })]
    [InlineData(3, 2, 16, new[] { 0, 3, int.MaxValue })]
    public void Chunks_are_even_whole_granules_and_the_last_runs_to_the_end(int iterations, int threads, int granule, int[] expected) =>
        Assert.Equal(expected, Kernel.Chunks(iterations, threads, granule));

    /// <summary>With the parallel loop outermost over an output variable whose rows are whole lines, each thread's first
    /// output element starts a 64-byte line; conv's 56-float rows (224 bytes) are cut at even rows.</summary>
    [Theory]
    [InlineData("mm 512 512 512", "m:128p n:16 k:512 m:4u n:2u n:16v", 2)]
    [InlineData("conv 64 58 58 64 3 3", "h:56p f:16 c:64 r:3 s:3 f:4u w:4u w:14v", 2)]
    [InlineData("conv 64 58 58 64 3 3", "h:56p f:16 c:64 r:3 s:3 f:4u w:4u w:14v", 3)]
    [InlineData("mm 100 36 8", "m:100p k:8 n:36v", 3)]
    public void No_two_threads_start_in_one_cache_line_of_the_output(string spec, string schedule, int threads)
    {
        var nest = Nest.Parse(Computation.Parse(spec), ">" + schedule);
        var kernel = Kernel.Compile(nest);
        kernel.SetThreads(threads);
        long rowFloats = nest.InnerStep(nest.ParallelLoop) * nest.Computation.Output.VarStrides[nest[nest.ParallelLoop].Var];
        for (int t = 1; t < threads; t++) Assert.Equal(0, kernel.ChunkStarts[t] * rowFloats % 16);
        Assert.True(kernel.ChunkStarts[1] > 0);
    }

    /// <summary>Where the planes beyond the parallel rows are not whole lines apart (NCHW planes of 54 x 54 floats), a
    /// boundary cuts a line in some plane whatever the granule: the rows are split evenly (27 and 27, not 32 and 22); where
    /// they are (56 x 56), at whole lines.</summary>
    [Theory]
    [InlineData("conv 64 56 56 64 3 3", "h:54p w:9 c:64 r:3 s:3u w:6u f:64v", 1, 27)]
    [InlineData("conv 64 58 58 64 3 3", "h:56p f:16 c:64 r:3 s:3 f:4u w:4u w:14v", 2, 28)]
    [InlineData("mm 100 36 8", "m:100p k:8 n:36v", 4, 52)]
    public void Rows_split_at_lines_only_where_the_other_strides_keep_them(string spec, string schedule, int granule, int second)
    {
        var nest = Nest.Parse(Computation.Parse(spec), ">" + schedule);
        Assert.Equal(granule, Kernel.LineGranule(nest));
        var kernel = Kernel.Compile(nest);
        kernel.SetThreads(2);
        Assert.Equal(second, kernel.ChunkStarts[1]);
    }

    [Theory]
    [InlineData(1, 100, 1)]
    [InlineData(2, 100, 8)]
    [InlineData(3, 100, 8)]
    [InlineData(3, 5, 8)]
    [InlineData(2, 0, 1)]
    [InlineData(3, 1001, 64)]
    public void Work_around_kernels_covers_every_item_once_in_whole_granules_on_each_thread(int threads, int count, int granule)
    {
        for (int round = 0; round < 50; round++) // many hand-offs in a row on one team
        {
            var seen = new int[count];
            var parts = new (int Start, int End)[threads];
            TeamWork.For(threads, count, granule, (part, start, end) =>
            {
                parts[part] = (start, end);
                for (int i = start; i < end; i++) Interlocked.Increment(ref seen[i]);
            });
            Assert.All(seen, n => Assert.Equal(1, n));
            Assert.All(parts, p => Assert.True(p.Start % granule == 0 || p.Start == count, $"{p}"));
            Assert.Equal(count, parts.Max(p => p.End));
        }
        // a part that fails: the caller's own, or a worker's (reported as the team's failure); the team still works after
        Assert.Throws<ArgumentException>(() => TeamWork.For(threads, 4 * granule * threads, granule, (part, _, _) =>
        {
            if (part == 0) throw new ArgumentException("the caller's part fails");
        }));
        if (threads > 1)
            Assert.Throws<InvalidOperationException>(() => TeamWork.For(threads, 4 * granule * threads, granule, (part, _, _) =>
            {
                if (part == threads - 1) throw new ArgumentException("a worker's part fails");
            }));
        int sum = 0;
        TeamWork.For(threads, 1000, 1, (_, start, end) => Interlocked.Add(ref sum, end - start));
        Assert.Equal(1000, sum);
    }

    [Fact]
    public void A_thread_count_below_1_or_above_the_cores_is_refused_naming_the_rule()
    {
        var kernel = Kernel.Compile(Nest.Parse(Computation.Parse("mm 8 8 8"), ">m:8p n:8 k:8"));
        foreach (int bad in new[] { 0, -1, ThreadCountError.Max + 1 })
        {
            var e = Assert.Throws<ThreadCountError>(() => kernel.Threads = bad);
            Assert.Contains($"threads must be from 1 to {ThreadCountError.Max}, the cores this process may use; got {bad}", e.Message);
        }
        kernel.Threads = ThreadCountError.Max;
        Assert.Equal(ThreadCountError.Max, kernel.Threads);
    }
}
