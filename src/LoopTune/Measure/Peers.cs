using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Measure;

/// <summary>The peer libraries known to LoopTune, probed once on first use, and their timing: GEMMs for matrix
/// products, convolutions for convolutions.</summary>
public static class Peers
{
    private static readonly Lazy<IReadOnlyList<NativeGemm>> all = new(() =>
        [NativeGemm.OpenBlas(), NativeGemm.Blis(), NativeGemm.OneDnn("libdnnl.so.3", "libdnnl.so.2")]);

    private static readonly Lazy<IReadOnlyList<ConvPeer>> convolution = new(() =>
        [OneDnnConv.Load("libdnnl.so.3", "libdnnl.so.2"), new Im2colBlas(Get("openblas")!)]);

    /// <summary>Every GEMM peer, available or not, in the order openblas, blis, onednn.</summary>
    public static IReadOnlyList<NativeGemm> All => all.Value;

    /// <summary>Every convolution peer, available or not, in the order onednn_conv, im2col_openblas.</summary>
    public static IReadOnlyList<ConvPeer> Convolution => convolution.Value;

    /// <summary>The keys of the peers that apply to <paramref name="c"/>: the convolution peers for a convolution, the
    /// GEMM peers otherwise, then ONNX Runtime (<see cref="OnnxRuntimePeer"/>) for both (each then says why it does or does
    /// not apply).</summary>
    public static IReadOnlyList<string> KeysFor(Computation c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return [.. c.Convolution is null ? All.Select(p => p.Key) : Convolution.Select(p => p.Key), OnnxRuntimePeer.KeyName];
    }

    /// <summary>The peer with this key (case-insensitive), or null if there is no such key.</summary>
    public static NativeGemm? Get(string key) => All.FirstOrDefault(p => string.Equals(p.Key, key, StringComparison.OrdinalIgnoreCase));

    /// <summary>Times <paramref name="peer"/>'s sgemm on <c>C[m,n] += A[m,k] * B[k,n]</c> with aligned,
    /// randomly filled buffers on the calling thread, unchecked; flops = 2mnk.</summary>
    public static unsafe Measurement MeasurePeer(GemmPeer peer, int m, int n, int k, MeasureOptions options)
    {
        ArgumentNullException.ThrowIfNull(peer);
        if (!peer.Available) throw new InvalidOperationException($"peer {peer.Key} is unavailable: {peer.Problem}");
        var rng = new Random(1);
        using AlignedBuffer a = new((long)m * k), b = new((long)k * n), c = new((long)m * n);
        foreach (var buffer in new[] { a, b, c }) buffer.Fill(rng);
        float* pa = a.Pointer, pb = b.Pointer, pc = c.Pointer;
        return Timing.Measure(() => peer.Sgemm(m, n, k, pa, pb, pc), 2.0 * m * n * k, options);
    }

    /// <summary>Runs <paramref name="peer"/> once on random data and checks its output against <see cref="Reference"/>
    /// within <see cref="Reference.Tolerance"/> (the verifier's rule).</summary>
    public static Verification VerifyConv(ConvPeer peer, ConvShape shape, int seed = 1)
    {
        using var live = Check(shape.ToComputation(), Conv(peer, shape, 1), null, seed);
        return live.Verification;
    }

    /// <summary>The convolution peer's GFLOPS on <paramref name="shape"/> on the calling thread, after a check of its
    /// result: a peer that is unavailable, fails, or gives a wrong result is reported (null GFLOPS and the problem;
    /// "wrong result: ..." for the latter), never timed.</summary>
    public static PeerResult MeasureConv(ConvPeer peer, ConvShape shape, MeasureOptions options) => MeasureConv(peer, shape, options, null);

    /// <summary><see cref="MeasureConv(ConvPeer, ConvShape, MeasureOptions)"/> with a hook that may alter the peer's
    /// output before the check (for tests of the wrong-result path).</summary>
    internal static PeerResult MeasureConv(ConvPeer peer, ConvShape shape, MeasureOptions options, Action<Span<float>>? corrupt)
    {
        using var prepared = PrepareConv(peer, shape, corrupt);
        return prepared.Time(options);
    }

