using System.Collections.Immutable;
using LoopTune.Ir;
using static LoopTune.Models.ContractionText;

namespace LoopTune.Models;

/// <summary>
/// A 2-d <c>Conv</c> (group 1, dilation 1). With stride 1 along w (sw = 1) it is
/// <c>O[n,f,h,w] += I[n,c,sh*h+r,w+s] * W[f,c,r,s]</c>: the row stride is the index's coefficient, the batch an index
/// variable; <c>I</c> is a copy of X with its zero padding made outside the kernel (cut to the rows and columns the
/// windows reach), and <c>O</c> starts as the bias broadcast over n, h, w.
/// <para>With a stride sw &gt; 1 along w, a plain lowering would read <c>I[..,sw*w+s]</c>, a strided access along w, the
/// axis the kernel vectorizes; so the columns are split into sw phases (as space-to-depth does) in the copy made outside
/// the kernel: with <c>s = sw*q + p</c>, p in [0, P) where P = min(sw, S), q in [0, Q) where Q = ceil(S / sw), the
/// contraction is <c>O[n,f,h,w] += I[n,c,p,sh*h+r,w+q] * W[f,c,r,p,q]</c>, where <c>I[n,c,p,y,x] = Ipad[n,c,y,sw*x+p]</c>
/// (Ipad the padded copy above; zero past its width), x in [0, OW+Q-1), and <c>W[f,c,r,p,q] = W[f,c,r,sw*q+p]</c> of the
/// node (zero where sw*q+p &gt;= S: a tap of zeros when S is not a multiple of sw). The weights are packed once when
/// they are a constant (in every run when they are fed); the input's phase copy is made in every run, as the padded
/// copy is. When also R = 1 the copy keeps only the rows the windows read, <c>I[n,c,p,h,x] = Ipad[n,c,sh*h,sw*x+p]</c>, so
/// the rows are read as <c>h</c> (a 1x1 stride-2 conv is <c>O[f,h,w] += I[c,h,w] * W[f,c]</c>); otherwise the rows stay
/// strided (<c>sh*h+r</c>): they are not the vectorized axis.</para>
/// Variables of size 1 are left out (a batch of one, a 1x1 kernel, p and q of size 1). <see cref="Flops"/> is the
/// convolution's, <c>2*N*F*OH*OW*C*R*S</c>, not the contraction's (which counts the zero taps).
/// </summary>
public sealed class ConvOp : ContractionOp
{
    readonly string x, w;
    readonly string? bias;
    readonly ImmutableArray<long> xShape, wShape;
    readonly Window window;
    readonly long paddedH, paddedW;
    /// <summary>The phase split when sw &gt; 1: phases P, taps per phase Q, the copy's rows and columns, and the step
    /// between the padded rows it keeps (sh when R = 1, else 1).</summary>
    readonly (long P, long Q, long Rows, long Columns, long RowStep)? phases;

    ConvOp(OnnxNode node, OnnxModel model, Computation contraction, ImmutableArray<long> outputShape, ImmutableArray<string> outside,
        ImmutableArray<long> xShape, ImmutableArray<long> wShape, Window window, long paddedH, long paddedW,
        (long P, long Q, long Rows, long Columns, long RowStep)? phases)
        : base(node, model, contraction, outputShape, outside)
    {
        x = node.Inputs[0]; w = node.Inputs[1]; bias = node.Input(2);
        (this.xShape, this.wShape, this.window, this.paddedH, this.paddedW, this.phases) = (xShape, wShape, window, paddedH, paddedW, phases);
    }

    /// <summary>The window: kernel, strides, pads.</summary>
    public Window Window => window;
    /// <summary>Whether the kernel reads a padded (or cut, or phase-split) copy of X rather than X itself.</summary>
    public bool CopiesInput => phases is not null || window.PadsBegin.Any(p => p != 0) || paddedH != xShape[2] || paddedW != xShape[3];
    /// <summary>Whether the columns are split into phases (a stride along w greater than 1).</summary>
    public bool SplitsPhases => phases is not null;

