using System.Diagnostics;
using System.Runtime.CompilerServices;
using LoopTune.Ir;

namespace LoopTune.Jit;

/// <summary>
/// A nest compiled to machine code: IL emitted into a DynamicMethod and compiled by RyuJIT before
/// <see cref="Compile"/> returns. The kernel computes <c>Out += Left * Right</c> over the computation's iteration
/// space (it accumulates into the output; clear it first for a plain product). It writes nothing outside the output, and
/// reads nothing outside the inputs but up to <see cref="ReadsPast"/> floats past an input's end (whole vectors whose
/// extra lanes are never stored or are blended away; <see cref="JitOptions.WideInputLoads"/>, <see cref="JitOptions.FuseLanes"/>). Dynamic methods are collected with the
/// kernel, so compiling many in a row keeps memory flat.
/// <code>
/// var kernel = Kernel.Compile(Nest.Initial(Computation.Parse("mm 64 64 64")));
/// kernel.Run(c, a, b);   // spans of 64*64 floats each
/// </code>
/// </summary>
public sealed unsafe class Kernel
{
    readonly KernelFn fn;
    readonly PackPlan[] plans; // the inputs copied whole before the loops
    readonly PackPlan[] blockPlans; // the blocks copied in the loops (Layout.BlockLevel), each thread into its own buffers
    readonly bool packOnce;
    readonly int parallelIterations;
    PackedCopies? copies;
    int threads = 1;
    int[] chunks = [0, int.MaxValue];
    int[][] packChunks = []; // per packed input, each thread's share of its copy's outermost loop (more than one thread)

    Kernel(Nest nest, KernelFn fn, int statements, int blockStart, int readsPast, IReadOnlyList<string> notes, TimeSpan compileTime, List<PackPlan> blocks,
        double fraction = 1, int[]? sizes = null, long[]? init = null, OutputStore? store = null, InputViews? inputs = null)
    {
        InitStrides = init;
        Store = store;
        Inputs = inputs;
        blockPlans = [.. blocks];
        plans = [.. Enumerable.Range(1, 2).Where(t => nest.IsPacked(t) && blocks.All(b => b.Tensor != t)).Select(t => new PackPlan(nest, t, sizes))];
        packOnce = sizes is not null;
        parallelIterations = ParallelIterations(nest, sizes ?? [.. nest.Computation.Sizes]);
        Fraction = fraction;
        Nest = nest;
        this.fn = fn;
        Statements = statements;
        BlockStart = blockStart;
        ReadsPast = readsPast;
        Notes = notes;
        CompileTime = compileTime;
    }

    public Nest Nest { get; }
    public Computation Computation => Nest.Computation;
    /// <summary>Multiply-add statements spelled out in the kernel.</summary>
    public int Statements { get; }
    /// <summary>Position of the outermost loop whose output tile is held in registers.</summary>
    public int BlockStart { get; }
    /// <summary>Floats past the end of each input the kernel may read (never more than a vector's width less one; 0 when no
    /// masked or fused vector is loaded whole). <see cref="Run(float*, float*, float*)"/> needs inputs readable that far.</summary>
    public int ReadsPast { get; }
    /// <summary>What the JIT did differently from the annotations, if anything (e.g. an unroll past the code budget, loops
    /// fused into one run of lanes).</summary>
    public IReadOnlyList<string> Notes { get; }
    /// <summary>Lowering, IL emission and RyuJIT compilation together.</summary>
    public TimeSpan CompileTime { get; }

    /// <summary>The element strides, per variable of the computation, of the tensor the output's initial values are read from
    /// (<see cref="CompileInitialized"/>); null for a kernel that accumulates onto its output as it is.</summary>
    public IReadOnlyList<long>? InitStrides { get; }

    /// <summary>Whether the kernel prefetches an input's next block (<see cref="JitOptions.PrefetchBlockBytes"/>; its notes
    /// say which input, how far ahead).</summary>
    public bool Prefetches => Notes.Any(n => n.Contains(Lowering.Prefetched, StringComparison.Ordinal));

    /// <summary>The floats the init tensor spans (0 without one).</summary>
    public long InitLength => InitStrides is { } s ? 1 + Computation.Sizes.Select((n, v) => (n - 1) * s[v]).Sum() : 0;

    /// <summary>The share of the computation's work one run does: 1, or less for a slice (<see cref="CompileSlice"/>).</summary>
    public double Fraction { get; }

    /// <summary>The floating-point operations one run does (<see cref="Computation.Flops"/> times <see cref="Fraction"/>).</summary>
    public double Flops => Computation.Flops * Fraction;

