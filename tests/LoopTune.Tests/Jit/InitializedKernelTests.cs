using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Jit;

/// <summary>Kernels whose output starts from an init tensor (<see cref="Kernel.CompileInitialized"/>) against the reference
/// run on an output filled with the initial values first; the nests it refuses, refused.</summary>
public class InitializedKernelTests
{
    /// <summary>Runs <paramref name="kernel"/> on KernelCheck's guarded buffers with the init tensor laid out as the output
    /// (init strides = the output's), holding the output's initial values, and the output itself filled with NaN first: the
    /// reference is the output's initial values plus the sum, so every element must come from init.</summary>
    static unsafe string? CheckAsOutput(Kernel kernel, Random rng) => KernelCheck.Problems(kernel.Computation, rng, (o, l, r) =>
    {
        var output = new Span<float>((float*)o, (int)kernel.Computation.Output.Length);
        var init = output.ToArray();
        output.Fill(float.NaN);
        fixed (float* i = init) kernel.Run((float*)o, (float*)l, (float*)r, i);
    });

    /// <summary>The same with an init tensor that ignores some output variables (a stride of 0: a bias of the others, as a
    /// convolution's ignores h and w): each output element's initial value is init at its kept variables, then the sum.</summary>
    static unsafe string? CheckIgnoring(Kernel kernel, long[] init, Random rng)
    {
        var c = kernel.Computation;
        var values = new float[c.Output.Length];
        Reference.FillUniform(values, rng);
        var want = new float[c.Output.Length];
        for (long o = 0; o < want.Length; o++) // the output's variables' indices from the flat position, then init's
        {
            long at = 0, rest = o;
            for (int v = c.Vars.Length - 1; v >= 0; v--)
                if (c.Output.VarStrides[v] != 0)
                {
                    at += rest / c.Output.VarStrides[v] % c.Sizes[v] * init[v];
                }
            want[o] = values[at];
        }
        float[] left = new float[c.Left.Length + kernel.ReadsPast], right = new float[c.Right.Length + kernel.ReadsPast];
        Reference.FillUniform(left, rng);
        Reference.FillUniform(right, rng);
        Reference.Run(c, want, left, right);
        var got = Enumerable.Repeat(float.NaN, want.Length).ToArray();
        kernel.Run(got, left, right, values);
        double tolerance = Reference.Tolerance(c) * 64;
        for (int i = 0; i < want.Length; i++)
            if (!(Math.Abs(got[i] - want[i]) <= tolerance * (1 + Math.Abs(want[i])))) return $"{c.Output.Name}[{KernelCheck.Index(c.Output, i)}] = {got[i]}, want {want[i]}";
        return null;
    }

