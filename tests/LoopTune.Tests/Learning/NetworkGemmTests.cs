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

/// <summary>A fact about <see cref="Bf16Gemm"/>; skipped with its reason where the CPU or the library has no bfloat16
/// products.</summary>
public sealed class Bf16FactAttribute : FactAttribute
{
    public Bf16FactAttribute()
    {
        if (Bf16Gemm.Problem is { } problem) Skip = problem;
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

    [Bf16Fact]
    public void Bf16AgreesWithTheManagedGemmWithinTheRoundingOfItsFactors() => AgreesOnShapes("onednn_bf16", Bf16Rounding);

    /// <summary>Factors that bfloat16 holds exactly: the products then agree as closely as two float32 sums do, so a
    /// misplaced element, a transposed factor read straight or a lost accumulation shows as it would in float32.</summary>
    [Bf16Fact]
    public void Bf16OfFactorsItHoldsExactlyAgreesAsFloat32Does() => AgreesOnShapes("onednn_bf16", 0, exactFactors: true);

    /// <summary>Through the layer norms' cancellations the gradients carry the factors' rounding further than one product
    /// does: 0.02 % (the last layer's bias) to 4.9 % (the first layer's weights) of each tensor's norm with these seeds. A
    /// factor read wrong would be off by its whole size.</summary>
    [Bf16Fact]
    public void Bf16GradientsOfAnUpdateAgreeWithTheManagedOnesWithinItsRounding() => GradientsAgree("onednn_bf16", normTolerance: 0.15);

    /// <summary>Rounding to bfloat16 is to nearest with ties to even, in the vector loop (16 at a time) and its tail alike;
    /// exponents and signs are kept.</summary>
    [Fact]
    public unsafe void RoundingToBf16IsToNearestTiesToEven()
    {
        float ulp = MathF.Pow(2, -7);   // bfloat16's unit in the last place at 1
        (float In, float Out)[] cases =
        [
            (1f, 1f), (1 + ulp / 2, 1f), (1 + 3 * ulp / 2, 1 + 2 * ulp), (1 + ulp / 2 + MathF.Pow(2, -20), 1 + ulp),
            (1 + ulp / 2 - MathF.Pow(2, -20), 1f), (-(1 + ulp / 2 + MathF.Pow(2, -20)), -(1 + ulp)), (3.0e-30f * (1 + ulp), 3.0e-30f * (1 + ulp)),
            (0f, 0f), (-2.5f, -2.5f),
        ];
        const int Cols = 37;   // two vectors and a tail of 5
        var input = new float[Cols];
        var output = new ushort[Cols];
        for (int j = 0; j < Cols; j++) input[j] = cases[j % cases.Length].In;
        fixed (float* from = input)
        fixed (ushort* to = output)
            Bf16Gemm.Round(from, 1, Cols, Cols, to);
        for (int j = 0; j < Cols; j++)
        {
            var (x, expected) = cases[j % cases.Length];
            float exact = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(expected) & 0xFFFF0000u);
            Assert.True(Bf16Gemm.Widen(output[j]) == exact, $"column {j}: {x:R} rounded to {Bf16Gemm.Widen(output[j]):R}, expected {exact:R}");
        }
    }

    [Fact]
    public void ManagedIsNoLibraryAndAnUnknownNameIsAnError()
    {
        Assert.Null(NetworkGemm.Choose("managed"));
        Assert.Contains("expected one of", Assert.ThrowsAny<LoopTuneException>(() => NetworkGemm.Choose("mkl")).Message);
    }

    /// <summary>How far a product of two factors each rounded to bfloat16 (within 2^-9 of itself) may be from the exact
    /// one, relative to it: 2^-8 and a little.</summary>
    const double Bf16Rounding = 1.0 / 256 + 1.0 / 65536;

