using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Models;
using Xunit.Abstractions;

namespace LoopTune.Tests.Measure;

/// <summary>ONNX Runtime as a peer: the one-node model of each contraction, its result checked against the reference
/// before it is timed (a wrong one flagged, never timed), and a reason for a contraction it has no node for. Skipped with
/// a message when ONNX Runtime cannot be loaded (xunit 2 has no run-time skip).</summary>
public sealed class OnnxRuntimePeerTests(ITestOutputHelper output)
{
    OnnxRuntimePeer? Available()
    {
        var peer = OnnxRuntimePeer.Instance;
        if (peer.Available) return peer;
        output.WriteLine($"skipped: onnxruntime is unavailable: {peer.Problem}");
        return null;
    }

    [Theory]
    [InlineData("mm 24 16 8", "MatMul [24,8] x [8,16]")]
    [InlineData("mm 1 1 1", "MatMul [1,1] x [1,1]")]
    [InlineData("C[m,n] += A[k,m] * B[n,k] m=16 n=12 k=8", "Gemm transA=1 transB=1 [8,16] x [12,8]")]
    [InlineData("C[m,n] += A[m,k] * B[n,k] m=7 n=5 k=9", "Gemm transA=0 transB=1 [7,9] x [5,9]")]
    [InlineData("C[b,m,n] += A[b,m,k] * B[b,k,n] b=3 m=8 n=16 k=8", "MatMul [3,8,8] x [3,8,16]")]
    [InlineData("O[f,h,w] += I[c,h,w] * W[f,c] f=12 h=5 w=6 c=7", "MatMul [12,7] x [7,30]")]
    [InlineData("conv 2 8 8 4 3 3", "Conv (weights an initializer)")]
    [InlineData("conv 3 9 11 5 1 1", "Conv (weights an initializer)")]
    [InlineData("conv 7 13 9 17 3 2", "Conv (weights an initializer)")]
    public void ResultEqualsTheReferenceThenItIsTimed(string spec, string node)
    {
        var c = Computation.Parse(spec);
        Assert.Equal(node, OnnxRuntimePeer.Classify(c).Form?.Describe);
        if (Available() is not { } peer) return;
        using var prepared = Peers.PrepareOnnxRuntime(peer, c);
        Assert.True(prepared.Result is null, prepared.Result?.Problem);
        Assert.Equal(node, prepared.Via);
        var timed = prepared.Time(ConvPeerTests.Tiny);
        Assert.Equal((PeerStatus.Measured, "onnxruntime", node), (timed.Status, timed.Key, timed.Via));
        Assert.True(timed.Gflops > 0 && double.IsFinite(timed.Gflops!.Value), timed.ToString());
    }

    [Theory]
    [InlineData("mm 24 16 8")]
    [InlineData("conv 3 9 11 5 3 3")]
    public void ACorruptedResultIsAWrongResultNeverTimed(string spec)
    {
        if (Available() is not { } peer) return;
        using var prepared = Peers.PrepareOnnxRuntime(peer, Computation.Parse(spec), o => o[17] += 0.5f);
        Assert.Equal(PeerStatus.WrongResult, prepared.Result?.Status);
        Assert.StartsWith(PeerResult.WrongResultPrefix, prepared.Result!.Problem);
        Assert.Null(prepared.Run);
    }

    [Theory]
    [InlineData("O[f,h] += I[c,2*h+r] * W[f,c,r] f=3 h=4 c=2 r=3")]
    [InlineData("C[m,n] += A[m,k,l] * B[k,n] m=8 n=16 k=4 l=3")]
    [InlineData("O[f,h,w] += I[c,p,2*h+r,w+q] * W[f,c,r,p,q] f=4 h=3 w=3 c=2 p=2 r=3 q=2")]
    public void AContractionWithoutANodeHasTheBlasReason(string spec)
    {
        var c = Computation.Parse(spec);
        var (form, reason) = OnnxRuntimePeer.Classify(c);
        Assert.Null(form);
        Assert.Equal(GemmForm.Classify(c).Reason, reason);
        using var prepared = Peers.PrepareOnnxRuntime(OnnxRuntimePeer.Instance, c);
        var expected = OnnxRuntimePeer.Instance.Available ? (PeerStatus.NoPeer, PeerResult.NoPeerPrefix + reason) : (PeerStatus.Missing, OnnxRuntimePeer.Instance.Problem);
        Assert.Equal(expected, (prepared.Result!.Status, prepared.Result.Problem));
    }

    [Fact]
    public void AOneNodeModelMadeFromScratchComputesTheProduct()
    {
        if (Available() is null) return;
        const int m = 5, n = 7, k = 3;
        var rng = new Random(3);
        float[] a = [.. Enumerable.Range(0, m * k).Select(_ => (float)rng.NextDouble() - 0.5f)];
        float[] b = [.. Enumerable.Range(0, k * n).Select(_ => (float)rng.NextDouble() - 0.5f)];
        // B a constant (an initializer), A fed
        var model = SingleNodeModel.Make("MatMul", [new("A", [m, k]), new("B", [k, n], b)], [m, n]);
        Assert.Equal(["A"], model.Inputs.Select(i => i.Name));
        using var node = new OnnxRuntimeNode(model, new Dictionary<string, float[]> { ["A"] = a });
        node.Run();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double exact = 0;
                for (int l = 0; l < k; l++) exact += (double)a[i * k + l] * b[l * n + j];
                Assert.Equal(exact, node.Output[i * n + j], 1e-5);
            }
    }

    [Fact]
    public void EveryPeerListIncludesOnnxRuntime()
    {
        Assert.Equal("onnxruntime", LibraryPeers.All[^1].Key);
        Assert.Equal(["openblas", "blis", "onednn", "onnxruntime"], LibraryPeers.All.Select(l => l.Key));
        Assert.Equal(["onnxruntime", "openblas"], LibraryPeers.Select("openblas, OnnxRuntime").Select(l => l.Key).Reverse());
        Assert.Contains("'mkl'", Assert.Throws<LoopTuneException>(() => LibraryPeers.Select("mkl")).Message);
        Assert.Equal(["openblas", "blis", "onednn", "onnxruntime"], KernelReport.PreparePeers(Computation.Parse("mm 8 8 8")).Select(p => { p.Dispose(); return p.Key; }));
        Assert.Equal(["onednn_conv", "im2col_openblas", "onnxruntime"], KernelReport.NotMeasured(Computation.Parse("conv 2 6 6 3 3 3")).Select(p => p.Key));
        Assert.Contains(OnnxRuntimePeer.Instance.Available ? "ONNX Runtime 1." : "missing", OnnxRuntimePeer.Instance.Describe());
    }
}
