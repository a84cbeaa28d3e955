using LoopTune.Learning;
using LoopTune.Learning.Nn;
using static LoopTune.Tests.Learning.NnTestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>
/// The learner's vectorized kernels (<c>Nn/Vec.cs</c>) against the scalar loops they replaced, written out here as the
/// oracles: element-wise results bit for bit (Adam's update, ReLU, the dueling head, the masked argmax, layer
/// normalisation given its row statistics); the sums in double that now run over vector lanes within a few double
/// roundings. And the buffers a learner's network reuses (<see cref="Layer.ReusesBuffers"/>) and the input gradient its
/// first layer skips change no output and no parameter gradient.
/// </summary>
public sealed class VectorizedKernelTests
{
    // lengths around the vector width (4, 8 or 16 floats) and the network's (256, 252 + 1)
    static readonly int[] Lengths = [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 253, 256];

    static float[] Random(Random rng, int n, float scale = 1f)
    {
        var x = new float[n];
        Fill(rng, x, scale);
        return x;
    }

    [Fact]
    public void Adam_steps_equal_the_scalar_update_bit_for_bit()
    {
        var rng = new Random(11);
        foreach (int n in Lengths)
        {
            var p = new Parameter("p", [n]);
            Fill(rng, p.Value);
            var (value, m, v) = ((float[])p.Value.Clone(), new float[n], new float[n]);
            var adam = new Adam([p], new AdamOptions(LearningRate: 1e-2, Epsilon: 1.5e-4));
            for (int t = 1; t <= 5; t++)
            {
                Fill(rng, p.Grad, t);
                var grad = (float[])p.Grad.Clone();
                adam.Step();
                // torch's update on float32 parameters, one element at a time, each operation rounded to float
                float step = (float)(1e-2 / (1 - Math.Pow(0.9, t))), root2 = (float)Math.Sqrt(1 - Math.Pow(0.999, t));
                for (int i = 0; i < n; i++)
                {
                    float g = grad[i];
                    float mi = 0.9f * m[i] + (float)(1 - 0.9) * g, vi = 0.999f * v[i] + (float)(1 - 0.999) * g * g;
                    (m[i], v[i]) = (mi, vi);
                    value[i] = value[i] - step * mi / (MathF.Sqrt(vi) / root2 + 1.5e-4f);
                }
                Assert.Equal(value, p.Value);
            }
            var state = adam.State();
            Assert.Equal(m, state[0].Data);
            Assert.Equal(v, state[1].Data);
        }
    }

    [Fact]
    public void The_gradient_norm_and_clipping_equal_the_scalar_ones()
    {
        var rng = new Random(12);
        var ps = Lengths.Select((n, k) => new Parameter($"p{k}", [n])).ToArray();
        foreach (var p in ps) Fill(rng, p.Grad, 3);
        double sequential = 0;
        foreach (var p in ps)
            foreach (float g in p.Grad) sequential += (double)g * g;
        var adam = new Adam(ps, new AdamOptions(MaxGradNorm: 1));
        Assert.Equal(Math.Sqrt(sequential), adam.GradNorm(), 1e-13 * Math.Sqrt(sequential));
        float scale = (float)(1 / (Math.Sqrt(sequential) + 1e-6));
        var clipped = ps.Select(p => p.Grad.Select(g => g * scale).ToArray()).ToArray();
        adam.Options = adam.Options with { LearningRate = 0 };
        adam.Step();
        for (int k = 0; k < ps.Length; k++) Assert.Equal(clipped[k], ps[k].Grad);
    }

    [Fact]
    public void Relu_and_its_gradient_equal_the_scalar_loops_bit_for_bit()
    {
        var rng = new Random(13);
        foreach (int n in Lengths)
        {
            var x = Random(rng, n);
            if (n > 2) (x[0], x[1], x[2]) = (-0f, float.NaN, 0f);
            var dy = Random(rng, n);
            var (y, dx) = (new float[n], new float[n]);
            Vec.Relu(x, y);
            Vec.ReluBackward(x, dy, dx);
            Assert.Equal(x.Select(v => v > 0 ? v : 0f), y);
            Assert.Equal(x.Select((v, i) => v > 0 ? dy[i] : 0f), dx);
        }
    }