    /// <summary>The convolution peer on <paramref name="shape"/>, checked against the reference and ready to be timed
    /// (with others: <see cref="Timing.MeasureTogether"/>), or why not.</summary>
    public static PreparedPeer PrepareConv(ConvPeer peer, ConvShape shape, int threads = 1) => PrepareConv(peer, shape, null, threads);

    internal static PreparedPeer PrepareConv(ConvPeer peer, ConvShape shape, Action<Span<float>>? corrupt, int threads = 1)
    {
        ArgumentNullException.ThrowIfNull(peer);
        var (c, slice) = Slice(shape.ToComputation(), threads);
        if (!peer.Available) return PreparedPeer.Final(PeerResult.Missing(peer), c.Flops);
        return Checked(peer.Key, peer.Timed + slice, c, Conv(peer, c.AsConv()!.Value, threads), corrupt, slice is not null, threads);
    }

    /// <summary>The share of the machine's peak below which no peer is expected to run (BLIS's generic kernels run at
    /// about 14 % of a Zen 5's): what <see cref="Slice"/> sizes its slices by.</summary>
    public const double SlowestPeerShare = 0.1;

    /// <summary>
    /// The part of <paramref name="c"/> a peer is checked and timed on, so that one of its runs stays under a quarter of
    /// <see cref="KernelReport.MaxRunSeconds"/> even at <see cref="SlowestPeerShare"/> of the peak (a side-by-side round
    /// runs every peer once, and a few rounds must fit in the final timing's seconds): <paramref name="c"/> itself, or,
    /// when its work is larger than that, its first rows along the outermost output variable (m of a matrix product, the
    /// filters of a convolution) that do that work, a multiple of 64, with a note for the peer's call
    /// (<c>"; estimated on m &lt; 192 of 4096"</c>). A peer's speed per flop on such a slice is its speed on the whole: its
    /// GFLOPS are reported as <see cref="PeerResult.Estimated"/>. Computations under a GFLOP are never sliced (and never
    /// need the peak).
    /// </summary>
    public static (Computation Slice, string? Note) Slice(Computation c) => Slice(c, 1);

