using LoopTune.Learning.Nn;
using LoopTune.Measure;

namespace LoopTune.Learning;

/// <summary>
/// Which sgemm a learner's batches run on (<see cref="Gemm.Use"/>): a peer library bound by <see cref="Peers"/> (the same
/// function pointers the comparisons time, on the calling thread alone) or the network library's managed kernels. The
/// network library (<c>Learning/Nn</c>) may use no other layer, so it only names the call (<see cref="ISgemm"/>); this
/// layer, which may use Measure, supplies the peer.
/// </summary>
public static class NetworkGemm
{
    /// <summary>What <see cref="ApexDqnConfig.Gemm"/> may say: "auto" (oneDNN, else OpenBLAS, else managed), "managed",
    /// "onednn", "openblas", or "onednn_bf16": oneDNN's products with the factors rounded to bfloat16 and float32 sums
    /// (<see cref="Bf16Gemm"/>; twice the products a second where the CPU has them, refused where it has not).</summary>
    public static readonly IReadOnlyList<string> Choices = ["auto", "managed", "onednn", "openblas", "onednn_bf16"];

    /// <summary>The sgemm <paramref name="choice"/> names, or null for the managed kernels; "auto" takes the first peer
    /// that loaded. A named peer that did not load is a <see cref="LoopTuneException"/> saying why.</summary>
    public static ISgemm? Choose(string choice)
    {
        ArgumentNullException.ThrowIfNull(choice);
        switch (choice.ToLowerInvariant())
        {
            case "managed": return null;
            case "auto":
                return ((string[])["onednn", "openblas"]).Select(Peers.Get).FirstOrDefault(p => p is { Available: true }) is { } found ? new PeerSgemm(found) : null;
            case "onednn_bf16":
                return new Bf16Sgemm(Bf16Gemm.Create());
            case "onednn" or "openblas":
                var peer = Peers.Get(choice)!;
                return peer.Available ? new PeerSgemm(peer) : throw new LoopTuneException($"Gemm={choice}: {peer.Problem}");
            default:
                throw new LoopTuneException($"Gemm={choice}: expected one of {string.Join(", ", Choices)}");
        }
    }

    /// <summary>bfloat16 products on one thread (the learner's); its primitives and copies are freed with it (the learner
    /// disposes it).</summary>
    sealed unsafe class Bf16Sgemm(Bf16Gemm gemm) : ISgemm, IDisposable
    {
        public string Name => "onednn_bf16";

        public void Dispose() => gemm.Dispose();

        public void Sgemm(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc) =>
            gemm.Multiply(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
    }

    /// <summary>A peer's sgemm on one thread (the learner's).</summary>
    sealed unsafe class PeerSgemm(GemmPeer peer) : ISgemm
    {
        public string Name => peer.Key;

        public void Sgemm(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc) =>
            peer.Sgemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, 1);
    }
}
