using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Jit;

/// <summary>One schedule per lowering path, each checked under every vector width, fused and not.</summary>
public class KernelDirectedTests
{
    static readonly JitOptions[] AllOptions =
    [
        new(MaxVectorBits: 512), new(MaxVectorBits: 512, UseFma: false),
        new(MaxVectorBits: 256), new(MaxVectorBits: 256, UseFma: false),
        new(MaxVectorBits: 128), new(MaxVectorBits: 128, UseFma: false),
        new(MaxVectorBits: 0), new(MaxVectorBits: 0, UseFma: false),
    ];

    static void AssertCorrect(string spec, string nest, int seed = 1)
    {
        var n = Nest.Parse(Computation.Parse(spec), nest);
        var rng = new Random(seed);
        var failures = new List<string>();
        foreach (var o in AllOptions)
            for (int run = 0; run < (n.Computation.Flops > 1e6 ? 1 : 2); run++)
                if (KernelCheck.CompileAndVerify(n, o, rng) is string problem) failures.Add($"{KernelCheck.Describe(o)}: {problem}");
        Assert.True(failures.Count == 0, $"spec '{spec}' nest '{nest}':\n" + string.Join("\n", failures));
    }

    [Theory]
    [InlineData("mm 33 37 19", "m:8+1 n:1+5 k:19 m:4u n:2u >n:16v")]
    [InlineData("mm 64 64 64", "m:16 n:2 k:64 m:4u n:2u >n:16v")]
    [InlineData("mm 256 256 256", "m:64 n:8 k:256 m:4u n:2u >n:16v")]
    [InlineData("mm 5 61 3", "m:5 k:3 >n:61v")]
    [InlineData("mm 3 13 4", "m:3 k:4 >n:13v")]
    public void Vectorized_contiguous_output_variable(string spec, string nest) => AssertCorrect(spec, nest);

    [Theory]
    [InlineData("mm 5 7 37", "m:5 n:7 >k:37v")]
    [InlineData("mm 6 5 100", "m:6 k:3+4 n:5 >k:32v")]   // the k tail runs through the vectorized loop with 4 lanes
    [InlineData("mm 6 5 100", "m:6 n:5 k:3+4 >k:32v")]   // and with the k loop inside the register tile
    [InlineData("mm 4 9 29", "m:2 n:9 k:29 >m:2u")]      // (no vectors: a hoisted reduction loop over an unrolled tile)
    [InlineData("mm 4 3 29", "m:4 k:1+13 n:3u >k:16v")]
    public void Vectorized_reduction_variable_sums_the_lanes(string spec, string nest) => AssertCorrect(spec, nest);

    [Theory]
    [InlineData("mm 13 7 5", "n:7 k:5 >m:13v")]
    [InlineData("mm 13 7 5", "k:5 n:7 >m:13v")]
    [InlineData("mm 37 3 3", "m:2+5 n:3 k:3 >m:16v")]
    [InlineData("mm 20 6 2", "m:5 n:3 k:2 n:2u >m:4v")]
    public void Vectorized_strided_variable_gathers_and_scatters(string spec, string nest) => AssertCorrect(spec, nest);

    [Theory]
    [InlineData("mm 13 5 11", "m:3+1u n:5 k:2+3 m:4u >k:4u")]
    [InlineData("mm 13 5 11", "m:3+1 n:5 k:2+3u m:4u >k:4")]
    [InlineData("mm 17 17 17", "m:2+1u m:8u n:17u >k:17")]
    [InlineData("mm 31 31 31", "m:7+3 n:31 m:4u >k:31u")]
    public void Unrolled_loops_with_tails(string spec, string nest) => AssertCorrect(spec, nest);

    [Theory]
    [InlineData("mm 16 16 16", "m:1 m:16 n:16 >k:16")]
    [InlineData("mm 13 3 2", "m:1+5 >m:8 n:3 k:2")]
    [InlineData("mm 7 1 9", "m:7 >n:1 k:9")]
    [InlineData("mm 7 2 3", "k:1+1 m:7 n:2 >k:2v")]
    public void Loops_with_one_iteration(string spec, string nest) => AssertCorrect(spec, nest);

