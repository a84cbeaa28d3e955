using System.Diagnostics;
using LoopTune.Learning.Nn;
using Xunit.Abstractions;
using static LoopTune.Tests.Learning.NnTestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>Gemm against two oracles: a naive triple loop in double (within the forward error bound of a length-K
/// float sum), and the scalar chain c = fma(a[i,k], b[k,j], c) over k in order, which Gemm must match bit for bit.</summary>
public sealed class GemmTests(ITestOutputHelper output)
{
    /// <summary>op(m) as a plain row-major array.</summary>
    static float[] Op(Matrix m, bool transpose) => transpose ? m.Transpose().Data : m.Data;

    /// <summary>Checks c (computed from c0) against both oracles.</summary>
    static void CheckProduct(Matrix a, bool ta, Matrix b, bool tb, Matrix? c0, Matrix c)
    {
        int m = c.Rows, n = c.Cols, k = ta ? a.Rows : a.Cols;
        float[] x = Op(a, ta), y = Op(b, tb);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float start = c0?.Data[i * n + j] ?? 0f, chain = start, got = c.Data[i * n + j];
                double exact = start, magnitude = Math.Abs(start);
                for (int kk = 0; kk < k; kk++)
                {
                    float p = x[i * k + kk], q = y[kk * n + j];
                    chain = MathF.FusedMultiplyAdd(p, q, chain);
                    exact += (double)p * q;
                    magnitude += Math.Abs((double)p * q);
                }
                if (!(Math.Abs(got - exact) <= (k + 1) * Math.Pow(2, -24) * magnitude + 1e-30))
                    Assert.Fail($"c[{i}, {j}] = {got}, exact {exact}");
                if (BitConverter.SingleToInt32Bits(chain) != BitConverter.SingleToInt32Bits(got))
                    Assert.Fail($"c[{i}, {j}] = {got}, the fma chain gives {chain}");
            }
    }

    public static TheoryData<bool, bool, bool> Flags()
    {
        var data = new TheoryData<bool, bool, bool>();
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                foreach (bool acc in new[] { false, true }) data.Add(ta, tb, acc);
        return data;
    }

    [Theory, MemberData(nameof(Flags))]
    public void MatchesTheNaiveProductForOddSizes(bool transposeA, bool transposeB, bool accumulate)
    {
        var rng = new Random(10);
        int[] sizes = [1, 3, 17, 33, 65];
        foreach (int m in sizes)
            foreach (int k in sizes)
                foreach (int n in sizes)
                {
                    var a = transposeA ? RandomMatrix(rng, k, m) : RandomMatrix(rng, m, k);
                    var b = transposeB ? RandomMatrix(rng, n, k) : RandomMatrix(rng, k, n);
                    var c0 = RandomMatrix(rng, m, n);
                    var c = accumulate ? c0.Clone() : RandomMatrix(rng, m, n);   // without accumulate the old c is ignored
                    Gemm.Multiply(a, transposeA, b, transposeB, c, accumulate);
                    CheckProduct(a, transposeA, b, transposeB, accumulate ? c0 : null, c);
                }
    }

    [Fact]
    public void EmptyInnerDimensionGivesZeroOrTheOldC()
    {
        var c = new Matrix(2, 3, [1, 2, 3, 4, 5, 6]);
        Gemm.Multiply(new Matrix(2, 0), false, new Matrix(0, 3), false, c, accumulate: true);
        Assert.Equal([1f, 2, 3, 4, 5, 6], c.Data);
        Gemm.Multiply(new Matrix(2, 0), false, new Matrix(0, 3), false, c);
        Assert.All(c.Data, x => Assert.Equal(0f, x));
    }

    [Fact]
    public void RejectsMismatchedShapesAndAliasing()
    {
        var a = new Matrix(2, 3);
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(a, false, new Matrix(4, 2), false, new Matrix(2, 2)));
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(a, false, new Matrix(3, 2), false, new Matrix(2, 3)));
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(a, true, new Matrix(3, 2), false, new Matrix(3, 2)));
        Gemm.Multiply(a, true, new Matrix(2, 4), false, new Matrix(3, 4));   // a^T is 3x2
        var square = new Matrix(3, 3);
        Assert.Throws<ArgumentException>(() => Gemm.Multiply(square, false, new Matrix(3, 3), false, square));
    }

    [Fact]
    public void EachRowIsTheSameWhateverTheBatch()
    {
        var rng = new Random(11);
        var a = RandomMatrix(rng, 37, 50);
        var b = RandomMatrix(rng, 50, 45);
        var c = new Matrix(37, 45);
        Gemm.Multiply(a, false, b, false, c);   // packed panels
        for (int i = 0; i < a.Rows; i += 5)
        {
            var row = new Matrix(1, 45);
            Gemm.Multiply(new Matrix(1, 50, a.Row(i).ToArray()), false, b, false, row);   // b read in place
            Assert.Equal(c.Row(i).ToArray(), row.Data);
        }
    }

    [Fact]
    public void MlpSizedProductIsRightAndReportsItsSpeed()
    {
        var rng = new Random(12);
        var a = RandomMatrix(rng, 256, 512);
        var b = RandomMatrix(rng, 512, 256);
        var c = new Matrix(256, 256);
        Gemm.Multiply(a, false, b, false, c);
        var check = new Matrix(8, 256);
        var rows = Enumerable.Range(0, 8).Select(i => i * 37 % 256).ToArray();
        var some = new Matrix(8, 512, [.. rows.SelectMany(i => a.Row(i).ToArray())]);
        var expected = new Matrix(8, 256, [.. rows.SelectMany(i => c.Row(i).ToArray())]);
        CheckProduct(some, false, b, false, null, expected);

        double flops = 2.0 * 256 * 512 * 256;
        foreach (var (ta, tb) in new[] { (false, false), (true, false), (false, true) })
        {
            var aa = ta ? a.Transpose() : a;
            var bb = tb ? b.Transpose() : b;
            var best = double.MaxValue;
            for (int rep = 0; rep < 10; rep++)
            {
                var watch = Stopwatch.StartNew();
                Gemm.Multiply(aa, ta, bb, tb, c);
                best = Math.Min(best, watch.Elapsed.TotalSeconds);
            }
            output.WriteLine($"256x512 * 512x256 (transposeA={ta}, transposeB={tb}): {flops / best / 1e9:F1} GFLOPS (best of 10)");
        }
    }
}
