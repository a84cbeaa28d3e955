using LoopTune.Learning.Nn;
using Xunit.Abstractions;
using static LoopTune.Tests.Learning.NnTestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>Analytic gradients of the layers, losses and masked softmax against central differences of the float
/// forward pass (the losses are summed in double). The error measure is max |analytic - numeric| / max(1e-2,
/// |analytic| + |numeric|); float rounding in the forward pass divided by 2h and the h^2 truncation error keep it
/// near 1e-4 here, so the bounds below leave a wide margin while a wrong factor or sign gives errors near 1.</summary>
public sealed class GradientTests(ITestOutputHelper output)
{
    void Check(string what, double bound, params double[] errors) => CheckErrors(output, what, bound, errors);

    [Fact]
    public void Dense()
    {
        var rng = new Random(1);
        var layer = new Dense(5, 4, rng, "d");
        Fill(rng, layer.Bias.Value, 0.5f);
        // dx, dW, db; the loss is linear in each, so only rounding limits the central difference (~1e-3 at h = 1e-2)
        Check("dense", 5e-3, LayerGradientErrors(layer, RandomMatrix(rng, 3, 5), rng, 1e-2f));
    }

    [Fact]
    public void Relu()
    {
        var rng = new Random(2);
        var x = RandomMatrix(rng, 3, 7);
        for (int i = 0; i < x.Data.Length; i++) x.Data[i] = MathF.CopySign(0.2f + MathF.Abs(x.Data[i]), x.Data[i]);   // |x| >= 0.2: no kink within h
        var layer = new Relu();
        Check("relu", 5e-3, LayerGradientErrors(layer, x, rng, 1e-2f));
        var dy = RandomMatrix(rng, 3, 7);
        layer.Forward(x);
        var dx = layer.Backward(dy);
        for (int i = 0; i < x.Data.Length; i++) Assert.Equal(x.Data[i] > 0 ? dy.Data[i] : 0f, dx.Data[i]);
    }

    [Fact]
    public void Tanh()
    {
        var rng = new Random(3);
        Check("tanh", 5e-3, LayerGradientErrors(new Tanh(), RandomMatrix(rng, 3, 7, 1.5f), rng, 3e-3f));
    }

    [Fact]
    public void LayerNorm()
    {
        var rng = new Random(4);
        var layer = new LayerNorm(6, "ln");
        Fill(rng, layer.Weight.Value);
        Fill(rng, layer.Bias.Value);
        var x = RandomMatrix(rng, 3, 6, 2f);
        for (int i = 0; i < x.Data.Length; i++) x.Data[i] += 1f;   // a non-zero mean
        Check("layernorm", 1e-2, LayerGradientErrors(layer, x, rng, 3e-3f));
    }

    [Fact]
    public void SequentialMlp()
    {
        // Dense-Tanh-LayerNorm-Dense-Relu-Dense, with a seed for which every ReLU input is at least 0.1 from the kink
        for (int seed = 0; ; seed++)
        {
            var rng = new Random(seed);
            var net = new Sequential(new Dense(4, 8, rng, "a"), new Tanh(), new LayerNorm(8, "n"), new Dense(8, 6, rng, "b"), new Relu(), new Dense(6, 3, rng, "c", gain: 1));
            foreach (var p in net.Parameters.Where(p => p.Name.EndsWith(".bias", StringComparison.Ordinal))) Fill(rng, p.Value, 0.3f);
            var x = RandomMatrix(rng, 4, 4);
            var hidden = new Sequential([.. net.Layers.Take(4)]).Forward(x);
            if (hidden.Data.Any(z => MathF.Abs(z) < 0.1f)) continue;
            // h = 1e-2 moves a ReLU input by well under 0.1; smaller steps drown in float rounding (errors ~5e-3 at h = 1e-3)
            Check($"sequential (seed {seed})", 1e-2, LayerGradientErrors(net, x, rng, 1e-2f));
            return;
        }
    }