    [Theory]
    [InlineData("mm 1 1 1", ">m:1 n:1 k:1")]
    [InlineData("mm 1 1 1", "m:1u n:1u >k:1v")]
    [InlineData("mm 1 1 1", "k:1 m:1u >n:1v")]
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=1 h=1 w=1 c=1 r=1 s=1", ">f:1 h:1 w:1 c:1 r:1 s:1")]
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=1 h=1 w=1 c=1 r=1 s=1", "f:1u h:1u w:1u c:1u r:1u >s:1v")]
    [InlineData("conv 1 1 1 1 1 1", ">f:1 p:1 c:1")]      // a pointwise convolution: its pixels one variable
    [InlineData("conv 1 1 1 1 1 1", "f:1u c:1u >p:1v")]
    public void Sizes_one_everywhere(string spec, string nest) => AssertCorrect(spec, nest);

    [Theory]
    [InlineData("conv 3 10 9 4 3 3", "f:4 h:8 c:3 r:3 s:3 >w:7v")]   // contiguous in O and I
    [InlineData("conv 3 10 9 4 3 3", "f:4 h:8 w:7 c:3 r:3 >s:3v")]   // reduction, contiguous in I and W
    [InlineData("conv 3 10 9 4 3 3", "f:4 h:8 w:7 c:3 s:3 >r:3v")]   // reduction, gathered from I and W
    [InlineData("conv 3 10 9 4 3 3", "f:4 w:7 c:3 r:3 s:3 >h:8v")]   // strided output
    [InlineData("conv 3 10 9 4 3 3", "h:8 w:7 c:3 r:3 s:3 >f:4v")]   // strided output, W gathered, I broadcast
    [InlineData("conv 3 10 9 4 3 3", "f:2 h:8 c:3 r:3u s:3u f:2u >w:7v")]
    [InlineData("O[f,h,w] += I[c,2*h+r,2*w+s] * W[f,c,r,s] f=2 h=5 w=6 c=2 r=3 s=3", "f:2 h:5 c:2 r:3 s:3u >w:6v")]
    [InlineData("O[f,h,w] += I[c,2*h+r,2*w+s] * W[f,c,r,s] f=2 h=5 w=6 c=2 r=3 s=3", "f:2 w:6 c:2 s:3 h:5u >r:3v")]
    public void Convolutions(string spec, string nest) => AssertCorrect(spec, nest);

    [Fact]
    public void Small_statement_budget_drops_the_unroll_and_stays_correct()
    {
        var n = Nest.Parse(Computation.Parse("mm 16 16 16"), "m:16 n:4 k:16u >n:4u");
        var tight = new JitOptions(MaxOperations: 16);
        var k = Kernel.Compile(n, tight);
        Assert.NotEmpty(k.Notes);
        Assert.Contains(k.Notes, note => note.Contains("unroll of k") && note.Contains("16"));
        Assert.InRange(k.Statements, 1, 16);
        Assert.Null(KernelCheck.Verify(k, new Random(3)));
        var roomy = Kernel.Compile(n);                      // 64 statements fit the default budget
        Assert.DoesNotContain(roomy.Notes, note => note.Contains("unroll"));
        Assert.Equal(64, roomy.Statements);
        Assert.Null(KernelCheck.Verify(roomy, new Random(4)));
    }

    [Fact]
    public void Default_budget_drops_the_outermost_of_two_large_unrolls()
    {
        var n = Nest.Parse(Computation.Parse("mm 64 64 8"), "k:8 m:64u >n:64u");   // 4096 scalar multiply-adds
        var k = Kernel.Compile(n, new JitOptions(MaxVectorBits: 0));
        Assert.Single(k.Notes);
        Assert.Contains("unroll of m", k.Notes[0]);
        Assert.Equal(64, k.Statements);
        Assert.Null(KernelCheck.Verify(k, new Random(5)));
        AssertCorrect("mm 64 64 8", "k:8 m:64u >n:64u");
    }

    [Fact]
    public void Without_vectors_a_vectorized_loop_is_unrolled_as_scalars_and_says_so()
    {
        var n = Nest.Parse(Computation.Parse("mm 5 7 37"), "m:5 n:7 >k:37v");
        var k = Kernel.Compile(n, new JitOptions(MaxVectorBits: 0));
        Assert.Contains(k.Notes, note => note.Contains("vectorized loop k is unrolled as scalars"));
        Assert.Equal(37, k.Statements);
        Assert.Null(KernelCheck.Verify(k, new Random(6)));
    }

