using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Jit;

/// <summary>The pack action: where a packed input's elements go, kernels that read packed copies against the reference
/// (whole, sliced, from several threads), and the action's rules.</summary>
public class PackingTests
{
    static readonly JitOptions[] Widths = [new(MaxVectorBits: 512), new(MaxVectorBits: 256), new(MaxVectorBits: 0)];

    [Theory]
    [InlineData("mm 64 1024 96", "n:32 m:8 k:96 m:8u n:2u n:16v pack=B")]
    [InlineData("mm 37 45 29", "n:1+13 m:4+5 k:29 m:8u n:2u n:16v pack=B")]
    [InlineData("mm 37 45 29", "k:3+5 n:1+13 m:37 k:8 n:2u n:16v pack=A,B")]
    [InlineData("mm 48 40 33", "m:6 k:33 n:5 m:8u n:8v pack=A")]
    // A's rows of a tile copied along each row (a tail of 2 rows), B's rows of a panel in vectors (16 and 64 lanes wide)
    [InlineData("mm 50 48 70", "n:3 m:8+2 k:70 m:6u n:16v pack=A,B")]
    [InlineData("mm 19 128 33", "n:2 k:3 m:3+1 k:11 m:6u n:64v pack=A,B")]
    [InlineData("mm 20 24 12", "n:24 m:20 >k:12v pack=A,B")]
    // blocked as BLIS blocks, tails at every level: A copied a block at a time in m's iterations, B in k's (Layout.BlockLevel)
    [InlineData("mm 70 40 278", "k:2+22 m:2+10 n:2+8 m:5 k:32 k:4u m:6u n:16v pack=A,B")]
    // A's tile of 9 rows transposed in two groups of rows (8 and 1), 21 columns (two of 8 and 5 one at a time)
    [InlineData("mm 27 16 21", "n:2 m:3 k:21 m:9u n:8v pack=A")]
    [InlineData("conv 8 10 10 16 3 3", "f:4 h:8 c:8 r:3 s:3 f:4u w:8v pack=W")]
    [InlineData("conv 3 9 11 5 3 2", "f:1+1 h:7 c:3 r:3 s:2 f:4u w:10v pack=W")]
    [InlineData("C[m,o,i] += A[m,k] * B[o,k,i] m=21 o=3 i=20 k=9", "o:3 m:2+5 k:9 m:8u i:1+4 i:16v pack=A,B")]
    public void Packed_kernels_match_the_reference(string spec, string schedule)
    {
        var nest = Nest.Parse(Computation.Parse(spec), schedule.Contains('>', StringComparison.Ordinal) ? schedule : ">" + schedule);
        Assert.NotEqual(0, nest.Packed);
        var rng = new Random(3);
        foreach (var o in Widths)
        {
            Assert.Null(KernelCheck.CompileAndVerify(nest, o, rng));
            if (Kernel.OuterIterations(nest) > 1)
            {
                var slice = Verifier.VerifySlice(nest, 1, o)!.Value;
                Assert.True(slice.Passed, $"{KernelCheck.Describe(o)} slice: {slice.Problem}");
            }
        }
    }

    /// <summary>The span overload packs too (it ran the loops on the unpacked inputs: <c>looptune model</c> found it, a
    /// strided convolution of ResNet-18 with <c>pack=W</c> off by 3.5 from ONNX Runtime).</summary>
    [Theory]
    [InlineData("mm 37 45 29", ">k:3+5 n:1+13 m:37 k:8 n:2u n:16v pack=A,B")]
    [InlineData("O[f,h,w] += I[c,2*h+r,2*w+s] * W[f,c,r,s] f=16 h=6 w=6 c=128 r=3 s=3", "c:2 f:4 h:6 w:6 r:3 s:3 c:8u f:4u >c:8v pack=W")]
    public void A_packed_kernel_run_on_spans_matches_the_unscheduled_kernel(string spec, string schedule)
    {
        var c = Computation.Parse(spec);
        var packed = Kernel.Compile(Nest.Parse(c, schedule));
        Assert.NotEqual(0, packed.Nest.Packed);
        var rng = new Random(5);
        float[] Fill(long n) => [.. Enumerable.Range(0, (int)n).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
        var (left, right) = (Fill(c.Left.Length), Fill(c.Right.Length));
        var want = new float[c.Output.Length];
        Kernel.Compile(Nest.Initial(c)).Run(want, left, right);
        for (int run = 0; run < 2; run++) // the second run reads new inputs: nothing of the first run's copies is kept
        {
            var got = new float[c.Output.Length];
            packed.Run(got, left, right);
            for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(want[i] - got[i]) <= 1e-4 * Math.Max(1, Math.Abs(want[i])), $"run {run} element {i}: {got[i]}, want {want[i]}");
            (left, right) = (Fill(c.Left.Length), Fill(c.Right.Length));
            want = new float[c.Output.Length];
            Kernel.Compile(Nest.Initial(c)).Run(want, left, right);
        }
    }