    [Fact]
    public void The_dueling_head_equals_the_scalar_loops_bit_for_bit()
    {
        var rng = new Random(14);
        var shape = new NetworkShape("dqn", 5, 13, [9], "relu", false);
        foreach (int rows in (int[])[1, 3, 4, 7, 64])
        {
            var q = new QNetwork(shape, new Random(1)) { ReusesBuffers = true };
            var mlp = new Mlp("q", 5, [9], 14, "relu", false, 1.0, new Random(1));
            var x = RandomMatrix(rng, rows, 5);
            var va = mlp.Forward(x);
            var got = q.Forward(x);
            for (int b = 0; b < rows; b++)
            {
                float mean = 0;
                for (int a = 0; a < 13; a++) mean += va[b, 1 + a];
                mean /= 13;
                for (int a = 0; a < 13; a++) Assert.Equal(va[b, 0] + va[b, 1 + a] - mean, got[b, a]);
            }
            // backward: dV = sum_a dQ, dA_a = dQ_a - sum/n, into the same trunk
            var dq = RandomMatrix(rng, rows, 13);
            var dva = new Matrix(rows, 14);
            for (int b = 0; b < rows; b++)
            {
                float sum = 0;
                for (int a = 0; a < 13; a++) sum += dq[b, a];
                dva[b, 0] = sum;
                for (int a = 0; a < 13; a++) dva[b, 1 + a] = dq[b, a] - sum / 13;
            }
            foreach (var p in q.Parameters.Concat(mlp.Parameters)) Array.Clear(p.Grad);
            q.Backward(dq);
            mlp.Backward(dva);
            for (int k = 0; k < q.Parameters.Count; k++) Assert.Equal(mlp.Parameters[k].Grad, q.Parameters[k].Grad);
        }
    }

    [Fact]
    public void The_masked_argmax_is_the_first_legal_maximum_as_the_scalar_loop()
    {
        static int Oracle(float[] s, bool[] m)
        {
            int best = -1;
            for (int a = 0; a < s.Length; a++)
                if (m[a] && (best < 0 || s[a] > s[best])) best = a;
            return best;
        }
        var rng = new Random(15);
        for (int trial = 0; trial < 500; trial++)
        {
            int n = 1 + rng.Next(40);
            var s = Random(rng, n);
            for (int i = 0; i < n; i++)
                if (rng.Next(5) == 0) s[i] = (float)Math.Round(s[i]);   // ties
            if (trial % 50 == 0) s[rng.Next(n)] = float.NaN;
            var m = Enumerable.Range(0, n).Select(_ => rng.Next(3) > 0).ToArray();
            if (!m.Any(b => b)) m[rng.Next(n)] = true;
            Assert.Equal(Oracle(s, m), Net.MaskedArgmax(s, m));
        }
        Assert.Throws<InvalidOperationException>(() => Net.MaskedArgmax([1f, 2f], [false, false]));
    }

    [Fact]
    public void Layer_normalisation_equals_the_scalar_loops()
    {
        const float Epsilon = 1e-5f;
        var rng = new Random(16);
        foreach (int n in (int[])[1, 7, 9, 17, 256])
        {
            var norm = new LayerNorm(n, "n");
            Fill(rng, norm.Weight.Value);
            Fill(rng, norm.Bias.Value);
            var x = RandomMatrix(rng, 5, n, 3);
            for (int j = 0; j < n; j++) x[1, j] += 100;   // a row far from 0
            var y = norm.Forward(x);
            var dy = RandomMatrix(rng, 5, n);
            var dx = norm.Backward(dy);
            var (dw, db) = (new float[n], new float[n]);
            for (int r = 0; r < 5; r++)
            {
                // the scalar form: mean and variance in one running double sum each, the rest per element
                var row = x.Row(r).ToArray();
                double mean = 0, variance = 0;
                foreach (float v in row) mean += v;
                mean /= n;
                foreach (float v in row) variance += (v - mean) * (v - mean);
                variance /= n;
                float s = (float)(1 / Math.Sqrt(variance + Epsilon));
                var h = row.Select(v => (float)((v - mean) * s)).ToArray();
                for (int j = 0; j < n; j++)
                {
                    float expected = norm.Weight.Value[j] * h[j] + norm.Bias.Value[j];
                    Assert.Equal(expected, y[r, j], 1e-6f * (Math.Abs(expected) + 1));
                }
                double meanG = 0, meanGh = 0;
                for (int j = 0; j < n; j++)
                {
                    dw[j] += dy[r, j] * h[j];
                    db[j] += dy[r, j];
                    double d = (double)dy[r, j] * norm.Weight.Value[j];
                    meanG += d;
                    meanGh += d * h[j];
                }
                (meanG, meanGh) = (meanG / n, meanGh / n);
                double scale = s * norm.Weight.Value.Max(MathF.Abs) * dy.Row(r).ToArray().Max(MathF.Abs);
                for (int j = 0; j < n; j++)
                    Assert.Equal((float)(s * ((double)dy[r, j] * norm.Weight.Value[j] - meanG - h[j] * meanGh)), dx[r, j], 1e-5 * scale);
            }
            for (int j = 0; j < n; j++)
            {
                Assert.Equal(dw[j], norm.Weight.Grad[j], 1e-5 * Math.Max(1, Math.Abs(dw[j])));
                Assert.Equal(db[j], norm.Bias.Grad[j]);   // the same float additions in the same order
            }
        }
    }