    /// <summary>The convolution's floating-point operations, <c>2*N*F*OH*OW*C*R*S</c>: without the zero taps a phase
    /// split adds to the contraction, so that figures compare with other convolutions'.</summary>
    public override double Flops => 2.0 * xShape[0] * wShape[0] * OutputShape[2] * OutputShape[3] * xShape[1] * wShape[2] * wShape[3];

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
        var outside = new List<string>();
        string pads = ModelShapes.Format(window.Pads);
        string copy = $"{node.Inputs[0]} {ModelShapes.Format(x)} with pads {pads} (top, left, bottom, right) as zeros";
        if (sw == 1)
        {
            var contraction = new ContractionText()
                .Var("n", n).Var("f", f).Var("h", oh).Var("w", ow).Var("c", c).Var("r", r).Var("s", s)
                .Tensor("O", D("n"), D("f"), D("h"), D("w"))
                .Tensor("I", D("n"), D("c"), [(sh, "h"), (1, "r")], [(1, "w"), (1, "s")])
                .Tensor("W", D("f"), D("c"), D("r"), D("s"))
                .Build();
            if (window.PadsBegin.Any(p => p != 0) || paddedH != x[2] || paddedW != x[3])
                outside.Add($"I = {copy}, copied into [{n},{c},{paddedH},{paddedW}]");
            else outside.Add($"I = {node.Inputs[0]} as it is");
            outside.Add($"W = {node.Inputs[1]} {ModelShapes.Format(wShape)} as it is");
            outside.Add(node.Input(2) is { } b ? $"O starts as the bias {b} [{f}] broadcast over n, h, w" : "O starts as zeros");
            return new ConvOp(node, model, contraction, y, [.. outside], x, wShape, window, paddedH, paddedW, null);
        }
        long phaseCount = Math.Min(sw, s), taps = (s + sw - 1) / sw, columns = ow + taps - 1;
        bool rowsCut = r == 1;
        long rows = rowsCut ? oh : paddedH, rowStep = rowsCut ? sh : 1;
        var split = new ContractionText()
            .Var("n", n).Var("f", f).Var("h", oh).Var("w", ow).Var("c", c).Var("r", r).Var("p", phaseCount).Var("q", taps)
            .Tensor("O", D("n"), D("f"), D("h"), D("w"))
            .Tensor("I", D("n"), D("c"), D("p"), rowsCut ? D("h") : [(sh, "h"), (1, "r")], [(1, "w"), (1, "q")])
            .Tensor("W", D("f"), D("c"), D("r"), D("p"), D("q"))
            .Build();
        string rowRule = rowsCut ? (sh == 1 ? "y" : $"{sh}*y") : "y";
        outside.Add($"I = {copy} (padded [{n},{c},{paddedH},{paddedW}]), split into {phaseCount} column phases for stride {sw} along w: "
            + $"I[n,c,p,y,x] = padded[n,c,{rowRule},{sw}*x+p] (zero past the padded width{(rowsCut && sh != 1 ? "; only the rows the 1-row windows read" : "")}), "
            + $"copied into [{n},{c},{phaseCount},{rows},{columns}]");
        outside.Add(s % sw == 0 || taps == 1
            ? $"W = {node.Inputs[1]} {ModelShapes.Format(wShape)} packed once as W[f,c,r,p,q] = {node.Inputs[1]}[f,c,r,{sw}*q+p], [{f},{c},{r},{phaseCount},{taps}]"
            : $"W = {node.Inputs[1]} {ModelShapes.Format(wShape)} packed once as W[f,c,r,p,q] = {node.Inputs[1]}[f,c,r,{sw}*q+p] (zero where {sw}*q+p >= {s}), [{f},{c},{r},{phaseCount},{taps}]");
        outside.Add(node.Input(2) is { } bb ? $"O starts as the bias {bb} [{f}] broadcast over n, h, w" : "O starts as zeros");
        return new ConvOp(node, model, split, y, [.. outside], x, wShape, window, paddedH, paddedW, (phaseCount, taps, rows, columns, rowStep));
    }

    protected override (float[] Left, float[] Right) Prepare(float[] output, Func<string, float[]> value)
    {
        long n = xShape[0], c = xShape[1];
        var input = Sized(value(x), x, n * c * xShape[2] * xShape[3]);
        var weights = Sized(value(w), w, wShape[0] * wShape[1] * wShape[2] * wShape[3]);
        if (bias is not null)
        {
            var b = Sized(value(bias), bias, OutputShape[1]);
            int plane = checked((int)(OutputShape[2] * OutputShape[3]));
            for (int i = 0; i < output.Length / plane; i++) output.AsSpan(i * plane, plane).Fill(b[i % b.Length]);
        }
        if (phases is { } ph) return (SplitPhases(input, ph), Pack(weights, ph));
        return (CopiesInput ? Pad(input) : input, weights);
    }

    float[]? padded, packed;
    float[]? packedFrom;

    protected override bool IsConstant(float[] array) => ReferenceEquals(array, packed) || base.IsConstant(array);

    /// <summary>The weights as <c>W[f,c,r,p,q] = weights[f,c,r,sw*q+p]</c> (zero where sw*q+p &gt;= S), with
    /// <see cref="ContractionOp.Slack"/> floats after: packed once from a constant, again in every run from a fed value.</summary>
    float[] Pack(float[] weights, (long P, long Q, long Rows, long Columns, long RowStep) ph)
    {
        if (packed is not null && ReferenceEquals(packedFrom, weights) && Constant(w) is not null) return packed;
        int rows = checked((int)(wShape[0] * wShape[1] * wShape[2])), s = (int)wShape[3], sw = (int)window.Strides[1];
        int p = (int)ph.P, q = (int)ph.Q;
        packed ??= new float[checked(rows * p * q + Slack)];
        for (int row = 0; row < rows; row++)
            for (int i = 0; i < p; i++)
                for (int j = 0; j < q; j++)
                {
                    int tap = sw * j + i;
                    packed[(row * p + i) * q + j] = tap < s ? weights[row * s + tap] : 0f;
                }
        packedFrom = weights;
        return packed;
    }

    /// <summary>X split into column phases, <c>[N, C, P, rows, columns]</c>: element (p, y, x) is the padded X's at row
    /// <c>RowStep*y</c>, column <c>sw*x+p</c>, zero outside X (and <see cref="ContractionOp.Slack"/> floats after); one
    /// array, made at the first run, whose zeros stay as they are and whose rest each run overwrites.</summary>
    float[] SplitPhases(float[] input, (long P, long Q, long Rows, long Columns, long RowStep) ph)
    {
        int planes = (int)(xShape[0] * xShape[1]), h = (int)xShape[2], w0 = (int)xShape[3];
        int p = (int)ph.P, rows = (int)ph.Rows, cols = (int)ph.Columns, rowStep = (int)ph.RowStep, sw = (int)window.Strides[1];
        int top = (int)window.PadsBegin[0], left = (int)window.PadsBegin[1];
        padded ??= new float[checked(planes * p * rows * cols + Slack)];
        var dst = padded;
        for (int plane = 0; plane < planes; plane++)
            for (int i = 0; i < p; i++)
            {
                // columns x whose source column sw*x+i-left lies in [0, w0)
                int first = left - i, last = w0 - 1 + left - i;
                int x0 = first <= 0 ? 0 : (first + sw - 1) / sw, x1 = last < 0 ? 0 : Math.Min(cols, last / sw + 1);
                if (x1 <= x0) continue;
                for (int y = 0; y < rows; y++)
                {
                    int from = rowStep * y - top;
                    if (from < 0 || from >= h) continue;
                    var src = input.AsSpan((plane * h + from) * w0);
                    var to = dst.AsSpan(((plane * p + i) * rows + y) * cols);
                    if (sw == 1) src.Slice(x0 + i - left, x1 - x0).CopyTo(to[x0..]); // one phase: a plain padded row
                    else for (int xx = x0, col = sw * x0 + i - left; xx < x1; xx++, col += sw) to[xx] = src[col];
                }
            }
        return dst;
    }

    /// <summary>X copied into [N, C, paddedH, paddedW] at offset (top, left), zeros around (and <see cref="ContractionOp.Slack"/>
    /// floats after): the column-phase copy of stride 1, one phase (<see cref="SplitPhases"/>).</summary>
    float[] Pad(float[] input) => SplitPhases(input, (1, wShape[3], paddedH, paddedW, 1));
}