    /// <summary>
    /// The threads a run uses: 1 (the default) runs on the calling thread alone; N divides the iterations of the nest's
    /// parallel loop (<see cref="Nest.ParallelLoop"/>) into N static chunks, the first run by the caller, the others by the
    /// persistent pinned workers of a <see cref="ThreadTeam"/>. A nest without a parallel loop runs on the caller alone
    /// whatever the count. The result is the single-thread kernel's to the bit: each output element is written by one
    /// thread, which adds its terms in the same order. Chunk boundaries are whole multiples of the iterations that span a
    /// 64-byte line of the output along the loop's variable, so that, on a 64-byte aligned output whose other strides are
    /// whole lines (rows of 16 floats or more), no two threads write one cache line; otherwise (<see cref="LineGranule"/>)
    /// the chunks are as even as the iterations go and the threads may share the lines at the boundaries (slower, never
    /// wrong: the elements they write are distinct). Set it before running, not during a
    /// run; calls from several threads at once are safe (see <see cref="ThreadTeam"/>).
    /// </summary>
    /// <exception cref="ThreadCountError">Fewer than 1, or more than the cores the process may use.</exception>
    public int Threads
    {
        get => threads;
        set => SetThreads(ThreadCountError.Check(value));
    }

    /// <summary><see cref="Threads"/> without the limit of the cores (tests run 3 threads on fewer cores).</summary>
    internal void SetThreads(int value)
    {
        chunks = Chunks(parallelIterations, value, LineGranule(Nest));
        packChunks = [.. plans.Select(p => Chunks(p.OuterIterations, value, 1))];
        threads = value;
    }

    /// <summary>The first iteration of the parallel loop each thread runs, then int.MaxValue: thread t runs
    /// [ChunkStarts[t], ChunkStarts[t + 1]).</summary>
    internal IReadOnlyList<int> ChunkStarts => chunks;

    /// <summary>The first iteration of each of <paramref name="threads"/> chunks of <paramref name="iterations"/>, in whole
    /// multiples of <paramref name="granule"/> as evenly as they go (the earlier chunks larger, so the caller's is never
    /// empty), then int.MaxValue (the last chunk runs to the end).</summary>
    internal static int[] Chunks(int iterations, int threads, int granule)
    {
        int units = (iterations + granule - 1) / granule;
        var bounds = new int[threads + 1];
        for (int t = 1; t < threads; t++) bounds[t] = (int)Math.Min(iterations, ((long)units * t + threads - 1) / threads * granule);
        bounds[threads] = int.MaxValue;
        return bounds;
    }

    /// <summary>Iterations of the parallel loop that write one 64-byte line of the output along its variable (1 when its
    /// iterations are whole lines apart; 1 without a parallel loop). Also 1 when another variable of the output lies
    /// farther apart than the parallel one but not in whole lines (NCHW planes of 54 x 54 floats split by rows): a boundary
    /// then cuts a line in some of its planes whatever the granule, and the granule only unbalances the chunks (rows of
    /// 54 floats in granules of 8: 32 and 22 of 54 rows, 1.67x at two threads where 27 and 27 ran 2.1x).</summary>
    internal static int LineGranule(Nest nest)
    {
        int p = nest.ParallelLoop;
        if (p < 0) return 1;
        var (strides, sizes, var) = (nest.Computation.Output.VarStrides, nest.Computation.Sizes, nest[p].Var);
        for (int v = 0; v < strides.Length; v++)
            if (v != var && sizes[v] > 1 && strides[v] > strides[var] && strides[v] % 16 != 0) return 1;
        long floats = nest.InnerStep(p) * strides[var] % 16;
        return floats == 0 ? 1 : 16 / (int)(floats & -floats); // gcd(16, floats): its lowest set bit
    }

    /// <summary>Iterations of the parallel loop over the first <paramref name="sizes"/>[v] elements of each variable v
    /// (the outermost loop of its variable covers what the sizes leave it); 0 without one.</summary>
    static int ParallelIterations(Nest nest, int[] sizes)
    {
        int p = nest.ParallelLoop;
        if (p < 0) return 0;
        if (nest.PreviousOfVar(p) >= 0) return nest[p].Iterations;
        int step = nest.InnerStep(p);
        return (sizes[nest[p].Var] + step - 1) / step;
    }

    /// <summary>Iterations of the outermost loop: what a slice takes the first few of.</summary>
    public static int OuterIterations(Nest nest)
    {
        ArgumentNullException.ThrowIfNull(nest);
        int step = nest.InnerStep(0), size = nest.Computation.Sizes[nest[0].Var];
        return (size + step - 1) / step;
    }

    /// <summary>Compiles <paramref name="nest"/>.</summary>
    public static Kernel Compile(Nest nest, JitOptions? options = null) => Compile(nest, options, warmUp: true);