    static void AgreesOnShapes(string key, double rounding = 0, bool exactFactors = false)
    {
        var chosen = NetworkGemm.Choose(key)!;
        using var owned = chosen as IDisposable;   // a bfloat16 sgemm's oneDNN objects
        var native = new Counting(chosen);
        var rng = new Random(3);
        Matrix Factor(int rows, int cols) => exactFactors ? Bf16Exact(RandomMatrix(rng, rows, cols)) : RandomMatrix(rng, rows, cols);
        foreach (var (inputs, outputs) in Layers)
        {
            var x = Factor(Batch, inputs);
            var w = Factor(inputs, outputs);
            var dy = Factor(Batch, outputs);
            Agree(native, x, false, w, false, accumulate: true, RandomMatrix(rng, Batch, outputs), rounding);   // forward: y = bias + x w
            Agree(native, x, true, dy, false, accumulate: true, RandomMatrix(rng, inputs, outputs), rounding);  // dW += x^T dy
            Agree(native, dy, false, w, true, accumulate: false, RandomMatrix(rng, Batch, inputs), rounding);   // dx = dy w^T
            var one = RandomMatrix(rng, 1, inputs);                                                    // acting: one state
            var (managed, library) = (new Matrix(1, outputs), new Matrix(1, outputs));
            Gemm.Multiply(one, false, w, false, managed);
            using (Gemm.Use(native)) Gemm.Multiply(one, false, w, false, library);
            Assert.Equal(managed.Data, library.Data);
        }
        Assert.Equal(3 * Layers.Length, native.Calls);   // every batch product went to the library, no one-row product did
    }

    /// <summary>The matrix with every element cut to a bfloat16 (its low 16 bits cleared).</summary>
    static Matrix Bf16Exact(Matrix m)
    {
        for (int i = 0; i < m.Data.Length; i++) m.Data[i] = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(m.Data[i]) & 0xFFFF0000u);
        return m;
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
    /// within twice that of each other; plus <paramref name="rounding"/> sum |a b| where the library rounds its factors.</summary>
    static void Agree(ISgemm native, Matrix a, bool ta, Matrix b, bool tb, bool accumulate, Matrix c0, double rounding = 0)
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
                double products = 0;
                for (int kk = 0; kk < k; kk++) products += Math.Abs((double)x[i * k + kk] * y[kk * n + j]);
                double magnitude = (accumulate ? Math.Abs(c0[i, j]) : 0) + products;
                double bound = 2 * (k + 1) * Math.Pow(2, -24) * magnitude + rounding * products + 1e-30;
                if (!(Math.Abs(managed[i, j] - library[i, j]) <= bound))
                    Assert.Fail($"{native.Name} {(ta ? "T" : "N")}{(tb ? "T" : "N")} {m}x{n}x{k}: c[{i}, {j}] = {library[i, j]}, managed {managed[i, j]}, bound {bound}");
            }
    }

    /// <summary>The gradients of one Huber loss through the whole dueling network, managed and native, from the same weights
    /// and batch: every parameter's gradient within 1e-3 of the largest of its tensor; or, given
    /// <paramref name="normTolerance"/>, each tensor's difference within that fraction of its norm.</summary>
    static void GradientsAgree(string key, double? normTolerance = null)
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
        var chosen = NetworkGemm.Choose(key);
        using var owned = chosen as IDisposable;
        var (managed, library) = (Gradients(null), Gradients(chosen));
        for (int t = 0; t < managed.Length; t++)
        {
            float scale = managed[t].Max(MathF.Abs);
            Assert.True(scale > 0, $"tensor {t} has no gradient");
            if (normTolerance is { } fraction)
            {
                double difference = Math.Sqrt(managed[t].Zip(library[t], (x, y) => Math.Pow(x - y, 2)).Sum());
                double norm = Math.Sqrt(managed[t].Sum(x => (double)x * x));
                Assert.True(difference <= fraction * norm, $"{key}: gradient {t} differs by {difference / norm:P2} of its norm");
                continue;
            }
            for (int i = 0; i < managed[t].Length; i++)
                if (!(Math.Abs(managed[t][i] - library[t][i]) <= 1e-3 * scale))
                    Assert.Fail($"{key}: gradient {t}[{i}] = {library[t][i]}, managed {managed[t][i]} (largest {scale})");
        }
    }
}
