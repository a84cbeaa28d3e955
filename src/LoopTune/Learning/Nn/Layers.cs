namespace LoopTune.Learning.Nn;

/// <summary>A differentiable layer over batches (one row per sample).</summary>
public interface ILayer
{
    /// <summary>Forward for a batch; caches what Backward needs (the last call's input/output, by reference:
    /// do not modify x or the returned matrix before Backward). The result is a new matrix.</summary>
    Matrix Forward(Matrix x);

    /// <summary>Given dLoss/dOutput of the last Forward, ADDS parameter gradients into <see cref="Parameter.Grad"/>
    /// and returns dLoss/dInput (a new matrix; dy is not modified).</summary>
    Matrix Backward(Matrix dy);

    /// <summary>The trainable parameters (empty for activations).</summary>
    IReadOnlyList<Parameter> Parameters { get; }
}

/// <summary>A fully connected layer y = x W + b, W is [inputs, outputs] row-major, b is [outputs].</summary>
public sealed class Dense : ILayer
{
    readonly Matrix w, dw;
    Matrix? input;

    /// <summary>Weights drawn from <paramref name="rng"/>: an orthogonal matrix scaled by <paramref name="gain"/>
    /// (CleanRL's layer_init: gain sqrt(2) for hidden layers, 0.01 for a policy head, 1 for a value head); bias 0.
    /// Parameter names: name + ".weight" and name + ".bias".</summary>
    public Dense(int inputs, int outputs, Random rng, string name, double gain = 1.4142135623730951)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inputs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outputs);
        ArgumentNullException.ThrowIfNull(rng);
        (Inputs, Outputs) = (inputs, outputs);
        Weight = new Parameter(name + ".weight", [inputs, outputs]);
        Bias = new Parameter(name + ".bias", [outputs]);
        Init.Orthogonal(inputs, outputs, rng, gain).CopyTo(Weight.Value, 0);
        w = new Matrix(inputs, outputs, Weight.Value);
        dw = new Matrix(inputs, outputs, Weight.Grad);
        Parameters = [Weight, Bias];
    }

    public int Inputs { get; }
    public int Outputs { get; }
    public Parameter Weight { get; }
    public Parameter Bias { get; }
    public IReadOnlyList<Parameter> Parameters { get; }

    public Matrix Forward(Matrix x)
    {
        ArgumentNullException.ThrowIfNull(x);
        Matrix.CheckShape(x, x.Rows, Inputs, nameof(x));
        var y = new Matrix(x.Rows, Outputs);
        for (int r = 0; r < x.Rows; r++) Bias.Value.CopyTo(y.Row(r));
        Gemm.Multiply(x, false, w, false, y, accumulate: true);
        input = x;
        return y;
    }

    public Matrix Backward(Matrix dy)
    {
        var x = input ?? throw new InvalidOperationException("Dense.Backward before Forward");
        Matrix.CheckShape(dy, x.Rows, Outputs, nameof(dy));
        Gemm.Multiply(x, true, dy, false, dw, accumulate: true);
        var db = Bias.Grad;
        for (int r = 0; r < dy.Rows; r++)
        {
            var row = dy.Row(r);
            for (int j = 0; j < row.Length; j++) db[j] += row[j];
        }
        var dx = new Matrix(x.Rows, Inputs);
        Gemm.Multiply(dy, false, w, true, dx);
        return dx;
    }

    public override string ToString() => $"Dense({Inputs} -> {Outputs}) {Weight.Name}";
}

/// <summary>y = max(x, 0); the gradient at 0 is 0.</summary>
public sealed class Relu : ILayer
{
    Matrix? input;

    public Relu() { }

    public IReadOnlyList<Parameter> Parameters => [];

    public Matrix Forward(Matrix x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = new Matrix(x.Rows, x.Cols);
        for (int i = 0; i < y.Data.Length; i++) y.Data[i] = x.Data[i] > 0 ? x.Data[i] : 0f;
        input = x;
        return y;
    }

    public Matrix Backward(Matrix dy)
    {
        var x = input ?? throw new InvalidOperationException("Relu.Backward before Forward");
        Matrix.CheckShape(dy, x.Rows, x.Cols, nameof(dy));
        var dx = new Matrix(x.Rows, x.Cols);
        for (int i = 0; i < dx.Data.Length; i++) dx.Data[i] = x.Data[i] > 0 ? dy.Data[i] : 0f;
        return dx;
    }
}

/// <summary>y = tanh(x), the smooth activation; dy/dx = 1 - y^2.</summary>
public sealed class Tanh : ILayer
{
    Matrix? output;

    public Tanh() { }

    public IReadOnlyList<Parameter> Parameters => [];

    public Matrix Forward(Matrix x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = new Matrix(x.Rows, x.Cols);
        for (int i = 0; i < y.Data.Length; i++) y.Data[i] = MathF.Tanh(x.Data[i]);
        output = y;
        return y;
    }

    public Matrix Backward(Matrix dy)
    {
        var y = output ?? throw new InvalidOperationException("Tanh.Backward before Forward");
        Matrix.CheckShape(dy, y.Rows, y.Cols, nameof(dy));
        var dx = new Matrix(y.Rows, y.Cols);
        for (int i = 0; i < dx.Data.Length; i++) dx.Data[i] = dy.Data[i] * (1f - y.Data[i] * y.Data[i]);
        return dx;
    }
}

/// <summary>Layer normalisation of each row: y = gain * (x - mean) / sqrt(var + epsilon) + bias, with the biased
/// variance over the row. Gain (".weight", init 1) and bias (".bias", init 0) are per feature.</summary>
public sealed class LayerNorm : ILayer
{
    readonly float epsilon;
    Matrix? normalized;
    float[] invStd = [];

