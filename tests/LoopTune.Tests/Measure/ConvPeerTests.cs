using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using Xunit.Abstractions;

namespace LoopTune.Tests.Measure;

/// <summary>The convolution peers (oneDNN's primitive, im2col + OpenBLAS): same result as the reference, a wrong result
/// reported and never timed, a missing library reported. A peer whose library is not installed is skipped with a
/// message (xunit 2 has no run-time skip: the message goes to the test output and the test returns).</summary>
public sealed class ConvPeerTests(ITestOutputHelper output)
{
    internal static readonly MeasureOptions Tiny = new(0.001, 0.005, 3, 0.0005, 100);

    public static TheoryData<string, int, int, int, int, int, int> Cases()
    {
        var data = new TheoryData<string, int, int, int, int, int, int>();
        foreach (string key in new[] { "onednn_conv", "im2col_openblas" })
            foreach (var (c, h, w, f, r, s) in new[] { (1, 5, 7, 3, 3, 3), (3, 9, 11, 5, 3, 3), (4, 8, 8, 6, 1, 1), (7, 13, 9, 17, 3, 3), (2, 7, 6, 3, 2, 3), (16, 34, 34, 32, 3, 3) })
                data.Add(key, c, h, w, f, r, s);
        return data;
    }

    ConvPeer? Available(string key)
    {
        var peer = Peers.Convolution.Single(p => p.Key == key);
        if (peer.Available) return peer;
        output.WriteLine($"skipped: {key} is unavailable: {peer.Problem}");
        return null;
    }

