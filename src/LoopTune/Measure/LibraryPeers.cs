using LoopTune.Ir;

namespace LoopTune.Measure;

/// <summary>One library as <c>compare-libraries</c> reports it, whatever the contraction: its GEMM for every (batched,
/// transposed) matrix product (<see cref="GemmForm"/>), its convolution peer for a convolution. OpenBLAS and BLIS
/// convolve by im2col + their own sgemm, oneDNN with its convolution primitive.</summary>
public sealed class LibraryPeers(string key, GemmPeer gemm, ConvPeer conv)
{
    private static readonly Lazy<IReadOnlyList<LibraryPeers>> all = new(() =>
    [
        new("openblas", Peers.Get("openblas")!, Peers.Convolution.Single(p => p.Key == "im2col_openblas")),
        new("blis", Peers.Get("blis")!, new Im2colBlas(Peers.Get("blis")!)),
        new("onednn", Peers.Get("onednn")!, Peers.Convolution.Single(p => p.Key == "onednn_conv")),
    ]);

    /// <summary>OpenBLAS, BLIS and oneDNN, in that order, available or not.</summary>
    public static IReadOnlyList<LibraryPeers> All => all.Value;

    /// <summary>"openblas", "blis" or "onednn": the column's name.</summary>
    public string Key => key;

    /// <summary>The GEMM used for matrix products.</summary>
    public GemmPeer Gemm => gemm;

    /// <summary>The convolution peer used for convolutions.</summary>
    public ConvPeer Conv => conv;

    /// <summary>The library's call for <paramref name="c"/>, checked against the reference and ready to be timed next to
    /// others: its convolution for a convolution, else its GEMM when <paramref name="c"/> has a BLAS form. Otherwise why
    /// not: "missing" when the library is not installed, a wrong result (never timed), a one-line reason when it has no
    /// call for <paramref name="c"/>. The key is <see cref="Key"/>; <see cref="PeerResult.Via"/> names the call.</summary>
    public PreparedPeer Prepare(Computation c)
    {
        ArgumentNullException.ThrowIfNull(c);
        using var prepared = c.AsConv() is { } shape ? Peers.PrepareConv(conv, shape) : Peers.PrepareGemm(gemm, c);
        return prepared.Renamed(key);
    }

    /// <summary>One line on what is called and how it is kept to one thread, or why it is missing.</summary>
    public string Describe() =>
        !gemm.Available ? $"{key}: missing ({gemm.Problem})"
        : $"{key}: {gemm.Library}{(gemm.Version is { } v ? $" ({v})" : "")}, {gemm.Threading}; convolutions: {(conv.Available ? conv.Timed : $"missing ({conv.Problem})")}";
}
