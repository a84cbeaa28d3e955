using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using LoopTune.Ir;
using LoopTune.Jit;
using static LoopTune.Models.ContractionText;

namespace LoopTune.Models;

/// <summary>How a <see cref="ConvOp"/> becomes a contraction.</summary>
public enum ConvLowering
{
    /// <summary>The windows read in place from a padded copy of the input, <c>O[n,f,h,w] += I[n,c,sh*h+r,w+s] * W[f,c,r,s]</c>
    /// (column phases when the stride along w is above 1).</summary>
    Direct,

    /// <summary>A matrix product over the columns of the windows (im2col): <c>C[b,m,n] += A[m,k] * B[b,k,n]</c> with
    /// m the output channel, k = (c, r, s) and n = (h, w) flattened; A is the weights as they are, B the windows' columns
    /// copied in every run (X itself for a 1x1 stride-1 conv without pads).</summary>
    Columns,

    /// <summary>The output computed in blocks of E output channels, channels innermost (as oneDNN's nChw16c):
    /// <c>O'[n,g,h,w,e] += I[n,c,sh*h+r,sw*w+s] * W'[g,c,r,s,e]</c> with f = E*g + e, so a kernel may vectorize along the
    /// output channels and broadcast the input; W' is W packed once ([F/E, C, R, S, E]), I the padded copy (strides stay
    /// affine indices: the input is not the vectorized operand), and O' is written back into the node's NCHW output
    /// after the kernel. E is 4, 2 or 1 vectors of this machine's widest (<see cref="ConvOp.Blocks"/>): the node has
    /// this lowering once for each that divides F.</summary>
    Blocked,