    [Fact]
    public void ConvolutionPeersAreListedInOrderEachAvailableOrExplained()
    {
        Assert.Equal(["onednn_conv", "im2col_openblas"], Peers.Convolution.Select(p => p.Key));
        Assert.All(Peers.Convolution, p => Assert.True(p.Available ? p.Problem is null : !string.IsNullOrEmpty(p.Problem)));
        Assert.Equal(["onednn_conv", "im2col_openblas", "onnxruntime"], Peers.KeysFor(Computation.Parse("conv 2 5 5 3 3 3")));
        // the output channels in blocks: the same convolution, so the same peers, each in its own layouts
        Assert.Equal(["onednn_conv", "im2col_openblas", "onnxruntime"], Peers.KeysFor(Computation.Parse("conv 2 5 5 4 3 3 2")));
        Assert.Equal(["openblas", "blis", "onednn", "onnxruntime"], Peers.KeysFor(Computation.Parse("mm 4 4 4")));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ResultEqualsTheReferenceWithinTheVerifierTolerance(string key, int c, int h, int w, int f, int r, int s)
    {
        if (Available(key) is not { } peer) return;
        var shape = new ConvShape(c, h, w, f, r, s);
        var v = Peers.VerifyConv(peer, shape, seed: c * 7 + f);
        Assert.True(v.Passed, $"{key} on {shape}: {v.Problem}");
        Assert.Equal(Reference.Tolerance(shape.ToComputation()), v.Tolerance);
        var result = Peers.MeasureConv(peer, shape, Tiny);
        Assert.True(result.Problem is null && result.Gflops > 0 && double.IsFinite(result.Gflops.Value), $"{key}: {result}");
    }

    [Theory]
    [InlineData("onednn_conv")]
    [InlineData("im2col_openblas")]
    public void CorruptedOutputIsAWrongResultNotATime(string key)
    {
        if (Available(key) is not { } peer) return;
        var result = Peers.MeasureConv(peer, new ConvShape(3, 9, 11, 5, 3, 3), Tiny, o => o[17] += 0.5f);
        Assert.Equal(key, result.Key);
        Assert.Null(result.Gflops);
        Assert.StartsWith("wrong result: O element 17", result.Problem);
    }

    [Fact]
    public void AWrongPeerIsRunOnceForTheCheckAndNeverTimed()
    {
        var wrong = new WrongPeer();
        var result = Peers.MeasureConv(wrong, new ConvShape(2, 6, 6, 3, 3, 3), Tiny);
        Assert.Null(result.Gflops);
        Assert.StartsWith("wrong result", result.Problem);
        Assert.Equal(1, wrong.Runs);

        var right = new WrongPeer(skipLastChannel: false);
        var ok = Peers.MeasureConv(right, new ConvShape(2, 6, 6, 3, 3, 3), Tiny);
        Assert.True(ok.Gflops > 0, ok.Problem);
        Assert.True(right.Runs > 1);
    }

    [Fact]
    public void MissingLibraryIsReportedNotThrown()
    {
        var peer = OneDnnConv.Load("libno-such-peer-looptune.so.3", "libno-such-peer-looptune.so.2");
        Assert.False(peer.Available);
        Assert.Equal("onednn_conv", peer.Key);
        Assert.Contains("not found", peer.Problem);
        var result = Peers.MeasureConv(peer, new ConvShape(1, 3, 3, 1, 1, 1), Tiny);
        Assert.Null(result.Gflops);
        Assert.Contains("not found", result.Problem);

        var noBlas = new Im2colBlas(NativeGemm.OpenBlas("libno-such-blas-looptune.so.0"));
        Assert.False(noBlas.Available);
        Assert.Contains("not found", Peers.MeasureConv(noBlas, new ConvShape(1, 3, 3, 1, 1, 1), Tiny).Problem);
    }

    [Fact]
    public void MissingSymbolIsReportedNotThrown()
    {
        if (!OperatingSystem.IsLinux()) return;
        var peer = OneDnnConv.Load("libc.so.6");
        Assert.False(peer.Available);
        Assert.Contains("dnnl_", peer.Problem);
    }

    [Theory]
    [InlineData("conv 2 6 6 3 3 3")]
    [InlineData("C[m,n] += A[k,m] * B[n,k] m=16 n=12 k=8")]
    [InlineData("O[f,h] += I[c,2*h+r] * W[f,c,r] f=3 h=4 c=2 r=3")]
    public void A_kernel_timed_side_by_side_with_its_peers_gets_the_paired_ratio_and_the_same_statuses(string spec)
    {
        var c = Computation.Parse(spec);
        var nest = Nest.Initial(c);
        var e = KernelReport.Run(nest, Tiny, peers: true, peakGflops: 100);
        var apart = KernelReport.MeasurePeers(c, Tiny);
        Assert.True(e.Verification.Passed);
        Assert.Equal(apart.Select(p => (p.Key, p.Status, p.Problem, p.Via)), e.Peers.Select(p => (p.Key, p.Status, p.Problem, p.Via)));
        foreach (var p in e.Peers)
        {
            if (p.Status != PeerStatus.Measured)
            {
                Assert.Null(p.KernelOverPeer);
                Assert.Null(e.RatioTo(p.Key));
                continue;
            }
            Assert.True(p.Gflops > 0 && p.KernelOverPeer > 0, p.ToString());
            Assert.Equal(p.KernelOverPeer, e.RatioTo(p.Key));
        }
        Assert.True(e.Measurement.Samples >= Tiny.MinSamples);
    }

    [Fact]
    public void EvaluationGivesConvolutionsTheConvolutionPeersAndOthersAReason()
    {
        var conv = KernelReport.MeasurePeers(Computation.Parse("conv 2 6 6 3 3 3"), Tiny);
        Assert.Equal(["onednn_conv", "im2col_openblas", "onnxruntime"], conv.Select(p => p.Key));
        Assert.All(conv, p => Assert.True(p.Gflops > 0 || !string.IsNullOrEmpty(p.Problem)));

        var strided = KernelReport.MeasurePeers(Computation.Parse("O[f,h] += I[c,2*h+r] * W[f,c,r] f=3 h=4 c=2 r=3"), Tiny);
        Assert.Equal(["openblas", "blis", "onednn", "onnxruntime"], strided.Select(p => p.Key));
        Assert.All(strided, p => Assert.Null(p.Gflops));
        foreach (var p in strided.Where(p => p.Status != PeerStatus.Missing))
        {
            Assert.Equal("no peer: an affine index 2*h+r in I (overlapping windows, as in a convolution)", p.Problem);
            Assert.Equal(PeerStatus.NoPeer, p.Status);
            Assert.DoesNotContain('\n', p.Problem!);
        }

        Assert.Equal(["onednn_conv", "im2col_openblas", "onnxruntime"], KernelReport.NotMeasured(Computation.Parse("conv 2 6 6 3 3 3")).Select(p => p.Key));
    }

    /// <summary>A naive convolution that leaves out the last input channel unless told not to, and counts its runs.</summary>
    internal sealed class WrongPeer(bool skipLastChannel = true) : ConvPeer("wrong", "none", null, null, "one thread")
    {
        public int Runs { get; private set; }

        public bool SkipLastChannel => skipLastChannel;

        public override string Timed => "everything";

        internal override unsafe PeerRun Prepare(ConvShape shape, float* input, float* weights, float* output, int threads) => new Naive(this, shape, input, weights, output);

        sealed unsafe class Naive(WrongPeer peer, ConvShape s, float* input, float* weights, float* output) : PeerRun
        {
            public override void Run()
            {
                peer.Runs++;
                int channels = peer.SkipLastChannel ? s.C - 1 : s.C;
                for (int f = 0; f < s.F; f++)
                    for (int y = 0; y < s.OH; y++)
                        for (int x = 0; x < s.OW; x++)
                        {
                            float sum = output[((long)f * s.OH + y) * s.OW + x];
                            for (int c = 0; c < channels; c++)
                                for (int r = 0; r < s.R; r++)
                                    for (int q = 0; q < s.S; q++)
                                        sum += input[((long)c * s.H + y + r) * s.W + x + q] * weights[(((long)f * s.C + c) * s.R + r) * s.S + q];
                            output[((long)f * s.OH + y) * s.OW + x] = sum;
                        }
            }
        }
    }
}
