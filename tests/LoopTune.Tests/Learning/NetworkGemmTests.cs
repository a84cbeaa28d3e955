using LoopTune.Env;
using LoopTune.Learning;
using LoopTune.Learning.Nn;
using LoopTune.Measure;
using static LoopTune.Tests.Learning.NnTestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>A fact about the peer library <c>key</c>'s sgemm; skipped with the library's own reason where it does not load.</summary>
public sealed class NativeGemmFactAttribute : FactAttribute
{
    public NativeGemmFactAttribute(string key)
    {
        if (Peers.Get(key) is { Available: false } peer) Skip = $"{key} did not load: {peer.Problem}";
    }
}

/// <summary>A native sgemm (<see cref="NetworkGemm"/>) against the managed <see cref="Gemm"/> on the network's shapes (the
/// default dueling network: the observation, two hidden layers of 256, the tile space's actions and the value; batch 64):
/// the forward product, the weight gradient (transposed a) and the input gradient (transposed b) agree within the forward
/// error bound of a length-K float sum, taken for both; a whole update's gradients agree to a relative tolerance; one-row
/// products (acting) stay on the managed kernels, bit for bit.</summary>
public sealed class NetworkGemmTests
{
    const int Batch = 64;
    static readonly int Actions = ActionSpace.Get("tile").Count + 1;
    static readonly (int In, int Out)[] Layers = [(ObservationEncoder.Size, 256), (256, 256), (256, Actions)];

    [NativeGemmFact("onednn")]
    public void OneDnnAgreesWithTheManagedGemmOnTheNetworksShapes() => AgreesOnShapes("onednn");

    [NativeGemmFact("openblas")]
    public void OpenBlasAgreesWithTheManagedGemmOnTheNetworksShapes() => AgreesOnShapes("openblas");

    [NativeGemmFact("onednn")]
    public void OneDnnGradientsOfAnUpdateAgreeWithTheManagedOnes() => GradientsAgree("onednn");

    [NativeGemmFact("openblas")]
    public void OpenBlasGradientsOfAnUpdateAgreeWithTheManagedOnes() => GradientsAgree("openblas");

    [Fact]
    public void ManagedIsNoLibraryAndAnUnknownNameIsAnError()
    {
        Assert.Null(NetworkGemm.Choose("managed"));
        Assert.Contains("expected one of", Assert.ThrowsAny<LoopTuneException>(() => NetworkGemm.Choose("mkl")).Message);
    }

    static void AgreesOnShapes(string key)
    {
        var native = new Counting(NetworkGemm.Choose(key)!);
        var rng = new Random(3);
        foreach (var (inputs, outputs) in Layers)
        {
            var x = RandomMatrix(rng, Batch, inputs);
            var w = RandomMatrix(rng, inputs, outputs);
            var dy = RandomMatrix(rng, Batch, outputs);
            Agree(native, x, false, w, false, accumulate: true, RandomMatrix(rng, Batch, outputs));   // forward: y = bias + x w
            Agree(native, x, true, dy, false, accumulate: true, RandomMatrix(rng, inputs, outputs));  // dW += x^T dy
            Agree(native, dy, false, w, true, accumulate: false, RandomMatrix(rng, Batch, inputs));   // dx = dy w^T
            var one = RandomMatrix(rng, 1, inputs);                                                    // acting: one state
            var (managed, library) = (new Matrix(1, outputs), new Matrix(1, outputs));
            Gemm.Multiply(one, false, w, false, managed);
            using (Gemm.Use(native)) Gemm.Multiply(one, false, w, false, library);
            Assert.Equal(managed.Data, library.Data);
        }
        Assert.Equal(3 * Layers.Length, native.Calls);   // every batch product went to the library, no one-row product did
    }

    /// <summary>A library that counts its calls.</summary>
    sealed unsafe class Counting(ISgemm inner) : ISgemm
    {
        public int Calls { get; private set; }
        public string Name => inner.Name;

        public void Sgemm(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc)
        {
            Calls++;
            inner.Sgemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        }
    }

    /// <summary>c = (accumulate ? c0 : 0) + op(a) op(b) by both, each within (k + 1) 2^-24 sum |a b| of the exact value, so
    /// within twice that of each other.</summary>
    static void Agree(ISgemm native, Matrix a, bool ta, Matrix b, bool tb, bool accumulate, Matrix c0)
    {
        var (managed, library) = (c0.Clone(), c0.Clone());
        Gemm.Multiply(a, ta, b, tb, managed, accumulate);
        using (Gemm.Use(native)) Gemm.Multiply(a, ta, b, tb, library, accumulate);
        Assert.Null(Gemm.Native);
        float[] x = ta ? a.Transpose().Data : a.Data, y = tb ? b.Transpose().Data : b.Data;
        int m = managed.Rows, n = managed.Cols, k = ta ? a.Rows : a.Cols;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double magnitude = accumulate ? Math.Abs(c0[i, j]) : 0;
                for (int kk = 0; kk < k; kk++) magnitude += Math.Abs((double)x[i * k + kk] * y[kk * n + j]);
                double bound = 2 * (k + 1) * Math.Pow(2, -24) * magnitude + 1e-30;
                if (!(Math.Abs(managed[i, j] - library[i, j]) <= bound))
                    Assert.Fail($"{native.Name} {(ta ? "T" : "N")}{(tb ? "T" : "N")} {m}x{n}x{k}: c[{i}, {j}] = {library[i, j]}, managed {managed[i, j]}, bound {bound}");
            }
    }

    /// <summary>The gradients of one Huber loss through the whole dueling network, managed and native, from the same weights
    /// and batch: every parameter's gradient within 1e-3 of the largest of its tensor.</summary>
    static void GradientsAgree(string key)
    {
        var shape = new NetworkShape("dqn", ObservationEncoder.Size, Actions - 1, [256, 256], "relu", true);
        var rng = new Random(5);
        var x = RandomMatrix(rng, Batch, shape.Observations);
        var targets = RandomMatrix(rng, Batch, shape.Actions);
        float[][] Gradients(ISgemm? gemm)
        {
            var net = new QNetwork(shape, new Random(1));
            using var scope = Gemm.Use(gemm);
            var q = net.Forward(x);
            var grad = new Matrix(q.Rows, q.Cols);
            Losses.Huber(q, targets, grad, 1f);
            foreach (var p in net.Parameters) Array.Clear(p.Grad);
            net.Backward(grad);
            return [.. net.Parameters.Select(p => (float[])p.Grad.Clone())];
        }
        var (managed, library) = (Gradients(null), Gradients(NetworkGemm.Choose(key)));
        for (int t = 0; t < managed.Length; t++)
        {
            float scale = managed[t].Max(MathF.Abs);
            Assert.True(scale > 0, $"tensor {t} has no gradient");
            for (int i = 0; i < managed[t].Length; i++)
                if (!(Math.Abs(managed[t][i] - library[t][i]) <= 1e-3 * scale))
                    Assert.Fail($"{key}: gradient {t}[{i}] = {library[t][i]}, managed {managed[t][i]} (largest {scale})");
        }
    }
}
