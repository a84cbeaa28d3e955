using LoopTune.Ir;

namespace LoopTune.Measure;

/// <summary>One library as <c>compare-libraries</c> reports it, whatever the contraction: its GEMM for every (batched,
/// transposed) matrix product (<see cref="GemmForm"/>), its convolution peer for a convolution. OpenBLAS and BLIS
/// convolve by im2col + their own sgemm, oneDNN with its convolution primitive; ONNX Runtime runs either as a one-node
/// model (<see cref="OnnxRuntimePeer"/>). Every library counts toward "the best library" of a benchmark, ONNX Runtime too:
/// it is a library users have, and the yardstick is the fastest one timed side by side.</summary>
public sealed class LibraryPeers
{
    readonly Func<Computation, int, PreparedPeer> prepare;
    readonly Func<string> describe;

    /// <summary>A native library: <paramref name="gemm"/> for matrix products, <paramref name="conv"/> for convolutions.</summary>
    public LibraryPeers(string key, GemmPeer gemm, ConvPeer conv)
        : this(key, gemm, (c, n) => c.Convolution is { } shape ? Peers.PrepareConv(conv, shape, n) : Peers.PrepareGemm(gemm, c, n), () => Describe(key, gemm, conv))
    {
        (Gemm, Conv) = (gemm, conv);
    }

    LibraryPeers(string key, NativePeer peer, Func<Computation, int, PreparedPeer> prepare, Func<string> describe) =>
        (Key, Peer, this.prepare, this.describe) = (key, peer, prepare, describe);

    /// <summary>ONNX Runtime's one-node models (<see cref="Peers.PrepareOnnxRuntime"/>), under its key.</summary>
    public static LibraryPeers OnnxRuntime(OnnxRuntimePeer peer)
    {
        ArgumentNullException.ThrowIfNull(peer);
        return new(peer.Key, peer, (c, n) => Peers.PrepareOnnxRuntime(peer, c, n), peer.Describe);
    }

    private static readonly Lazy<IReadOnlyList<LibraryPeers>> all = new(() =>
    [
        new("openblas", Peers.Get("openblas")!, Peers.Convolution.Single(p => p.Key == "im2col_openblas")),
        new("blis", Peers.Get("blis")!, new Im2colBlas(Peers.Get("blis")!)),
        new("onednn", Peers.Get("onednn")!, Peers.Convolution.Single(p => p.Key == "onednn_conv")),
        OnnxRuntime(OnnxRuntimePeer.Instance),
    ]);

    /// <summary>OpenBLAS, BLIS, oneDNN and ONNX Runtime, in that order, available or not.</summary>
    public static IReadOnlyList<LibraryPeers> All => all.Value;

    /// <summary>The libraries whose keys <paramref name="keys"/> lists (comma-separated, case-insensitive; <see cref="All"/>
    /// when null or blank), in <see cref="All"/>'s order; an unknown key is a <see cref="LoopTuneException"/> naming it
    /// and the known ones.</summary>
    public static IReadOnlyList<LibraryPeers> Select(string? keys)
    {
        if (string.IsNullOrWhiteSpace(keys)) return All;
        var wanted = keys.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var k in wanted)
            if (!All.Any(l => string.Equals(l.Key, k, StringComparison.OrdinalIgnoreCase)))
                throw new LoopTuneException($"unknown library '{k}'; the libraries are: {string.Join(", ", All.Select(l => l.Key))}");
        return [.. All.Where(l => wanted.Contains(l.Key, StringComparer.OrdinalIgnoreCase))];
    }

    /// <summary>"openblas", "blis", "onednn" or "onnxruntime": the column's name.</summary>
    public string Key { get; }

    /// <summary>The library itself (for a native one, its GEMM): whether it is available and why not.</summary>
    public NativePeer Peer { get; }

    /// <summary>The GEMM used for matrix products; null for a library that is not a BLAS (ONNX Runtime).</summary>
    public GemmPeer? Gemm { get; }

    /// <summary>The convolution peer used for convolutions; null for a library that is not a BLAS (ONNX Runtime).</summary>
    public ConvPeer? Conv { get; }

    /// <summary>The library's call for <paramref name="c"/>, checked against the reference and ready to be timed next to
    /// others: its convolution for a convolution, else its GEMM when <paramref name="c"/> has a BLAS form (ONNX Runtime:
    /// its one-node model). Otherwise why not: "missing" when the library is not installed, a wrong result (never timed),
    /// a one-line reason when it has no call for <paramref name="c"/>. The key is <see cref="Key"/>;
    /// <see cref="PeerResult.Via"/> names the call. The library runs on <paramref name="threads"/> threads.</summary>
    public PreparedPeer Prepare(Computation c, int threads = 1)
    {
        ArgumentNullException.ThrowIfNull(c);
        using var prepared = prepare(c, threads);
        return prepared.Renamed(Key);
    }

    /// <summary>One line on what is called and how its threads are set, or why it is missing.</summary>
    public string Describe() => describe();

    static string Describe(string key, GemmPeer gemm, ConvPeer conv) =>
        !gemm.Available ? $"{key}: missing ({gemm.Problem})"
        : $"{key}: {gemm.Library}{(gemm.Version is { } v ? $" ({v})" : "")}, {gemm.Threading}; convolutions: {(conv.Available ? conv.Timed : $"missing ({conv.Problem})")}";
}