    /// <summary>A convolution's filters kept packed from run to run (<see cref="Kernel.Run(float*, float*, float*, Operand?)"/>,
    /// as a timing keeps them, <c>KernelTiming.Kept</c>): the image is copied in every run, the filters only when the run's
    /// buffer for them is another one; each run matches the unscheduled kernel, at one thread and at two.</summary>
    [Theory]
    [InlineData("h:8 f:4 c:8 r:3 s:3 f:4u w:8v pack=W", 1)]
    [InlineData("h:8p f:4 c:8 r:3 s:3 f:4u w:8v pack=W", 2)]
    public unsafe void Filters_kept_packed_are_copied_again_only_from_another_buffer(string schedule, int threads)
    {
        var c = Computation.Parse("conv 8 10 10 16 3 3");
        Assert.Equal(Operand.Right, c.Filters);
        var kernel = Kernel.Compile(Nest.Parse(c, ">" + schedule));
        kernel.Threads = threads;
        Assert.True(kernel.CopiesWhole(Operand.Right));
        var rng = new Random(11);
        float[] Fill(long n) => [.. Enumerable.Range(0, (int)n).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
        float[] Want(float[] image, float[] filters)
        {
            var want = new float[c.Output.Length];
            Kernel.Compile(Nest.Initial(c)).Run(want, image, filters);
            return want;
        }
        var filters = new[] { Fill(c.Right.Length + 16), Fill(c.Right.Length + 16) };
        for (int run = 0; run < 4; run++)
        {
            // a new image every run; the filters of the first buffer twice, then of the second twice
            var image = Fill(c.Left.Length + 16);
            var w = filters[run / 2];
            var got = new float[c.Output.Length];
            fixed (float* o = got, i = image, f = w) kernel.Run(o, i, f, Operand.Right);
            var want = Want(image, w);
            for (int e = 0; e < want.Length; e++) Assert.True(Math.Abs(want[e] - got[e]) <= 1e-4 * Math.Max(1, Math.Abs(want[e])), $"run {run} element {e}: {got[e]}, want {want[e]}");
        }
        // and a matrix product has no filters; a strided convolution's are its unwindowed input, whichever side it is on
        Assert.Null(Computation.Parse("mm 8 8 8").Filters);
        Assert.Equal(Operand.Left, Computation.Parse("O[f,h] += W[f,c,r] * I[c,2*h+r] f=4 h=3 c=2 r=3").Filters);
    }

    /// <summary>A kernel whose copies were released (<see cref="Kernel.Release"/>, as the timing does between kernels)
    /// makes and fills them again on its next run, and kernels of other layouts run in between on whatever memory they
    /// are given: each run matches the unscheduled kernel.</summary>
    [Fact]
    public void Released_copies_are_made_again_and_match_the_reference()
    {
        var c = Computation.Parse("mm 37 45 29");
        var rng = new Random(7);
        float[] Fill(long n) => [.. Enumerable.Range(0, (int)n).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
        var (left, right) = (Fill(c.Left.Length), Fill(c.Right.Length));
        var want = new float[c.Output.Length];
        Kernel.Compile(Nest.Initial(c)).Run(want, left, right);
        var kernels = new[] { ">k:3+5 n:1+13 m:37 k:8 n:2u n:16v pack=A,B", ">n:1+13 m:4+5 k:29 m:8u n:2u n:16v pack=B", ">m:37 n:45 k:29 pack=A,B" }
            .Select(s => Kernel.Compile(Nest.Parse(c, s))).ToList();
        for (int round = 0; round < 3; round++)
            foreach (var kernel in kernels)
            {
                kernel.Prepare();
                var got = new float[c.Output.Length];
                kernel.Run(got, left, right);
                kernel.Release();
                for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(want[i] - got[i]) <= 1e-4 * Math.Max(1, Math.Abs(want[i])), $"{kernel.Nest} round {round} element {i}: {got[i]}, want {want[i]}");
            }
    }

    [Theory]
    [InlineData("k:6 m:16 n:64 m:32 k:64 k:4u m:6u n:16v pack=A,B", 1, 1, 192 * 256)] // A's 192 x 256 block in each iteration of m:16
    [InlineData("k:6 m:16 n:64 m:32 k:64 k:4u m:6u n:16v pack=A,B", 2, 0, 256 * 1024)] // B's 256 rows in each iteration of k:6
    [InlineData("n:64 k:6 m:512 k:64 k:4u m:6u n:16v pack=B", 2, 1, 256 * 16)]         // B's panel of 16 columns, read by m's tiles
    [InlineData("m:16 n:64 k:6 m:32 k:64 k:4u m:6u n:16v pack=B", 2, -1, 0)]          // m, outermost, reads all of B again
    [InlineData("k:6 m:16p n:64 m:32 k:64 k:4u m:6u n:16v pack=A,B", 1, 1, 192 * 256)] // each thread copies its own blocks of A
    [InlineData("k:6 m:16p n:64 m:32 k:64 k:4u m:6u n:16v pack=A,B", 2, -1, 0)]       // B's blocks would be every thread's
    [InlineData("n:1024 k:12 m:512 k:32 k:4u m:6u n:1v pack=B", 2, -1, 0)]             // a block of 128 floats: fewer than 256
    [InlineData("m:3072 n:1024 k:1536 pack=B", 2, -1, 0)]                             // no loop outside the tile reads a block again
    public void An_input_is_copied_a_block_at_a_time_at_the_deepest_loop_that_moves_it_whose_next_loop_does_not(string schedule, int tensor, int level, long floats)
    {
        var nest = Nest.Parse(Computation.Parse("mm 3072 1024 1536"), ">" + schedule);
        Assert.Equal(level, Layout.BlockLevel(nest, tensor));
        if (level < 0) return;
        Assert.Equal(floats, Layout.PackedLength(nest, tensor, level));
        var kernel = Kernel.Compile(nest);
        Assert.Contains(kernel.Notes, n => n.StartsWith($"input {nest.Computation.Tensors[tensor].Name} packed a block at a time, in each of the {nest[level].Iterations} iterations of {nest.LoopName(level)}:", StringComparison.Ordinal));
        // the same kernel without blocks copies that input whole
        Assert.DoesNotContain(Kernel.Compile(nest, JitOptions.Default with { PackBlocks = false }).Notes, n => n.Contains("a block at a time", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("mm 37 45 29", "n:1+13 m:4+5 k:29 m:8u n:2u n:16v pack=B", 2)]
    [InlineData("mm 37 45 29", "k:3+5 n:1+13 m:37 k:8 n:2u n:16v pack=A,B", 1)]
    [InlineData("conv 3 9 11 5 3 2", "f:1+1 h:7 c:3 r:3 s:2 f:4u w:10v pack=W", 2)]
    public void A_packed_input_has_every_element_once_at_the_place_its_loops_visit_it(string spec, string schedule, int tensor)
    {
        // the packed position, worked out independently: each loop's index from the element's variables, times its stride
        var nest = Nest.Parse(Computation.Parse(spec), ">" + schedule);
        var t = nest.Computation.Tensors[tensor];
        var strides = Layout.LoopStrides(nest);
        long length = Layout.PackedLength(nest, tensor);
        var seen = new HashSet<long>();
        var vars = t.Index.Select(d => d[0].Var).ToArray();
        foreach (var values in Points(vars.Select(v => nest.Computation.Sizes[v]).ToArray()))
        {
            long at = 0;
            for (int level = 0; level < nest.Count; level++)
            {
                int d = Array.IndexOf(vars, nest[level].Var);
                if (d < 0) continue;
                int outer = nest.PreviousOfVar(level) is var p && p >= 0 ? nest.InnerStep(p) : int.MaxValue;
                at += values[d] % outer / nest.InnerStep(level) * strides[tensor][level];
            }
            Assert.InRange(at, 0, length - 1);
            Assert.True(seen.Add(at), $"two elements of {t.Name} at {at}");
        }
        Assert.Equal(t.Length, seen.Count);
        // the innermost loop that moves the input steps one element
        Assert.Equal(1, strides[tensor][Enumerable.Range(0, nest.Count).Last(l => t.VarStrides[nest[l].Var] != 0)]);
    }

    static IEnumerable<int[]> Points(int[] sizes)
    {
        var p = new int[sizes.Length];
        while (true)
        {
            yield return (int[])p.Clone();
            int d = sizes.Length - 1;
            while (d >= 0 && ++p[d] == sizes[d]) p[d--] = 0;
            if (d < 0) yield break;
        }
    }

    [Theory]
    [InlineData(">m:8 n:32 k:96 m:8u n:2u n:16v pack=B", 96 * 1024)] // B copied whole: m, outermost, reads it all again
    [InlineData(">n:32 m:8 k:96 m:8u n:2u n:16v pack=B", 96 * 32)]   // a block of 96 x 32 in each iteration of n
    public unsafe void A_prepared_packed_kernel_allocates_nothing_in_its_first_run_and_still_matches_the_reference(string schedule, int copied)
    {
        var c = Computation.Parse("mm 64 1024 96");
        using var ws = new LoopTune.Measure.KernelTiming.Workspace(c);
        long FirstRun(bool prepare)
        {
            var k = Kernel.Compile(Nest.Parse(c, schedule));
            if (prepare) k.Prepare();
            long before = GC.GetAllocatedBytesForCurrentThread() + AlignedBuffer.MadeOnThisThread;
            k.Run(ws.Output.Pointer, ws.Left.Pointer, ws.Right.Pointer);
            return GC.GetAllocatedBytesForCurrentThread() + AlignedBuffer.MadeOnThisThread - before;
        }
        FirstRun(true); // the code paths' own first use
        Assert.True(FirstRun(false) >= copied * sizeof(float), "an unprepared kernel makes its copy's buffer in its first run");
        Assert.InRange(FirstRun(true), 0, 1024); // a few bytes of the run's own, not the copy's
        var prepared = Kernel.Compile(Nest.Parse(c, schedule));
        prepared.Prepare();
        Assert.Null(KernelCheck.Verify(prepared, new Random(7)));
    }

    [Fact]
    public void A_packed_kernel_run_from_several_threads_at_once_gives_each_its_own_result()
    {
        var nest = Nest.Parse(Computation.Parse("mm 40 72 24"), ">n:2+8 m:5 k:24 m:8u n:2u n:16v pack=A,B");
        var kernel = Kernel.Compile(nest);
        var c = nest.Computation;
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            for (int run = 0; run < 20; run++)
                if (KernelCheck.Verify(kernel, new Random(i * 100 + run)) is string problem) failures.Add($"thread {i} run {run}: {problem}");
        });
        Assert.Empty(failures);
        Assert.Equal(c.Flops, kernel.Flops);
    }

    [Fact]
    public void Pack_toggles_the_inputs_the_loop_reuses_and_names_what_it_cannot_pack()
    {
        var mm = Nest.Initial(Computation.Parse("mm 64 64 64"));
        var pack = Actions.Get("pack");
        var onM = Transforms.Apply(mm, pack); // B[k,n] is reused across m
        Assert.Equal("m:64 n:64 k:64 pack=B", onM.ScheduleKey);
        Assert.Equal(mm.ScheduleKey, Transforms.Apply(onM, pack).ScheduleKey);
        var both = Transforms.ApplyAll(onM, Actions.ParseList("down,pack"));
        Assert.Equal("m:64 n:64 k:64 pack=A,B", both.ScheduleKey);
        Assert.Equal(both, Nest.Parse(mm.Computation, both.Serialize()));
        Assert.Contains("packed: A,B", both.ToTree(), StringComparison.Ordinal);

        var onK = Assert.Throws<NothingToPackError>(() => Transforms.ApplyAll(mm, Actions.ParseList("down,down,pack")));
        Assert.Equal(3, onK.Step);
        Assert.Contains("every input is indexed by 'k'", onK.Message, StringComparison.Ordinal);
        var conv = Nest.Initial(Computation.Parse("conv 4 6 6 8 3 3"));
        var onF = Assert.Throws<NotPackableError>(() => Transforms.Apply(conv, pack)); // I[c,h+r,w+s] is reused across f
        Assert.Contains("I", onF.Message, StringComparison.Ordinal);
        Assert.Equal("f:8 h:4 w:4 c:4 r:3 s:3 pack=W", Transforms.ApplyAll(conv, Actions.ParseList("down,pack")).ScheduleKey);

        Assert.Contains("X is not an input", Assert.Throws<NestFormatError>(() => Nest.Parse(mm.Computation, ">m:64 n:64 k:64 pack=X")).Message, StringComparison.Ordinal);
        Assert.Contains("cannot be packed", Assert.Throws<NestFormatError>(() => Nest.Parse(conv.Computation, ">f:8 h:4 w:4 c:4 r:3 s:3 pack=I")).Message, StringComparison.Ordinal);
    }
}