    [Fact]
    public void BackwardAddsIntoTheGradients()
    {
        var rng = new Random(5);
        var net = new Sequential(new Dense(3, 4, rng, "a"), new LayerNorm(4, "n"));
        var x = RandomMatrix(rng, 2, 3);
        var dy = RandomMatrix(rng, 2, 4);
        net.Forward(x);
        net.Backward(dy);
        var once = net.Parameters.Select(p => (float[])p.Grad.Clone()).ToList();
        net.Backward(dy);
        for (int k = 0; k < once.Count; k++)
            for (int i = 0; i < once[k].Length; i++) Assert.Equal(2 * once[k][i], net.Parameters[k].Grad[i], 1e-5f * (1 + Math.Abs(once[k][i])));
    }

    static (Matrix Pred, Matrix Target, float[] Weights, bool[] Mask) LossCase(int seed, float targetScale = 1f)
    {
        var rng = new Random(seed);
        var pred = RandomMatrix(rng, 4, 3);
        var target = RandomMatrix(rng, 4, 3, targetScale);
        var weights = Enumerable.Range(0, 4).Select(_ => 0.2f + (float)rng.NextDouble()).ToArray();
        var mask = Enumerable.Range(0, 12).Select(i => i % 3 == (i / 3) % 3 || i == 1).ToArray();   // one or two per row
        return (pred, target, weights, mask);
    }

    public static TheoryData<bool, bool> WeightsAndMask => new() { { false, false }, { true, false }, { false, true }, { true, true } };

    [Theory, MemberData(nameof(WeightsAndMask))]
    public void Mse(bool weighted, bool masked)
    {
        var (pred, target, w, mask) = LossCase(6);
        var grad = new Matrix(4, 3);
        Losses.Mse(pred, target, grad, weighted ? w : default, masked ? mask : default);
        var scratch = new Matrix(4, 3);
        double error = GradientError(pred.Data, grad.Data, () => Losses.Mse(pred, target, scratch, weighted ? w : default, masked ? mask : default), 1e-2f);
        Check($"mse weighted={weighted} masked={masked}", 2e-3, error);
        if (masked) for (int i = 0; i < 12; i++) if (!mask[i]) Assert.Equal(0f, grad.Data[i]);
    }

    [Theory, MemberData(nameof(WeightsAndMask))]
    public void HuberInBothRegimes(bool weighted, bool masked)
    {
        var (pred, target, w, mask) = LossCase(7, targetScale: 2f);
        // keep every |pred - target| at least 0.1 away from delta = 1, so no difference crosses the switch within h
        for (int i = 0; i < 12; i++)
        {
            float d = pred.Data[i] - target.Data[i];
            if (MathF.Abs(MathF.Abs(d) - 1f) < 0.1f) pred.Data[i] += 0.3f * MathF.Sign(d);
        }
        int small = pred.Data.Zip(target.Data).Count(t => MathF.Abs(t.First - t.Second) < 1), large = 12 - small;
        Assert.True(small >= 3 && large >= 3, $"{small} quadratic and {large} linear elements");
        var grad = new Matrix(4, 3);
        Losses.Huber(pred, target, grad, 1f, weighted ? w : default, masked ? mask : default);
        var scratch = new Matrix(4, 3);
        double error = GradientError(pred.Data, grad.Data, () => Losses.Huber(pred, target, scratch, 1f, weighted ? w : default, masked ? mask : default), 1e-2f);
        Check($"huber weighted={weighted} masked={masked}", 2e-3, error);
    }

