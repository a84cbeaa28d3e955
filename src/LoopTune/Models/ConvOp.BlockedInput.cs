using System.Collections.Immutable;
using System.Runtime.CompilerServices;
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
            .Tensor("W", D("g"), D("d"), D("r"), D("s"), D("k"), D("e"))
            .Build();
        string pads = ModelShapes.Format(window.Pads);
        ImmutableArray<string> outside =
        [
            $"I = {node.Inputs[0]} {ModelShapes.Format(x)} in blocks of {e} channels with pads {pads} (top, left, bottom, right) as zeros: I[n,d,y,x,k] = {node.Inputs[0]}[n,{e}*d+k,y-top,x-left], [{n},{c / e},{paddedH},{paddedW},{e}] (read in place from the layer before in a forward pass whose activations stay in blocks)",
            $"W = {node.Inputs[1]} {ModelShapes.Format(wShape)} packed once in blocks: W[g,d,r,s,k,e] = {node.Inputs[1]}[{e}*g+e,{e}*d+k,r,s], [{f / e},{c / e},{r},{s},{e},{e}]",
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
        int start = AlignedStart(to), b = block, h = (int)xShape[2], w0 = (int)xShape[3], plane = h * w0, top = (int)window.PadsBegin[0], left = (int)window.PadsBegin[1];
        int rows = (int)Math.Min(h, paddedH - top), columns = (int)Math.Min(w0, paddedW - left), pitch = (int)paddedW * b, groupSize = (int)(paddedH * paddedW) * b;
        TeamWork.For(Threads, (int)(xShape[0] * xShape[1] / b) * rows, 1, (_, first, end) =>
        {
            for (int i = first; i < end; i++)
            {
                int nd = i / rows, yy = i % rows, at = start + nd * groupSize + (yy + top) * pitch + left * b, from = nd * b * plane + yy * w0;
                for (int xx = 0; xx < columns; xx++)
                    for (int k = 0; k < b; k++) to[at + xx * b + k] = input[from + k * plane + xx];
            }
        });
        return to;
    }

    /// <summary>The input of a <see cref="ConvLowering.BlockedInput"/> kernel run alone, in blocks (<see cref="BlockedCopy"/>).</summary>
    float[]? blockedIn;

    /// <summary>The weights in blocks of input and output channels, <c>W[g,d,r,s,k,e] = weights[E*g+e, K*d+k, r, s]</c>
    /// (<see cref="Packed"/>).</summary>
    float[] PackBlocksIn(float[] weights) =>
        Packed(weights, (int)(wShape[0] * wShape[1] * wShape[2] * wShape[3]), static (op, from, to) => op.FillBlocksIn(from, to));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void FillBlocksIn(float[] weights, Span<float> to)
    {
        int e = block, groups = (int)wShape[0] / e, inGroups = (int)wShape[1] / e, taps = (int)(wShape[2] * wShape[3]), c = (int)wShape[1];
        for (int g = 0; g < groups; g++)
            for (int d = 0; d < inGroups; d++)
                for (int tap = 0; tap < taps; tap++)
                    for (int k = 0; k < e; k++)
                        for (int i = 0; i < e; i++)
                            to[(((g * inGroups + d) * taps + tap) * e + k) * e + i] = weights[((g * e + i) * c + d * e + k) * taps + tap];
    }

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
    /// write-back, no pass of its own for the bias or the epilogue. The arrays start their layouts at their first 64-byte
    /// line (<see cref="ContractionOp.AlignedArray"/>). The tuned <paramref name="kernel"/> is compiled again for the views
    /// once (and again when the layouts or the epilogue change).
    /// <para>Requires: this lowering; <see cref="ReadsInPlace"/>(<paramref name="input"/>); <paramref name="output"/> of
    /// this op's output shape, in blocks of this op's.</para>
    /// </summary>
    public unsafe void RunLinked(Kernel kernel, IReadOnlyDictionary<string, float[]> feeds, float[] x, BlockedLayout input, float[] y, BlockedLayout output,
        float[]? residual, bool relu)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(feeds);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        ArgumentNullException.ThrowIfNull(output);
        if (!ReadsInPlace(input)) throw new InvalidOperationException($"{Node} (lowered {LoweringName}) cannot read its input in place from {input}");
        if (!output.Holds(OutputShape) || output.Block != block) throw new InvalidOperationException($"{Node} writes [{string.Join(",", OutputShape)}] in blocks of {block}, not {output}");
        if (!kernel.Computation.Equals(Contraction)) throw new ArgumentException($"the kernel computes {kernel.Computation.Text}, not {Contraction.Text}");
        foreach (var (array, layout, name) in new[] { (x, input, "input"), (y, output, "output"), (residual, output, "residual") })
            if (array is not null && array.Length - AlignedStart(array) < layout.Length) throw new ArgumentException($"the {name} array holds {array.Length} floats, its layout {layout.Length}");
        Threads = kernel.Threads;
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        Func<string, float[]> value = name => feeds.TryGetValue(name, out var v) ? v : Constant(name) ?? throw new ArgumentException($"no value for {name}: feed it");
        var weights = PackBlocksIn(Sized(value(w), w, wShape[0] * wShape[1] * wShape[2] * wShape[3]));
        var init = Initial(value)!.Value;
        var run = Linked(kernel, input, output, residual is not null, relu, init.Strides);
        long top = window.PadsBegin[0], left = window.PadsBegin[1];
        long xAt = AlignedStart(x) + input.Interior - (top * input.Columns + left) * block, yAt = AlignedStart(y) + output.Interior;
        long kernelStart = System.Diagnostics.Stopwatch.GetTimestamp();
        fixed (float* px = x, py = y, pw = weights, pb = init.Values, pr = residual)
            run.Run(py + yAt, px + xAt, pw + AlignedStart(weights), pb, pr is null ? null : pr + AlignedStart(residual!) + output.Interior);
        LastRun = new RunPhases(kernelStart - start, System.Diagnostics.Stopwatch.GetTimestamp() - kernelStart, 0);
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
