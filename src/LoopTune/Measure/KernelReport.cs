using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Measure;

/// <summary>Everything <c>looptune run</c> reports about one schedule: it compiled, passed the check, and ran this fast,
/// next to the peak and the peers measured in the same process.</summary>
public sealed record KernelReport(Nest Nest, Kernel Kernel, Verification Verification, Measurement Measurement,
                                double PeakGflops, IReadOnlyList<PeerResult> Peers)
{
    public double Gflops => Measurement.Gflops;
    public double FractionOfPeak => Gflops / PeakGflops;

    /// <summary>How many times faster the kernel ran than <paramref name="peer"/>: the side-by-side ratio when they were
    /// timed together, else the ratio of their GFLOPS; null without a figure for the peer.</summary>
    public double? RatioTo(string peer) => Peers.FirstOrDefault(p => p.Key == peer) is { Gflops: double g and > 0 } p ? p.KernelOverPeer ?? Gflops / g : null;

    /// <summary>A whole run of a kernel longer than this is not timed whole in a report: it is estimated from a slice
    /// (<see cref="KernelTiming.MeasureBounded"/>) and checked on one (<see cref="Verifier.VerifyWithin"/>).</summary>
    public const double MaxRunSeconds = 1;

    /// <summary>Checks <paramref name="kernel"/> (compiled from <paramref name="nest"/>) with no run longer than
    /// <see cref="MaxCheckSeconds"/>: a large kernel's run is predicted first (<see cref="KernelTiming.Plan"/>, on
    /// <paramref name="buffers"/> or buffers of its own) and, when too long, the check runs on a slice.</summary>
    public static Verification Check(Nest nest, Kernel kernel, KernelTiming.Workspace? buffers = null)
    {
        ArgumentNullException.ThrowIfNull(nest);
        if (nest.Computation.Flops <= KernelTiming.ProbeFlops) return Verifier.Verify(kernel);
        var own = buffers is null ? new KernelTiming.Workspace(nest.Computation) : null;
        // no limit to Plan: only its prediction is wanted, not a slice to time
        try { return Verifier.VerifyWithin(nest, kernel, KernelTiming.Plan(nest, buffers ?? own!, double.PositiveInfinity).Predicted, MaxCheckSeconds); }
        finally { own?.Dispose(); }
    }

    /// <summary>The longest run a check of a kernel makes (<see cref="Verifier.VerifyWithin"/>): a sixteenth of
    /// <see cref="MaxRunSeconds"/>; a slower kernel is checked on a slice.</summary>
    public const double MaxCheckSeconds = MaxRunSeconds / 16;

    /// <summary>Compiles, verifies and times <paramref name="nest"/>; with <paramref name="peers"/>, the kernel and every
    /// peer are timed side by side (<see cref="MeasureWithPeers"/>). A kernel whose run could last more than
    /// <see cref="MaxRunSeconds"/> (a probe predicts over a quarter of it) is estimated from a slice and checked on one
    /// instead (<see cref="Estimated"/>): the slice is timed side by side with the peers (themselves on slices when their
    /// runs could pass a quarter second: <see cref="Peers.Slice"/>), for at most <see cref="MaxRunSeconds"/> of sampling
    /// (<see cref="MeasureOptions.MaxSeconds"/>). So the final timing of a large problem costs about: buffers to fill
    /// (200 MB for a 4096^3 matmul, half a second here), a check of one slice, each peer's check on its slice, and one to
    /// two seconds of side-by-side runs.</summary>
    public static KernelReport Run(Nest nest, MeasureOptions options, bool peers = true, double? peakGflops = null) =>
        Run(nest, options, peers, peakGflops, null);

    /// <summary><see cref="Run(Nest, MeasureOptions, bool, double?)"/> on <paramref name="workspace"/>, buffers already made
    /// for the nest's computation (a search's: 200 MB for a 4096^3 matmul need not be filled twice); new ones when null.</summary>
    public static KernelReport Run(Nest nest, MeasureOptions options, bool peers, double? peakGflops, KernelTiming.Workspace? workspace) =>
        Run(nest, options, peers ? PreparePeers : null, peakGflops, workspace);

    /// <summary><see cref="Run(Nest, MeasureOptions, bool, double?, KernelTiming.Workspace?)"/> next to the peers that
    /// <paramref name="preparePeers"/> gives (none when null): a report that shows one library times that one alone. The
    /// kernel (and its slice, when it is estimated) runs on <paramref name="threads"/> threads (<see cref="Kernel.Threads"/>;
    /// default <see cref="RunThreads.Default"/>),
    /// and so do the peers (<see cref="TimeSideBySide(IReadOnlyList{Kernel}, PeerPreparation, MeasureOptions)"/>).</summary>
    public static KernelReport Run(Nest nest, MeasureOptions options, PeerPreparation? preparePeers, double? peakGflops,
        KernelTiming.Workspace? workspace, int? threads = null)
    {
        var kernel = Kernel.Compile(nest);
        kernel.Threads = threads ?? RunThreads.Default;
        double peak = peakGflops ?? PeakCache.GetOrMeasure();
        using var owned = workspace?.Computation.Equals(nest.Computation) == true ? null : new KernelTiming.Workspace(nest.Computation);
        var buffers = owned ?? workspace!;
        // the prediction's probe runs from the caches and so promises more than a large kernel keeps (0.7 s predicted, 2.3 s
        // run, for a blocked 4096^3 matmul): a predicted run over a quarter of the limit is estimated already
        var (predicted, sliced) = KernelTiming.Plan(nest, buffers, MaxRunSeconds / 4);
        if (sliced is { } slice)
        {
            slice.Threads = kernel.Threads;
            var check = Verifier.VerifyWithin(nest, kernel, predicted, MaxCheckSeconds);
            var bounded = options with { MaxSeconds = Math.Min(options.MaxSeconds, MaxRunSeconds) };
            var (timed, others) = preparePeers is not null ? TimeSideBySide([slice], preparePeers, bounded, buffers)
                : ([KernelTiming.Measure(slice, bounded, buffers)], NotMeasured(nest.Computation));
            return new KernelReport(nest, kernel, check, KernelTiming.WithCopies(KernelTiming.Scaled(timed[0], slice, kernel), slice, kernel, bounded, buffers), peak, others) { Estimated = true };
        }
        // a run predicted over the check's limit is checked on a slice too: the check is sampled either way
        var verification = Verifier.VerifyWithin(nest, kernel, predicted, MaxCheckSeconds);
        var (measured, peerResults) = preparePeers is not null ? TimeSideBySide([kernel], preparePeers, options, buffers)
            : ([KernelTiming.Measure(kernel, options, buffers)], NotMeasured(nest.Computation));
        if (peakGflops is null) peak = PeakCache.Checked(measured[0].Gflops / kernel.Threads); // a kernel timed whole bounds the peak
        return new KernelReport(nest, kernel, verification, measured[0], peak, peerResults);
    }

    /// <summary>Whether <see cref="Measurement"/> is an estimate from a slice (a whole run would last longer than
    /// <see cref="MaxRunSeconds"/>); the slice was timed side by side with the peers.</summary>
    public bool Estimated { get; init; }

    /// <summary>Times <paramref name="kernel"/> and the peers of its computation (<see cref="PreparePeers"/>) side by side
    /// (<see cref="TimeSideBySide"/>); each measured peer carries the side-by-side ratio (<see cref="PeerResult.KernelOverPeer"/>).</summary>
    public static (Measurement Kernel, IReadOnlyList<PeerResult> Peers) MeasureWithPeers(Kernel kernel, MeasureOptions options)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        var (kernels, peers) = TimeSideBySide([kernel], PreparePeers, options);
        return (kernels[0], peers);
    }

    /// <summary>Times <paramref name="kernels"/> (schedules of one computation) and the peers that
    /// <paramref name="preparePeers"/> gives for it side by side on a pinned thread, one sample of each per round
    /// (<see cref="Timing.MeasureTogether(IReadOnlyList{Action}, IReadOnlyList{double}, MeasureOptions)"/>), so that a machine
    /// whose speed changes over time slows them alike. The peers are prepared under the pin and disposed at the end; one that
    /// is missing, has no call, fails or is wrong keeps its result and is never timed. With a lone kernel, each measured peer
    /// carries the side-by-side ratio (<see cref="PeerResult.KernelOverPeer"/>).
    /// <para>At N threads (the kernels' most <see cref="Kernel.Threads"/>) the peers are asked for N threads too, and the
    /// pieces take turns (<see cref="Timing.MeasureTogether(IReadOnlyList{Action}, IReadOnlyList{double}, MeasureOptions, Action{int}?)"/>):
    /// before each turn (a few tens of milliseconds of one piece's samples in a row) the process is let go quiet
    /// (<see cref="Quiet.Settle"/>: the previous runtime's threads stop spinning), the caller is pinned to its core (our kernel's team pins its workers to the team's other cores,
    /// <see cref="Affinity.TeamCores"/>, and the libraries' workers are pinned there too, <see cref="Affinity.PinLibraryThreads"/>)
    /// and untimed runs wake the runtime's threads (<see cref="TakeTurns"/>). Interleaved without turns, the runtimes' waiting threads took the cores from each other: ours
    /// 72.5 GFLOPS, oneDNN 30.8, OpenBLAS 35.2 at two threads on mm 512 against 137 / 162 / 91 at one.</para></summary>
    public static (IReadOnlyList<Measurement> Kernels, IReadOnlyList<PeerResult> Peers) TimeSideBySide(IReadOnlyList<Kernel> kernels,
        PeerPreparation preparePeers, MeasureOptions options) => TimeSideBySide(kernels, preparePeers, options, null);

    /// <summary><see cref="TimeSideBySide(IReadOnlyList{Kernel}, Func{Computation, IReadOnlyList{PreparedPeer}}, MeasureOptions)"/>
    /// on <paramref name="workspace"/> when given (else on new buffers); the kernels may be slices, measured over their own
    /// flops.</summary>
    static (IReadOnlyList<Measurement> Kernels, IReadOnlyList<PeerResult> Peers) TimeSideBySide(IReadOnlyList<Kernel> kernels,
        PeerPreparation preparePeers, MeasureOptions options, KernelTiming.Workspace? workspace)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        ArgumentNullException.ThrowIfNull(preparePeers);
        ArgumentOutOfRangeException.ThrowIfZero(kernels.Count);
        var c = kernels[0].Computation;
        int threads = kernels.Max(k => k.Threads);
        using var pin = ThreadPinning.Pin();
        var prepared = preparePeers(c, threads);
        try
        {
            using var owned = workspace is null ? new KernelTiming.Workspace(c) : null;
            var buffers = workspace ?? owned!;
            var ready = prepared.Where(p => p.Result is null).ToList();
            Action[] runs = [.. kernels.Select(k => KernelTiming.Runner(k, buffers)), .. ready.Select(p => p.Run!)];
            Together t;
            using (var turns = TakeTurns(threads, pin, runs))
                t = Timing.MeasureTogether(runs, [.. kernels.Select(k => k.Flops), .. ready.Select(p => p.Flops)], options, turns is null ? null : turns.Before);
            PeerResult Timed(PreparedPeer p)
            {
                int i = kernels.Count + ready.IndexOf(p);
                return p.Measured(t.Measurements[i], kernels.Count == 1 ? t.Ratio(0, i) : null);
            }
            return ([.. t.Measurements.Take(kernels.Count)], [.. prepared.Select(p => p.Result ?? Timed(p))]);
        }
        finally
        {
            foreach (var p in prepared) p.Dispose();
        }
    }

    /// <summary>The turns of runtimes timed side by side at <paramref name="threads"/> threads (null at one, or when the caller
    /// is not pinned; dispose it after the timing): the libraries' worker threads are pinned to the team's other cores
    /// (<see cref="Affinity.PinLibraryThreads"/>; the caller stays on its pinned core) and, before each turn, the process
    /// is let go quiet (<see cref="Quiet.Settle"/>) and the piece run untimed for <see cref="TurnWarmSeconds"/> (once at
    /// least), to wake the cores and its threads.</summary>
    public static Turns? TakeTurns(int threads, ThreadPinning.PinScope pin, IReadOnlyList<Action> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        return PinLibraries(threads, pin) is { } libraries ? new Turns(runs, libraries) : null;
    }

    /// <summary>At <paramref name="threads"/> threads above one with the caller pinned: the libraries' workers pinned to the
    /// other cores of the caller's team (<see cref="Affinity.PinLibraryThreads"/>) until disposed; else null.</summary>
    static IDisposable? PinLibraries(int threads, ThreadPinning.PinScope pin)
    {
        ArgumentNullException.ThrowIfNull(pin);
        return threads <= 1 || !pin.Pinned ? null : Affinity.PinLibraryThreads(Affinity.TeamCores(threads, pin.Core));
    }

    /// <summary>Runtimes taking turns on a team's cores (<see cref="TakeTurns"/>).</summary>
    public sealed class Turns : IDisposable
    {
        readonly IReadOnlyList<Action> runs;
        readonly IDisposable libraries;

        internal Turns(IReadOnlyList<Action> runs, IDisposable libraries) => (this.runs, this.libraries) = (runs, libraries);

        /// <summary>Readies the machine for piece <paramref name="i"/> (<see cref="Timing.MeasureTogether(IReadOnlyList{Action}, IReadOnlyList{double}, MeasureOptions, Action{int}?)"/>'s turn).</summary>
        public void Before(int i)
        {
            Quiet.Settle(TurnSettleSeconds);
            // untimed runs for a few milliseconds: the idle cores (and a VM's idle vCPUs) wake and the runtime's threads
            // are spinning again before the sample starts
            var warm = System.Diagnostics.Stopwatch.StartNew();
            do runs[i]();
            while (warm.Elapsed.TotalSeconds < TurnWarmSeconds);
        }

        public void Dispose() => libraries.Dispose();
    }

    /// <summary>How long a turn runs its piece untimed before the sample (<see cref="Turns"/>).</summary>
    public const double TurnWarmSeconds = 0.005;

    /// <summary>The longest a turn waits for the process to go quiet (<see cref="Quiet.Settle"/>): longer than OpenBLAS's
    /// threads spin (2^28 cycles, about 0.13 s here).</summary>
    public const double TurnSettleSeconds = 0.5;

    /// <summary>The peers that apply to <paramref name="c"/>, each "not measured".</summary>
    public static IReadOnlyList<PeerResult> NotMeasured(Computation c) =>
        [.. Measure.Peers.KeysFor(c).Select(k => new PeerResult(k, null, "not measured", PeerStatus.NotMeasured))];

    /// <summary>What the peers of <paramref name="c"/> do: a convolution gets the convolution peers (oneDNN's primitive,
    /// im2col + OpenBLAS) and ONNX Runtime's one-node model; anything else the GEMM peers and ONNX Runtime, which time a (batched, transposed) matrix product after checking
    /// its result and give a one-line reason for any other contraction. Null GFLOPS with a reason when a library is missing
    /// or its result is wrong.</summary>
    public static IReadOnlyList<PeerResult> MeasurePeers(Computation c, MeasureOptions options)
    {
        int threads = RunThreads.Default;
        using var pin = ThreadPinning.Pin();
        var prepared = PreparePeers(c, threads);
        // at N threads, each library after the last one's threads went quiet, its workers on the other cores of a team of N
        using var libraries = PinLibraries(threads, pin);
        try
        {
            return [.. prepared.Select(p =>
            {
                if (threads > 1) Quiet.Settle(TurnSettleSeconds);
                return p.Time(options);
            })];
        }
        finally
        {
            foreach (var p in prepared) p.Dispose();
        }
    }

    /// <summary>The peers of <paramref name="c"/>, each checked and ready to be timed or with the reason it will not be: the
    /// convolution peers for a convolution, the GEMM peers otherwise, then ONNX Runtime (<see cref="OnnxRuntimePeer"/>).</summary>
    public static IReadOnlyList<PreparedPeer> PreparePeers(Computation c) => PreparePeers(c, 1);

    /// <summary><see cref="PreparePeers(Computation)"/>, each library asked for <paramref name="threads"/> threads.</summary>
    public static IReadOnlyList<PreparedPeer> PreparePeers(Computation c, int threads) => PreparePeers(c, _ => true, threads);

    /// <summary>The peers of <paramref name="c"/> (<see cref="PreparePeers(Computation)"/>) whose key
    /// <paramref name="keep"/> accepts, on <paramref name="threads"/> threads; the others are never loaded, checked or timed.</summary>
    public static IReadOnlyList<PreparedPeer> PreparePeers(Computation c, Func<string, bool> keep, int threads = 1)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(keep);
        IEnumerable<PreparedPeer> native = c.Convolution is { } conv
            ? Measure.Peers.Convolution.Where(p => keep(p.Key)).Select(p => Measure.Peers.PrepareConv(p, conv, threads))
            : Measure.Peers.All.Where(p => keep(p.Key)).Select(p => Measure.Peers.PrepareGemm(p, c, threads));
        return [.. native, .. keep(OnnxRuntimePeer.KeyName) ? [Measure.Peers.PrepareOnnxRuntime(OnnxRuntimePeer.Instance, c, threads)] : Array.Empty<PreparedPeer>()];
    }

    /// <summary>One GEMM peer's call for <paramref name="c"/>, checked and ready to be timed next to others, or why there is
    /// none (a convolution has the convolution peers instead).</summary>
    public static PreparedPeer PreparePeer(GemmPeer peer, Computation c)
    {
        ArgumentNullException.ThrowIfNull(peer);
        ArgumentNullException.ThrowIfNull(c);
        if (c.Convolution is not null) return PreparedPeer.Final(peer.Available ? PeerResult.None(peer.Key, ConvolutionReason) : PeerResult.Missing(peer), c.Flops);
        return Measure.Peers.PrepareGemm(peer, c);
    }

    /// <summary>Why a GEMM peer does not apply to <paramref name="c"/>, in one line (null when it does).</summary>
    public static string? NoGemmReason(Computation c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return c.Convolution is not null ? ConvolutionReason : GemmForm.Classify(c).Reason;
    }

    const string ConvolutionReason = "a convolution: see the convolution peers";
}