    [Fact]
    public void Vector_chunks_without_masks_are_the_widest_available_first_then_scalars()
    {
        foreach (int bits in new[] { 512, 256, 128, 0 })
        {
            var o = new JitOptions(MaxVectorBits: bits, MaskedTails: false);
            Assert.All(o.VectorWidths, w => Assert.True(w * 32 <= bits));
            Assert.Equal(o.VectorWidths.OrderByDescending(w => w), o.VectorWidths);
            foreach (int lanes in new[] { 1, 3, 4, 13, 16, 37, 64 })
            {
                var chunks = o.Chunks(lanes).ToList();
                Assert.All(chunks, c => Assert.False(c.IsMasked));
                // greedy: after the chunks of a width, fewer lanes than that width remain
                var expected = new List<int>();
                int left = lanes;
                foreach (int w in o.VectorWidths) for (; left >= w; left -= w) expected.Add(w);
                expected.AddRange(Enumerable.Repeat(1, left));
                Assert.Equal(expected, chunks.Select(c => c.Width));
            }
        }
        Assert.Empty(new JitOptions(MaxVectorBits: 0).VectorWidths);
        Assert.Equal([new Chunk(1, 1), new Chunk(1, 1), new Chunk(1, 1)], new JitOptions(MaxVectorBits: 0).Chunks(3));
    }

    [Fact]
    public void Vector_chunks_with_masks_end_in_one_masked_vector()
    {
        foreach (int bits in new[] { 512, 256, 128 })
        {
            var o = new JitOptions(MaxVectorBits: bits);
            foreach (int lanes in new[] { 1, 3, 4, 13, 16, 37, 64 })
            {
                var chunks = o.Chunks(lanes).ToList();
                Assert.Equal(lanes, chunks.Sum(c => c.Lanes));
                Assert.All(chunks.SkipLast(1), c => Assert.Equal(o.VectorWidths[0], c.Width));
                Assert.All(chunks.SkipLast(1), c => Assert.False(c.IsMasked));
                var last = chunks[^1];
                if (!o.Masking(last.Width)) continue; // a machine without masked loads falls back to the greedy split
                Assert.Equal(o.VectorWidths.Where(w => w >= last.Lanes).Min(), last.Width);
            }
        }
    }

    [Theory]
    [InlineData("mm 5 7 37", "m:5 n:7 >k:37v")]          // reduction lanes: the masked lanes must add nothing
    [InlineData("mm 5 37 7", "m:5 k:7 >n:37v")]          // output lanes: masked store leaves the neighbours alone
    [InlineData("mm 37 5 7", "n:5 k:7 >m:37v")]          // strided output: gather and scatter of the live lanes only
    [InlineData("mm 3 13 2", "m:3 k:2 >n:13v")]
    public void Masked_tails_match_the_reference_at_every_width(string spec, string nest)
    {
        var n = Nest.Parse(Computation.Parse(spec), nest);
        foreach (int bits in new[] { 512, 256, 128 })
            foreach (bool masked in new[] { true, false })
            {
                var k = Kernel.Compile(n, new JitOptions(MaxVectorBits: bits, MaskedTails: masked));
                Assert.Null(KernelCheck.Verify(k, new Random(bits + (masked ? 1 : 0))));
            }
    }

    /// <summary>Whole-vector loads of a masked input vector: only where the accumulator's lanes are distinct output elements
    /// that are stored under the mask, reading exactly the masked lanes' worth past the live ones. The guards around every
    /// buffer are signalling NaNs, so an extra lane that reached a stored element or a lane sum would fail the check.</summary>
    [Theory]
    [InlineData("mm 5 37 7", "m:5 k:7 >n:37v", 3)]                                   // 4 x 8 + 5 live of 8: 3 past
    [InlineData("mm 3 13 2", "m:3 k:2 >n:13v", 3)]                                   // 8 + 5 of 8
    [InlineData("conv 16 16 8 16 3 3", "f:4 h:7 c:16 r:3 s:3u f:4u h:2u >w:6v", 2)]  // 6 live of 8
    [InlineData("mm 5 7 37", "m:5 n:7 >k:37v", 0)]                                   // reduction lanes: the mask stays
    [InlineData("mm 37 5 7", "n:5 k:7 >m:37v", 0)]                                   // strided lanes: gathered one by one
    [InlineData("mm 8 16 4", "m:8 k:4 >n:16v", 0)]                                   // no masked vector
    public void Wide_input_loads_read_past_only_lanes_that_are_never_stored(string spec, string nest, int readsPast)
    {
        var n = Nest.Parse(Computation.Parse(spec), nest);
        var wide = Kernel.Compile(n, new JitOptions(MaxVectorBits: 256));
        var masked = Kernel.Compile(n, new JitOptions(MaxVectorBits: 256, WideInputLoads: false));
        Assert.Equal(new JitOptions(MaxVectorBits: 256).Masking(8) ? readsPast : 0, wide.ReadsPast);
        Assert.Equal(0, masked.ReadsPast);
        Assert.Null(KernelCheck.Verify(wide, new Random(3)));
        Assert.Null(KernelCheck.Verify(masked, new Random(4)));
    }

