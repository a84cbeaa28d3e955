using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Tests.Ir;
using Xunit.Abstractions;

namespace LoopTune.Tests.Measure;

/// <summary>Every BLAS form of <see cref="GemmFormTests"/> run by every GEMM peer (OpenBLAS, BLIS through cblas and through
/// bli_sgemm's strides, oneDNN, and a plain managed sgemm that needs no library) against the reference; a wrong result
/// flagged and never timed; a missing library reported. A peer whose library is not installed is skipped with a message.</summary>
public sealed class GemmPeerTests(ITestOutputHelper output)
{
    static readonly MeasureOptions Tiny = new(0.001, 0.005, 3, 0.0005, 100);

    static readonly string[] Keys = ["managed", "openblas", "blis", "blis-typed", "onednn"];

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var key in Keys)
            foreach (var spec in GemmFormTests.Forms().Select(row => (string)row[0]))
                data.Add(key, spec);
        return data;
    }

    GemmPeer? Get(string key)
    {
        GemmPeer peer = key switch
        {
            "managed" => new ManagedGemm(),
            "blis-typed" => NativeGemm.Blis(preferCblas: false),
            _ => Peers.Get(key)!,
        };
        if (peer.Available) return peer;
        output.WriteLine($"skipped: {key} is unavailable: {peer.Problem}");
        return null;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryFormMatchesTheReference(string key, string spec)
    {
        if (Get(key) is not { } peer) return;
        var c = Computation.Parse(spec);
        var v = Peers.VerifyGemm(peer, c, seed: spec.Length);
        Assert.True(v.Passed, $"{key} on {spec} ({c.AsGemm()}): {v.Problem}");
        var result = Peers.MeasureGemm(peer, c, Tiny);
        Assert.True(result.Status == PeerStatus.Measured && result.Gflops > 0, $"{key}: {result}");
        Assert.Equal(c.AsGemm()!.Describe(), result.Via);
    }

    [Fact]
    public void ABatchIsOneSgemmPerBatchIndex()
    {
        var peer = new ManagedGemm();
        Assert.True(Peers.VerifyGemm(peer, Computation.Parse("C[g,b,m,n] += A[g,b,m,k] * B[b,g,k,n] g=2 b=3 m=4 n=5 k=6")).Passed);
        Assert.Equal(6, peer.Calls);
    }

    [Fact]
    public void AWrongGemmIsRunOnceForTheCheckAndNeverTimed()
    {
        var wrong = new ManagedGemm(dropLastK: true);
        var result = Peers.MeasureGemm(wrong, Computation.Parse("C[m,n] += A[k,m] * B[n,k] m=8 n=6 k=5"), Tiny);
        Assert.Equal(PeerStatus.WrongResult, result.Status);
        Assert.Null(result.Gflops);
        Assert.StartsWith("wrong result: C element ", result.Problem);
        Assert.Equal(1, wrong.Calls);
    }

    [Fact]
    public void AGemmThatOverwritesInsteadOfAddingIsWrong()
    {
        var result = Peers.MeasureGemm(new ManagedGemm(overwrite: true), Computation.Parse("mm 8 6 5"), Tiny);
        Assert.Equal(PeerStatus.WrongResult, result.Status);
        Assert.True(Peers.VerifyGemm(new ManagedGemm(), Computation.Parse("mm 8 6 5")).Passed);
    }

    [Theory]
    [InlineData("openblas")]
    [InlineData("onednn")]
    public void ACorruptedOutputOfARealLibraryIsFlagged(string key)
    {
        if (Get(key) is not { } peer) return;
        var result = Peers.MeasureGemm(peer, Computation.Parse("C[b,m,n] += A[b,m,k] * B[b,k,n] b=3 m=8 n=6 k=5"), Tiny, o => o[40] += 0.5f);
        Assert.Equal(PeerStatus.WrongResult, result.Status);
        Assert.StartsWith("wrong result: C element 40", result.Problem);
    }

    [Fact]
    public void NoFormNoLibraryAreReportedNotTimed()
    {
        var peer = new ManagedGemm();
        var none = Peers.MeasureGemm(peer, Computation.Parse("C[m,n] += A[m,k,l] * B[k,n] m=4 n=6 k=3 l=5"), Tiny);
        Assert.Equal(PeerStatus.NoPeer, none.Status);
        Assert.Equal("no peer: a reduction over an index of one operand only: l indexes A alone", none.Problem);
        Assert.Equal(0, peer.Calls);
        Assert.Throws<ArgumentException>(() => Peers.VerifyGemm(peer, Computation.Parse("conv 2 5 5 3 3 3")));

        var missing = Peers.MeasureGemm(NativeGemm.OpenBlas("libno-such-blas-looptune.so.0"), Computation.Parse("mm 4 4 4"), Tiny);
        Assert.Equal(PeerStatus.Missing, missing.Status);
        Assert.Contains("not found", missing.Problem);
    }

    [Fact]
    public void LeadingDimensionsTooSmallAreRefused()
    {
        var peer = new ManagedGemm();
        Assert.Throws<ArgumentOutOfRangeException>(() => Call(peer, false, false, 4, 4, 4, lda: 3, ldb: 4, ldc: 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => Call(peer, true, false, 5, 4, 3, lda: 4, ldb: 4, ldc: 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => Call(peer, false, true, 4, 5, 3, lda: 3, ldb: 2, ldc: 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => Call(peer, false, false, 4, 5, 3, lda: 3, ldb: 5, ldc: 4));
        Assert.Equal(0, peer.Calls);
    }

    static unsafe void Call(GemmPeer peer, bool ta, bool tb, int m, int n, int k, int lda, int ldb, int ldc)
    {
        var buffer = new float[64];
        fixed (float* p = buffer) peer.Sgemm(ta, tb, m, n, k, p, lda, p, ldb, p, ldc);
    }

    [Fact]
    public void EvaluationTimesEveryGemmPeerOnATransposedProduct()
    {
        var c = Computation.Parse("C[m,n] += A[k,m] * B[n,k] m=16 n=12 k=8");
        var results = KernelReport.MeasurePeers(c, Tiny);
        Assert.Equal(["openblas", "blis", "onednn", "onnxruntime"], results.Select(r => r.Key));
        foreach (var r in results)
        {
            NativePeer peer = Peers.Get(r.Key) as NativePeer ?? OnnxRuntimePeer.Instance;
            string via = peer is OnnxRuntimePeer ? "Gemm transA=1 transB=1 [8,16] x [12,8]" : "sgemm T,T";
            Assert.True(peer.Available ? r.Status == PeerStatus.Measured && r.Via == via : r.Status == PeerStatus.Missing, r.ToString());
        }
    }

    /// <summary>The plain triple loop of a row-major sgemm with transposes and leading dimensions (an oracle independent of
    /// any library), counting its calls; <paramref name="dropLastK"/> leaves out the last reduction step,
    /// <paramref name="overwrite"/> writes C instead of adding to it.</summary>
    internal sealed unsafe class ManagedGemm(bool dropLastK = false, bool overwrite = false) : GemmPeer("managed", "none", null, null, "one thread")
    {
        public int Calls { get; private set; }

        protected override void Call(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, int threads)
        {
            Calls++;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    float sum = overwrite ? 0 : c[(long)i * ldc + j];
                    for (int p = 0; p < (dropLastK ? k - 1 : k); p++)
                        sum += (transA ? a[(long)p * lda + i] : a[(long)i * lda + p]) * (transB ? b[(long)j * ldb + p] : b[(long)p * ldb + j]);
                    c[(long)i * ldc + j] = sum;
                }
        }
    }
}
