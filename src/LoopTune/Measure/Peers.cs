namespace LoopTune.Measure;

/// <summary>The peer GEMM libraries known to LoopTune, probed once on first use, and their timing.</summary>
public static class Peers
{
    private static readonly Lazy<IReadOnlyList<Peer>> all = new(() =>
        [Peer.OpenBlas(), Peer.Blis(), Peer.OneDnn("libdnnl.so.3", "libdnnl.so.2")]);

    /// <summary>Every peer, available or not, in the order openblas, blis, onednn.</summary>
    public static IReadOnlyList<Peer> All => all.Value;

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
}