    [Theory]
    [MemberData(nameof(RandomSchedules.FiveBatches), MemberType = typeof(RandomSchedules))]
    public void Random_schedules_without_a_vectorized_sum_start_every_output_element_from_init(string kind, int batch)
    {
        int accepted = 0, refused = 0;
        var failures = new List<string>();
        for (int w = 0; w < 150; w++)
        {
            var rng = new Random(7_000 * batch + w + kind.Length);
            var c = RandomSchedules.Of(kind, rng);
            var (nest, actions) = RandomSchedules.Walk(Nest.Initial(c), rng, rng.Next(0, 20));
            if (w % 2 == 1) nest = RandomSchedules.FinishVectorized(nest, actions);
            var options = new JitOptions(MaxVectorBits: new[] { 512, 256, 128, 0 }[w % 4], MaskedTails: w % 3 != 0, PrefetchBlockBytes: w % 5 < 3 ? 1 << 20 : 0);
            if (!Kernel.CanInitialize(nest, options))
            {
                refused++;
                Assert.Throws<ArgumentException>(() => Kernel.CompileInitialized(nest, c.Output.VarStrides, options));
                continue;
            }
            accepted++;
            var kernel = Kernel.CompileInitialized(nest, c.Output.VarStrides, options);
            if (CheckAsOutput(kernel, rng) is { } p) failures.Add($"{RandomSchedules.Describe(c, actions)}: {p}");
            // and an init that ignores a random half of the output's variables
            var some = c.Output.VarStrides.Select(s => rng.Next(2) == 0 ? 0 : s).ToArray();
            if (CheckIgnoring(Kernel.CompileInitialized(nest, some, options), some, rng) is { } q)
                failures.Add($"{RandomSchedules.Describe(c, actions)}, init strides [{string.Join(",", some)}]: {q}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(5)));
        Assert.True(accepted >= 20 && refused >= 5, $"{accepted} accepted, {refused} refused: the walks should give both");
    }

    [Theory]
    [InlineData("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=7 w=7 e=32 c=24 r=3 s=3", ">g:2 c:3 h:7 c:8 r:3 s:3 w:7u e:32v", 2, 8 * 9 * 32)] // W's next 8 channels, reused by h's 7 rows
    [InlineData("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=9 w=7 e=32 c=24 r=3 s=3", ">g:2 c:3 h:9 c:8 r:3 s:3 w:7u e:32v", 0, 0)]         // 9 rows: past PrefetchReuse
    [InlineData("mm 64 64 64", ">n:2 k:4 m:16 k:16 m:4u n:32v", 0, 0)]                                                                     // B's block reused by m's 16: past it
    [InlineData("mm 64 64 64", ">n:2 k:4 m:4 k:16 m:16u n:32v", 2, 16 * 64)]                                                               // B's next 16 rows of k
    public void Prefetching_the_next_block_changes_no_result_and_applies_where_a_few_iterations_reuse_the_block(string spec, string schedule, int tensor, long ahead)
    {
        var nest = Nest.Parse(Computation.Parse(spec), schedule);
        var options = JitOptions.Default with { PrefetchBlockBytes = 32 * 1024, PrefetchSpreadBytes = 0 };
        var kernel = Kernel.Compile(nest, options);
        Assert.Null(KernelCheck.Verify(kernel, new Random(3)));
        string note = $"input {tensor} prefetched {ahead} elements ahead (its next block)";
        if (ahead > 0) Assert.Contains(note, kernel.Notes);
        Assert.Equal(ahead > 0, kernel.Prefetches);
        Assert.False(Kernel.Compile(nest, options with { PrefetchBlockBytes = 0 }).Prefetches); // off without the option
        if (ahead > 0) // and only for blocks within the bytes given
            Assert.False(Kernel.Compile(nest, options with { PrefetchBlockBytes = (int)ahead * sizeof(float) - 1 }).Prefetches);
    }

    /// <summary>A block read again by more iterations than <see cref="JitOptions.PrefetchReuse"/>: its next block is
    /// prefetched spread over them (<see cref="JitOptions.PrefetchSpreadBytes"/>), line i of each row in the reuse loop's
    /// iteration i, none in a tail or a later unrolled copy; the result is the reference's, whatever the guards.</summary>
    [Theory]
    [InlineData("mm 64 64 64", ">n:2 k:4 m:16 k:16 m:4u n:32v", 2, 16 * 64, 16 * 32, 2)]     // B's next 16 rows, reused by m's 16 tiles
    [InlineData("mm 46 64 64", ">n:2 m:5+6 k:64 m:8u n:32v", 2, 32, 64 * 32, 2)]             // m's tail prefetches nothing
    [InlineData("mm 64 48 64", ">n:3 m:2u m:4 k:64 m:8u n:16v", 2, 16, 64 * 16, 1)]          // an unrolled reuse loop outside a counted one
    [InlineData("mm 128 2304 768", ">n:36 m:21+2 k:768 m:6u n:64v", 2, 64, 768 * 64, 4)]    // a BERT product's panel of B: 4 lines a row
    public void A_block_reused_many_times_has_its_next_block_prefetched_spread_over_the_reuse(string spec, string schedule, int tensor, long ahead, long elements, int iterations)
    {
        var nest = Nest.Parse(Computation.Parse(spec), schedule);
        var options = JitOptions.Default with { PrefetchSpreadBytes = (int)elements * sizeof(float), PrefetchSpreadMinBytes = 0 };
        var kernel = Kernel.Compile(nest, options);
        Assert.Contains($"input {tensor} prefetched {ahead} elements ahead (its next block, spread over the iterations that reuse the block)", kernel.Notes);
        Assert.Null(KernelCheck.Verify(kernel, new Random(3)));
        Assert.False(Kernel.Compile(nest, options with { PrefetchSpreadBytes = (int)elements * sizeof(float) - 1 }).Prefetches); // a block past the bytes given
        Assert.False(Kernel.Compile(nest, options with { PrefetchSpreadMinBytes = (int)elements * sizeof(float) }).Prefetches); // or within the smallest
        var guards = Prefetches(Lowering.Lower(nest, options).Program, [], false);
        Assert.NotEmpty(guards);
        Assert.All(guards, g => Assert.False(g.InTail));
        // the innermost reuse loop's iterations take the lines of a step in turn: line i in iteration i
        Assert.Equal(Enumerable.Range(0, iterations), guards.Select(g => g.Guards[^1].Iteration).Distinct().Order());
    }

    /// <summary>Only the operand read in whole vectors is prefetched spread: a broadcast operand's rows would each take a
    /// guard in every step of the tile's loop.</summary>
    [Fact]
    public void A_broadcast_operands_next_block_is_not_prefetched_spread()
    {
        var nest = Nest.Parse(Computation.Parse("mm 128 64 64"), ">k:2 n:2 m:16 k:32 m:8u n:2u n:16v"); // A reused by n's 2, B by m's 16
        var kernel = Kernel.Compile(nest, JitOptions.Default with { PrefetchSpreadBytes = 1 << 20, PrefetchSpreadMinBytes = 0 });
        Assert.Contains(kernel.Notes, n => n.StartsWith("input 2 prefetched", StringComparison.Ordinal));
        Assert.DoesNotContain(kernel.Notes, n => n.StartsWith("input 1 prefetched", StringComparison.Ordinal));
        Assert.Null(KernelCheck.Verify(kernel, new Random(4)));
    }

    /// <summary>Every prefetch of a program with its guards, and whether it is in a loop's tail.</summary>
    static List<((int Depth, int Trips, int Iteration)[] Guards, bool InTail)> Prefetches(List<Op> ops, (int, int, int)[] _, bool tail)
    {
        var found = new List<((int, int, int)[], bool)>();
        foreach (var op in ops)
        {
            if (op is PrefetchOp p) found.Add((p.Guards ?? [], tail));
            if (op is PackOp pack) found.AddRange(Prefetches(pack.Body, [], tail));
            if (op is LoopOp l)
            {
                found.AddRange(Prefetches(l.Body, [], tail));
                found.AddRange(Prefetches(l.After, [], true));
            }
        }
        return found;
    }

    [Theory]
    [InlineData(">m:4 n:2 k:64 m:8u n:32v", 1)]       // a row's bias broadcast into the lanes along n (stride 0)
    [InlineData(">m:4 n:2 k:64 m:8u n:32v", 3)]
    [InlineData(">n:8 k:64 n:8u m:32v", 1)]           // lanes along m: the bias loaded as a vector (stride 1)
    [InlineData(">m:4 n:4 k:2 k:32u m:8u n:16v", 2)]  // an unrolled sum inside the tile, a loop of the sum around it
    public void A_bias_per_row_is_each_output_elements_start_as_a_bias_initialisation_then_the_product_gives(string schedule, int threads)
    {
        var c = Computation.Matmul(32, 64, 64);
        var nest = Nest.Parse(c, schedule);
        if (threads > 1) nest = Transforms.Parallelize(nest, threads);
        var kernel = Kernel.CompileInitialized(nest, [1, 0, 0]); // init[m]: C[m,n] = b[m] + sum over k
        kernel.SetThreads(threads);
        Assert.Equal(32, kernel.InitLength);
        var rng = new Random(5);
        float[] a = new float[c.Left.Length], b = new float[c.Right.Length], bias = new float[32];
        Reference.FillUniform(a, rng);
        Reference.FillUniform(b, rng);
        Reference.FillUniform(bias, rng);
        var want = new float[c.Output.Length];
        for (int m = 0; m < 32; m++) want.AsSpan(m * 64, 64).Fill(bias[m]);
        Reference.Run(c, want, a, b);
        var got = Enumerable.Repeat(float.NaN, want.Length).ToArray();
        kernel.Run(got, a, b, bias);
        for (int i = 0; i < want.Length; i++) Assert.Equal(want[i], got[i], 1e-4f);
        Assert.Throws<ArgumentException>(() => kernel.Run(got, a, b, bias.AsSpan(0, 31)));
        Assert.Throws<InvalidOperationException>(() => kernel.Run(got, a, b));
    }

    /// <summary>A sum split around the tile loads each tile more than once: the first visit (every loop of the sum around
    /// it in its first iteration: counted, unrolled, with tails) reads the init tensor, the later ones the partial sums.</summary>
    [Theory]
    [InlineData(">m:8 k:4 n:2 k:16 m:8u n:32v")]      // the sum in 4 counted parts around the tile
    [InlineData(">k:2 m:8 n:2 k:32 m:8u n:32v")]      // outermost
    [InlineData(">m:8 k:3+1 n:2 k:21 m:8u n:32v")]    // with a tail
    [InlineData(">m:8 k:2u k:2 n:2 k:16 m:8u n:32v")] // unrolled, then counted
    [InlineData(">n:2p k:4 m:8 k:16 m:8u n:32v")]     // inside a parallel loop
    public void A_sum_split_around_the_tile_starts_each_element_from_init_once(string schedule)
    {
        var nest = Nest.Parse(Computation.Matmul(64, 64, 64), schedule);
        Assert.True(Kernel.CanInitialize(nest));
        var kernel = Kernel.CompileInitialized(nest, Computation.Matmul(64, 64, 64).Output.VarStrides);
        kernel.Threads = 2;
        Assert.Null(CheckAsOutput(kernel, new Random(5)));
    }

    [Theory]
    [InlineData(">m:64 n:64 k:16 k:4v", "vectorized loop")]                          // a vectorized sum
    public void A_nest_whose_tile_is_loaded_more_than_once_is_refused_naming_the_loop(string schedule, string reason)
    {
        var nest = Nest.Parse(Computation.Matmul(64, 64, 64), schedule);
        Assert.False(Kernel.CanInitialize(nest));
        var e = Assert.Throws<ArgumentException>(() => Kernel.CompileInitialized(nest, [1, 0, 0]));
        Assert.Contains(reason, e.Message);
        Assert.Throws<ArgumentException>(() => Kernel.CompileInitialized(Nest.Initial(Computation.Matmul(8, 8, 8)), [1, 0, 1])); // k is summed
        Assert.Throws<InvalidOperationException>(() => Kernel.Compile(nest).Run(new float[4096], new float[4096], new float[4096], new float[64]));
    }
}