    public LayerNorm(int features, string name, float epsilon = 1e-5f)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(features);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(epsilon);
        (Features, this.epsilon) = (features, epsilon);
        Weight = new Parameter(name + ".weight", [features]);
        Bias = new Parameter(name + ".bias", [features]);
        Array.Fill(Weight.Value, 1f);
        Parameters = [Weight, Bias];
    }

    public int Features { get; }
    public Parameter Weight { get; }
    public Parameter Bias { get; }
    public IReadOnlyList<Parameter> Parameters { get; }

    public Matrix Forward(Matrix x)
    {
        ArgumentNullException.ThrowIfNull(x);
        Matrix.CheckShape(x, x.Rows, Features, nameof(x));
        int n = Features;
        var xhat = new Matrix(x.Rows, n);
        var y = new Matrix(x.Rows, n);
        invStd = new float[x.Rows];
        for (int r = 0; r < x.Rows; r++)
        {
            var row = x.Row(r);
            double mean = 0, variance = 0;
            foreach (float v in row) mean += v;
            mean /= n;
            foreach (float v in row) variance += (v - mean) * (v - mean);
            variance /= n;
            float s = (float)(1 / Math.Sqrt(variance + epsilon));
            invStd[r] = s;
            Span<float> h = xhat.Row(r), o = y.Row(r);
            for (int j = 0; j < n; j++)
            {
                h[j] = (float)((row[j] - mean) * s);
                o[j] = Weight.Value[j] * h[j] + Bias.Value[j];
            }
        }
        normalized = xhat;
        return y;
    }

    public Matrix Backward(Matrix dy)
    {
        var xhat = normalized ?? throw new InvalidOperationException("LayerNorm.Backward before Forward");
        Matrix.CheckShape(dy, xhat.Rows, Features, nameof(dy));
        int n = Features;
        var dx = new Matrix(xhat.Rows, n);
        for (int r = 0; r < xhat.Rows; r++)
        {
            Span<float> h = xhat.Row(r), g = dy.Row(r), d = dx.Row(r);
            double meanG = 0, meanGh = 0;   // means of dxhat and dxhat * xhat
            for (int j = 0; j < n; j++)
            {
                Weight.Grad[j] += g[j] * h[j];
                Bias.Grad[j] += g[j];
                double dh = (double)g[j] * Weight.Value[j];
                meanG += dh;
                meanGh += dh * h[j];
            }
            meanG /= n;
            meanGh /= n;
            for (int j = 0; j < n; j++)
                d[j] = (float)(invStd[r] * ((double)g[j] * Weight.Value[j] - meanG - h[j] * meanGh));
        }
        return dx;
    }
}

/// <summary>Layers applied in order; Backward runs them in reverse. Parameters are the layers' in order.</summary>
public sealed class Sequential : ILayer
{
    public Sequential(params ILayer[] layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Any(l => l is null)) throw new ArgumentException("a layer is null", nameof(layers));
        Layers = [.. layers];
        Parameters = [.. Layers.SelectMany(l => l.Parameters)];
    }

    public IReadOnlyList<ILayer> Layers { get; }
    public IReadOnlyList<Parameter> Parameters { get; }

    public Matrix Forward(Matrix x)
    {
        foreach (var layer in Layers) x = layer.Forward(x);
        return x;
    }

    public Matrix Backward(Matrix dy)
    {
        for (int i = Layers.Count - 1; i >= 0; i--) dy = Layers[i].Backward(dy);
        return dy;
    }
}

/// <summary>Weight initialisation.</summary>
public static class Init
{
    /// <summary>A [rows, cols] row-major matrix with orthonormal columns (rows &gt;= cols) or orthonormal rows
    /// (rows &lt; cols), times <paramref name="gain"/>, as torch.nn.init.orthogonal_: the Q of a QR decomposition of a
    /// standard Gaussian matrix (Box-Muller from <paramref name="rng"/>), with the signs that make diag(R) positive.
    /// Gram-Schmidt in double, applied twice for orthogonality to rounding.</summary>
    public static float[] Orthogonal(int rows, int cols, Random rng, double gain)
    {
        ArgumentNullException.ThrowIfNull(rng);
        int tall = Math.Max(rows, cols), wide = Math.Min(rows, cols);
        // q[v][i]: vector v (of wide), element i (of tall); drawn column by column
        var q = new double[wide][];
        for (int v = 0; v < wide; v++)
        {
            q[v] = new double[tall];
            for (int i = 0; i < tall; i += 2)
            {
                double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
                double radius = Math.Sqrt(-2.0 * Math.Log(u1)), angle = 2.0 * Math.PI * u2;
                q[v][i] = radius * Math.Cos(angle);
                if (i + 1 < tall) q[v][i + 1] = radius * Math.Sin(angle);
            }
        }
        for (int v = 0; v < wide; v++)
        {
            var x = q[v];
            for (int pass = 0; pass < 2; pass++)
                for (int u = 0; u < v; u++)
                {
                    double dot = 0;
                    for (int i = 0; i < tall; i++) dot += q[u][i] * x[i];
                    for (int i = 0; i < tall; i++) x[i] -= dot * q[u][i];
                }
            double norm = 0;
            foreach (double e in x) norm += e * e;
            norm = Math.Sqrt(norm);
            if (!(norm > 1e-12)) throw new InvalidOperationException("orthogonal init: degenerate Gaussian draw");
            for (int i = 0; i < tall; i++) x[i] /= norm;
        }
        var result = new float[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                result[r * cols + c] = (float)(gain * (rows >= cols ? q[c][r] : q[r][c]));
        return result;
    }
}
