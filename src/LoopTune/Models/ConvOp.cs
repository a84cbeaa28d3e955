using System.Collections.Immutable;
using LoopTune.Ir;
using static LoopTune.Models.ContractionText;

namespace LoopTune.Models;

/// <summary>
/// A 2-d <c>Conv</c> (group 1, dilation 1) as <c>O[n,f,h,w] += I[n,c,sh*h+r,sw*w+s] * W[f,c,r,s]</c>: the stride is the
/// index's coefficient, the batch an index variable; <c>I</c> is a copy of X with its zero padding made outside the
/// kernel (cut to the rows and columns the windows reach), and <c>O</c> starts as the bias broadcast over n, h, w.
/// Variables of size 1 are left out (a batch of one, a 1x1 kernel).
/// </summary>
public sealed class ConvOp : ContractionOp
{
    readonly string x, w;
    readonly string? bias;
    readonly ImmutableArray<long> xShape;
    readonly Window window;
    readonly long paddedH, paddedW;

    ConvOp(OnnxNode node, OnnxModel model, Computation contraction, ImmutableArray<long> outputShape, ImmutableArray<string> outside,
        ImmutableArray<long> xShape, Window window, long paddedH, long paddedW)
        : base(node, model, contraction, outputShape, outside)
    {
        x = node.Inputs[0]; w = node.Inputs[1]; bias = node.Input(2);
        (this.xShape, this.window, this.paddedH, this.paddedW) = (xShape, window, paddedH, paddedW);
    }

    /// <summary>The window: kernel, strides, pads.</summary>
    public Window Window => window;
    /// <summary>Whether the kernel reads a padded (or cut) copy of X rather than X itself.</summary>
    public bool CopiesInput => window.PadsBegin.Any(p => p != 0) || paddedH != xShape[2] || paddedW != xShape[3];

    internal static LoweredNode Lower(OnnxNode node, OnnxModel model, ImmutableArray<long> x, ImmutableArray<long> wShape, ImmutableArray<long> y)
    {
        if (x.Length != 4) return new NotTuned(node, $"a {x.Length - 2}-d convolution (only 2-d ones are lowered)");
        long group = node.Int("group", 1);
        if (group != 1) return new NotTuned(node, $"group {group} (a grouped convolution is {group} contractions; only group 1 is lowered)");
        var window = Window.Of(node, x[2..], wShape[2..]);
        if (window.Dilations.Any(d => d != 1)) return new NotTuned(node, $"dilations {ModelShapes.Format(window.Dilations)} (only dilation 1 is lowered)");
        long n = x[0], c = x[1], f = wShape[0], r = wShape[2], s = wShape[3], oh = y[2], ow = y[3];
        long sh = window.Strides[0], sw = window.Strides[1];
        long paddedH = sh * (oh - 1) + r, paddedW = sw * (ow - 1) + s;
        var contraction = new ContractionText()
            .Var("n", n).Var("f", f).Var("h", oh).Var("w", ow).Var("c", c).Var("r", r).Var("s", s)
            .Tensor("O", D("n"), D("f"), D("h"), D("w"))
            .Tensor("I", D("n"), D("c"), [(sh, "h"), (1, "r")], [(sw, "w"), (1, "s")])
            .Tensor("W", D("f"), D("c"), D("r"), D("s"))
            .Build();
        var outside = new List<string>();
        string pads = ModelShapes.Format(window.Pads);
        if (window.PadsBegin.Any(p => p != 0) || paddedH != x[2] || paddedW != x[3])
            outside.Add($"I = {node.Inputs[0]} {ModelShapes.Format(x)} with pads {pads} (top, left, bottom, right) as zeros, copied into [{n},{c},{paddedH},{paddedW}]");
        else outside.Add($"I = {node.Inputs[0]} as it is");
        outside.Add($"W = {node.Inputs[1]} {ModelShapes.Format(wShape)} as it is");
        outside.Add(node.Input(2) is { } b ? $"O starts as the bias {b} [{f}] broadcast over n, h, w" : "O starts as zeros");
        return new ConvOp(node, model, contraction, y, [.. outside], x, window, paddedH, paddedW);
    }

    protected override (float[] Left, float[] Right) Prepare(float[] output, Func<string, float[]> value)
    {
        long n = xShape[0], c = xShape[1];
        var input = Sized(value(x), x, n * c * xShape[2] * xShape[3]);
        var weights = Sized(value(w), w, Contraction.Right.Length);
        if (bias is not null)
        {
            var b = Sized(value(bias), bias, OutputShape[1]);
            int plane = checked((int)(OutputShape[2] * OutputShape[3]));
            for (int i = 0; i < output.Length / plane; i++) output.AsSpan(i * plane, plane).Fill(b[i % b.Length]);
        }
        return (CopiesInput ? Pad(input) : input, weights);
    }

    float[]? padded;

    /// <summary>X copied into [N, C, paddedH, paddedW] at offset (top, left), zeros around (and <see cref="ContractionOp.Slack"/>
    /// floats after): one array, made at the first run, whose zeros stay as they are and whose rest each run overwrites.</summary>
    float[] Pad(float[] input)
    {
        int n = (int)xShape[0], c = (int)xShape[1], h = (int)xShape[2], w0 = (int)xShape[3];
        int ph = (int)paddedH, pw = (int)paddedW, top = (int)window.PadsBegin[0], left = (int)window.PadsBegin[1];
        padded ??= new float[checked(n * c * ph * pw + Slack)];
        for (int plane = 0; plane < n * c; plane++)
            for (int row = 0; row < ph; row++)
            {
                int from = row - top;
                if (from < 0 || from >= h) continue;
                int col0 = Math.Max(0, left), col1 = Math.Min(pw, left + w0); // padded columns that hold X
                if (col1 <= col0) continue;
                input.AsSpan((plane * h + from) * w0 + (col0 - left), col1 - col0)
                    .CopyTo(padded.AsSpan((plane * ph + row) * pw + col0));
            }
        return padded;
    }
}
