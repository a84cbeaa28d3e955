using LoopTune.Jit;
using LoopTune.Measure;

namespace LoopTune.Tests.Measure;

public sealed unsafe class PeerTests
{
    private const double FloatEpsilon = 1.2e-7;

    public static TheoryData<string, int, int, int> Cases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (string key in new[] { "openblas", "blis", "onednn", "blis-typed" })
            foreach (var (m, n, k) in new[] { (1, 1, 1), (7, 13, 5), (17, 33, 65), (64, 64, 64) })
                data.Add(key, m, n, k);
        return data;
    }

    [Fact]
    public void AllListsTheThreePeersInOrderEachAvailableOrExplained()
    {
        Assert.Equal(["openblas", "blis", "onednn"], Peers.All.Select(p => p.Key));
        Assert.All(Peers.All, p => Assert.True(p.Available ? p.Problem is null : !string.IsNullOrEmpty(p.Problem)));
        Assert.Same(Peers.All[0], Peers.Get("OpenBLAS"));
        Assert.Null(Peers.Get("nope"));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SgemmMatchesNaiveProduct(string key, int m, int n, int k)
    {
        var peer = key == "blis-typed" ? NativeGemm.Blis(preferCblas: false) : Peers.Get(key)!;
        if (!peer.Available) return;
        const int guard = 32;
        using AlignedBuffer a = new((long)m * k, guard), b = new((long)k * n, guard), c = new((long)m * n, guard);
        var rng = new Random(m * 1000 + n * 10 + k);
        foreach (var buffer in new[] { a, b, c }) buffer.Fill(rng);
        float[] before = c.Span.ToArray();
        peer.Sgemm(m, n, k, a.Pointer, b.Pointer, c.Pointer);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double exact = before[i * n + j], scale = Math.Abs(exact);
                for (int p = 0; p < k; p++)
                {
                    double term = (double)a.Pointer[i * k + p] * b.Pointer[p * n + j];
                    exact += term;
                    scale += Math.Abs(term);
                }
                Assert.True(Math.Abs(c.Pointer[i * n + j] - exact) <= (k + 2) * FloatEpsilon * scale,
                            $"{peer.Key} C[{i},{j}] = {c.Pointer[i * n + j]}, expected {exact}");
            }
        Assert.True(a.GuardsIntact() && b.GuardsIntact() && c.GuardsIntact());
    }

    [Fact]
    public void MissingLibraryIsReportedNotThrown()
    {
        var peer = NativeGemm.OneDnn("libno-such-peer-looptune.so.3", "libno-such-peer-looptune.so.2");
        Assert.False(peer.Available);
        Assert.Equal("onednn", peer.Key);
        Assert.Contains("not found", peer.Problem);
        Assert.Contains("libno-such-peer-looptune.so.2", peer.Problem);
        Assert.Throws<InvalidOperationException>(() => peer.Sgemm(1, 1, 1, null, null, null));
    }

    [Fact]
    public void MissingSymbolIsReportedNotThrown()
    {
        if (!OperatingSystem.IsLinux()) return;
        var peer = NativeGemm.OpenBlas("libc.so.6");
        Assert.False(peer.Available);
        Assert.Contains("cblas_sgemm", peer.Problem);
    }

    [Fact]
    public void EmptyShapesDoNothing()
    {
        foreach (var peer in Peers.All.Where(p => p.Available))
        {
            float c = 5;
            peer.Sgemm(1, 1, 0, null, null, &c);
            peer.Sgemm(0, 3, 3, null, null, null);
            Assert.Equal(5f, c);
        }
    }

    [Fact]
    public void MeasurePeerGivesPositiveGflops()
    {
        foreach (var peer in Peers.All.Where(p => p.Available))
        {
            var m = Peers.MeasurePeer(peer, 32, 48, 16, new MeasureOptions(0.001, 0.005, 3, 0.0005, 100));
            Assert.True(m.Gflops > 0 && double.IsFinite(m.Gflops), $"{peer.Key}: {m}");
            Assert.Equal(2.0 * 32 * 48 * 16, m.Flops);
        }
    }
}