    /// <summary>Fused lanes (<see cref="JitOptions.FuseLanes"/>): an unrolled loop and the vectorized loop below it as one run
    /// of lanes, where that takes fewer vectors, at 8 and 4 lanes; the same kernel unfused matches the reference too. The
    /// guards around every buffer are signalling NaNs, so a blend that kept a lane from the wrong load would fail the check.</summary>
    [Theory]
    [InlineData("conv 16 32 8 32 3 3", "f:8 h:7+2 c:16 r:3 s:3 f:4u h:4u >w:6v", "4 rows of 6 lanes in 3 vectors instead of 4")] // 30 rows: 7 x 4 + a tail of 2, unfused
    [InlineData("conv 2 8 8 3 3 3", "f:3 c:2 r:3 s:3 h:6u >w:6v", "6 rows of 6 lanes in 5 vectors instead of 6")]            // 36 lanes: 4 full, 1 half
    [InlineData("conv 2 6 16 2 3 3", "f:2 c:2 r:3 s:3 h:4u >w:14v", "4 rows of 14 lanes in 7 vectors instead of 8")]
    [InlineData("conv 1 5 5 2 1 2", "f:2 c:1 r:1 s:2 h:5u >w:4v", "5 rows of 4 lanes in 3 vectors instead of 5")]           // rows of 5, output rows of 4
    [InlineData("C[m,n] += A[k,m,n] * B[k] m=4 n=6 k=3", "k:3 m:4u >n:6v", "4 rows of 6 lanes in 3 vectors instead of 4")] // rows as long as the output's
    [InlineData("conv 16 16 8 16 3 3", "f:4 h:7 c:16 r:3 s:3u f:4u h:2u >w:6v", null)]  // 12 lanes: 2 vectors either way
    [InlineData("mm 4 6 5", "k:5 m:4u >n:6v", null)]                                      // A[m,k] is one element per row: no blend of broadcasts
    [InlineData("conv 2 8 8 3 3 3", "f:3 c:2 r:3 s:3 w:6u >h:6v", null)]                  // lanes over h: the output block is not contiguous
    public void Fused_lanes_fill_vectors_across_rows(string spec, string nest, string? fused)
    {
        var n = Nest.Parse(Computation.Parse(spec), nest);
        var o = new JitOptions(MaxVectorBits: 256);
        var on = Kernel.Compile(n, o);
        var off = Kernel.Compile(n, o with { FuseLanes = false });
        Assert.Null(KernelCheck.Verify(on, new Random(6)));
        Assert.Null(KernelCheck.Verify(off, new Random(7)));
        Assert.DoesNotContain(off.Notes, note => note.Contains("fused"));
        if (fused is null || !JitOptions.Blends(8) || !o.Masking(8))
        {
            Assert.DoesNotContain(on.Notes, note => note.Contains("fused"));
            Assert.Equal(off.Statements, on.Statements);
            return;
        }
        Assert.Contains(on.Notes, note => note.Contains(fused));
        Assert.True(on.Statements < off.Statements, $"{on.Statements} statements fused, {off.Statements} apart");
        Assert.InRange(on.ReadsPast, 0, 7);
        var narrow = Kernel.Compile(n, new JitOptions(MaxVectorBits: 128));
        Assert.Null(KernelCheck.Verify(narrow, new Random(8)));
    }

