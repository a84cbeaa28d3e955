using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Measure;

/// <summary>The peer libraries known to LoopTune, probed once on first use, and their timing: GEMMs for matrix
/// products, convolutions for convolutions.</summary>
public static class Peers
{
    private static readonly Lazy<IReadOnlyList<Peer>> all = new(() =>
        [Peer.OpenBlas(), Peer.Blis(), Peer.OneDnn("libdnnl.so.3", "libdnnl.so.2")]);

    private static readonly Lazy<IReadOnlyList<ConvPeer>> convolution = new(() =>
        [OneDnnConv.Load("libdnnl.so.3", "libdnnl.so.2"), new Im2colOpenBlas(Get("openblas")!)]);

    /// <summary>Every GEMM peer, available or not, in the order openblas, blis, onednn.</summary>
    public static IReadOnlyList<Peer> All => all.Value;

    /// <summary>Every convolution peer, available or not, in the order onednn_conv, im2col_openblas.</summary>
    public static IReadOnlyList<ConvPeer> Convolution => convolution.Value;

    /// <summary>The keys of the peers that apply to <paramref name="c"/>: the convolution peers for a convolution, the
    /// GEMM peers otherwise (each then says why it does or does not apply).</summary>
    public static IReadOnlyList<string> KeysFor(Computation c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return c.AsConv() is null ? [.. All.Select(p => p.Key)] : [.. Convolution.Select(p => p.Key)];
    }

    /// <summary>The peer with this key (case-insensitive), or null if there is no such key.</summary>
    public static Peer? Get(string key) => All.FirstOrDefault(p => string.Equals(p.Key, key, StringComparison.OrdinalIgnoreCase));

    /// <summary>Times <paramref name="peer"/>'s sgemm on <c>C[m,n] += A[m,k] * B[k,n]</c> with aligned,
    /// randomly filled buffers on the calling thread; flops = 2mnk.</summary>
    public static unsafe Measurement MeasurePeer(Peer peer, int m, int n, int k, MeasureOptions options)
    {
        ArgumentNullException.ThrowIfNull(peer);
        if (!peer.Available) throw new InvalidOperationException($"peer {peer.Key} is unavailable: {peer.Problem}");
        var rng = new Random(1);
        using AlignedBuffer a = new((long)m * k), b = new((long)k * n), c = new((long)m * n);
        foreach (var buffer in new[] { a, b, c }) buffer.Fill(rng);
        float* pa = a.Pointer, pb = b.Pointer, pc = c.Pointer;
        return Timing.Measure(() => peer.Sgemm(m, n, k, pa, pb, pc), 2.0 * m * n * k, options);
    }

    /// <summary>Same as <see cref="MeasurePeer"/>.</summary>
    public static Measurement Measure(Peer peer, int m, int n, int k, MeasureOptions options) => MeasurePeer(peer, m, n, k, options);

    /// <summary>Runs <paramref name="peer"/> once on random data and checks its output against <see cref="Reference"/>
    /// within <see cref="Reference.Tolerance"/> (the verifier's rule).</summary>
    public static Verification VerifyConv(ConvPeer peer, ConvShape shape, int seed = 1) => CheckAndTime(peer, shape, null, null, seed).Verification;

    /// <summary>The convolution peer's GFLOPS on <paramref name="shape"/> on the calling thread, after a check of its
    /// result: a peer that is unavailable, fails, or gives a wrong result is reported (null GFLOPS and the problem;
    /// "wrong result: ..." for the latter), never timed.</summary>
    public static PeerResult MeasureConv(ConvPeer peer, ConvShape shape, MeasureOptions options) => MeasureConv(peer, shape, options, null);

    /// <summary><see cref="MeasureConv(ConvPeer, ConvShape, MeasureOptions)"/> with a hook that may alter the peer's
    /// output before the check (for tests of the wrong-result path).</summary>
    internal static PeerResult MeasureConv(ConvPeer peer, ConvShape shape, MeasureOptions options, Action<Span<float>>? corrupt)
    {
        ArgumentNullException.ThrowIfNull(peer);
        if (!peer.Available) return new PeerResult(peer.Key, null, peer.Problem);
        try
        {
            var (verification, measurement) = CheckAndTime(peer, shape, options, corrupt, 1);
            return verification.Passed
                ? new PeerResult(peer.Key, measurement!.Value.Gflops, null)
                : new PeerResult(peer.Key, null, $"wrong result: {verification.Problem}");
        }
        catch (InvalidOperationException e)
        {
            return new PeerResult(peer.Key, null, e.Message);
        }
    }

    /// <summary>Prepares the peer on random plain buffers, runs it once and compares with the exact result (output
    /// starting at zero); when it passes and <paramref name="options"/> is given, times <see cref="ConvRun.Run"/>.</summary>
    private static unsafe (Verification Verification, Measurement? Measurement) CheckAndTime(ConvPeer peer, ConvShape s, MeasureOptions? options,
                                                                                          Action<Span<float>>? corrupt, int seed)
    {
        ArgumentNullException.ThrowIfNull(peer);
        var c = s.ToComputation();
        var rng = new Random(seed);
        using AlignedBuffer output = new(c.Output.Length, Verifier.Guard), input = new(c.Left.Length, Verifier.Guard), weights = new(c.Right.Length, Verifier.Guard);
        input.Fill(rng);
        weights.Fill(rng);
        output.Clear();
        using var run = peer.Prepare(s, input.Pointer, weights.Pointer, output.Pointer);
        run.Run();
        run.Finish();
        corrupt?.Invoke(output.Span);
        var (exact, magnitude) = Reference.Exact(c, new float[c.Output.Length], input.Span, weights.Span);
        double tolerance = Reference.Tolerance(c);
        string? problem = Verifier.Compare(c, output.Span, exact, magnitude, out double worst);
        if (problem is null && !(output.GuardsIntact() && input.GuardsIntact() && weights.GuardsIntact())) problem = "a guard zone was overwritten";
        var verification = new Verification(problem is null, worst, tolerance, problem);
        if (problem is not null || options is not { } o) return (verification, null);
        return (verification, Timing.Measure(run.Run, s.Flops, o));
    }
}
