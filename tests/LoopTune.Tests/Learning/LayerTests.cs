using LoopTune.Learning.Nn;
using static LoopTune.Tests.Learning.NnTestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>Initialisation, determinism and the forward values of the layers.</summary>
public sealed class LayerTests
{
    [Fact]
    public void TheSameSeedGivesBitIdenticalWeightsAndOutputs()
    {
        Sequential Net(int seed)
        {
            var rng = new Random(seed);
            return new Sequential(new Dense(6, 16, rng, "a"), new Relu(), new LayerNorm(16, "n"), new Dense(16, 3, rng, "b", gain: 0.01));
        }
        var (one, two, other) = (Net(7), Net(7), Net(8));
        for (int k = 0; k < one.Parameters.Count; k++)
            Assert.Equal(one.Parameters[k].Value.Select(BitConverter.SingleToInt32Bits), two.Parameters[k].Value.Select(BitConverter.SingleToInt32Bits));
        Assert.NotEqual(one.Parameters[0].Value, other.Parameters[0].Value);
        var x = RandomMatrix(new Random(9), 10, 6);
        var y = one.Forward(x);
        Assert.Equal(y.Data, one.Forward(x).Data);
        Assert.Equal(y.Data, two.Forward(x).Data);
        for (int r = 0; r < x.Rows; r++)   // one sample alone gives its row of the batch, bit for bit
            Assert.Equal(y.Row(r).ToArray(), one.Forward(new Matrix(1, 6, x.Row(r).ToArray())).Data);
    }

    [Theory, InlineData(8, 3, 1.4142135623730951), InlineData(3, 8, 0.01), InlineData(5, 5, 1.0), InlineData(64, 64, 1.4142135623730951)]
    public void DenseWeightsAreOrthogonalTimesTheGainAndBiasIsZero(int inputs, int outputs, double gain)
    {
        var dense = new Dense(inputs, outputs, new Random(1), "layer", gain);
        Assert.Equal(("layer.weight", "layer.bias"), (dense.Weight.Name, dense.Bias.Name));
        Assert.Equal([inputs, outputs], dense.Weight.Shape);
        Assert.Equal([outputs], dense.Bias.Shape);
        Assert.All(dense.Bias.Value, b => Assert.Equal(0f, b));
        // W^T W (columns orthonormal) when inputs >= outputs, else W W^T (rows orthonormal), is gain^2 I
        var w = new Matrix(inputs, outputs, dense.Weight.Value);
        bool tall = inputs >= outputs;
        int size = Math.Min(inputs, outputs);
        var gram = new Matrix(size, size);
        Gemm.Multiply(w, tall, w, !tall, gram);
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++) Assert.Equal(i == j ? gain * gain : 0, gram[i, j], 1e-5 * gain * gain);
    }

    [Fact]
    public void ForwardValues()
    {
        var x = new Matrix(2, 3, [-1f, 0f, 2f, 0.5f, -3f, 4f]);
        Assert.Equal([0f, 0f, 2f, 0.5f, 0f, 4f], new Relu().Forward(x).Data);
        Assert.Equal(x.Data.Select(MathF.Tanh), new Tanh().Forward(x).Data);
        var dense = new Dense(3, 2, new Random(1), "d");
        dense.Weight.Value.AsSpan().Clear();
        (dense.Weight.Value[0], dense.Weight.Value[5], dense.Bias.Value[1]) = (2f, -1f, 0.5f);   // W = [[2, 0], [0, 0], [0, -1]]
        Assert.Equal([-2f, -1.5f, 1f, -3.5f], dense.Forward(x).Data);
        var norm = new LayerNorm(3, "n").Forward(x);
        for (int r = 0; r < 2; r++)
        {
            var row = norm.Row(r).ToArray();
            Assert.Equal(0, row.Average(), 6);
            Assert.Equal(1, row.Average(v => v * v), 4);
        }
    }

    [Fact]
    public void ShapesAreChecked()
    {
        Assert.Throws<ArgumentException>(() => new Matrix(2, 3, new float[5]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Matrix(-1, 3));
        var m = new Matrix(2, 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => m[2, 0]);
        Assert.Throws<ArgumentOutOfRangeException>(() => m[0, 3] = 1);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.Row(2));
        var dense = new Dense(3, 2, new Random(1), "d");
        Assert.Throws<InvalidOperationException>(() => dense.Backward(new Matrix(1, 2)));
        Assert.Throws<ArgumentException>(() => dense.Forward(new Matrix(1, 4)));
        dense.Forward(new Matrix(4, 3));
        Assert.Throws<ArgumentException>(() => dense.Backward(new Matrix(3, 2)));
        var clone = m.Clone();
        clone[1, 2] = 5;
        Assert.Equal(0f, m[1, 2]);
        Assert.Equal(5f, clone.Row(1)[2]);
        var p = new Parameter("p", [2, 3]);
        Assert.Equal((6, 6), (p.Value.Length, p.Grad.Length));
        Assert.Single(new Parameter("scalar", []).Value);
    }
}
