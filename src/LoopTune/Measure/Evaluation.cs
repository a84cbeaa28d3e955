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
                              peers ? MeasurePeers(nest.Computation, options) : [.. Measure.Peers.All.Select(p => new PeerResult(p.Key, null, "not measured"))]);
    }

    /// <summary>Each known peer's GFLOPS on <paramref name="c"/>: null with a reason when the library is missing or the
    /// computation is not a matrix product (the peers are GEMMs).</summary>
    public static IReadOnlyList<PeerResult> MeasurePeers(Computation c, MeasureOptions options) =>
        [.. Measure.Peers.All.Select(p => MeasurePeer(p, c, options))];

    /// <summary>One peer's GFLOPS on <paramref name="c"/>, timed on a pinned thread, or null with the reason it has none.</summary>
    public static PeerResult MeasurePeer(Peer peer, Computation c, MeasureOptions options)
    {
        if (!peer.Available) return new PeerResult(peer.Key, null, peer.Problem);
        if (c.AsMatmul() is not { } mm) return new PeerResult(peer.Key, null, "not a matrix product");
        using var pin = ThreadPinning.Pin();
        return new PeerResult(peer.Key, Measure.Peers.Measure(peer, mm.M, mm.N, mm.K, options).Gflops, null);
    }
}