    [Fact]
    public void LossValuesByHand()
    {
        var pred = new Matrix(2, 2, [1, 2, 3, 4]);
        var zero = new Matrix(2, 2);
        var grad = new Matrix(2, 2);
        Assert.Equal(7.5f, Losses.Mse(pred, zero, grad));                          // (1 + 4 + 9 + 16) / 4
        Assert.Equal([0.5f, 1f, 1.5f, 2f], grad.Data);                              // 2 d / 4
        Assert.Equal(4.375f, Losses.Mse(pred, zero, grad, [1f, 0.5f]));             // (5 + 0.5 * 25) / 4
        Assert.Equal(4.5f, Losses.Mse(pred, zero, grad, [1f, 0.5f], [true, false, false, true]));   // (1 + 0.5 * 16) / 2 rows
        Assert.Equal([1f, 0f, 0f, 2f], grad.Data);                                  // 2 d w / 2
        var huber = new Matrix(1, 3, [0.5f, 3f, -2f]);
        var g3 = new Matrix(1, 3);
        Assert.Equal((0.125f + 2.5f + 1.5f) / 3, Losses.Huber(huber, new Matrix(1, 3), g3), 6);
        Assert.Equal([0.5f / 3, 1f / 3, -1f / 3], g3.Data);
        Assert.Equal(1.5f * 1.5f / 2 / 1, Losses.Huber(new Matrix(1, 1, [2.5f]), new Matrix(1, 1, [1f]), new Matrix(1, 1), delta: 2f));
        Assert.Throws<ArgumentException>(() => Losses.Mse(pred, zero, grad, [1f]));
        Assert.Throws<ArgumentException>(() => Losses.Mse(pred, zero, grad, mask: [true, false]));
        Assert.Throws<ArgumentException>(() => Losses.Mse(pred, new Matrix(2, 3), grad));
    }

    static bool[] ActionMask(Random rng, int rows, int cols)
    {
        var mask = new bool[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++) mask[r * cols + c] = rng.NextDouble() < 0.6;
            mask[r * cols + rng.Next(cols)] = true;
        }
        mask[1 * cols + 0] = mask[1 * cols + 1] = true;   // row 1: at least two legal, so its gradient is not trivially 0
        return mask;
    }

    [Theory, InlineData(false), InlineData(true)]
    public void MaskedLogSoftmax(bool masked)
    {
        var rng = new Random(8);
        var logits = RandomMatrix(rng, 4, 6, 2f);
        var mask = masked ? ActionMask(rng, 4, 6) : [];
        var dlogp = RandomMatrix(rng, 4, 6);
        var dlogits = MaskedSoftmax.LogSoftmaxBackward(MaskedSoftmax.LogSoftmax(logits, mask), dlogp, mask);
        double Loss()
        {
            var lp = MaskedSoftmax.LogSoftmax(logits, mask);
            double sum = 0;
            for (int i = 0; i < lp.Data.Length; i++) if (!masked || mask[i]) sum += (double)dlogp.Data[i] * lp.Data[i];
            return sum;
        }
        Check($"log-softmax masked={masked}", 5e-3, GradientError(logits.Data, dlogits.Data, Loss, 3e-3f));
        for (int i = 0; i < mask.Length; i++) if (!mask[i]) Assert.Equal(0f, dlogits.Data[i]);
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Entropy(bool masked)
    {
        var rng = new Random(9);
        var logits = RandomMatrix(rng, 4, 6, 2f);
        var mask = masked ? ActionMask(rng, 4, 6) : [];
        float[] dEntropy = [0.7f, -1.3f, 0.4f, 2f];
        var dlogits = MaskedSoftmax.EntropyBackward(MaskedSoftmax.LogSoftmax(logits, mask), dEntropy, mask);
        double Loss()
        {
            var h = MaskedSoftmax.Entropy(MaskedSoftmax.LogSoftmax(logits, mask), mask);
            return h.Select((e, r) => (double)dEntropy[r] * e).Sum();
        }
        Check($"entropy masked={masked}", 5e-3, GradientError(logits.Data, dlogits.Data, Loss, 3e-3f));
        for (int i = 0; i < mask.Length; i++) if (!mask[i]) Assert.Equal(0f, dlogits.Data[i]);
    }
}