    [Fact]
    public void The_row_sums_in_double_are_the_running_sums_up_to_rounding()
    {
        var rng = new Random(17);
        foreach (int n in Lengths)
        {
            var x = Random(rng, n, 10);
            double sum = 0, squares = 0, deviations = 0, mean = n > 0 ? x.Average(v => (double)v) : 0;
            foreach (float v in x) (sum, squares, deviations) = (sum + v, squares + (double)v * v, deviations + (v - mean) * (v - mean));
            Assert.Equal(sum, Vec.Sum(x), 1e-12 * Math.Max(1, x.Sum(Math.Abs)));
            Assert.Equal(squares, Vec.SumOfSquares(x), 1e-12 * Math.Max(1, squares));
            Assert.Equal(deviations, Vec.SumOfSquaredDeviations(x, mean), 1e-12 * Math.Max(1, deviations));
        }
    }

    [Theory]
    [InlineData("relu", true)]
    [InlineData("tanh", false)]
    public void Reused_buffers_and_a_skipped_input_gradient_change_no_output_and_no_gradient(string activation, bool layerNorm)
    {
        var rng = new Random(18);
        var shape = new NetworkShape("dqn", 6, 5, [8, 7], activation, layerNorm);
        var (fresh, reusing) = (new QNetwork(shape, new Random(2)), new QNetwork(shape, new Random(2)) { ReusesBuffers = true });
        var (last, lastRows) = ((Matrix?)null, 0);
        foreach (int rows in (int[])[4, 4, 3, 1, 3])
        {
            var x = RandomMatrix(rng, rows, 6);
            var dq = RandomMatrix(rng, rows, 5);
            var (a, b) = (fresh.Forward(x), reusing.Forward(x));
            Assert.Equal(a.Data, b.Data);
            if (rows == 1) Assert.NotSame(b, reusing.Forward(x));   // one row: always a new matrix, the batches' buffers kept
            else
            {
                if (rows == lastRows) Assert.Same(last, b);          // a batch of the same size: the same buffer again
                (last, lastRows) = (b, rows);
            }
            foreach (var p in fresh.Parameters.Concat(reusing.Parameters)) Array.Clear(p.Grad);
            fresh.Forward(x);
            reusing.Forward(x);
            fresh.Backward(dq);
            reusing.Backward(dq);
            for (int k = 0; k < fresh.Parameters.Count; k++) Assert.Equal(fresh.Parameters[k].Grad, reusing.Parameters[k].Grad);
        }

        // the first layer's skipped input gradient: the same parameter gradients as the whole backward pass
        var mlp = new Mlp("m", 6, [8], 3, activation, layerNorm, 1.0, new Random(3));
        var (input, dy) = (RandomMatrix(rng, 5, 6), RandomMatrix(rng, 5, 3));
        mlp.Forward(input);
        Assert.NotNull(mlp.Backward(dy, inputGradient: true));
        var all = mlp.Parameters.Select(p => (float[])p.Grad.Clone()).ToArray();
        foreach (var p in mlp.Parameters) Array.Clear(p.Grad);
        Assert.Null(mlp.Backward(dy, inputGradient: false));
        for (int k = 0; k < all.Length; k++) Assert.Equal(all[k], mlp.Parameters[k].Grad);
    }
}
