using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Measure;

/// <summary>Times compiled kernels honestly: 64-byte aligned buffers of random data, the measuring thread pinned to one
/// core where the OS allows, warm-up, repeated samples, median and min.</summary>
public static class KernelTiming
{
    /// <summary>Measures <paramref name="kernel"/> on fresh aligned buffers.</summary>
    public static Measurement Measure(Kernel kernel, MeasureOptions options, int seed = 1)
    {
        using var buffers = new Workspace(kernel.Computation, seed);
        return Measure(kernel, options, buffers);
    }

    /// <summary>Measures <paramref name="kernel"/> on buffers made earlier for its computation (so that many schedules of
    /// one computation are timed without allocating and filling again).</summary>
    public static unsafe Measurement Measure(Kernel kernel, MeasureOptions options, Workspace buffers)
    {
        var run = Runner(kernel, buffers);
        using var pin = ThreadPinning.Pin();
        return Timing.Measure(run, kernel.Flops, options);
    }

    /// <summary>Work below which a kernel is timed whole without a look first: 10^8 floating-point operations, a few
    /// milliseconds even unscheduled.</summary>
    public const double ProbeFlops = 1e8;

    /// <summary>
    /// Measures <paramref name="nest"/> (compiled as <paramref name="kernel"/>) so that no run lasts much longer than
    /// <paramref name="maxRunSeconds"/>: a kernel of more than <see cref="ProbeFlops"/> is first timed on a small slice
    /// (<see cref="Kernel.ProbeSizes"/>: outer loops cut to one iteration until a few million operations are left); when the
    /// whole run would pass the limit, a slice of about a quarter of it (a prefix of the outer loops' iterations,
    /// <see cref="Kernel.PrefixSizes"/>, or, when that cannot be cut small enough, the probe widened) is timed instead and the result scaled to the whole (same
    /// GFLOPS, seconds divided by the slice's share of the work), marked as an estimate. Otherwise the whole kernel is timed as <see cref="Measure(Kernel, MeasureOptions, Workspace)"/> does.
    /// </summary>
    public static (Measurement Measurement, bool Estimated) MeasureBounded(Nest nest, Kernel kernel, MeasureOptions options, Workspace buffers,
        double maxRunSeconds, JitOptions? jit = null)
    {
        var (m, slice) = Bounded(nest, kernel, options, buffers, maxRunSeconds, jit);
        return (m, slice is not null);
    }

