using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using LoopTune.Ir;
using LoopTune.Jit;
using static LoopTune.Models.ContractionText;

namespace LoopTune.Models;

/// <summary>The <see cref="ConvLowering.BlockedInput"/> lowering: input and output in blocks of channels, read and written
/// in place by a forward pass (<see cref="RunLinked"/>).</summary>
public sealed partial class ConvOp
{
    /// <summary>The node lowered <see cref="ConvLowering.BlockedInput"/> in blocks of <paramref name="block"/> channels (its
    /// input's and its output's), or <see cref="NotTuned"/> naming why it cannot be: not a 2-d group-1 undilated Conv, a
    /// block that does not divide its input or output channels, an unknown shape.</summary>
    public static LoweredNode LowerBlockedInput(OnnxModel model, ModelShapes shapes, OnnxNode node, long block)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(shapes);
        ArgumentNullException.ThrowIfNull(node);
        if (node.OpType != "Conv" || node.Domain is not ("" or "ai.onnx")) return new NotTuned(node, $"{node.OpType} is not a Conv");
        foreach (var name in node.Inputs.Where(i => i.Length > 0).Append(node.Outputs[0]))
            if (shapes.Of(name) is null) return new NotTuned(node, $"the shape of {name} is unknown");
        var (x, w, y) = (shapes.Of(node.Inputs[0])!.Value, shapes.Of(node.Inputs[1])!.Value, shapes.Of(node.Outputs[0])!.Value);
        if (x.Length != 4 || w.Length != 4) return new NotTuned(node, $"a {x.Length - 2}-d convolution (only 2-d ones are lowered)");
        if (block < 2 || w[0] % block != 0 || w[1] % block != 0)
            return new NotTuned(node, $"a block of {block} channels does not divide its {w[1]} input and {w[0]} output channels");
        return Lower(node, model, x, w, y, ConvLowering.BlockedInput, block);
    }

    static LoweredNode LowerBlockedInput(OnnxNode node, OnnxModel model, ImmutableArray<long> x, ImmutableArray<long> wShape, ImmutableArray<long> y, Window window, long e)
    {
        var (n, c, f, r, s, oh, ow, sh, sw, paddedH, paddedW) = Sizes(x, wShape, y, window);
        if (e < 2 || f % e != 0 || c % e != 0) return new NotTuned(node, $"a block of {e} channels does not divide its {c} input and {f} output channels");
        var contraction = new ContractionText()
            .Var("n", n).Var("g", f / e).Var("h", oh).Var("w", ow).Var("e", e).Var("d", c / e).Var("r", r).Var("s", s).Var("k", e)
            .Tensor("O", D("n"), D("g"), D("h"), D("w"), D("e"))
            .Tensor("I", D("n"), D("d"), [(sh, "h"), (1, "r")], [(sw, "w"), (1, "s")], D("k"))
            .Tensor("W", D("g"), D("d"), D("k"), D("r"), D("s"), D("e"))
            .Build();
        string pads = ModelShapes.Format(window.Pads);
        ImmutableArray<string> outside =
        [
            $"I = {node.Inputs[0]} {ModelShapes.Format(x)} in blocks of {e} channels with pads {pads} (top, left, bottom, right) as zeros: I[n,d,y,x,k] = {node.Inputs[0]}[n,{e}*d+k,y-top,x-left], [{n},{c / e},{paddedH},{paddedW},{e}] (read in place from the layer before in a forward pass whose activations stay in blocks)",
            $"W = {node.Inputs[1]} {ModelShapes.Format(wShape)} packed once in blocks of {e} output channels: W[g,d,k,r,s,e] = {node.Inputs[1]}[{e}*g+e,{e}*d+k,r,s], [{f / e},{c / e},{e},{r},{s},{e}] (as the blocked lowering packs them: a channel's taps together)",
            node.Input(2) is { } bias ? $"O starts as the bias {bias} [{f}] broadcast over n, h, w" : "O starts as zeros",
            $"O [{n},{f / e},{oh},{ow},{e}] written into the node's output {ModelShapes.Format(y)}: Y[n,{e}*g+e,h,w] = O[n,g,h,w,e] (kept in blocks for the layer after in such a pass)",
        ];
        return new ConvOp(node, model, contraction, y, outside, x, wShape, window, paddedH, paddedW, null, ConvLowering.BlockedInput, (int)e);
    }

    /// <summary>The input copied in blocks, <c>[N, C/K, paddedH, paddedW, K]</c> with X at (top, left), zeros around; one
    /// array made at the first run, whose zeros stay.</summary>
    float[] BlockedCopy(float[] input)
    {
        var to = blockedIn ??= AlignedArray(xShape[0] * xShape[1] * paddedH * paddedW);
        int start = AlignedStart(to), b = block, h = (int)xShape[2], w0 = (int)xShape[3], top = (int)window.PadsBegin[0], left = (int)window.PadsBegin[1];
        int rows = (int)Math.Min(h, paddedH - top), columns = (int)Math.Min(w0, paddedW - left), pitch = (int)paddedW * b, groupSize = (int)(paddedH * paddedW) * b;
        TeamWork.For(Threads, (int)(xShape[0] * xShape[1] / b) * rows, 1,
            (_, first, end) => BlockedLayout.IntoBlocks(input, h, w0, b, to, start + top * pitch + left * b, groupSize, pitch, rows, columns, first, end));
        return to;
    }

    /// <summary>
    /// The schedule of a <see cref="ConvLowering.Blocked"/> kernel (<paramref name="from"/>: <c>I[c,..]</c>) for this op's
    /// contraction (<c>I[d,..,k]</c>, c = K*d + k): each loop over c becomes loops over k from the innermost out until they
    /// cover K channels, over d beyond (a loop that straddles K splits in two, d outside k); the other loops, their order and
    /// annotations, and the packed weights are kept. So the schedule a node's own tuning found is a rival of its tuning in
    /// blocks (<c>>g:16p c:64 h:7 c:8 r:3u s:3u w:7u e:32v</c> with K = 32: <c>>g:16p d:16 k:4 h:7 k:8 r:3u s:3u w:7u e:32v</c>).
    /// Null when it does not carry over: another lowering or block, a loop over c with a tail, or splits that do not meet K.
    /// </summary>
    public Nest? InBlocks(Nest from)
    {
        ArgumentNullException.ThrowIfNull(from);
        var (source, target) = (from.Computation, Contraction);
        if (Lowering != ConvLowering.BlockedInput || !source.Vars.Contains("c") || !source.Vars.Contains("e")
            || source.Sizes[source.Vars.IndexOf("e")] != block || source.Sizes[source.Vars.IndexOf("c")] != wShape[1]) return null;
        int c = source.Vars.IndexOf("c");
        var loops = new List<Loop>();
        long covered = 1; // channels the c loops further in cover
        int Var(string name) => target.Vars.IndexOf(name);
        for (int i = from.Count - 1; i >= 0; i--)
        {
            var l = from[i];
            if (l.Var != c)
            {
                if (Var(source.Vars[l.Var]) is var v and >= 0) loops.Insert(0, l with { Var = v });
                else return null;
                continue;
            }
            if (l.Tail > 0) return null;
            if (covered >= block) loops.Insert(0, l with { Var = Var("d") });
            else if (covered * l.Size <= block) loops.Insert(0, l with { Var = Var("k") });
            else if (block % covered == 0 && l.Size % (block / covered) == 0) // straddles K: d outside k
            {
                int inner = (int)(block / covered);
                loops.Insert(0, l with { Var = Var("k"), Size = inner });
                loops.Insert(0, l with { Var = Var("d"), Size = l.Size / inner });
            }
            else return null;
            covered *= l.Size;
        }
        loops.RemoveAll(l => l.Var < 0 && l.Size == 1); // d of one block, dropped from the contraction
        if (loops.Any(l => l.Var < 0)) return null;
        try { return new Nest(target, [.. loops], 0, from.Packed & 1 << 2); } // the weights' packing, never the input's (read in place)
        catch (LoopTuneException) { return null; }
    }

    /// <summary>The input of a <see cref="ConvLowering.BlockedInput"/> kernel run alone, in blocks (<see cref="BlockedCopy"/>).</summary>
    float[]? blockedIn;

    /// <summary>Whether a <see cref="ConvLowering.BlockedInput"/> kernel can read its input in place from an activation in
    /// <paramref name="layout"/>: of this op's input shape, in blocks of this op's, padded at least as far as every window
    /// reaches past the image (its pads, and its far edge).</summary>
    public bool ReadsInPlace(BlockedLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        long top = window.PadsBegin[0], left = window.PadsBegin[1];
        return Lowering == ConvLowering.BlockedInput && layout.Holds(xShape) && layout.Block == block && top <= layout.Pad && left <= layout.Pad
            && layout.Pad - top + paddedH <= layout.Rows && layout.Pad - left + paddedW <= layout.Columns;
    }

    /// <summary>The kernel <see cref="RunLinked"/> runs, made from the tuned one once per set of layouts and epilogue.</summary>
    (Kernel From, BlockedLayout In, BlockedLayout Out, bool Residual, bool Relu, Kernel Made)? linked;

    /// <summary>
    /// Runs a <see cref="ConvLowering.BlockedInput"/> node in a forward pass whose activations stay in blocks: its kernel reads
    /// the input in place from <paramref name="x"/> (laid out as <paramref name="input"/>, its padding the convolution's
    /// zeros), starts each output element from the bias, and stores it into the interior of <paramref name="y"/> (laid out as
    /// <paramref name="output"/>), adding <paramref name="residual"/>'s element at the same place (laid out as
    /// <paramref name="output"/> too) and then the Relu at its last store (<see cref="Kernel.CompileStore"/>): no copy, no
    /// write-back, no pass of its own for the bias or the epilogue. With <paramref name="output"/> null, <paramref name="y"/>
    /// is the node's NCHW output (and <paramref name="residual"/> NCHW too): the kernel stores its blocks, which are written
    /// back with the epilogue as when the node runs alone. The arrays in blocks start their layouts at their first 64-byte
    /// line (<see cref="ContractionOp.AlignedArray"/>). The tuned <paramref name="kernel"/> is compiled again for the views
    /// once (and again when the layouts or the epilogue change).
    /// <para>Requires: this lowering; <see cref="ReadsInPlace"/>(<paramref name="input"/>); <paramref name="output"/> of
    /// this op's output shape, in blocks of this op's.</para>
    /// </summary>
    public unsafe void RunLinked(Kernel kernel, IReadOnlyDictionary<string, float[]> feeds, float[] x, BlockedLayout input, float[] y, BlockedLayout? output,
        float[]? residual, bool relu)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(feeds);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (!ReadsInPlace(input)) throw new InvalidOperationException($"{Node} (lowered {LoweringName}) cannot read its input in place from {input}");
        if (output is not null && (!output.Holds(OutputShape) || output.Block != block)) throw new InvalidOperationException($"{Node} writes [{string.Join(",", OutputShape)}] in blocks of {block}, not {output}");
        if (!kernel.Computation.Equals(Contraction)) throw new ArgumentException($"the kernel computes {kernel.Computation.Text}, not {Contraction.Text}");
        bool nchw = output is null;
        var layout = output ?? new BlockedLayout(OutputShape[0], OutputShape[1], OutputShape[2], OutputShape[3], block, 0);
        var target = nchw ? blocked ??= AlignedArray(layout.Length) : y;
        if (nchw && y.Length != Contraction.Output.Length) throw new ArgumentException($"the output holds {y.Length} floats, not {Contraction.Output.Length}");
        foreach (var (array, length, name) in new[] { (x, input.Length, "input"), (target, layout.Length, "output"), (nchw ? null : residual, layout.Length, "residual") })
            if (array is not null && array.Length - AlignedStart(array) < length) throw new ArgumentException($"the {name} array holds {array.Length} floats, its layout {length}");
        if (nchw && residual is not null && residual.Length != y.Length) throw new ArgumentException($"the residual holds {residual.Length} floats, the output {y.Length}");
        Threads = kernel.Threads;
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        Func<string, float[]> value = name => feeds.TryGetValue(name, out var v) ? v : Constant(name) ?? throw new ArgumentException($"no value for {name}: feed it");
        var weights = PackBlocks(Sized(value(w), w, wShape[0] * wShape[1] * wShape[2] * wShape[3]));
        var init = Initial(value)!.Value;
        var run = Linked(kernel, input, layout, residual is not null && !nchw, relu && !nchw, init.Strides);
        long top = window.PadsBegin[0], left = window.PadsBegin[1];
        long xAt = AlignedStart(x) + input.Interior - (top * input.Columns + left) * block, yAt = AlignedStart(target) + layout.Interior;
        long kernelStart = System.Diagnostics.Stopwatch.GetTimestamp();
        fixed (float* px = x, py = target, pw = weights, pb = init.Values, pr = nchw ? null : residual)
            run.Run(py + yAt, px + xAt, pw + AlignedStart(weights), pb, pr is null ? null : pr + AlignedStart(residual!) + layout.Interior);
        long finished = System.Diagnostics.Stopwatch.GetTimestamp();
        if (nchw)
        {
            int plane = (int)(OutputShape[2] * OutputShape[3]);
            WriteBack(y, 0, plane, plane, plane, new Epilogue(residual, relu));
        }
        LastRun = new RunPhases(kernelStart - start, finished - kernelStart, System.Diagnostics.Stopwatch.GetTimestamp() - finished);
    }

    Kernel Linked(Kernel kernel, BlockedLayout input, BlockedLayout output, bool residual, bool relu, long[] initStrides)
    {
        if (linked is { } l && ReferenceEquals(l.From, kernel) && l.In == input && l.Out == output && l.Residual == residual && l.Relu == relu)
        {
            if (l.Made.Threads != kernel.Threads) l.Made.SetThreads(kernel.Threads);
            return l.Made;
        }
        var c = Contraction;
        var (image, group, row, pixel) = output.Strides;
        var store = new long[c.Vars.Length];
        foreach (var (name, stride) in new[] { ("n", image), ("g", group), ("h", row), ("w", pixel), ("e", 1L) })
            if (c.Vars.IndexOf(name) is var v and >= 0) store[v] = stride;
        // the input's view per dimension, from the variables indexing it: n, d, the rows (h, r), the columns (w, s), k
        (image, group, row, pixel) = input.Strides;
        var view = c.Left.Index.Select(dim => dim.Select(t => c.Vars[t.Var]).ToList() switch
        {
            var vs when vs.Contains("k") => 1L,
            var vs when vs.Contains("w") || vs.Contains("s") => pixel,
            var vs when vs.Contains("h") || vs.Contains("r") => row,
            var vs when vs.Contains("d") => group,
            _ => image,
        }).ToArray();
        var options = JitOptions.Default with { PrefetchBlockBytes = PrefetchBlockBytes };
        var made = Kernel.CompileStore(kernel.Nest, new OutputStore(store, residual, relu), initStrides, options, new InputViews(Left: view));
        made.Threads = kernel.Threads;
        linked = (kernel, input, output, residual, relu, made);
        return made;
    }
}
