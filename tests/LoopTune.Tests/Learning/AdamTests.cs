using System.Diagnostics;
using LoopTune.Learning.Nn;
using Xunit.Abstractions;
using static LoopTune.Tests.Learning.NnTestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>Adam against the update written out by hand, clipping, its state, and training a tiny network.</summary>
public sealed class AdamTests(ITestOutputHelper output)
{
    [Fact]
    public void TwoStepsMatchTheUpdateByHand()
    {
        var p = new Parameter("p", [3]);
        float[] start = [1f, -2f, 0.5f];
        start.CopyTo(p.Value, 0);
        var adam = new Adam([p], new AdamOptions(LearningRate: 0.1));
        double[] g1 = [0.5, -0.1, 0], g2 = [0.2, 0.3, -1];
        for (int i = 0; i < 3; i++) p.Grad[i] = (float)g1[i];
        adam.Step();
        Assert.Equal(1, adam.Steps);
        // step 1: m/(1 - 0.9) = g and v/(1 - 0.999) = g^2, so each moves by lr * g / (|g| + eps)
        double[] p1 = [1 - 0.1 * 0.5 / (0.5 + 1e-8), -2 + 0.1 * 0.1 / (0.1 + 1e-8), 0.5];
        for (int i = 0; i < 3; i++) Assert.Equal(p1[i], p.Value[i], 1e-6);
        Assert.Equal((float)g1[0], p.Grad[0]);   // Step does not zero the grads
        adam.ZeroGrad();
        Assert.All(p.Grad, g => Assert.Equal(0f, g));
        for (int i = 0; i < 3; i++) p.Grad[i] = (float)g2[i];
        adam.Step();
        for (int i = 0; i < 3; i++)
        {
            double m = 0.9 * (0.1 * g1[i]) + 0.1 * g2[i], v = 0.999 * (0.001 * g1[i] * g1[i]) + 0.001 * g2[i] * g2[i];
            double expected = p1[i] - 0.1 * (m / (1 - 0.81)) / (Math.Sqrt(v / (1 - 0.998001)) + 1e-8);
            Assert.Equal(expected, p.Value[i], 1e-6);
        }
        Assert.Equal(2, adam.Steps);
    }

    [Fact]
    public void ClipsTheGlobalNormAndReturnsItBeforeClipping()
    {
        var a = new Parameter("a", [2]);
        var b = new Parameter("b", [1, 1]);
        var adam = new Adam([a, b], new AdamOptions(LearningRate: 0, MaxGradNorm: 1));
        (a.Grad[0], a.Grad[1], b.Grad[0]) = (3f, 0f, 4f);
        Assert.Equal(5.0, adam.Step(), 12);
        Assert.Equal(0.6f, a.Grad[0], 5);
        Assert.Equal(0f, a.Grad[1]);
        Assert.Equal(0.8f, b.Grad[0], 5);
        Assert.Equal(1.0, adam.GradNorm(), 5);
        // below the limit nothing changes
        (a.Grad[0], a.Grad[1], b.Grad[0]) = (0.3f, 0f, 0.4f);
        Assert.Equal(0.5, adam.Step(), 6);
        Assert.Equal((0.3f, 0.4f), (a.Grad[0], b.Grad[0]));
        Assert.Equal([0f, 0f], a.Value);   // learning rate 0
    }

    [Fact]
    public void OptionsAreValidatedAndSettable()
    {
        var p = new Parameter("p", [1]);
        var adam = new Adam([p, p], new AdamOptions());   // listed twice, updated once
        Assert.Single(adam.Parameters);
        Assert.Throws<ArgumentOutOfRangeException>(() => adam.Options = new AdamOptions(Beta1: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Adam([p], new AdamOptions(LearningRate: -1)));
        Assert.Throws<ArgumentException>(() => new Adam([p, new Parameter("p", [1])], new AdamOptions()));
        adam.Options = adam.Options with { LearningRate = 1 };
        p.Grad[0] = 2;
        adam.Step();
        Assert.Equal(-1f, p.Value[0], 6);
    }

    [Fact]
    public void StateRoundTripsAndRejectsAMismatch()
    {
        var rng = new Random(30);
        Sequential Net() => new(new Dense(3, 4, new Random(1), "a"), new Dense(4, 2, new Random(2), "b"));
        var (one, two) = (Net(), Net());
        var (adamOne, adamTwo) = (new Adam(one.Parameters, new AdamOptions(1e-2)), new Adam(two.Parameters, new AdamOptions(1e-2)));
        void Train(Sequential net, Adam adam, Matrix x, Matrix dy)
        {
            adam.ZeroGrad();
            net.Forward(x);
            net.Backward(dy);
            adam.Step();
        }
        var batches = Enumerable.Range(0, 4).Select(_ => (RandomMatrix(rng, 5, 3), RandomMatrix(rng, 5, 2))).ToList();
        for (int i = 0; i < 3; i++) Train(one, adamOne, batches[i].Item1, batches[i].Item2);
        var state = adamOne.State();
        Assert.Equal(["a.weight.adam_m", "a.weight.adam_v", "a.bias.adam_m", "a.bias.adam_v"], state.Take(4).Select(t => t.Name));
        SafeTensors.LoadInto(two.Parameters, SafeTensors.FromParameters(one.Parameters), "memory");
        adamTwo.RestoreState(state, adamOne.Steps);
        Assert.Equal(3, adamTwo.Steps);
        Train(one, adamOne, batches[3].Item1, batches[3].Item2);
        Train(two, adamTwo, batches[3].Item1, batches[3].Item2);
        for (int k = 0; k < one.Parameters.Count; k++) Assert.Equal(one.Parameters[k].Value, two.Parameters[k].Value);

        var bad = state.Select(t => t.Name == "b.bias.adam_v" ? t with { Shape = [1, 2] } : t).ToList();
        var e = Assert.Throws<SafeTensorsError>(() => adamTwo.RestoreState(bad, 7));
        Assert.Contains("'b.bias.adam_v' of shape [1, 2], the network expects [2]", e.Message);
        Assert.Equal(4, adamTwo.Steps);
        Assert.Throws<SafeTensorsError>(() => adamTwo.RestoreState(state.Skip(1).ToList(), 7));
    }

    [Fact]
    public void OverfitsATinyBatch()
    {
        var watch = Stopwatch.StartNew();
        var rng = new Random(31);
        var net = new Sequential(new Dense(4, 32, rng, "h"), new Tanh(), new Dense(32, 2, rng, "out", gain: 1));
        var adam = new Adam(net.Parameters, new AdamOptions(LearningRate: 1e-2));
        var x = RandomMatrix(rng, 8, 4);
        var target = RandomMatrix(rng, 8, 2);
        var grad = new Matrix(8, 2);
        float loss = float.NaN;
        int step;
        for (step = 0; step < 3000; step++)
        {
            adam.ZeroGrad();
            loss = Losses.Mse(net.Forward(x), target, grad);
            if (loss < 1e-5f) break;
            net.Backward(grad);
            adam.Step();
        }
        output.WriteLine($"loss {loss:g3} after {step} steps, {watch.ElapsedMilliseconds} ms");
        Assert.True(loss < 1e-5f, $"loss {loss} after {step} steps");
        Assert.True(watch.Elapsed.TotalSeconds < 2, $"{watch.Elapsed.TotalSeconds} s");
    }
}
