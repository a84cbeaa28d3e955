namespace LoopTune.Learning.Nn;

/// <summary>A differentiable layer over batches (one row per sample).</summary>
public interface ILayer
{
    /// <summary>Forward for a batch; caches what Backward needs (the last call's input/output, by reference:
    /// do not modify x or the returned matrix before Backward). The result is a new matrix (a <see cref="Layer"/> that
    /// <see cref="Layer.ReusesBuffers"/> returns its own buffer for a batch).</summary>
    Matrix Forward(Matrix x);

    /// <summary>Given dLoss/dOutput of the last Forward, ADDS parameter gradients into <see cref="Parameter.Grad"/>
    /// and returns dLoss/dInput (a new matrix, or the layer's buffer as for Forward; dy is not modified).</summary>
    Matrix Backward(Matrix dy);

    /// <summary>The trainable parameters (empty for activations).</summary>
    IReadOnlyList<Parameter> Parameters { get; }
}

/// <summary>
/// What the network library's layers share: matrices they may hand out again. With <see cref="ReusesBuffers"/> set, a
/// layer's Forward and Backward on a batch (2 rows or more) return matrices the layer owns and overwrites on its next call
/// of the same kind: a learner's updates then allocate nothing per call. The caller must be done with a result before the
/// layer's next Forward (or Backward), which a <see cref="Sequential"/> is for every layer but its last, and use the layer
/// from one thread. One row (acting) always gets a new matrix, so a network that acts on several threads at once may still
/// reuse its batches' buffers. Off by default: every result is a new matrix, as <see cref="ILayer"/> says.
/// </summary>
public abstract class Layer : ILayer
{
    /// <summary>Whether batch results are buffers the layer reuses (see <see cref="Layer"/>).</summary>
    public bool ReusesBuffers { get; set; }

    public abstract IReadOnlyList<Parameter> Parameters { get; }
    public abstract Matrix Forward(Matrix x);
    public abstract Matrix Backward(Matrix dy);

    /// <summary>Backward that may skip dLoss/dInput when <paramref name="inputGradient"/> is false (a network's first
    /// layer: nothing needs the gradient of its input); then it returns null. Parameter gradients are added either way.</summary>
    public virtual Matrix? Backward(Matrix dy, bool inputGradient) => Backward(dy);

    /// <summary>A rows x cols matrix to write a result into: <paramref name="slot"/>'s when buffers are reused and it has
    /// that shape (its old contents left in place), else a new one of zeros (kept in the slot when reusing).</summary>
    protected Matrix Buffer(ref Matrix? slot, int rows, int cols) => Buffer(ref slot, rows, cols, ReusesBuffers);

    /// <inheritdoc cref="Buffer(ref Matrix?, int, int)"/>
    internal static Matrix Buffer(ref Matrix? slot, int rows, int cols, bool reuse)
    {
        if (!reuse || rows < 2) return new Matrix(rows, cols);
        if (slot is null || slot.Rows != rows || slot.Cols != cols) slot = new Matrix(rows, cols);
        return slot;
    }
}

/// <summary>A fully connected layer y = x W + b, W is [inputs, outputs] row-major, b is [outputs].</summary>
public sealed class Dense : Layer
{
    readonly Matrix w, dw;
    Matrix? input, output, inputGradient;

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
    public override IReadOnlyList<Parameter> Parameters { get; }

    public override Matrix Forward(Matrix x)
    {
        ArgumentNullException.ThrowIfNull(x);
        Matrix.CheckShape(x, x.Rows, Inputs, nameof(x));
        var y = Buffer(ref output, x.Rows, Outputs);
        for (int r = 0; r < x.Rows; r++) Bias.Value.CopyTo(y.Row(r));
        Gemm.Multiply(x, false, w, false, y, accumulate: true);
        input = x;
        return y;
    }

    public override Matrix Backward(Matrix dy) => Backward(dy, inputGradient: true)!;

    public override Matrix? Backward(Matrix dy, bool inputGradient)
    {
        var x = input ?? throw new InvalidOperationException("Dense.Backward before Forward");
        Matrix.CheckShape(dy, x.Rows, Outputs, nameof(dy));
        Gemm.Multiply(x, true, dy, false, dw, accumulate: true);
        for (int r = 0; r < dy.Rows; r++) Vec.Add(Bias.Grad, dy.Row(r));
        if (!inputGradient) return null;
        var dx = Buffer(ref this.inputGradient, x.Rows, Inputs);
        Gemm.Multiply(dy, false, w, true, dx);
        return dx;
    }

    public override string ToString() => $"Dense({Inputs} -> {Outputs}) {Weight.Name}";
}

/// <summary>y = max(x, 0); the gradient at 0 is 0.</summary>
public sealed class Relu : Layer
{
    Matrix? input, output, inputGradient;

    public Relu() { }

    public override IReadOnlyList<Parameter> Parameters => [];

    public override Matrix Forward(Matrix x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = Buffer(ref output, x.Rows, x.Cols);
        Vec.Relu(x.Data, y.Data);
        input = x;
        return y;
    }