    /// <summary>Compiles <paramref name="nest"/>, after <see cref="WarmUp"/> when <paramref name="warmUp"/>; without it, the
    /// first compilation of a process also pays for .NET compiling the code generator (in <see cref="CompileTime"/> too),
    /// which costs a program that compiles one recorded kernel less than the warm-up's five (<c>Tuner</c>'s recalls).</summary>
    internal static Kernel Compile(Nest nest, JitOptions? options, bool warmUp, long[]? init = null, OutputStore? store = null, InputViews? inputs = null)
    {
        options ??= JitOptions.Default;
        if (warmUp) WarmUp();
        long start = Stopwatch.GetTimestamp();
        var (program, statements, blockStart, readsPast, notes, blocks) = Lowering.Lower(nest, options, init: init, store: store, inputs: inputs);
        var fn = Emitter.Emit(program, options.Fused, store is not null ? "looptune_kernel_stored" : init is null ? "looptune_kernel" : "looptune_kernel_initialized", store);
        fn(null, null, null, null, 0, 0, 0, null, null); // makes RyuJIT compile it now, doing no work
        return new Kernel(nest, fn, statements, blockStart, readsPast, notes, Stopwatch.GetElapsedTime(start), blocks, init: init, store: store, inputs: inputs);
    }

    /// <summary>
    /// Compiles <paramref name="nest"/> to write its output where and as <paramref name="store"/> says: into a view of a larger
    /// buffer (<see cref="OutputStore.Strides"/>: a padded copy's interior, a plane of another layout), and with an epilogue at
    /// each output element's last store (<see cref="OutputStore.Residual"/> added, then <see cref="OutputStore.Relu"/>), the
    /// passes over the output that a forward pass would otherwise run after the kernel; and with <paramref name="inputs"/>,
    /// reads its inputs through views of larger buffers (<see cref="InputViews"/>: the interior of a padded copy another
    /// kernel wrote, every second pixel of it). With
    /// <paramref name="initStrides"/>, the output's initial values are read from an init tensor as
    /// <see cref="CompileInitialized"/> reads them (the first visit of each tile); without, from
    /// the view itself. Run it with <see cref="Run(float*, float*, float*, float*, float*)"/>. A vectorized sum, whose lanes
    /// add onto the output, has no last store: an epilogue over one is an <see cref="ArgumentException"/>, as are strides
    /// that are not one per variable, negative, nonzero for a summed variable, or overlapping.
    /// <code>
    /// O[f,p] += I[c,p] * W[f,c] f=64 p=3136 c=64 into rows of a padded image, Relu:  Strides [3364, 1, 0] ... Relu = true
    /// </code>
    /// </summary>
    public static Kernel CompileStore(Nest nest, OutputStore store, IReadOnlyList<long>? initStrides = null, JitOptions? options = null, InputViews? inputs = null)
    {
        ArgumentNullException.ThrowIfNull(nest);
        ArgumentNullException.ThrowIfNull(store);
        store.StridesFor(nest.Computation); // checked here: a clear error before any lowering
        return Compile(nest, options, warmUp: true, initStrides is null ? null : CheckedInit(nest, initStrides), store, inputs);
    }

    /// <summary>Where the kernel reads its inputs (<see cref="CompileStore"/>'s <see cref="InputViews"/>); null: the input
    /// tensors themselves.</summary>
    public InputViews? Inputs { get; }

    /// <summary>Where and how the kernel writes its output (<see cref="CompileStore"/>); null: into the output tensor itself,
    /// plain stores.</summary>
    public OutputStore? Store { get; }

    /// <summary>The floats the output buffer given to a run must hold: the output tensor's, or the view's
    /// (<see cref="OutputStore.Length"/>).</summary>
    public long OutputLength => Store is { } s ? s.Length(Computation) : Computation.Output.Length;

    /// <summary>
    /// Compiles <paramref name="nest"/> so that each output element starts from an initial value read from a fourth buffer,
    /// <c>init</c>, rather than from the output: <c>Out = Init + Left * Right</c>, where <c>Init</c>'s element for an output
    /// element is at <c>sum over v of init[v] * v</c> (a stride of 0 for a variable the initial value does not depend on: a
    /// convolution's bias is <c>O[f,h,w]</c>'s <c>[f: 1, h: 0, w: 0, ...]</c>). The kernel is the same code as
    /// <see cref="Compile(Nest, JitOptions?)"/>'s but for the output tile's loads (what the bias initialisation of the
    /// output otherwise writes, and the kernel reads back, is never written). Where the sum runs around the tile (split in
    /// parts, each part's tile loaded and stored), only its first visit reads the init tensor, told apart by the loop
    /// counters as the epilogue's last store is (<see cref="OutputStore"/>); the later visits load the partial sums:
    /// <code>
    /// m:16 n:2 k:64 m:8u n:32v     k inside the tile's loops: loaded once, from init                accepted
    /// m:16 k:4 n:2 k:16 m:8u n:32v the sum in 4 parts: k's first part loads init, the others the output  accepted
    /// m:64 n:32 k:16 k:4v          a vectorized sum: its lanes add onto the output                   ArgumentException
    /// </code>
    /// No unrolled loop may fuse with the vectorized one (<see cref="JitOptions.FuseLanes"/>); <see cref="CanInitialize"/>
    /// says whether a nest qualifies.
    /// </summary>
    public static Kernel CompileInitialized(Nest nest, IReadOnlyList<long> initStrides, JitOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(nest);
        ArgumentNullException.ThrowIfNull(initStrides);
        return Compile(nest, options, warmUp: true, CheckedInit(nest, initStrides));
    }

