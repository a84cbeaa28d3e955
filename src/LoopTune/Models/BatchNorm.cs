namespace LoopTune.Models;

/// <summary>
/// A <c>BatchNormalization</c> in inference mode as the per-channel affine map it is:
/// <c>y = (x - mean) * gamma / sqrt(var + eps) + beta = x * scale[c] + shift[c]</c>, with
/// <c>scale = gamma / sqrt(var + eps)</c> and <c>shift = beta - mean * scale</c> (computed in double from the constants).
/// <see cref="Fold"/> folds it into the preceding convolution's weights and bias, as inference runtimes do.
/// </summary>
public sealed class BatchNorm
{
    readonly double[] scale, shift;

    BatchNorm(double[] scale, double[] shift)
    {
        (this.scale, this.shift) = (scale, shift);
        Scale = [.. scale.Select(v => (float)v)];
        Shift = [.. shift.Select(v => (float)v)];
    }

    /// <summary>Per channel, as float32.</summary>
    public float[] Scale { get; }
    /// <summary>Per channel, as float32.</summary>
    public float[] Shift { get; }

    /// <summary>Why <paramref name="node"/> cannot run as an affine map (statistics that are not float constants, training
    /// mode, opset 7's <c>spatial = 0</c>, the running statistics as outputs), or null.</summary>
    public static string? Problem(OnnxModel model, OnnxNode node)
    {
        if (node.Inputs.Length < 5) return $"{node.Inputs.Length} inputs, not 5";
        foreach (var name in node.Inputs.Skip(1))
            if (!model.Initializers.TryGetValue(name, out var t) || !t.IsFloat) return $"{name} is not a float constant (only inference with constant statistics runs)";
        if (node.Int("training_mode", 0) != 0) return "training_mode 1";
        if (node.Int("spatial", 1) == 0) return "spatial 0";
        return node.Outputs.Skip(1).Any(o => o.Length > 0) ? "its running statistics as outputs (training)" : null;
    }

    /// <summary>The map of <paramref name="node"/> (see <see cref="Problem"/> for what it must be).</summary>
    public static BatchNorm Of(OnnxModel model, OnnxNode node)
    {
        if (Problem(model, node) is { } problem) throw new ArgumentException($"{node}: {problem}");
        float[] C(int i) => model.Initializers[node.Inputs[i]].Floats;
        var (gamma, beta, mean, variance) = (C(1), C(2), C(3), C(4));
        double eps = node.Float("epsilon", 1e-5f);
        var scale = gamma.Select((g, c) => g / Math.Sqrt(variance[c] + eps)).ToArray();
        return new BatchNorm(scale, [.. scale.Select((s, c) => beta[c] - mean[c] * s)]);
    }

    /// <summary>Applies the map to NCHW (or NC followed by any spatial dims) <paramref name="x"/> with planes of
    /// <paramref name="plane"/> floats.</summary>
    public void Run(ReadOnlySpan<float> x, Span<float> y, int plane) => ElementwiseOps.ChannelAffine(x, y, Scale, Shift, plane);

    /// <summary>A convolution's weights <c>[F, ...]</c> and bias <c>[F]</c> (none: zeros) with the map folded in:
    /// <c>W'[f,...] = W[f,...] * scale[f]</c>, <c>b'[f] = (b[f] - mean[f]) * scale[f] + beta[f] = b[f] * scale[f] + shift[f]</c>.</summary>
    public (float[] Weights, float[] Bias) Fold(float[] weights, float[]? bias)
    {
        int per = weights.Length / scale.Length;
        var w = new float[weights.Length];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(weights[i] * scale[i / per]);
        return (w, [.. scale.Select((s, f) => (float)((bias?[f] ?? 0) * s + shift[f]))]);
    }
}