    public override Matrix Backward(Matrix dy)
    {
        var x = input ?? throw new InvalidOperationException("Relu.Backward before Forward");
        Matrix.CheckShape(dy, x.Rows, x.Cols, nameof(dy));
        var dx = Buffer(ref inputGradient, x.Rows, x.Cols);
        Vec.ReluBackward(x.Data, dy.Data, dx.Data);
        return dx;
    }
}

/// <summary>y = tanh(x), the smooth activation; dy/dx = 1 - y^2.</summary>
public sealed class Tanh : Layer
{
    Matrix? output, inputGradient;

    public Tanh() { }

    public override IReadOnlyList<Parameter> Parameters => [];

    public override Matrix Forward(Matrix x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = Buffer(ref output, x.Rows, x.Cols);
        for (int i = 0; i < y.Data.Length; i++) y.Data[i] = MathF.Tanh(x.Data[i]);
        output = y;
        return y;
    }

    public override Matrix Backward(Matrix dy)
    {
        var y = output ?? throw new InvalidOperationException("Tanh.Backward before Forward");
        Matrix.CheckShape(dy, y.Rows, y.Cols, nameof(dy));
        var dx = Buffer(ref inputGradient, y.Rows, y.Cols);
        for (int i = 0; i < dx.Data.Length; i++) dx.Data[i] = dy.Data[i] * (1f - y.Data[i] * y.Data[i]);
        return dx;
    }
}

/// <summary>Layer normalisation of each row: y = gain * (x - mean) / sqrt(var + epsilon) + bias, with the biased
/// variance over the row. Gain (".weight", init 1) and bias (".bias", init 0) are per feature.</summary>
public sealed class LayerNorm : Layer
{
    readonly float epsilon;
    Matrix? normalized, output, inputGradient;
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
    public override IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Per row, in double: the mean and the biased variance, s = 1 / sqrt(variance + epsilon) rounded to float,
    /// xhat = (x - mean) s rounded to float; then y = gain xhat + bias in float.</summary>
    public override Matrix Forward(Matrix x)
    {
        ArgumentNullException.ThrowIfNull(x);
        Matrix.CheckShape(x, x.Rows, Features, nameof(x));
        int n = Features;
        var xhat = Buffer(ref normalized, x.Rows, n);
        var y = Buffer(ref output, x.Rows, n);
        if (invStd.Length != x.Rows || !ReusesBuffers) invStd = new float[x.Rows];
        for (int r = 0; r < x.Rows; r++)
        {
            var row = x.Row(r);
            double mean = Vec.Sum(row) / n;
            double variance = Vec.SumOfSquaredDeviations(row, mean) / n;
            float s = (float)(1 / Math.Sqrt(variance + epsilon));
            invStd[r] = s;
            Vec.Normalize(row, mean, s, Weight.Value, Bias.Value, xhat.Row(r), y.Row(r));
        }
        normalized = xhat;
        return y;
    }

    /// <summary>Per row: dgain += dy xhat and dbias += dy (float); dxhat = dy gain, and in double
    /// dx = s (dxhat - mean(dxhat) - xhat mean(dxhat xhat)).</summary>
    public override Matrix Backward(Matrix dy)
    {
        var xhat = normalized ?? throw new InvalidOperationException("LayerNorm.Backward before Forward");
        Matrix.CheckShape(dy, xhat.Rows, Features, nameof(dy));
        int n = Features;
        var dx = Buffer(ref inputGradient, xhat.Rows, n);
        for (int r = 0; r < xhat.Rows; r++)
        {
            Span<float> h = xhat.Row(r), g = dy.Row(r);
            var (sumG, sumGh) = Vec.NormalizeGradients(g, h, Weight.Value, Weight.Grad, Bias.Grad);
            Vec.NormalizeInputGradient(g, h, Weight.Value, invStd[r], sumG / n, sumGh / n, dx.Row(r));
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

    /// <summary>Sets <see cref="Layer.ReusesBuffers"/> on every layer that is a <see cref="Layer"/>: then the result of
    /// <see cref="Forward"/> on a batch is the last layer's buffer, valid until the next Forward.</summary>
    public bool ReusesBuffers
    {
        get => Layers.OfType<Layer>().Any(l => l.ReusesBuffers);
        set
        {
            foreach (var layer in Layers.OfType<Layer>()) layer.ReusesBuffers = value;
        }
    }

    /// <summary>Backward without dLoss/dInput when <paramref name="inputGradient"/> is false (the first layer, when it is
    /// a <see cref="Layer"/>, skips it and null is returned); the parameters' gradients are the same either way.</summary>
    public Matrix? Backward(Matrix dy, bool inputGradient)
    {
        for (int i = Layers.Count - 1; i >= 1; i--) dy = Layers[i].Backward(dy);
        return Layers.Count == 0 ? dy : Layers[0] is Layer first ? first.Backward(dy, inputGradient) : Layers[0].Backward(dy);
    }

    public Matrix Forward(Matrix x)
    {
        foreach (var layer in Layers) x = layer.Forward(x);
        return x;
    }

    public Matrix Backward(Matrix dy) => Backward(dy, inputGradient: true)!;
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