    /// <summary><see cref="Slice(Computation)"/> for a peer on <paramref name="threads"/> threads: its slice may do that
    /// many times the work.</summary>
    public static (Computation Slice, string? Note) Slice(Computation c, int threads)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (c.Flops <= 1e9) return (c, null);
        double limit = KernelReport.MaxRunSeconds / 4 * SlowestPeerShare * PeakCache.GetOrMeasure() * 1e9 * threads;
        int v = c.Output.Index[0][0].Var, size = c.Sizes[v];
        int rows = Math.Max(64, (int)(size * limit / c.Flops / 64) * 64);
        if (c.Flops <= limit || rows >= size) return (c, null);
        return (c.WithSize(v, rows), $"; estimated on {c.Vars[v]} < {rows} of {size}");
    }

    /// <summary>Runs <paramref name="peer"/>'s BLAS form of <paramref name="c"/> (<see cref="GemmForm"/>) once on random data
    /// and checks the output against <see cref="Reference"/> within <see cref="Reference.Tolerance"/>. Throws
    /// <see cref="ArgumentException"/> when <paramref name="c"/> has no BLAS form.</summary>
    public static Verification VerifyGemm(GemmPeer peer, Computation c, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(peer);
        var (form, reason) = GemmForm.Classify(c);
        if (form is null) throw new ArgumentException($"{c} has no BLAS form: {reason}", nameof(c));
        using var live = Check(c, Gemm(peer, form, 1), null, seed);
        return live.Verification;
    }

    /// <summary>The GEMM peer's GFLOPS on <paramref name="c"/> on the calling thread: the contraction mapped to sgemm
    /// (<see cref="GemmForm.Classify"/>: transposes, leading dimensions, and a batch as a loop of sgemm calls over strided
    /// pointers, all the calls timed together as one run), checked against the reference before it is timed. A missing
    /// library, a contraction with no BLAS form (with the reason), a failure or a wrong result is reported, never timed.</summary>
    public static PeerResult MeasureGemm(GemmPeer peer, Computation c, MeasureOptions options) => MeasureGemm(peer, c, options, null);

    /// <summary><see cref="MeasureGemm(GemmPeer, Computation, MeasureOptions)"/> with a hook that may alter the peer's output
    /// before the check (for tests of the wrong-result path).</summary>
    internal static PeerResult MeasureGemm(GemmPeer peer, Computation c, MeasureOptions options, Action<Span<float>>? corrupt)
    {
        using var prepared = PrepareGemm(peer, c, corrupt);
        return prepared.Time(options);
    }

    /// <summary>The GEMM peer's call for <paramref name="c"/>, checked against the reference and ready to be timed, or why
    /// not (as <see cref="MeasureGemm(GemmPeer, Computation, MeasureOptions)"/> reports it).</summary>
    public static PreparedPeer PrepareGemm(GemmPeer peer, Computation c, int threads = 1) => PrepareGemm(peer, c, null, threads);

    internal static PreparedPeer PrepareGemm(GemmPeer peer, Computation c, Action<Span<float>>? corrupt, int threads = 1)
    {
        ArgumentNullException.ThrowIfNull(peer);
        ArgumentNullException.ThrowIfNull(c);
        if (!peer.Available) return PreparedPeer.Final(PeerResult.Missing(peer), c.Flops);
        var (form, reason) = GemmForm.Classify(c);
        if (form is null) return PreparedPeer.Final(PeerResult.None(peer.Key, reason!), c.Flops);
        var (slice, note) = Slice(c, threads);
        var sliced = note is null ? form : GemmForm.Classify(slice).Form!;
        return Checked(peer.Key, form.Describe() + note, slice, Gemm(peer, sliced, threads), corrupt, note is not null, threads);
    }

    /// <summary>ONNX Runtime's one-node model of <paramref name="c"/> (<see cref="OnnxRuntimePeer.Classify"/>), checked
    /// against the reference and ready to be timed next to others (on a slice when <see cref="Slice"/> says so), or why
    /// not: missing, "no peer: ..." for a contraction without a node, a wrong result (never timed) or ONNX Runtime's error.</summary>
    public static PreparedPeer PrepareOnnxRuntime(OnnxRuntimePeer peer, Computation c, int threads = 1) => PrepareOnnxRuntime(peer, c, null, threads);

    internal static unsafe PreparedPeer PrepareOnnxRuntime(OnnxRuntimePeer peer, Computation c, Action<Span<float>>? corrupt, int threads = 1)
    {
        ArgumentNullException.ThrowIfNull(peer);
        ArgumentNullException.ThrowIfNull(c);
        if (!peer.Available) return PreparedPeer.Final(PeerResult.Missing(peer), c.Flops);
        var (form, reason) = OnnxRuntimePeer.Classify(c);
        if (form is null) return PreparedPeer.Final(PeerResult.None(peer.Key, reason!), c.Flops);
        // a convolution is checked and timed in its canonical form, as oneDNN's is
        var (slice, note) = Slice(c.Convolution?.ToComputation() ?? c, threads);
        var sliced = note is null ? form : OnnxRuntimePeer.Classify(slice).Form!;
        return Checked(peer.Key, sliced.Describe + note, slice, new Runner((o, l, r) => peer.Prepare(sliced, o, l, r, threads), false), corrupt, note is not null, threads);
    }

    /// <summary>Prepares a peer's run on the three buffers of a computation: output, left, right.</summary>
    private unsafe delegate PeerRun Prepare(float* output, float* left, float* right);

    /// <summary>A peer's run and whether the check starts from a random output (the peer must add to it, as sgemm with
    /// beta 1 does) or from zeros (oneDNN's convolution writes its output).</summary>
    private sealed record Runner(Prepare Prepare, bool Accumulates);

    /// <summary>The convolution's left input is the image, its right the weights (<see cref="ConvShape.ToComputation"/>).</summary>
    private static unsafe Runner Conv(ConvPeer peer, ConvShape s, int threads) => new((o, l, r) => peer.Prepare(s, l, r, o, threads), false);

    private static unsafe Runner Gemm(GemmPeer peer, GemmForm form, int threads) => new((o, l, r) => new GemmRun(peer, form, o, l, r, threads), true);

    /// <summary>Checks: a peer whose result is right is returned ready to time; a wrong result or a library error is
    /// returned as its final result, never timed.</summary>
    private static PreparedPeer Checked(string key, string via, Computation c, Runner runner, Action<Span<float>>? corrupt, bool slice, int threads)
    {
        // a library's thread pool started by this first run may use every core (<see cref="Affinity.Widened"/>)
        using var widened = threads > 1 ? Affinity.Widened() : default;
        Live? live = null;
        try
        {
            live = Check(c, runner, corrupt, 1);
            if (live.Verification.Passed) return new PreparedPeer(key, via, c.Flops, live.Run!.Run, live) { Estimated = slice, Threads = threads };
            var problem = live.Verification.Problem;
            live.Dispose();
            return PreparedPeer.Final(PeerResult.Wrong(key, problem, via), c.Flops);
        }
        catch (InvalidOperationException e)
        {
            live?.Dispose();
            return PreparedPeer.Final(PeerResult.Failed(key, e.Message, via), c.Flops);
        }
    }

    /// <summary>The buffers and the prepared run of a checked peer.</summary>
    private sealed class Live(Computation c) : IDisposable
    {
        public readonly AlignedBuffer Output = new(c.Output.Length, Verifier.Guard), Left = new(c.Left.Length, Verifier.Guard), Right = new(c.Right.Length, Verifier.Guard);
        public PeerRun? Run;
        public Verification Verification;

        public void Dispose()
        {
            Run?.Dispose();
            Output.Dispose();
            Left.Dispose();
            Right.Dispose();
        }
    }

    /// <summary>Prepares the peer on random buffers between guard zones (the output random too when the peer accumulates,
    /// else zero), runs it once and compares with the exact result, the inputs unchanged and the guards intact. The run
    /// stays on those buffers, ready to be timed.</summary>
    private static unsafe Live Check(Computation c, Runner runner, Action<Span<float>>? corrupt, int seed)
    {
        var rng = new Random(seed);
        var live = new Live(c);
        try
        {
            var (output, left, right) = (live.Output, live.Left, live.Right);
            left.Fill(rng);
            right.Fill(rng);
            if (runner.Accumulates) output.Fill(rng);
            else output.Clear();
            // the exact result from the output as it was, and the inputs' checksums, before the run
            var (elements, exact, magnitude) = Exact(c, seed, runner.Accumulates, output, left, right);
            ulong leftSum = Verifier.Checksum(left.Span), rightSum = Verifier.Checksum(right.Span);
            var run = live.Run = runner.Prepare(output.Pointer, left.Pointer, right.Pointer);
            run.Run();
            run.Finish();
            corrupt?.Invoke(output.Span);
            string? problem = Verifier.Compare(c, output.Span, elements, exact, magnitude, out double worst);
            if (problem is null && !(output.GuardsIntact() && left.GuardsIntact() && right.GuardsIntact())) problem = "a guard zone was overwritten";
            if (problem is null && !(Verifier.Checksum(left.Span) == leftSum && Verifier.Checksum(right.Span) == rightSum)) problem = "an input was modified";
            live.Verification = new Verification(problem is null, worst, Reference.Tolerance(c), problem, elements.Length);
            return live;
        }
        catch
        {
            live.Dispose();
            throw;
        }
    }

    /// <summary>The sampled elements' exact results on a check's buffers, which depend only on the computation, the seed
    /// and whether the output starts random (<paramref name="accumulates"/>) or zero: the last one worked out is kept,
    /// as the peers of one computation are checked one after another on the same data (the sum over k = 4096 of 2048
    /// elements, read down the columns of a 64 MB input, took a tenth of a second per peer).</summary>
    private static (long[] Elements, double[] Exact, double[] Magnitude) Exact(Computation c, int seed, bool accumulates, AlignedBuffer output, AlignedBuffer left, AlignedBuffer right)
    {
        var key = (c.Text, seed, accumulates);
        if (lastExact is { } last && last.Key == key) return (last.Elements, last.Exact, last.Magnitude);
        var elements = Reference.CheckedElements(c, seed);
        var (exact, magnitude) = Reference.ExactAt(c, elements, output.Span, left.Span, right.Span);
        lastExact = new ExactResult(key, elements, exact, magnitude);
        return (elements, exact, magnitude);
    }

    private sealed record ExactResult((string, int, bool) Key, long[] Elements, double[] Exact, double[] Magnitude);

    private static ExactResult? lastExact;

    /// <summary>One run of a <see cref="GemmForm"/>: a single sgemm, or one per batch index at pointers advanced by the
    /// batch strides.</summary>
    private sealed unsafe class GemmRun(GemmPeer peer, GemmForm f, float* output, float* left, float* right, int threads) : PeerRun
    {
        public override void Run() => Call(0, output, f.ALeft ? left : right, f.ALeft ? right : left);

        private void Call(int loop, float* c, float* a, float* b)
        {
            if (loop == f.Batch.Length)
            {
                peer.Sgemm(f.TransA, f.TransB, f.M, f.N, f.K, a, f.Lda, b, f.Ldb, c, f.Ldc, threads);
                return;
            }
            var d = f.Batch[loop];
            for (int i = 0; i < d.Size; i++) Call(loop + 1, c + i * d.StrideC, a + i * d.StrideA, b + i * d.StrideB);
        }
    }
}

