using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Measure;

/// <summary>A peer library's speed on the same computation, or why there is none.</summary>
public sealed record PeerResult(string Key, double? Gflops, string? Problem);

/// <summary>Everything <c>looptune run</c> reports about one schedule: it compiled, passed the check, and ran this fast,
/// next to the peak and the peers measured in the same process.</summary>
public sealed record Evaluation(Nest Nest, Kernel Kernel, Verification Verification, Measurement Measurement,
                                double PeakGflops, IReadOnlyList<PeerResult> Peers)
{
    public double Gflops => Measurement.Gflops;
    public double FractionOfPeak => Gflops / PeakGflops;
    public double? RatioTo(string peer) => Peers.FirstOrDefault(p => p.Key == peer)?.Gflops is double g && g > 0 ? Gflops / g : null;

    /// <summary>Compiles, verifies and times <paramref name="nest"/>, then times the peers on the same shape.</summary>
    public static Evaluation Run(Nest nest, MeasureOptions options, bool peers = true, double? peakGflops = null)
    {
        Kernel.WarmUp();
        var kernel = Kernel.Compile(nest);
        var verification = Verifier.Verify(kernel);
        var measurement = KernelTiming.Measure(kernel, options);
        return new Evaluation(nest, kernel, verification, measurement, peakGflops ?? PeakCache.GetOrMeasure(),
                              peers ? MeasurePeers(nest.Computation, options) : NotMeasured(nest.Computation));
    }

    /// <summary>The peers that apply to <paramref name="c"/>, each "not measured".</summary>
    public static IReadOnlyList<PeerResult> NotMeasured(Computation c) => [.. Measure.Peers.KeysFor(c).Select(k => new PeerResult(k, null, "not measured"))];

    /// <summary>What the peers of <paramref name="c"/> do: a convolution gets the convolution peers (oneDNN's primitive,
    /// im2col + OpenBLAS); anything else the GEMM peers, which time a matrix product and give a one-line reason for any
    /// other contraction. Null GFLOPS with a reason when a library is missing or its result is wrong.</summary>
    public static IReadOnlyList<PeerResult> MeasurePeers(Computation c, MeasureOptions options)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (c.AsConv() is not { } conv) return [.. Measure.Peers.All.Select(p => MeasurePeer(p, c, options))];
        using var pin = ThreadPinning.Pin();
        return [.. Measure.Peers.Convolution.Select(p => Measure.Peers.MeasureConv(p, conv, options))];
    }

    /// <summary>One GEMM peer's GFLOPS on <paramref name="c"/>, timed on a pinned thread, or null with the reason it has none.</summary>
    public static PeerResult MeasurePeer(Peer peer, Computation c, MeasureOptions options)
    {
        ArgumentNullException.ThrowIfNull(peer);
        ArgumentNullException.ThrowIfNull(c);
        if (!peer.Available) return new PeerResult(peer.Key, null, peer.Problem);
        if (c.AsMatmul() is not { } mm) return new PeerResult(peer.Key, null, NoGemmReason(c));
        using var pin = ThreadPinning.Pin();
        return new PeerResult(peer.Key, Measure.Peers.Measure(peer, mm.M, mm.N, mm.K, options).Gflops, null);
    }

    /// <summary>Why a GEMM peer does not apply to <paramref name="c"/>, in one line.</summary>
    public static string NoGemmReason(Computation c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return c.AsConv() is not null
            ? "a convolution: see the convolution peers"
            : "no peer: not a plain matrix product C[m,n] += A[m,k] * B[k,n] nor a convolution O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s]";
    }
}