    /// <summary>The input in blocks of K = E channels as well, <c>O'[n,g,h,w,e] += I'[n,d,sh*h+r,sw*w+s,k] * W'[g,d,k,r,s,e]</c>
    /// with c = K*d + k: what a forward pass whose activations stay in blocks from kernel to kernel runs
    /// (<see cref="BlockedLayout"/>, <see cref="ConvOp.RunLinked"/>); W' is W packed once as <see cref="Blocked"/> packs it
    /// ([F/E, C, R, S, E], a channel's taps together: with them K*E floats apart, 4 KB, the taps of the blocked schedules
    /// carried over, <see cref="ConvOp.InBlocks"/>, ran 10-20 % slower on the Zen 5's 7x7 layers). Alone, a
    /// node so lowered copies its input into blocks and writes its output back as <see cref="Blocked"/> does; it is no
    /// alternative of a node's own (<see cref="ConvOp.LowerBlockedInput(OnnxModel, ModelShapes, OnnxNode, long)"/> makes it).</summary>
    BlockedInput,
}

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
/// <para>Lowered as <see cref="ConvLowering.Columns"/> instead, it is a matrix product <c>C[b,m,n] += A[m,k] * B[b,k,n]</c>
/// (with one image, exactly <c>mm F OH*OW C*R*S</c>): <c>A</c> is W read as [F, C*R*S], <c>B[b,(c,r,s),(h,w)] =
/// X[b,c,sh*h+r-top,sw*w+s-left]</c> (zero outside X) copied in every run, so the vectorized axis is the flattened output
/// plane. A 1x1 kernel is always lowered so (its columns are X's pixels, copied only when strided or padded).</para>
/// Variables of size 1 are left out (a batch of one, a 1x1 kernel, p and q of size 1). The copies made around the kernel
/// are compiled fully optimized from their first call: as tier-0 code their vector intrinsics ran several times slower,
/// enough to mislead the quick side-by-side choice among lowerings made after a few runs. <see cref="Flops"/> is the
/// convolution's, <c>2*N*F*OH*OW*C*R*S</c>, not the contraction's (which counts the zero taps).
/// </summary>
public sealed partial class ConvOp : ContractionOp
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
        (long P, long Q, long Rows, long Columns, long RowStep)? phases, ConvLowering lowering = ConvLowering.Direct, int block = 0)
        : base(node, model, contraction, outputShape, outside)
    {
        x = node.Inputs[0]; w = node.Inputs[1]; bias = node.Input(2);
        (this.xShape, this.wShape, this.window, this.paddedH, this.paddedW, this.phases) = (xShape, wShape, window, paddedH, paddedW, phases);
        (Lowering, this.block) = (lowering, block);
    }

    /// <summary>The block of output channels of a <see cref="ConvLowering.Blocked"/> contraction (its variable e), fixed
    /// when it was lowered; 0 for the other lowerings.</summary>
    readonly int block;

    /// <summary>The block of output channels of a <see cref="ConvLowering.Blocked"/> contraction (its variable e); 0 for
    /// the other lowerings.</summary>
    public int ChannelBlock => block;

    /// <summary>Whether the kernel writes its output in blocks of channels (<see cref="ConvLowering.Blocked"/>,
    /// <see cref="ConvLowering.BlockedInput"/>: the lowerings with a block), which the op writes back into NCHW.</summary>
    bool OutputInBlocks => block > 0;

    /// <summary>How the convolution became <see cref="ContractionOp.Contraction"/>.</summary>
    public ConvLowering Lowering { get; }

    /// <summary>A convolution of a pass whose activations stay in blocks (<see cref="ConvLowering.BlockedInput"/>) splits
    /// its output rows (h) between the threads when its input is at least half the size of its weights, so that each
    /// thread reads mostly the rows the same thread of the kernel before wrote, still in its core's caches; with the
    /// tuner's rule the output's blocks of channels (g) were split, and each thread read the whole input, half of it from
    /// the other core. Where the weights are more than twice the input, each thread reading all of them costs more than
    /// that: the tuner's rule. On the Zen 5 at two threads, ResNet-50's pass ran 0.87-0.99x ONNX Runtime with the rule
    /// (0.90x in the median of nine runs), 0.96-0.98x with every such convolution's rows split, its 56- and 28-pixel
    /// layers 0.03-0.14 ms faster each (input 0.8x to 50x its weights) and its 14-pixel 3x3 layers 0.1 ms slower each
    /// (input 0.11x), and 0.96-1.01x with the rule kept for those.</summary>
    public override string? ParallelOver => Lowering == ConvLowering.BlockedInput && 2 * Contraction.Left.Length >= Contraction.Right.Length ? "h" : null;

    /// <summary>The lowering's name in reports: <c>direct</c>, <c>columns</c>, or <c>blocked</c> and its block of output
    /// channels (<c>blocked 8</c>).</summary>
    public string LoweringName => Lowering switch
    {
        ConvLowering.Blocked => FormattableString.Invariant($"blocked {block}"),
        ConvLowering.BlockedInput => FormattableString.Invariant($"blocked input {block}"),
        _ => Lowering.ToString().ToLowerInvariant(),
    };

    /// <summary>The node lowered the way this one was (<see cref="Lowering"/>, its block), so the same kernel serves it.</summary>
    public override LoweredNode LowerAgain(OnnxModel model, ModelShapes shapes, OnnxNode node) => Lowering == ConvLowering.BlockedInput
        ? LowerBlockedInput(model, shapes, node, block)
        : ModelLowering.Alternatives(model, shapes, node).FirstOrDefault(l => l is ConvOp c && c.Lowering == Lowering && c.block == block) ?? ModelLowering.Lower(model, shapes, node);

    /// <summary>The window: kernel, strides, pads.</summary>
    public Window Window => window;
    /// <summary>Whether the kernel reads a padded (or cut, or phase-split) copy of X rather than X itself.</summary>
    public bool CopiesInput => Copies(Lowering, xShape, wShape, window, paddedH, paddedW) || phases is not null;

    static bool Copies(ConvLowering lowering, ImmutableArray<long> x, ImmutableArray<long> w, Window window, long paddedH, long paddedW) =>
        window.PadsBegin.Any(p => p != 0) || paddedH != x[2] || paddedW != x[3]
        || (lowering == ConvLowering.Columns && (w[2] * w[3] > 1 || window.Strides.Any(s => s != 1)));
    /// <summary>Whether the columns are split into phases (a stride along w greater than 1).</summary>
    public bool SplitsPhases => phases is not null;

    /// <summary>The convolution's floating-point operations, <c>2*N*F*OH*OW*C*R*S</c>: without the zero taps a phase
    /// split adds to the contraction, so that figures compare with other convolutions'.</summary>
    public override double Flops => 2.0 * xShape[0] * wShape[0] * OutputShape[2] * OutputShape[3] * xShape[1] * wShape[2] * wShape[3];

    /// <summary>The ways the node may be lowered, the default first: <see cref="ConvLowering.Direct"/> then
    /// <see cref="ConvLowering.Columns"/> for a window larger than 1x1, Columns alone for a 1x1 kernel; and
    /// <see cref="ConvLowering.Blocked"/> when a block of output channels divides F.</summary>
    internal static ImmutableArray<ConvLowering> Ways(ImmutableArray<long> wShape)
    {
        if (wShape.Length != 4) return [ConvLowering.Direct];
        ImmutableArray<ConvLowering> ways = wShape[2] * wShape[3] == 1 ? [ConvLowering.Columns] : [ConvLowering.Direct, ConvLowering.Columns];
        return Block(wShape[0]) > 0 ? ways.Add(ConvLowering.Blocked) : ways;
    }

    /// <summary>The default block of output channels of <see cref="ConvLowering.Blocked"/> (the first of
    /// <see cref="Blocks"/>: the widest); 0 when none divides <paramref name="f"/>.</summary>
    public static long Block(long f) => Blocks(f).FirstOrDefault();

    /// <summary>The blocks of output channels <see cref="ConvLowering.Blocked"/> is lowered with, each an alternative of
    /// the node: 4, 2 and 1 vectors of the widest this process compiles that divide <paramref name="f"/>, the widest first.
    /// The block is the register tile's width: a tile of one vector in a block of four reads a quarter of each line of
    /// weights. On the Zen 3 (16 registers), ResNet-18's 7-pixel 512-channel layer has one tile that keeps the FMA pipes
    /// nearly busy, 7 pixels by one vector of 8 channels: with weights cold, 87 GFLOPS in blocks of 8 against 75-79 in
    /// blocks of 32 (<c>c:4 r:3u s:3u w:7u e:8v</c> each).</summary>
    public static ImmutableArray<long> Blocks(long f)
    {
        long lanes = JitOptions.Default.VectorBits / 32;
        return [.. new[] { 4 * lanes, 2 * lanes, lanes }.Where(e => e > 1 && f % e == 0)];
    }

    /// <summary>Every lowering of a 2-d convolution node, the default first (<see cref="Ways"/>; the blocked one once per
    /// block of <see cref="Blocks"/>); a single <see cref="NotTuned"/> when it has none.</summary>
    internal static ImmutableArray<LoweredNode> LowerEach(OnnxNode node, OnnxModel model, ImmutableArray<long> x, ImmutableArray<long> wShape, ImmutableArray<long> y)
    {
        var ways = Ways(wShape).SelectMany(way => way == ConvLowering.Blocked
            ? Blocks(wShape[0]).Select(e => Lower(node, model, x, wShape, y, way, e))
            : [Lower(node, model, x, wShape, y, way)]).ToList();
        return ways[0] is NotTuned refused ? [refused] : [.. ways];
    }

    internal static LoweredNode Lower(OnnxNode node, OnnxModel model, ImmutableArray<long> x, ImmutableArray<long> wShape, ImmutableArray<long> y,
        ConvLowering lowering, long block = 0) // block: the blocked lowering's (LowerEach gives each of Blocks)
    {
        if (x.Length != 4) return new NotTuned(node, $"a {x.Length - 2}-d convolution (only 2-d ones are lowered)");
        long group = node.Int("group", 1);
        if (group != 1) return new NotTuned(node, $"group {group} (a grouped convolution is {group} contractions; only group 1 is lowered)");
        var window = Window.Of(node, x[2..], wShape[2..]);
        if (window.Dilations.Any(d => d != 1)) return new NotTuned(node, $"dilations {ModelShapes.Format(window.Dilations)} (only dilation 1 is lowered)");
        var (n, c, f, r, s, oh, ow, sh, sw, paddedH, paddedW) = Sizes(x, wShape, y, window);
        var outside = new List<string>();
        string pads = ModelShapes.Format(window.Pads);
        string copy = $"{node.Inputs[0]} {ModelShapes.Format(x)} with pads {pads} (top, left, bottom, right) as zeros";
        if (lowering == ConvLowering.Columns) return LowerColumns(node, model, x, wShape, y, window, copy);
        if (lowering == ConvLowering.Blocked) return LowerBlocked(node, model, x, wShape, y, window, copy, block);
        if (lowering == ConvLowering.BlockedInput) return LowerBlockedInput(node, model, x, wShape, y, window, block);
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

    /// <summary>The <see cref="ConvLowering.Columns"/> lowering: <c>mm F OH*OW C*R*S</c> (batched over images) over the
    /// windows' columns.</summary>
    static ConvOp LowerColumns(OnnxNode node, OnnxModel model, ImmutableArray<long> x, ImmutableArray<long> wShape, ImmutableArray<long> y, Window window, string copy)
    {
        var (n, c, f, r, s, oh, ow, sh, sw, paddedH, paddedW) = Sizes(x, wShape, y, window);
        var outside = new List<string>();
        long k = c * r * s, plane = oh * ow;
        var product = new ContractionText()
            .Var("b", n).Var("m", f).Var("n", plane).Var("k", k)
            .Tensor("C", D("b"), D("m"), D("n"))
            .Tensor("A", D("m"), D("k"))
            .Tensor("B", D("b"), D("k"), D("n"))
            .Build();
        outside.Add($"A = {node.Inputs[1]} {ModelShapes.Format(wShape)} as it is, read as [{f},{k}]");
        outside.Insert(0, Copies(ConvLowering.Columns, x, wShape, window, paddedH, paddedW)
            ? $"B = the columns of the windows of {copy} (im2col): B[b,(c,r,s),(h,w)] = padded[b,c,{sh}*h+r,{sw}*w+s], copied into [{n},{k},{plane}]"
            : $"B = {node.Inputs[0]} {ModelShapes.Format(x)} as it is, read as [{n},{c},{plane}]");
        outside.Add(node.Input(2) is { } cb ? $"C starts as the bias {cb} [{f}] broadcast over b, n" : "C starts as zeros");
        return new ConvOp(node, model, product, y, [.. outside], x, wShape, window, paddedH, paddedW, null, ConvLowering.Columns);
    }

    /// <summary>The <see cref="ConvLowering.Blocked"/> lowering: output channels in blocks of <paramref name="e"/> (one of
    /// <see cref="Blocks"/>), innermost.</summary>
    static ConvOp LowerBlocked(OnnxNode node, OnnxModel model, ImmutableArray<long> x, ImmutableArray<long> wShape, ImmutableArray<long> y, Window window, string copy, long e)
    {
        var (n, c, f, r, s, oh, ow, sh, sw, paddedH, paddedW) = Sizes(x, wShape, y, window);
        var outside = new List<string>();
        if (e < 2 || f % e != 0) throw new ArgumentException($"no block of {e} output channels divides {f}");
        var blocked = new ContractionText()
            .Var("n", n).Var("g", f / e).Var("h", oh).Var("w", ow).Var("e", e).Var("c", c).Var("r", r).Var("s", s)
            .Tensor("O", D("n"), D("g"), D("h"), D("w"), D("e"))
            .Tensor("I", D("n"), D("c"), [(sh, "h"), (1, "r")], [(sw, "w"), (1, "s")])
            .Tensor("W", D("g"), D("c"), D("r"), D("s"), D("e"))
            .Build();
        outside.Add(Copies(ConvLowering.Blocked, x, wShape, window, paddedH, paddedW) ? $"I = {copy}, copied into [{n},{c},{paddedH},{paddedW}]" : $"I = {node.Inputs[0]} as it is");
        outside.Add($"W = {node.Inputs[1]} {ModelShapes.Format(wShape)} packed once in blocks of {e} output channels: W[g,c,r,s,e] = {node.Inputs[1]}[{e}*g+e,c,r,s], [{f / e},{c},{r},{s},{e}]");
        outside.Add(node.Input(2) is { } bias ? $"O starts as the bias {bias} [{f}] broadcast over n, h, w" : "O starts as zeros");
        outside.Add($"O [{n},{f / e},{oh},{ow},{e}] written into the node's output {ModelShapes.Format(y)}: Y[n,{e}*g+e,h,w] = O[n,g,h,w,e]");
        return new ConvOp(node, model, blocked, y, [.. outside], x, wShape, window, paddedH, paddedW, null, ConvLowering.Blocked, (int)e);
    }

    /// <summary>The sizes every lowering names: batch, channels, filters, kernel, output, strides, and the padded input's
    /// rows and columns the windows reach.</summary>
    static (long N, long C, long F, long R, long S, long OH, long OW, long SH, long SW, long PaddedH, long PaddedW) Sizes(
        ImmutableArray<long> x, ImmutableArray<long> wShape, ImmutableArray<long> y, Window window)
    {
        long sh = window.Strides[0], sw = window.Strides[1];
        return (x[0], x[1], wShape[0], wShape[2], wShape[3], y[2], y[3], sh, sw, sh * (y[2] - 1) + wShape[2], sw * (y[3] - 1) + wShape[3]);
    }

    /// <summary>The columns lowering's left operand is the weights (<c>A[m,k]</c>), the others' right one.</summary>
    protected override (string? Left, string? Right) OperandInputs() => Lowering == ConvLowering.Columns ? (w, x) : (x, w);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    protected override (float[] Left, float[] Right) Prepare(float[] output, Func<string, float[]> value)
    {
        long n = xShape[0], c = xShape[1];
        var input = Sized(value(x), x, n * c * xShape[2] * xShape[3]);
        var weights = Sized(value(w), w, wShape[0] * wShape[1] * wShape[2] * wShape[3]);
        var b = bias is null ? null : Sized(value(bias), bias, OutputShape[1]);
        if (OutputInBlocks)
        {
            var o = blocked ??= Scratch(Contraction.Output.Length, "blocked");
            int groups = (int)wShape[0] / block, plane = (int)(OutputShape[2] * OutputShape[3]), e = block, o0 = AlignedStart(o);
            if (!KernelInitializes) TeamWork.For(Threads, (int)(Contraction.Output.Length / e), 64, (_, start, end) => // row (n, g, pixel) starts as the bias of block g
            {
                if (b is null) o.AsSpan(o0 + start * e, (end - start) * e).Clear();
                else for (int row = start; row < end; row++) Strided.Row(b.AsSpan(row / plane % groups * e, e), o.AsSpan(o0 + row * e, e));
            });
            if (Lowering == ConvLowering.BlockedInput) return (BlockedCopy(input), PackBlocks(weights));
            return (CopiesInput ? PaddedInput(input) : input, PackBlocks(weights));
        }
        if (b is not null && !KernelInitializes)
        {
            int plane = checked((int)(OutputShape[2] * OutputShape[3]));
            TeamWork.For(Threads, output.Length / plane, 1, (_, start, end) =>
            {
                for (int i = start; i < end; i++) output.AsSpan(i * plane, plane).Fill(b[i % b.Length]);
            });
        }
        if (Lowering == ConvLowering.Columns) return (weights, CopiesInput ? Columns(input) : input);
        if (phases is { } ph) return (SplitPhases(input, ph, (int)window.Strides[1]), Pack(weights, ph));
        return (CopiesInput ? PaddedInput(input) : input, weights);
    }

    /// <summary>The padded copy of X the kernel reads: made here, or already written by the op before
    /// (<see cref="HandOff"/>).</summary>
    float[] PaddedInput(float[] input) => handedIn ? Padded() : Pad(input);

    /// <summary>The blocked convolution whose padded input this one's write-back fills (<see cref="HandOff"/>), or null.</summary>
    ConvOp? handOff;

    /// <summary>Whether the op before writes X straight into this one's padded copy (<see cref="HandOff"/>).</summary>
    bool handedIn;

    /// <summary>Whether the kernel reads a padded copy of all of X, which the op making X could write for it
    /// (<see cref="HandOff"/>): the direct or blocked lowering, no phase split, every row and column of X in the copy.</summary>
    public bool TakesPaddedInput => Lowering is ConvLowering.Direct or ConvLowering.Blocked && phases is null && CopiesInput
        && window.PadsBegin[0] + xShape[2] <= paddedH && window.PadsBegin[1] + xShape[3] <= paddedW;

    /// <summary>Whether this op's write-back can go straight into another's padded input (<see cref="HandOff"/>): a
    /// blocked lowering whose output rows are whole tiles of the write-back's transposes (8 pixels). Row by row, a ragged
    /// row ends in elements written one at a time: on ResNet-18's 28- to 7-pixel rows that cost the producer as much as
    /// the consumer's copy saved, or more (its 56-pixel rows saved 0.08 ms a layer).</summary>
    public bool CanHandOff => Lowering == ConvLowering.Blocked && OutputShape[3] % TransposeTile == 0;

    /// <summary>The pixels (and channels) of one tile of <see cref="Transpose"/>.</summary>
    const int TransposeTile = 8;

    /// <summary>
    /// Makes this blocked convolution's write-back (<see cref="Finish"/>) write its output, with its epilogue, straight into
    /// <paramref name="next"/>'s padded copy of its input, so that <paramref name="next"/> copies nothing: one pass over the
    /// activations between the two kernels instead of two. For a forward pass where nothing but <paramref name="next"/>
    /// reads this op's output (after a Relu or none: ResNet's first convolution of a block and its second); the output
    /// given to <see cref="ContractionOp.Run(Kernel, IReadOnlyDictionary{string, float[]}, float[], Epilogue)"/> is then
    /// never written, and <paramref name="next"/> must run after this op, on the value this op made.
    /// <para>Requires: this op <see cref="CanHandOff"/>; <paramref name="next"/>
    /// <see cref="TakesPaddedInput"/>, its input of this op's output shape; the epilogue without a residual.</para>
    /// </summary>
    public void HandOff(ConvOp next)
    {
        ArgumentNullException.ThrowIfNull(next);
        if (!CanHandOff) throw new InvalidOperationException($"{Node} is lowered {Lowering}, rows of {OutputShape[3]} pixels: only a blocked lowering's write-back of whole {TransposeTile}-pixel tiles hands its output on");
        if (!next.TakesPaddedInput) throw new InvalidOperationException($"{next.Node} does not read a padded copy of all its input");
        if (!next.xShape.SequenceEqual(OutputShape)) throw new InvalidOperationException($"{next.Node} reads [{string.Join(",", next.xShape)}], {Node} writes [{string.Join(",", OutputShape)}]");
        (handOff, next.handedIn) = (next, true);
    }

    /// <summary>The bias (zeros without one) as the kernel may start its output from it: stride 1 along the output channel's
    /// variable (f, or the columns lowering's m), E and 1 along g and e of the blocked lowering, 0 along the others.</summary>
    protected override (long[] Strides, float[] Values)? Initial(Func<string, float[]> value)
    {
        var strides = new long[Contraction.Vars.Length];
        void Set(string name, long stride)
        {
            int v = Contraction.Vars.IndexOf(name);
            if (v >= 0) strides[v] = stride;
        }
        if (OutputInBlocks) { Set("g", block); Set("e", 1); }
        else Set(Lowering == ConvLowering.Columns ? "m" : "f", 1);
        return (strides, bias is null ? zeros ??= new float[wShape[0]] : Sized(value(bias), bias, OutputShape[1]));
    }

    float[]? zeros;

    /// <summary>The output of a <see cref="ConvLowering.Blocked"/> kernel, [N, F/E, OH, OW, E]; made at the first run.</summary>
    float[]? blocked;

    protected override float[] KernelOutput(float[] output) => OutputInBlocks ? blocked! : output;

    /// <summary>A blocked kernel's output written into the node's: <c>Y[n,E*g+e,h,w] = O[n,g,h,w,e]</c>, each block of
    /// E channels a transpose of [OH*OW, E] into [E, OH*OW] (<see cref="Transpose"/>), with the epilogue done on each tile
    /// as it is written.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    protected override void Finish(float[] output, Func<string, float[]> value, Epilogue epilogue)
    {
        if (!OutputInBlocks)
        {
            base.Finish(output, value, epilogue);
            return;
        }
        int plane = (int)(OutputShape[2] * OutputShape[3]);
        if (handOff is not { } next)
        {
            WriteBack(output, 0, plane, plane, plane, epilogue); // the image's pixels one run, the planes of the output's
            return;
        }
        if (epilogue.Residual is not null) throw new InvalidOperationException($"{Node} hands its output to {next.Node}: its epilogue adds no residual");
        // into the next op's padded copy: a row of the image at a time, into its planes at its pads
        var to = next.Padded();
        int pitch = (int)next.paddedW;
        WriteBack(to, AlignedStart(to) + (int)next.window.PadsBegin[0] * pitch + (int)next.window.PadsBegin[1], (int)OutputShape[3], pitch,
            (int)(next.paddedH * next.paddedW), epilogue);
    }

    /// <summary>The blocked kernel's output, [N*F/E, OH*OW, E], each block of E channels transposed into
    /// <paramref name="to"/>'s planes of <paramref name="planeSize"/> floats from <paramref name="at0"/>, in rows of
    /// <paramref name="width"/> pixels <paramref name="pitch"/> apart, with <paramref name="epilogue"/> (its residual laid
    /// out as the node's output, so only when <paramref name="to"/> is that). The (block, pixel) items are split among the
    /// threads, each a run of pixels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void WriteBack(float[] to, int at0, int width, int pitch, int planeSize, Epilogue epilogue)
    {
        var from = blocked!;
        int f0 = AlignedStart(from), e = block, plane = (int)(OutputShape[2] * OutputShape[3]), blocks = (int)(xShape[0] * wShape[0]) / block;
        TeamWork.For(Threads, blocks * plane, 8, (_, start, end) =>
        {
            for (int i = start / plane; i < blocks && i * plane < end; i++)
                for (int p = Math.Max(start - i * plane, 0), p1 = Math.Min(end - i * plane, plane); p < p1;)
                {
                    int y = p / width, x = p % width, run = Math.Min(p1 - p, width - x);
                    Transpose(from.AsSpan(f0 + (i * plane + p) * e), run, e, to.AsSpan(at0 + i * e * planeSize + y * pitch + x), planeSize,
                        epilogue.Residual is { } r ? r.AsSpan(i * e * plane + p) : default, epilogue.Relu);
                    p += run;
                }
        });
    }

    /// <summary>Runs the node as <see cref="ContractionOp.Run(Kernel, IReadOnlyDictionary{string, float[]}, float[], Epilogue)"/>
    /// does, but leaves its output in the kernel's blocked layout, <c>[N, F/E, OH, OW, E]</c>, with no write-back into
    /// <paramref name="output"/> (which it leaves as it was): what a MaxPool that is the only reader reads next
    /// (<see cref="Pool2d.RunBlocked"/>), as ONNX Runtime keeps its NCHWc layout between the two. Returns the array,
    /// where its data start, and E. Only the <see cref="ConvLowering.Blocked"/> lowering.</summary>
    public (float[] Blocked, int Start, int Block) RunBlocked(Kernel kernel, IReadOnlyDictionary<string, float[]> feeds, float[] output)
    {
        if (Lowering != ConvLowering.Blocked) throw new InvalidOperationException($"{Node} is lowered {Lowering}: only a blocked lowering leaves its output blocked");
        RunKernel(kernel, feeds, output);
        return (blocked!, AlignedStart(blocked!), block);
    }

    /// <summary>The bias, or the blocked kernel's output written back, covers every float of the node's output.</summary>
    protected override bool OverwritesOutput => OutputInBlocks || bias is not null;

    /// <summary><c>to[j*stride + i] = from[i*columns + j]</c> for i &lt; rows, j &lt; columns: 8 x 8 tiles transposed in
    /// AVX registers where the machine has them, the edges one by one. With <paramref name="residual"/> (laid out as
    /// <paramref name="to"/>) each element written is added to its residual, and with <paramref name="relu"/> it is then
    /// <c>max(v, 0)</c> (<see cref="Epilogue"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Transpose(ReadOnlySpan<float> from, int rows, int columns, Span<float> to, int stride, ReadOnlySpan<float> residual = default, bool relu = false)
    {
        if (from.Length < rows * columns || to.Length < (columns - 1) * stride + rows || !residual.IsEmpty && residual.Length < to.Length)
            throw new ArgumentException("the spans are too short");
        int rows8 = Avx.IsSupported ? rows / 8 * 8 : 0, columns8 = Avx.IsSupported ? columns / 8 * 8 : 0;
        ref float src = ref MemoryMarshal.GetReference(from);
        ref float dst = ref MemoryMarshal.GetReference(to);
        ref float res = ref MemoryMarshal.GetReference(residual);
        bool add = !residual.IsEmpty;
        for (int i0 = 0; i0 < rows8; i0 += ChunkRows) // a chunk of rows stays in L1 while its columns are written, each a run of lines
            for (int j = 0; j < columns8; j += 8)
                for (int i = i0, i1 = Math.Min(i0 + ChunkRows, rows8); i < i1; i += 8)
                {
                    int at = j * stride + i;
                    Transpose8(ref Unsafe.Add(ref src, i * columns + j), columns, ref Unsafe.Add(ref dst, at), stride,
                        ref add ? ref Unsafe.Add(ref res, at) : ref Unsafe.NullRef<float>(), relu);
                }
        for (int i = 0; i < rows; i++)
            for (int j = i < rows8 ? columns8 : 0; j < columns; j++)
            {
                float v = from[i * columns + j];
                if (add) v += residual[j * stride + i];
                to[j * stride + i] = relu && !(v > 0) ? 0 : v;
            }
    }

    /// <summary>The rows <see cref="Transpose"/> turns at once, a multiple of 8: each column of the chunk is then written as
    /// 256 contiguous bytes (four whole lines) rather than 32 bytes of a line in each of the columns at a time.</summary>
    const int ChunkRows = 64;

    /// <summary>One 8 x 8 tile: rows of <paramref name="from"/> <paramref name="pitch"/> floats apart become columns of
    /// <paramref name="to"/>, whose rows are <paramref name="stride"/> apart; plus the residual's row at the same place
    /// (unless it is a null reference), then the Relu.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Transpose8(ref float from, int pitch, ref float to, int stride, ref float residual, bool relu)
    {
        nuint p = (nuint)pitch, s = (nuint)stride;
        var (r0, r1, r2, r3) = (Vector256.LoadUnsafe(ref from), Vector256.LoadUnsafe(ref from, p), Vector256.LoadUnsafe(ref from, 2 * p), Vector256.LoadUnsafe(ref from, 3 * p));
        var (r4, r5, r6, r7) = (Vector256.LoadUnsafe(ref from, 4 * p), Vector256.LoadUnsafe(ref from, 5 * p), Vector256.LoadUnsafe(ref from, 6 * p), Vector256.LoadUnsafe(ref from, 7 * p));
        var (t0, t1, t2, t3) = (Avx.UnpackLow(r0, r1), Avx.UnpackHigh(r0, r1), Avx.UnpackLow(r2, r3), Avx.UnpackHigh(r2, r3));
        var (t4, t5, t6, t7) = (Avx.UnpackLow(r4, r5), Avx.UnpackHigh(r4, r5), Avx.UnpackLow(r6, r7), Avx.UnpackHigh(r6, r7));
        var (u0, u1, u2, u3) = (Avx.Shuffle(t0, t2, 0x44), Avx.Shuffle(t0, t2, 0xEE), Avx.Shuffle(t1, t3, 0x44), Avx.Shuffle(t1, t3, 0xEE));
        var (u4, u5, u6, u7) = (Avx.Shuffle(t4, t6, 0x44), Avx.Shuffle(t4, t6, 0xEE), Avx.Shuffle(t5, t7, 0x44), Avx.Shuffle(t5, t7, 0xEE));
        bool add = !Unsafe.IsNullRef(ref residual);
        Store(Avx.Permute2x128(u0, u4, 0x20), ref to, ref residual, 0, add, relu);
        Store(Avx.Permute2x128(u1, u5, 0x20), ref to, ref residual, s, add, relu);
        Store(Avx.Permute2x128(u2, u6, 0x20), ref to, ref residual, 2 * s, add, relu);
        Store(Avx.Permute2x128(u3, u7, 0x20), ref to, ref residual, 3 * s, add, relu);
        Store(Avx.Permute2x128(u0, u4, 0x31), ref to, ref residual, 4 * s, add, relu);
        Store(Avx.Permute2x128(u1, u5, 0x31), ref to, ref residual, 5 * s, add, relu);
        Store(Avx.Permute2x128(u2, u6, 0x31), ref to, ref residual, 6 * s, add, relu);
        Store(Avx.Permute2x128(u3, u7, 0x31), ref to, ref residual, 7 * s, add, relu);
    }

    /// <summary>Stores <paramref name="v"/> at <paramref name="at"/> floats past <paramref name="to"/>, plus the residual's
    /// vector there (when <paramref name="add"/>), then max(v, 0) (when <paramref name="relu"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store(Vector256<float> v, ref float to, ref float residual, nuint at, bool add, bool relu)
    {
        if (add) v += Vector256.LoadUnsafe(ref residual, at);
        if (relu) v = Vector256.Max(v, Vector256<float>.Zero);
        v.StoreUnsafe(ref to, at);
    }

    /// <summary>The weights in blocks of <see cref="block"/> output channels, <c>W[g,c,r,s,e] = weights[E*g+e,c,r,s]</c>
    /// (<see cref="Packed"/>).</summary>
    float[] PackBlocks(float[] weights) =>
        Packed(weights, (int)(wShape[0] * wShape[1] * wShape[2] * wShape[3]), static (op, from, to) => op.FillBlocks(from, to));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void FillBlocks(float[] weights, Span<float> to)
    {
        int f = (int)wShape[0], taps = (int)(wShape[1] * wShape[2] * wShape[3]);
        for (int g = 0; g < f / block; g++)
            for (int tap = 0; tap < taps; tap++)
                for (int i = 0; i < block; i++)
                    to[(g * taps + tap) * block + i] = weights[(g * block + i) * taps + tap];
    }

    float[]? padded, packed;
    float[]? packedFrom;

    /// <summary>Writes the packed weights from <c>from</c> into <c>to</c> (a static lambda, so a run that finds them packed
    /// allocates nothing).</summary>
    delegate void Fill(ConvOp op, float[] from, Span<float> to);

    protected override bool IsConstant(float[] array) => ReferenceEquals(array, packed) || base.IsConstant(array);

    /// <summary>The arrays this op makes for its kernel start on a 64-byte line.</summary>
    protected override int StartOf(float[] array) =>
        ReferenceEquals(array, blocked) || ReferenceEquals(array, padded) || ReferenceEquals(array, packed) || ReferenceEquals(array, blockedIn) ? AlignedStart(array) : 0;

    /// <summary>The weights as <c>W[f,c,r,p,q] = weights[f,c,r,sw*q+p]</c> (zero where sw*q+p &gt;= S) (<see cref="Packed"/>).</summary>
    float[] Pack(float[] weights, (long P, long Q, long Rows, long Columns, long RowStep) ph) =>
        Packed(weights, checked((int)(wShape[0] * wShape[1] * wShape[2] * ph.P * ph.Q)), static (op, from, to) => op.FillPhases(from, to));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void FillPhases(float[] weights, Span<float> to)
    {
        int rows = (int)(wShape[0] * wShape[1] * wShape[2]), s = (int)wShape[3], sw = (int)window.Strides[1];
        int p = (int)phases!.Value.P, q = (int)phases.Value.Q;
        for (int row = 0; row < rows; row++)
            for (int i = 0; i < p; i++)
                for (int j = 0; j < q; j++)
                {
                    int tap = sw * j + i;
                    to[(row * p + i) * q + j] = tap < s ? weights[row * s + tap] : 0f;
                }
    }

    /// <summary>The weights packed by <paramref name="fill"/> into <paramref name="length"/> floats (and
    /// <see cref="ContractionOp.Slack"/> after): once from a constant, again in every run from a fed value. The fills are
    /// static lambdas, so a run that finds them packed allocates nothing.</summary>
    float[] Packed(float[] weights, int length, Fill fill)
    {
        if (packed is not null && ReferenceEquals(packedFrom, weights) && Constant(w) is not null) return packed;
        packed ??= AlignedArray(length);
        fill(this, weights, packed.AsSpan(AlignedStart(packed)));
        packedFrom = weights;
        return packed;
    }

    /// <summary>X split into column phases, <c>[N, C, P, rows, columns]</c>: element (p, y, x) is the padded X's at row
    /// <c>RowStep*y</c>, column <c>sw*x+p</c>, zero outside X (and <see cref="ContractionOp.Slack"/> floats after); one
    /// array, made at the first run, whose zeros stay as they are and whose rest each run overwrites.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    float[] SplitPhases(float[] input, (long P, long Q, long Rows, long Columns, long RowStep) ph, int sw)
    {
        int planes = (int)(xShape[0] * xShape[1]), h = (int)xShape[2], w0 = (int)xShape[3];
        int p = (int)ph.P, rows = (int)ph.Rows, cols = (int)ph.Columns, rowStep = (int)ph.RowStep;
        int top = (int)window.PadsBegin[0], left = (int)window.PadsBegin[1];
        var dst = padded ??= AlignedArray((long)planes * p * rows * cols);
        int d0 = AlignedStart(dst);
        TeamWork.For(Threads, planes, 1, (_, start, end) =>
        {
            for (int plane = start; plane < end; plane++)
                for (int i = 0; i < p; i++)
                {
                    var (x0, x1) = Strided.Reach(i - left, sw, w0, cols);
                    if (x1 <= x0) continue;
                    for (int y = 0; y < rows; y++)
                    {
                        int from = rowStep * y - top;
                        if (from < 0 || from >= h) continue;
                        Strided.Copy(input.AsSpan((plane * h + from) * w0), sw * x0 + i - left, sw, dst.AsSpan(d0 + ((plane * p + i) * rows + y) * cols + x0, x1 - x0));
                    }
                }
        });
        return dst;
    }

    /// <summary>The columns of X's windows, <c>[N, C*R*S, OH*OW]</c>: row (c, r, s), column (h, w) holds X's element at row
    /// <c>sh*h+r-top</c>, column <c>sw*w+s-left</c>, zero outside X (and <see cref="ContractionOp.Slack"/> floats after);
    /// one array, made at the first run, whose zeros stay as they are and whose rest each run overwrites.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    float[] Columns(float[] input)
    {
        int n = (int)xShape[0], c = (int)xShape[1], h = (int)xShape[2], w0 = (int)xShape[3], r = (int)wShape[2], s = (int)wShape[3];
        int oh = (int)OutputShape[2], ow = (int)OutputShape[3], sh = (int)window.Strides[0], sw = (int)window.Strides[1];
        int top = (int)window.PadsBegin[0], left = (int)window.PadsBegin[1], plane = oh * ow;
        var dst = padded ??= AlignedArray((long)n * c * r * s * plane);
        int d0 = AlignedStart(dst);
        TeamWork.For(Threads, n * c, 1, (_, start, end) =>
        {
            for (int image = start; image < end; image++)
                for (int ri = 0; ri < r; ri++)
                    for (int si = 0; si < s; si++)
                    {
                        var (x0, x1) = Strided.Reach(si - left, sw, w0, ow);
                        if (x1 <= x0) continue;
                        int row = (image * r + ri) * s + si;
                        for (int y = 0; y < oh; y++)
                        {
                            int from = sh * y + ri - top;
                            if (from < 0 || from >= h) continue;
                            Strided.Copy(input.AsSpan((image * h + from) * w0), sw * x0 + si - left, sw, dst.AsSpan(d0 + row * plane + y * ow + x0, x1 - x0));
                        }
                    }
        });
        return dst;
    }

    /// <summary>X copied into [N, C, paddedH, paddedW] at offset (top, left), zeros around (and <see cref="ContractionOp.Slack"/>
    /// floats after): what <see cref="SplitPhases"/> makes with one phase of stride 1, one array made at the first run whose
    /// zeros stay, each row of X a <see cref="Strided.Row"/> (ResNet-18's layers copy 3,584 rows of 7 to 56 floats each),
    /// in a loop of its own with its sizes in locals: through the general phase copy's loop it took 0.03-0.06 ms a layer,
    /// three to four times a plain loop's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    float[] Pad(float[] input)
    {
        int planes = (int)(xShape[0] * xShape[1]), h = (int)xShape[2], w0 = (int)xShape[3];
        int top = (int)window.PadsBegin[0], left = (int)window.PadsBegin[1], ph = (int)paddedH, pw = (int)paddedW;
        var dst = Padded();
        int d0 = AlignedStart(dst);
        // the rows and columns of X the padded copy keeps (the far end may be cut where no window reaches)
        int rows = Math.Min(h, ph - top);
        var (x0, x1) = Strided.Reach(-left, 1, w0, pw);
        if (x1 > x0) TeamWork.For(Threads, planes, 1, (_, start, end) => PadRows(input, dst, start, end, h, w0, rows, d0 + top * pw, ph * pw, pw, x0, x1, left));
        return dst;
    }

    /// <summary>The array of the padded copy of X, [N, C, paddedH, paddedW] (zeros where nothing is copied), made once.</summary>
    float[] Padded() => padded ??= privatePadded ? AlignedArray(xShape[0] * xShape[1] * paddedH * paddedW)
        : Scratch(xShape[0] * xShape[1] * paddedH * paddedW, FormattableString.Invariant($"padded {xShape[0]}x{xShape[1]}x{xShape[2]}x{xShape[3]} in {paddedH}x{paddedW} at {window.PadsBegin[0]},{window.PadsBegin[1]}"));

    /// <summary>The arrays ops share (<see cref="ShareScratch"/>), or null: each op makes its own.</summary>
    ScratchArrays? scratch;

    /// <summary>Whether this op's padded copy is its own even when ops share scratch arrays (<see cref="ShareScratch"/>).</summary>
    bool privatePadded;

    /// <summary>
    /// Lets this op take its blocked output and its padded copy of X from <paramref name="arrays"/>, shared with every op
    /// given the same: one array per kind and size (and, for a padded copy, per place of X in it, so that the zeros every
    /// user leaves stay zeros), used again by each op in turn rather than an array per op. A forward pass has some twenty
    /// such arrays; made per op, each written once a pass, they leave the caches between passes, and every write to one
    /// first reads its lines from memory (a 56x56 layer's write-back measured 0.085 ms into a cold array, 0.031 into one in
    /// cache). For a forward pass that runs each op to its end before the next: an op's blocked output is read by its own
    /// write-back, or by the step right after it (<see cref="ModelRunner"/>'s blocked pool); a padded copy handed in by
    /// <see cref="HandOff"/> is shared only when the producer's step is right before this op's, else it is its own
    /// (<paramref name="privatePadded"/>).
    /// </summary>
    public void ShareScratch(ScratchArrays arrays, bool privatePadded = false)
    {
        ArgumentNullException.ThrowIfNull(arrays);
        (scratch, this.privatePadded, blocked, padded) = (arrays, privatePadded, null, null); // arrays of earlier runs (a fold's check) are dropped
    }

    float[] Scratch(long length, string kind) => scratch?.Get(length, kind) ?? AlignedArray(length);

    /// <summary>Rows [0, <paramref name="rows"/>) of planes [start, end) of X (<paramref name="h"/> x <paramref name="w0"/>),
    /// columns [x0, x1) of the copy (X's x0 - left on), into planes of <paramref name="planeSize"/> floats from
    /// <paramref name="at"/> (the first kept row of the first plane), rows <paramref name="pitch"/> apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PadRows(float[] input, float[] dst, int start, int end, int h, int w0, int rows, int at, int planeSize, int pitch, int x0, int x1, int left)
    {
        int width = x1 - x0;
        for (int plane = start; plane < end; plane++)
            for (int y = 0; y < rows; y++)
                Strided.Row(input.AsSpan((plane * h + y) * w0 + x0 - left, width), dst.AsSpan(at + plane * planeSize + y * pitch + x0, width));
    }
}

/// <summary>Arrays that the ops of one forward pass share (<see cref="ConvOp.ShareScratch"/>): one per size and kind, made
/// at its first use (pinned, zeroed, its data from a 64-byte line on, as each op's own would be).</summary>
public sealed class ScratchArrays
{
    readonly Dictionary<(long, string), float[]> arrays = [];

    internal float[] Get(long length, string kind) =>
        arrays.TryGetValue((length, kind), out var a) ? a : arrays[(length, kind)] = ContractionOp.AlignedArray(length);

    /// <summary>How many arrays are shared, and their floats.</summary>
    public (int Count, long Floats) Size => (arrays.Count, arrays.Values.Sum(a => (long)a.Length));
}