/// <summary>A peer on one computation, checked against the reference and ready to be timed (<see cref="Run"/>, alone with
/// <see cref="Time"/> or next to others with <see cref="Timing.MeasureTogether"/>), or, when <see cref="Result"/> is set, the
/// reason it will not be (missing, no call for the contraction, a wrong result, a failure). Holds its buffers and the
/// library's objects until disposed.</summary>
public sealed class PreparedPeer : IDisposable
{
    private IDisposable? owned;

    internal PreparedPeer(string key, string? via, double flops, Action? run, IDisposable? owned, PeerResult? result = null) =>
        (Key, Via, Flops, Run, this.owned, Result) = (key, via, flops, run, owned, result);

    internal static PreparedPeer Final(PeerResult result, double flops) => new(result.Key, result.Via, flops, null, null, result);

    public string Key { get; }
    /// <summary>The call timed, when it is not a plain one.</summary>
    public string? Via { get; }
    /// <summary>Floating-point operations of one <see cref="Run"/>.</summary>
    public double Flops { get; }
    /// <summary>One run of the checked call; null when <see cref="Result"/> says why there is none.</summary>
    public Action? Run { get; }
    /// <summary>Why the peer will not be timed; null when it is ready.</summary>
    public PeerResult? Result { get; }
    /// <summary>True when <see cref="Run"/> is a slice of the computation (<see cref="Peers.Slice(Computation)"/>).</summary>
    public bool Estimated { get; init; }

    /// <summary>The threads the library runs <see cref="Run"/> on.</summary>
    public int Threads { get; init; } = 1;

    /// <summary>The result of a measurement of <see cref="Run"/>.</summary>
    public PeerResult Measured(Measurement m, double? kernelOverPeer = null) =>
        PeerResult.Measured(Key, m.Gflops, Via) with { KernelOverPeer = kernelOverPeer, Estimated = Estimated };

    /// <summary>Times <see cref="Run"/> alone on the calling thread, or returns <see cref="Result"/>.</summary>
    public PeerResult Time(MeasureOptions options) => Result ?? Measured(Timing.Measure(Run!, Flops, options));

    /// <summary>The same peer under another key (a library's column), taking over its buffers: dispose the result, not this.</summary>
    internal PreparedPeer Renamed(string key)
    {
        var moved = new PreparedPeer(key, Via, Flops, Run, owned, Result is { } r ? r with { Key = key } : null) { Estimated = Estimated, Threads = Threads };
        owned = null;
        return moved;
    }

    public void Dispose() => owned?.Dispose();
}
