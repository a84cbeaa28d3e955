using LoopTune.Learning.Nn;
using Xunit.Abstractions;

namespace LoopTune.Tests.Learning;

/// <summary>Random inputs and the finite-difference oracle for the network tests.</summary>
static class NnTestUtil
{
    /// <summary>Writes the worst relative errors of a gradient check to the test's output and asserts each is within
    /// <paramref name="bound"/>.</summary>
    public static void CheckErrors(ITestOutputHelper output, string what, double bound, params double[] errors)
    {
        output.WriteLine($"{what}: worst relative errors {string.Join(", ", errors.Select(e => e.ToString("g3")))} (bound {bound:g2})");
        Assert.All(errors, e => Assert.InRange(e, 0, bound));
    }

    public static float Normal(Random rng) =>
        (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));

    public static Matrix RandomMatrix(Random rng, int rows, int cols, float scale = 1f)
    {
        var m = new Matrix(rows, cols);
        for (int i = 0; i < m.Data.Length; i++) m.Data[i] = scale * Normal(rng);
        return m;
    }

    public static void Fill(Random rng, float[] values, float scale = 1f)
    {
        for (int i = 0; i < values.Length; i++) values[i] = scale * Normal(rng);
    }

    /// <summary>The worst relative error max_i |a_i - n_i| / max(floor, |a_i| + |n_i|) between the analytic gradient a
    /// and the central difference n_i = (f(v + h e_i) - f(v - h e_i)) / (2h) of <paramref name="loss"/> over every element
    /// of <paramref name="values"/> (restored afterwards; the step is the one actually representable in float).</summary>
    public static double GradientError(float[] values, float[] analytic, Func<double> loss, float h, double floor = 1e-2)
    {
        Assert.Equal(values.Length, analytic.Length);
        double worst = 0;
        for (int i = 0; i < values.Length; i++)
        {
            float saved = values[i], up = saved + h, down = saved - h;
            values[i] = up;
            double lossUp = loss();
            values[i] = down;
            double lossDown = loss();
            values[i] = saved;
            double numeric = (lossUp - lossDown) / ((double)up - down);
            worst = Math.Max(worst, Math.Abs(analytic[i] - numeric) / Math.Max(floor, Math.Abs(analytic[i]) + Math.Abs(numeric)));
        }
        return worst;
    }

    /// <summary>sum_ij r_ij y_ij in double: a loss whose dLoss/dy is r.</summary>
    public static double Dot(Matrix r, Matrix y)
    {
        double sum = 0;
        for (int i = 0; i < y.Data.Length; i++) sum += (double)r.Data[i] * y.Data[i];
        return sum;
    }

    /// <summary>Checks dLoss/dx and every parameter's gradient of <paramref name="layer"/> for the loss sum(r * layer(x))
    /// against central differences; returns the worst error of each (x first, then the parameters).</summary>
    public static double[] LayerGradientErrors(ILayer layer, Matrix x, Random rng, float h)
    {
        var y = layer.Forward(x);
        var r = RandomMatrix(rng, y.Rows, y.Cols);
        foreach (var p in layer.Parameters) Array.Clear(p.Grad);
        var dx = layer.Backward(r);
        var analytic = layer.Parameters.Select(p => (float[])p.Grad.Clone()).ToList();
        double Loss() => Dot(r, layer.Forward(x));
        var errors = new List<double> { GradientError(x.Data, dx.Data, Loss, h) };
        for (int k = 0; k < layer.Parameters.Count; k++) errors.Add(GradientError(layer.Parameters[k].Value, analytic[k], Loss, h));
        return [.. errors];
    }
}