    /// <summary>The init tensor's strides, checked: none negative, 0 for a summed variable (an <see cref="ArgumentException"/>
    /// naming it).</summary>
    static long[] CheckedInit(Nest nest, IReadOnlyList<long> initStrides)
    {
        var init = initStrides.ToArray();
        for (int v = 0; v < init.Length && v < nest.Computation.Vars.Length; v++)
            if (init[v] < 0 || init[v] != 0 && nest.Computation.IsReduction[v])
                throw new ArgumentException($"the init tensor's stride for {nest.Computation.Vars[v]} is {init[v]}: strides are >= 0, and 0 for a summed variable", nameof(initStrides));
        return init;
    }

    /// <summary>Whether <see cref="CompileInitialized"/> takes <paramref name="nest"/> (a lowering, no compilation).</summary>
    public static bool CanInitialize(Nest nest, JitOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(nest);
        try
        {
            Lowering.Lower(nest, options ?? JitOptions.Default, init: new long[nest.Computation.Vars.Length]);
            return true;
        }
        catch (ArgumentException) { return false; }
    }

    /// <summary>
    /// Compiles a slice of <paramref name="nest"/>: the same code for its first <paramref name="outerIterations"/> iterations
    /// of the outermost loop only (its tail left out), on the same buffers, so that timing it tells the speed of a kernel too
    /// long to run whole (GFLOPS over <see cref="Flops"/>, the slice's work). It writes the output elements those iterations
    /// reach (all of them, partially summed, when the outermost loop is a reduction).
    /// <code>
    /// m:128 n:8 k:256 m:8u n:32v   sliced to 2:   m:2 n:8 k:256 m:8u n:32v over rows 0..15 of 1024
    /// </code>
    /// </summary>
    public static Kernel CompileSlice(Nest nest, int outerIterations, JitOptions? options = null) =>
        CompileSlice(nest, SliceSizes(nest, outerIterations), options);

    /// <summary>The sizes of the slice of <paramref name="nest"/> that runs the first <paramref name="outerIterations"/>
    /// iterations of its outermost loop (for <see cref="CompileSlice(Nest, int[], JitOptions?)"/>).</summary>
    public static int[] SliceSizes(Nest nest, int outerIterations)
    {
        ArgumentNullException.ThrowIfNull(nest);
        int total = OuterIterations(nest);
        if (outerIterations < 1 || outerIterations > total)
            throw new ArgumentOutOfRangeException(nameof(outerIterations), outerIterations, $"the outermost loop of {nest.Serialize()} has {total} iterations");
        var sizes = nest.Computation.Sizes.ToArray();
        sizes[nest[0].Var] = Math.Min(sizes[nest[0].Var], outerIterations * nest.InnerStep(0));
        return sizes;
    }

    /// <summary>Compiles <paramref name="nest"/> over the first <paramref name="sizes"/>[v] elements of each variable v (each
    /// at most the computation's size, and a whole number of iterations of the outermost loop over v, or all of it): a
    /// slice whose <see cref="Fraction"/> is the product of the shares.</summary>
    public static Kernel CompileSlice(Nest nest, int[] sizes, JitOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(nest);
        ArgumentNullException.ThrowIfNull(sizes);
        var c = nest.Computation;
        if (sizes.Length != c.Sizes.Length || sizes.Where((s, v) => s < 1 || s > c.Sizes[v]).Any())
            throw new ArgumentOutOfRangeException(nameof(sizes), $"a slice of {c} covers 1 to {string.Join(",", c.Sizes)} elements of its variables");
        options ??= JitOptions.Default;
        WarmUp();
        long start = Stopwatch.GetTimestamp();
        double fraction = Share(c, sizes);
        var (program, statements, blockStart, readsPast, notes, blocks) = Lowering.Lower(nest, options, sizes);
        var fn = Emitter.Emit(program, options.Fused, "looptune_slice");
        fn(null, null, null, null, 0, 0, 0, null, null);
        return new Kernel(nest, fn, statements, blockStart, readsPast, notes, Stopwatch.GetElapsedTime(start), blocks, fraction, sizes);
    }