    /// <summary>Random convolutions and row unrolls, fused at 16, 8 and 4 lanes, against the reference: the loops above the
    /// fused pair in a random order, each unrolled or not, the outer part of h too (with its tail), so that one register
    /// tile can hold fused and unfused rows.</summary>
    [Theory]
    [InlineData(40)]
    public void Fused_lanes_match_the_reference_on_random_convolutions(int shapes)
    {
        var rng = new Random(11);
        int fusedKernels = 0;
        for (int i = 0; i < shapes; i++)
        {
            int r = rng.Next(1, 4), s = rng.Next(1, 4), h = rng.Next(r + 1, r + 12), w = rng.Next(s + 1, s + 20), u = rng.Next(2, 7);
            // the windowed form even for a 1x1 window, whose shorthand would build the pointwise form (no h, r or s)
            int channels = rng.Next(1, 4), filters = rng.Next(1, 4);
            var c = Computation.Parse($"O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f={filters} h={h - r + 1} w={w - s + 1} c={channels} r={r} s={s}");
            var conv = c.AsConv()!.Value;
            int rows = h - r + 1;
            u = Math.Min(u, rows);
            string U() => rng.Next(3) == 0 ? "u" : "";
            var above = new List<string> { $"f:{conv.F}{U()}", $"c:{conv.C}", $"r:{r}{U()}", $"s:{s}{U()}" };
            if (rows > u) above.Add($"h:{rows / u}{(rows % u > 0 ? $"+{rows % u}" : "")}{U()}");
            var order = above.OrderBy(_ => rng.Next()).ToList();
            var nest = Nest.Parse(c, string.Join(' ', order) + $" h:{u}u >w:{w - s + 1}v");
            foreach (int bits in new[] { 512, 256, 128 })
            {
                var k = Kernel.Compile(nest, new JitOptions(MaxVectorBits: bits, MaskedTails: rng.Next(4) > 0));
                fusedKernels += k.Notes.Any(note => note.Contains("fused")) ? 1 : 0;
                var problem = KernelCheck.Verify(k, rng);
                Assert.True(problem is null, $"{c} {nest.ScheduleKey} at {bits} bits: {problem}");
            }
        }
        Assert.True(!JitOptions.Blends(8) || fusedKernels >= shapes / 2, $"only {fusedKernels} of {3 * shapes} kernels fused");
    }

    /// <summary>16-lane fusion (AVX-512: a select under a constant vector): rows of 6 fill whole 512-bit vectors across two or
    /// three rows of the input, and rows of 14 across two.</summary>
    [Theory]
    [InlineData("conv 16 32 8 32 3 3", "f:8 h:7+2 c:16 r:3 s:3 f:4u h:4u >w:6v", "4 rows of 6 lanes in 2 vectors instead of 4")]
    [InlineData("conv 4 10 8 4 3 3", "f:4 c:4 r:3 s:3 h:8u >w:6v", "8 rows of 6 lanes in 3 vectors instead of 8")]
    [InlineData("conv 2 10 16 3 3 3", "f:3 c:2 r:3 s:3 h:8u >w:14v", "8 rows of 14 lanes in 7 vectors instead of 8")]
    public void Sixteen_lane_fusion_matches_the_reference(string spec, string nest, string fused)
    {
        var o = new JitOptions(MaxVectorBits: 512);
        if (!JitOptions.Blends(16) || o.VectorBits != 512) return; // no AVX-512 here: the 8- and 4-lane cases cover fusion
        var n = Nest.Parse(Computation.Parse(spec), nest);
        var on = Kernel.Compile(n, o);
        Assert.Contains(on.Notes, note => note.Contains(fused));
        Assert.Null(KernelCheck.Verify(on, new Random(12)));
        Assert.InRange(on.ReadsPast, 0, 15);
    }

    [Fact]
    public void Run_on_spans_of_exact_length_copies_inputs_a_kernel_reads_past()
    {
        var c = Computation.Parse("mm 3 13 2");
        var k = Kernel.Compile(Nest.Parse(c, "m:3 k:2 >n:13v"), new JitOptions(MaxVectorBits: 256));
        var rng = new Random(5);
        float[] a = [.. Enumerable.Range(0, 6).Select(_ => rng.NextSingle())], b = [.. Enumerable.Range(0, 26).Select(_ => rng.NextSingle())];
        var o = new float[39];
        k.Run(o, a, b);
        var (exact, magnitude) = Reference.Exact(c, new float[39], a, b);
        Assert.Null(Verifier.Compare(c, o, exact, magnitude, out _));
    }

    [Fact]
    public void Statement_count_follows_the_vector_chunks()
    {
        var n = Nest.Parse(Computation.Parse("mm 5 7 37"), "m:5 n:7 >k:37v");
        foreach (int bits in new[] { 512, 256, 128 })
        {
            var o = new JitOptions(MaxVectorBits: bits);
            Assert.Equal(o.Chunks(37).Count(), Kernel.Compile(n, o).Statements);
        }
    }
}