    /// <summary><see cref="MeasureBounded"/> with the slice timed in the kernel's place, or null when it was timed whole:
    /// a caller that keeps it can time it again (<see cref="MeasureBoundedTogether"/>) without planning it anew.</summary>
    public static (Measurement Measurement, Kernel? Slice) Bounded(Nest nest, Kernel kernel, MeasureOptions options, Workspace buffers,
        double maxRunSeconds, JitOptions? jit = null)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        return Plan(nest, buffers, maxRunSeconds, jit).Slice is { } slice ? (MeasureSlice(slice, kernel, options, buffers), slice) : (Measure(kernel, options, buffers), null);
    }

    /// <summary>Times <paramref name="kernels"/> (compiled from <paramref name="nests"/>, schedules of one computation) side by
    /// side (<see cref="Timing.MeasureTogether(IReadOnlyList{Action}, IReadOnlyList{double}, MeasureOptions)"/>), each whole
    /// when its run stays within <paramref name="maxRunSeconds"/>, else its slice (<see cref="Plan"/>'s), scaled to the whole
    /// with its copies as <see cref="MeasureSlice"/> scales it and marked estimated. What a choice among large kernels rests
    /// on: their estimates, one sample each taken at different moments, swung by a third and more on a shared machine (one
    /// schedule of mm 3072 1536 2048 measured 77 and 170 GFLOPS in two runs of the same comparison), where slices timed in
    /// rounds see the same stretches of a neighbour.</summary>
    /// <param name="slices">The slices that stood in for some of the kernels before (<see cref="Bounded"/>'s), timed again
    /// in their place without a new plan (a plan compiles a probe and runs it: on a 4096^3 matmul, five finalists' plans
    /// took a tenth of a second); null entries, or none, are planned.</param>
    public static IReadOnlyList<(Measurement Measurement, bool Estimated)> MeasureBoundedTogether(IReadOnlyList<Nest> nests, IReadOnlyList<Kernel> kernels,
        MeasureOptions options, Workspace buffers, double maxRunSeconds, JitOptions? jit = null, IReadOnlyList<Kernel?>? slices = null)
    {
        ArgumentNullException.ThrowIfNull(nests);
        ArgumentNullException.ThrowIfNull(kernels);
        if (nests.Count != kernels.Count) throw new ArgumentException($"{nests.Count} schedules for {kernels.Count} kernels", nameof(kernels));
        if (slices is not null && slices.Count != kernels.Count) throw new ArgumentException($"{slices.Count} slices for {kernels.Count} kernels", nameof(slices));
        var standIns = new Kernel[kernels.Count];
        for (int i = 0; i < standIns.Length; i++)
        {
            standIns[i] = slices?[i] ?? Plan(nests[i], buffers, maxRunSeconds, jit).Slice ?? kernels[i];
            if (standIns[i].Threads != kernels[i].Threads) standIns[i].Threads = kernels[i].Threads;
        }
        try
        {
            var runs = standIns.Select(k => Runner(k, buffers)).ToList();
            Together t;
            using (ThreadPinning.Pin())
                t = Timing.MeasureTogether(runs, [.. standIns.Select(k => k.Flops)], options);
            return [.. standIns.Select((k, i) => ReferenceEquals(k, kernels[i]) ? (t.Measurements[i], false)
                : (WithCopies(Scaled(t.Measurements[i], k, kernels[i]), k, kernels[i], options, buffers), true))];
        }
        finally
        {
            for (int i = 0; i < standIns.Length; i++)
                if (!ReferenceEquals(standIns[i], kernels[i])) standIns[i].Release();
        }
    }

    /// <summary>Times <paramref name="slice"/> of <paramref name="kernel"/> (<see cref="Plan"/>'s), on the kernel's threads, and scales the result to the
    /// whole (<see cref="Scaled"/>). A slice copies its packed inputs once, not in each run as the whole does, so their copy
    /// is timed apart and added, scaled to the whole's copy (<see cref="Kernel.PackedElements"/>): a copy can cost more than
    /// the loops (<c>k:1+1024 k:4u m:512 k:8 n:8 k:64 m:8u n:32v pack=A</c> on mm 4096 256 3072 ran whole at 68-72 GFLOPS,
    /// its slice without the copy said 166-214).</summary>
    public static Measurement MeasureSlice(Kernel slice, Kernel kernel, MeasureOptions options, Workspace buffers)
    {
        // one run first, untimed: a slice's data is a fraction of the whole's, and a cold first run of it (as the
        // environment's one-run timing would take) reads it from memory where the whole kernel's repeated runs find it
        // cached; estimates came out half the whole's speed
        if (slice.Threads != kernel.Threads) slice.Threads = kernel.Threads;
        try
        {
            Runner(slice, buffers)();
            return WithCopies(Scaled(Measure(slice, options, buffers), slice, kernel), slice, kernel, options, buffers);
        }
        finally { slice.Release(); }
    }

    /// <summary><paramref name="scaled"/> (a slice's time scaled to the whole, <see cref="Scaled"/>) with the copies of the whole's
    /// packed inputs added: the slice's copies timed alone and scaled to the whole's (<see cref="Kernel.PackedElementsBut"/>; a
    /// convolution's filters, which the whole's runs keep, <see cref="Kept"/>, left out);
    /// as it was for a kernel without packed inputs.</summary>
    public static Measurement WithCopies(Measurement scaled, Kernel slice, Kernel kernel, MeasureOptions options, Workspace buffers)
    {
        ArgumentNullException.ThrowIfNull(slice);
        ArgumentNullException.ThrowIfNull(kernel);
        var kept = Kept(kernel);
        if (slice.PackedElementsBut(kept) == 0) return scaled;
        double copy = MeasurePack(slice, options, buffers, kept).MedianSeconds * kernel.PackedElementsBut(kept) / slice.PackedElementsBut(kept);
        return scaled with { MedianSeconds = scaled.MedianSeconds + copy, MinSeconds = scaled.MinSeconds + copy };
    }

    /// <summary>Times <paramref name="kernel"/>'s copies of its packed inputs alone (<see cref="Kernel.Pack"/>), pinned, the
    /// median of three samples at least: a slice's copy can be a hundredth of a millisecond, scaled hundreds of times.</summary>
    static unsafe Measurement MeasurePack(Kernel kernel, MeasureOptions options, Workspace buffers, Operand? kept)
    {
        nint pl = (nint)buffers.Left.Pointer, pr = (nint)buffers.Right.Pointer;
        using var pin = ThreadPinning.Pin();
        return Timing.Measure(() => kernel.Pack((float*)pl, (float*)pr, kept), 0, options with { MinSamples = Math.Max(3, options.MinSamples), MaxSamples = Math.Max(3, options.MaxSamples) });
    }

    /// <summary>A slice's measurement scaled to the whole of <paramref name="kernel"/>: seconds over the slice's share, the
    /// whole's flops (the GFLOPS are the slice's).</summary>
    public static Measurement Scaled(Measurement m, Kernel slice, Kernel kernel)
    {
        ArgumentNullException.ThrowIfNull(slice);
        ArgumentNullException.ThrowIfNull(kernel);
        return m with { MedianSeconds = m.MedianSeconds / slice.Fraction, MinSeconds = m.MinSeconds / slice.Fraction, Flops = kernel.Flops };
    }

    /// <summary>How to time <paramref name="nest"/> so that no run passes <paramref name="maxRunSeconds"/>, from one look at
    /// a small slice (<see cref="Kernel.ProbeSizes"/>): <c>Predicted</c>, the seconds a whole run would take (the probe's
    /// time scaled by its share of the work; 0 for a kernel of at most <see cref="ProbeFlops"/>, cheap to run whole
    /// anyway; an estimate for deciding, not a measurement), and <c>Slice</c>, what <see cref="MeasureBounded"/> times in
    /// place of the whole, or null when a whole run stays within the limit (then the kernel is timed whole).</summary>
    public static (double Predicted, Kernel? Slice) Plan(Nest nest, Workspace buffers, double maxRunSeconds, JitOptions? jit = null)
    {
        ArgumentNullException.ThrowIfNull(nest);
        if (nest.Computation.Flops <= ProbeFlops) return (0, null);
        var sizes = Kernel.ProbeSizes(nest, ProbeFlops / 50);
        var probe = Kernel.CompileSlice(nest, sizes, jit);
        var run = Runner(probe, buffers);
        double seconds;
        using (ThreadPinning.Pin())
        {
            run(); // caches and code warm
            seconds = double.PositiveInfinity;
            for (int i = 0; i < ProbeRuns; i++)
            {
                var t = System.Diagnostics.Stopwatch.StartNew();
                run();
                seconds = Math.Min(seconds, t.Elapsed.TotalSeconds);
            }
        }
        probe.Release();
        double whole = seconds / probe.Fraction;
        if (probe.Fraction >= 1 || whole <= maxRunSeconds) return (whole, null);
        // the slice timed: a prefix of the outer loops' iterations, everything inside the last cut whole (so the working
        // set of what is inside, and its cache behaviour, is the whole kernel's), about a quarter of the limit; when the
        // prefix cannot be cut that small (an unrolled loop outside), the probe widened along its outermost cut variable
        var prefix = Kernel.PrefixSizes(nest, nest.Computation.Flops * maxRunSeconds / 4 / whole);
        if (Kernel.Share(nest.Computation, prefix) * whole <= maxRunSeconds) return (whole, Kernel.CompileSlice(nest, prefix, jit));
        int v = nest.Loops.Select(l => l.Var).First(x => sizes[x] < nest.Computation.Sizes[x]);
        int step = sizes[v], most = nest.Computation.Sizes[v] / step;
        int times = Math.Clamp((int)(maxRunSeconds / 4 / seconds), 1, Math.Max(1, most));
        if (times > 1) sizes[v] = step * times;
        return (whole, times > 1 ? Kernel.CompileSlice(nest, sizes, jit) : probe);
    }

    /// <summary>Timed runs of <see cref="Plan"/>'s probe after its warm-up, the fastest taken. The probe is a few
    /// microseconds of a kernel scaled up thousands of times, so one slow run misleads by as much: on the Zen 5, one run
    /// predicted 2,024, 181 and 66 ms on three calls for a 51.5 ms kernel (mm 3072 1024 1536, `m:1+1024u n:32u m:256 k:96
    /// k:16 m:8u n:32v pack=B`), and the first, over the one-second limit, had it estimated from a slice where it could be
    /// timed whole.</summary>
    public const int ProbeRuns = 5;

    /// <summary>One run of <paramref name="kernel"/> on <paramref name="buffers"/>, to be timed.</summary>
    public static unsafe Action Runner(Kernel kernel, Workspace buffers)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(buffers);
        if (!buffers.Computation.Equals(kernel.Computation))
            throw new ArgumentException($"the workspace is for {buffers.Computation}, the kernel for {kernel.Computation}", nameof(buffers));
        nint po = (nint)buffers.Output.Pointer, pl = (nint)buffers.Left.Pointer, pr = (nint)buffers.Right.Pointer;
        kernel.Prepare(); // the packed copies' buffers made before the timing, not in its first run
        var kept = Kept(kernel);
        if (kept is not null) kernel.Pack((float*)pl, (float*)pr); // the filters' copy made now, once, as the libraries lay theirs out before their runs
        if (buffers.Context.IsHot) return () => kernel.Run((float*)po, (float*)pl, (float*)pr, kept);
        // cold: each run, of this runner or another on the same buffers, reads the workspace's next copy of the operand
        return buffers.Context.Cold == Operand.Left
            ? () => kernel.Run((float*)po, buffers.NextCopy(), (float*)pr, kept)
            : () => kernel.Run((float*)po, (float*)pl, buffers.NextCopy(), kept);
    }

    /// <summary>The input a timing of <paramref name="kernel"/> keeps packed from run to run: a convolution's filters
    /// (<see cref="Computation.Filters"/>) when the kernel copies them whole, as a model's are constant and the libraries
    /// timed beside it lay theirs out before their runs (oneDNN's reorder, ONNX Runtime's prepacking); null otherwise,
    /// every copy then made in every run. In a cold timing whose cold operand they are, each run reads another copy of
    /// them, and so packs it.</summary>
    public static Operand? Kept(Kernel kernel)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        return kernel.Computation.Filters is { } f && kernel.CopiesWhole(f) ? f : null;
    }

    /// <summary>Aligned buffers for one computation's three tensors, filled with random values in [-1, 1]; in a cold
    /// <see cref="TimingContext"/>, with copies of the cold operand (<see cref="CopyCount"/>, the first of them
    /// <see cref="Left"/> or <see cref="Right"/> itself, all the same values) that the runs of <see cref="Runner"/> read in
    /// turn. The copies after the first live in one block. Disposed, its buffers go back to the process's kept blocks
    /// (<see cref="AlignedBuffer.ReleaseKept"/> frees them) for the next workspace: a model's tuning makes dozens of cold
    /// workspaces, and mapping and unmapping a few hundred megabytes for each kept the kernel's memory workers busy on the
    /// timing core.</summary>
    public sealed class Workspace : IDisposable
    {
        public Workspace(Computation computation, int seed = 1) : this(computation, seed, TimingContext.Hot) { }

        /// <summary>Buffers for timing in <paramref name="context"/>: a cold operand copied until the copies together pass
        /// <paramref name="coldBytes"/> (default <see cref="TimingContext.ColdBytes"/>, this machine's).</summary>
        public unsafe Workspace(Computation computation, int seed, TimingContext context, long? coldBytes = null)
        {
            ArgumentNullException.ThrowIfNull(computation);
            Computation = computation;
            Context = context;
            var rng = new Random(seed);
            Output = Filled(computation.Output.Length, rng);
            Left = Filled(computation.Left.Length, rng);
            Right = Filled(computation.Right.Length, rng);
            if (context.IsHot) return;
            var first = ColdBuffer;
            long bytes = Math.Max(1, first.Length) * sizeof(float);
            CopyCount = context.Copies(bytes, coldBytes ?? TimingContext.ColdBytes());
            // each copy on its own cache lines, the readable tail of a vector after it
            stride = (first.Length + AlignedBuffer.ReadableTail + AlignedBuffer.Alignment / sizeof(float) - 1) / (AlignedBuffer.Alignment / sizeof(float)) * (AlignedBuffer.Alignment / sizeof(float));
            block = new AlignedBuffer(stride * (CopyCount - 1));
            for (int i = 1; i < CopyCount; i++) Buffer.MemoryCopy(first.Pointer, CopyPointer(i), bytes, first.Length * sizeof(float));
        }

        public Computation Computation { get; }

        public AlignedBuffer Output { get; }
        public AlignedBuffer Left { get; }
        public AlignedBuffer Right { get; }

        /// <summary>What the runs on these buffers find in the caches.</summary>
        public TimingContext Context { get; }

        /// <summary>How many copies of the cold operand the runs read in turn (1 when hot: the operand itself).</summary>
        public int CopyCount { get; } = 1;

        readonly AlignedBuffer? block;
        readonly long stride;
        int next;

        /// <summary>Where copy <paramref name="i"/> of the cold operand starts (copy 0 is the operand's own buffer).</summary>
        public unsafe float* CopyPointer(int i)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(i);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(i, CopyCount);
            return i == 0 ? ColdBuffer.Pointer : block!.Pointer + (i - 1) * stride;
        }

        /// <summary>The buffer of the cold operand (copy 0): <see cref="Left"/> or <see cref="Right"/>.</summary>
        AlignedBuffer ColdBuffer => Context.Cold == Operand.Left ? Left : Right;

        /// <summary>Copy <paramref name="i"/> of the cold operand (its length must fit an int).</summary>
        public unsafe Span<float> Copy(int i) => new(CopyPointer(i), checked((int)ColdBuffer.Length));

        /// <summary>The copy of the cold operand the next run reads, in turn (one run at a time).</summary>
        internal unsafe float* NextCopy()
        {
            int i = next;
            next = i + 1 == CopyCount ? 0 : i + 1;
            return CopyPointer(i);
        }

        static AlignedBuffer Filled(long length, Random rng)
        {
            var b = new AlignedBuffer(length);
            b.Fill(rng);
            return b;
        }

        bool disposed;

        public void Dispose()
        {
            if (disposed) return;
            disposed = true;
            Output.Dispose();
            Left.Dispose();
            Right.Dispose();
            block?.Dispose();
        }
    }
}