    /// <summary>The share of <paramref name="c"/>'s work a slice over the first <paramref name="sizes"/>[v] elements of each
    /// variable does: the product of the shares.</summary>
    public static double Share(Computation c, int[] sizes)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(sizes);
        return sizes.Select((s, v) => s / (double)c.Sizes[v]).Aggregate(1.0, (a, b) => a * b);
    }

    /// <summary>The sizes of the slice of <paramref name="nest"/> that runs a prefix of its outer loops' iterations doing at
    /// most about <paramref name="flops"/> floating-point operations: from the outside in, each loop cut to as many of its
    /// first iterations as fit (at least one), the loops inside the last cut whole, so that what the slice keeps in cache
    /// is what the whole kernel keeps. A loop of a variable cut further out is cut within that cut's first iteration (a
    /// shorter prefix of the same variable). An unrolled loop outside the register tile (a counted loop further in) is cut
    /// like a counted one, to its first copies: the slice runs what the whole runs first. The register tile's loops (the
    /// spelled-out loops innermost) and a sum's innermost loop outside them (see <see cref="ProbeSizes"/>) are never cut,
    /// nor is any loop of their variable further in; the loops inside them over other variables still are.
    /// <code>
    /// mm 3072 1024 1536, m:1+1024u n:4u n:4 m:8 m:32 k:96 k:16 m:8u n:2u n:32v pack=A
    ///   before: m and n kept whole for their unrolls, the sum k cut at k:96   179 GFLOPS estimated, 133 whole
    ///   now:    m:1+1024u to its first copy, n:4u to one, then n:4 and m:8    the whole's working set
    /// </code>
    /// On mm 3072 1536 2048, <c>k:8 n:48 m:384 k:256 m:8u n:32v pack=B</c> ran whole at 208-212 GFLOPS; the probe of
    /// <see cref="ProbeSizes"/> widened said 223, this prefix (k cut inside its first eighth) what the whole said.</summary>
    public static int[] PrefixSizes(Nest nest, double flops)
    {
        ArgumentNullException.ThrowIfNull(nest);
        var c = nest.Computation;
        var sizes = c.Sizes.ToArray();
        var kept = new bool[sizes.Length]; // variables whose loops from here in must run their whole range
        double work = c.Flops;
        int tile = nest.SpelledOutFrom; // the register tile's loops
        for (int level = 0; level < nest.Count && work > flops; level++)
        {
            int v = nest[level].Var, step = nest.InnerStep(level);
            if (kept[v] || level >= tile || InnermostOfSum(nest, level))
            {
                kept[v] = true;
                continue;
            }
            if (sizes[v] <= step) continue; // one iteration in the slice already
            double perIteration = work * step / sizes[v];
            int cut = Math.Min(sizes[v], Math.Max(1, (int)(flops / perIteration)) * step);
            work *= cut / (double)sizes[v];
            sizes[v] = cut;
        }
        return sizes;
    }

    /// <summary>The sizes of the smallest slice worth timing of <paramref name="nest"/>: from the outside in, the outermost
    /// loop of each variable cut to one iteration, until the slice does at most <paramref name="flops"/> floating-point
    /// operations (or no loop is left to cut). Loops over a variable cut further out are left whole. A reduction is never
    /// cut at its innermost loop outside the register tile (<see cref="InnermostOfSum"/>): a sum cut to a few terms loads and stores its outputs for every few multiply-adds, so its
    /// speed says nothing of the kernel's (<c>n:4 m:16 n:8 m:16 k:384 m:8u n:32v</c> on mm 2048 1024 384 ran its slice with
    /// k cut to 1 at 4.6 GFLOPS, the kernel at 190).</summary>
    public static int[] ProbeSizes(Nest nest, double flops)
    {
        ArgumentNullException.ThrowIfNull(nest);
        var c = nest.Computation;
        var sizes = c.Sizes.ToArray();
        var cut = new bool[sizes.Length];
        double work = c.Flops;
        for (int level = 0; level < nest.Count && work > flops; level++)
        {
            int v = nest[level].Var;
            if (cut[v] || nest[level].IsSpelledOut || InnermostOfSum(nest, level)) continue;
            cut[v] = true;
            int covered = Math.Min(sizes[v], nest.InnerStep(level));
            work *= covered / (double)sizes[v];
            sizes[v] = covered;
        }
        return sizes;
    }

    /// <summary>True when loop <paramref name="level"/> runs a reduction and every loop of its variable further in is unrolled
    /// or vectorized (or there is none): cut there, a sum keeps only a register tile's few terms, and the slice loads and
    /// stores its outputs for every few multiply-adds. <c>k:1024 m:8u k:2u n:32v</c> on mm 3072 1536 2048 ran at 186
    /// GFLOPS whole; the probe with k cut to 2 predicted 18-33.</summary>
    static bool InnermostOfSum(Nest nest, int level)
    {
        int v = nest[level].Var;
        if (!nest.Computation.IsReduction[v]) return false;
        for (int i = level + 1; i < nest.Count; i++)
            if (nest[i].Var == v && !nest[i].IsSpelledOut) return false;
        return true;
    }

    /// <summary>Compiles one small kernel of every code path, so that later <see cref="CompileTime"/>s measure compiling the
    /// kernel, not the .NET JIT compiling LoopTune's own code generator on first use (about 50 ms, once per process).
    /// <see cref="Compile"/> and <see cref="CompileSlice(Nest, int[], JitOptions?)"/> do it first, once per process, before
    /// their clock starts; callers need not.</summary>
    public static void WarmUp()
    {
        if (warm) return;
        warm = true;
        var nest = Transforms.ApplyAll(Nest.Initial(Computation.Matmul(9, 37, 7)), Actions.ParseList("split_4,down,swap_down,swap_down,unroll,up,up,split_16,down,swap_down,swap_down,vectorize"));
        Compile(nest);
        Compile(nest, JitOptions.Default with { MaxVectorBits = 0 });
        Compile(Transforms.Apply(nest.With(nest.Loops, 0), Actions.Get("parallel"))); // and the parallel loop's code
        // and a run with both inputs packed: a search's first packed schedule of a large problem spent some 150 ms more
        // than the later ones compiling the copying code
        var packed = Nest.Parse(nest.Computation, nest.Serialize() + " pack=A,B");
        var c = packed.Computation;
        var kernel = Compile(packed);
        kernel.Run(new float[c.Output.Length], new float[c.Left.Length + 16], new float[c.Right.Length + 16]);
        fixed (float* l = new float[c.Left.Length + 16], r = new float[c.Right.Length + 16]) kernel.Pack(l, r); // and the copy alone, as a slice's is timed
    }

    static bool warm;

    /// <summary>Runs the kernel on raw buffers; each must hold its tensor's <see cref="Tensor.Length"/> floats, and the
    /// inputs must be readable <see cref="ReadsPast"/> floats further (<c>AlignedBuffer</c>s are).</summary>
    /// <para>A kernel with packed inputs (<see cref="Nest.Packed"/>) first copies them into their layout: in every run, and
    /// so in its time, for a whole kernel; once per input buffer for a slice (<see cref="CompileSlice(Nest, int[], JitOptions?)"/>),
    /// whose runs then time the loops alone (the copy is timed apart, <see cref="Pack"/>, and added to the estimate scaled to
    /// the whole's copy, <see cref="KernelTiming.MeasureSlice"/>). A whole kernel on several threads (<see cref="Threads"/>,
    /// a parallel loop) makes each copy on them, each thread a share of the copy's outermost loop, before its loops start
    /// (on the Zen 3, mm 512 512 512 blocked with both operands packed ran 99 GFLOPS at two threads with the copies on the
    /// caller alone); otherwise on the calling thread. An input copied a block at a time (<see cref="Layout.BlockLevel"/>) is
    /// copied in the loops instead, every run, a slice's too, each thread into buffers of its own. Runs from several threads
    /// at once are safe: each takes its own copies.</para>
    public void Run(float* output, float* left, float* right) => Run(output, left, right, (Operand?)null);

    /// <summary><see cref="Run(float*, float*, float*)"/> of a kernel compiled with <see cref="CompileInitialized"/>:
    /// <paramref name="init"/> holds <see cref="InitLength"/> floats, the output's initial values (whatever the output
    /// holds before is overwritten).</summary>
    public void Run(float* output, float* left, float* right, float* init)
    {
        NeedsInit(init);
        NoResidual();
        Go(output, left, right, init, 0);
    }

    /// <summary>Runs a kernel compiled with <see cref="CompileStore"/>: <paramref name="output"/> is the view's first element
    /// (<see cref="OutputLength"/> floats from there), <paramref name="init"/> the init tensor (when compiled with one, else
    /// unused), <paramref name="residual"/> the residual laid out as the view (when <see cref="OutputStore.Residual"/>, else
    /// unused). A constant filter input (<see cref="Computation.Filters"/>) is copied once per buffer, as with
    /// <see cref="Run(float*, float*, float*, Operand?)"/>'s kept operand.</summary>
    public void Run(float* output, float* left, float* right, float* init, float* residual)
    {
        NeedsInit(init);
        if (Store?.Residual == true && residual is null) throw new ArgumentNullException(nameof(residual), $"the kernel of {Nest.Serialize()} adds a residual at its last stores");
        Go(output, left, right, init, Computation.Filters is { } f ? TensorOf(f) : 0, residual);
    }

    /// <summary><see cref="Run(float*, float*, float*, float*)"/> (<paramref name="init"/> null for a kernel without an
    /// init tensor) with input <paramref name="kept"/> constant, as <see cref="Run(float*, float*, float*, Operand?)"/>
    /// keeps it: packed only when its buffer is not the one packed last (a fixed address: native memory or a pinned array).</summary>
    public void Run(float* output, float* left, float* right, float* init, Operand kept)
    {
        NeedsInit(init);
        NoResidual();
        Go(output, left, right, InitStrides is null ? null : init, TensorOf(kept));
    }

    /// <summary>A kernel compiled with an init tensor is run with one (an <see cref="ArgumentNullException"/>).</summary>
    void NeedsInit(float* init)
    {
        if (InitStrides is not null && init is null) throw new ArgumentNullException(nameof(init), $"the kernel of {Nest.Serialize()} starts its output from an init tensor");
    }

    void NoResidual()
    {
        if (Store?.Residual == true) throw new InvalidOperationException($"the kernel of {Nest.Serialize()} adds a residual at its last stores: run it with one");
    }

    /// <summary><see cref="Run(float*, float*, float*)"/> with input <paramref name="kept"/> constant: its packed copy is
    /// made only when the run's buffer for it is not the one the kept copy was made from (the other packed inputs are
    /// copied as in every run). What a model does with a convolution's filters (<see cref="Computation.Filters"/>), and
    /// what the libraries it is timed against do with theirs: oneDNN reorders them once, ONNX Runtime prepacks them. The
    /// caller must not change that buffer's contents between runs, and must pass it at a fixed address (native memory or a
    /// pinned array: an array the collector moves can leave another one where it was). On the Zen 5, <c>h:54p w:9 c:64 r:3 s:3u w:6u f:64v
    /// pack=W</c> (conv 64 56 56 64 3 3) ran 3 % faster so at one thread and 7 % at two, whose copy waits on both. With
    /// <paramref name="kept"/> null, every packed input is copied, as <see cref="Run(float*, float*, float*)"/> does.</summary>
    public void Run(float* output, float* left, float* right, Operand? kept)
    {
        if (InitStrides is not null) throw new InvalidOperationException($"the kernel of {Nest.Serialize()} starts its output from an init tensor: run it with one");
        NoResidual();
        Go(output, left, right, null, kept is { } k ? TensorOf(k) : 0);
    }

    /// <summary>A run: the packed inputs copied (input <paramref name="kept"/>, a tensor index, only from a new buffer; 0
    /// for none), then the loops.</summary>
    void Go(float* output, float* left, float* right, float* init, int kept, float* residual = null)
    {
        if (plans.Length == 0 && blockPlans.Length == 0)
        {
            Call(output, left, right, init, null, residual);
            return;
        }
        var mine = Interlocked.Exchange(ref copies, null) ?? NewCopies();
        var inputs = stackalloc float*[] { null, left, right };
        PackInto(mine, inputs, always: false, kept);
        Call(output, inputs[1], inputs[2], init, mine, residual);
        copies = mine;
    }

    /// <summary>The tensor index (1 or 2) of input <paramref name="input"/>.</summary>
    static int TensorOf(Operand input) => input == Operand.Left ? 1 : 2;

    /// <summary>Copies each packed input of <paramref name="inputs"/> (indexed by tensor) into <paramref name="mine"/> and
    /// points <paramref name="inputs"/> at the copies: every time when <paramref name="always"/> or for a whole kernel, else
    /// (a slice) only when the input is not the one copied last.</summary>
    void PackInto(PackedCopies mine, float** inputs, bool always, int kept = 0, int skipped = 0)
    {
        for (int i = 0; i < plans.Length; i++)
        {
            float* from = inputs[plans[i].Tensor];
            bool once = packOnce || plans[i].Tensor == kept;
            if (plans[i].Tensor != skipped && (always || !once || mine.Sources[i] != (nint)from))
            {
                if (!packOnce && threads > 1 && Nest.ParallelLoop >= 0) mine.PackOn(ThreadTeam.For(threads), plans[i], i, from, packChunks[i]);
                else plans[i].Pack(from, mine[i]);
                mine.Sources[i] = (nint)from;
            }
            inputs[plans[i].Tensor] = mine[i];
        }
    }

    /// <summary>Copies the packed inputs into their layout, as a run does first, and runs nothing else (a slice copies its
    /// share of them); nothing for a kernel without packed inputs.</summary>
    public void Pack(float* left, float* right) => Pack(left, right, null);

    /// <summary><see cref="Pack(float*, float*)"/> of every packed input but <paramref name="skipped"/> (none when null):
    /// the copies a run keeping that input constant makes (<see cref="Run(float*, float*, float*, Operand?)"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Pack(float* left, float* right, Operand? skipped)
    {
        if (plans.Length == 0) return;
        var mine = Interlocked.Exchange(ref copies, null) ?? NewCopies();
        var inputs = stackalloc float*[] { null, left, right };
        PackInto(mine, inputs, always: true, skipped: skipped is { } k ? TensorOf(k) : 0);
        copies = mine;
    }

    /// <summary>About how many elements one run's copies move (<see cref="PackPlan.Elements"/> summed): 0 without packed inputs.</summary>
    public double PackedElements => PackedElementsBut(null);

    /// <summary><see cref="PackedElements"/> of every packed input but <paramref name="kept"/> (none when null): what one run
    /// keeping that input constant copies.</summary>
    public double PackedElementsBut(Operand? kept) => plans.Where(p => kept is not { } k || p.Tensor != TensorOf(k)).Sum(p => p.Elements);

    /// <summary>Whether the kernel copies input <paramref name="input"/> whole before its loops (a packed input not copied a
    /// block at a time in them).</summary>
    public bool CopiesWhole(Operand input) => plans.Any(p => p.Tensor == TensorOf(input));

    /// <summary>The buffers of this kernel's packed copies: a whole kernel's pages mapped now, a slice's left to its first
    /// run (which is never timed, <c>KernelTiming.MeasureSlice</c>) as it writes only its share of a copy laid out for the
    /// whole (mapping all 48 MB of <c>pack=A</c>'s copy on mm 4096 256 3072 in ordinary pages took 0.2 s here, for a
    /// slice that writes a ninth of it, twice per estimate: the probe's and the slice's).</summary>
    PackedCopies NewCopies() => new(plans, blockPlans, mapPages: !packOnce);

    /// <summary>Makes the buffers of the packed copies (<see cref="Nest.Packed"/>), their pages mapped, if the kernel has none
    /// kept yet, so that a timed first run does not pay for them: a search times a large kernel by its first run, and a
    /// large input's copy is megabytes of fresh pages. Nothing for a kernel without packed inputs.</summary>
    public void Prepare()
    {
        if (plans.Length + blockPlans.Length > 0 && Volatile.Read(ref copies) is null) Interlocked.CompareExchange(ref copies, NewCopies(), null);
    }

    /// <summary>Frees the buffers of the packed copies now (large ones go back to the process's kept blocks for the next
    /// kernel, <see cref="AlignedBuffer"/>) rather than with the kernel; a later run makes (and copies) them again. Not
    /// while a run is under way. Nothing for a kernel without packed inputs.</summary>
    public void Release() => Interlocked.Exchange(ref copies, null)?.Dispose();

    /// <summary>Runs the compiled code on the caller alone, or on <see cref="Threads"/> threads when the nest has a
    /// parallel loop.</summary>
    void Call(float* output, float* left, float* right, float* init, PackedCopies? mine, float* residual)
    {
        if (threads == 1 || Nest.ParallelLoop < 0) fn(output, left, right, init, 1, 0, int.MaxValue, mine?.Blocks(1)[0], residual);
        else ThreadTeam.For(threads).Run(fn, output, left, right, init, residual, chunks, mine?.Blocks(threads));
    }

    /// <summary>Runs the kernel on spans, after checking their lengths. An input span too short for
    /// <see cref="ReadsPast"/> is copied into one that is long enough first.</summary>
    public void Run(Span<float> output, ReadOnlySpan<float> left, ReadOnlySpan<float> right)
    {
        var c = Computation;
        CheckLengths(c, output.Length, left.Length, right.Length);
        CheckView(output.Length);
        left = Readable(left, c.Left.Length);
        right = Readable(right, c.Right.Length);
        fixed (float* o = output, l = left, r = right) Run(o, l, r); // with the packed copies, as on raw buffers
    }

    /// <summary><see cref="Run(Span{float}, ReadOnlySpan{float}, ReadOnlySpan{float})"/> of a kernel compiled with
    /// <see cref="CompileInitialized"/>, its output's initial values read from <paramref name="init"/> (at least
    /// <see cref="InitLength"/> floats).</summary>
    public void Run(Span<float> output, ReadOnlySpan<float> left, ReadOnlySpan<float> right, ReadOnlySpan<float> init)
    {
        if (InitStrides is null) throw new InvalidOperationException($"the kernel of {Nest.Serialize()} accumulates onto its output: it reads no init tensor");
        var c = Computation;
        CheckLengths(c, output.Length, left.Length, right.Length);
        CheckView(output.Length);
        if (init.Length < InitLength) throw new ArgumentException($"init needs {InitLength} floats, got {init.Length}", nameof(init));
        left = Readable(left, c.Left.Length);
        right = Readable(right, c.Right.Length);
        fixed (float* o = output, l = left, r = right, i = init) Run(o, l, r, i);
    }

    /// <summary>A view (<see cref="OutputStore.Strides"/>) may reach past the output tensor's length.</summary>
    void CheckView(int output)
    {
        if (output < OutputLength) throw new ArgumentException($"output needs {OutputLength} floats for the kernel's view, got {output}", nameof(output));
    }

    ReadOnlySpan<float> Readable(ReadOnlySpan<float> input, long length)
    {
        if (input.Length >= length + ReadsPast) return input;
        var copy = new float[length + ReadsPast];
        input[..(int)length].CopyTo(copy);
        return copy;
    }

    /// <summary>An <see cref="ArgumentException"/> naming the first of <paramref name="c"/>'s output, left and right buffers
    /// shorter than its tensor.</summary>
    internal static void CheckLengths(Computation c, int output, int left, int right)
    {
        Check(output, c.Output, nameof(output));
        Check(left, c.Left, nameof(left));
        Check(right, c.Right, nameof(right));
    }

    static void Check(int length, Tensor t, string name)
    {
        if (length < t.Length)
            throw new ArgumentException($"{name} ({t.Name}) needs {t.Length} floats, got {length}", name);
    }
}

/// <summary>A thread count outside 1 to the cores the process may use (<see cref="Affinity.ProcessCores"/>).</summary>
public sealed class ThreadCountError(int threads, int max)
    : LoopTuneException($"threads must be from 1 to {max}, the cores this process may use; got {threads}")
{
    /// <summary>The most threads a kernel may run on: the cores the process may use.</summary>
    public static int Max => Affinity.ProcessCores().Count;

    /// <summary><paramref name="threads"/> when it is from 1 to <see cref="Max"/>; this error otherwise.</summary>
    public static int Check(int threads) => threads >= 1 && threads <= Max ? threads : throw new ThreadCountError(threads, Max);

    public int Threads { get; } = threads;
}
