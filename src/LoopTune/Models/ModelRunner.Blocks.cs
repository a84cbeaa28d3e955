using System.Collections.Immutable;

namespace LoopTune.Models;

/// <summary>A forward pass whose activations stay in blocks of channels from convolution to convolution
/// (<see cref="ModelRunner.Build(OnnxModel, ModelShapes, IReadOnlyDictionary{OnnxNode, ChosenKernel}, IReadOnlyDictionary{OnnxNode, ChosenKernel}?)"/>).</summary>
public sealed partial class ModelRunner
{
    /// <summary>The convolutions lowered <see cref="ConvLowering.BlockedInput"/> that may run linked, by node.</summary>
    IReadOnlyDictionary<OnnxNode, ChosenKernel> linkedKernels = new Dictionary<OnnxNode, ChosenKernel>();

    /// <summary>What each linked convolution's step makes (<see cref="Fused"/>), by node.</summary>
    Dictionary<OnnxNode, (string Final, string? Residual, OnnxNode? Add, OnnxNode? Relu)> fusedBy = [];

    /// <summary>The values held in blocks (<see cref="PlanBlocks"/>).</summary>
    readonly HashSet<string> blockedValues = new(StringComparer.Ordinal);

    /// <summary>The array and layout of each value held in blocks, made so far.</summary>
    readonly Dictionary<string, (float[] Array, BlockedLayout Layout)> inBlocks = new(StringComparer.Ordinal);

    /// <summary>The block of channels and the padding of every value held in blocks.</summary>
    (int Block, int Pad) blocks;

    /// <summary>How many convolutions run linked: input read in place in blocks, output stored in blocks by the kernel.</summary>
    public int LinkedConvolutions { get; private set; }

    /// <summary>The values a pass holds in blocks (<see cref="BlockedLayout"/>).</summary>
    public IReadOnlySet<string> BlockedValues => blockedValues;

    /// <summary>
    /// Which values the pass holds in blocks, all in one block of channels (the linked convolutions') and padded as far as the
    /// widest of their pads. A value is held so when it is no graph output and
    /// <list type="bullet">
    /// <item>its maker is a linked convolution (the value after its folded BatchNormalization, fused Add and Relu) that can
    /// read its input in place from a layout of its shape (held in blocks, or copied into them once by a step of its own,
    /// as a residual not held is), or the MaxPool a blocked convolution pools in its own layout (ResNet's stem);</item>
    /// <item>and every reader reads it in blocks: a linked convolution whose output is held in blocks, reading it in place
    /// (<see cref="ConvOp.ReadsInPlace"/>); the Add such a convolution fuses, the value being its residual; a GlobalAveragePool.</item>
    /// </list>
    /// Starting from every candidate, values that break a rule are dropped until none does. The rest of the pass runs
    /// as without blocks.
    /// </summary>
    void PlanBlocks(IReadOnlyDictionary<OnnxNode, ChosenKernel> linked)
    {
        var ops = linked.Values.Select(k => k.Op as ConvOp ?? throw new ArgumentException($"{k.Op.Node} is no convolution")).ToList();
        if (ops.FirstOrDefault(o => o.Lowering != ConvLowering.BlockedInput) is { } other) throw new ArgumentException($"{other.Node} is lowered {other.LoweringName}, not in blocked input");
        if (ops.Select(o => o.ChannelBlock).Distinct().Count() > 1) throw new ArgumentException($"the linked convolutions' blocks differ: {string.Join(", ", ops.Select(o => o.ChannelBlock).Distinct())}");
        linkedKernels = linked;
        blocks = (ops[0].ChannelBlock, (int)ops.Max(o => o.Window.Pads.Max()));
        fusedBy = linked.Keys.ToDictionary(n => n, n => Fused(model, shapes, readers, n));
        var maker = new Dictionary<string, OnnxNode>(StringComparer.Ordinal);
        foreach (var (node, f) in fusedBy) maker[f.Final] = node;
        var pooled = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (node, chosen) in kernels)
            if (chosen.Op is ConvOp { Lowering: ConvLowering.Blocked } && !linked.ContainsKey(node) && MaxPoolAfter(model, shapes, node) is { } after)
                pooled.Add(after.Pool.Outputs[0]);
        BlockedLayout? Layout(string value) => shapes.Of(value) is { } shape ? BlockedLayout.Of(shape, blocks.Block, blocks.Pad) : null;
        var held = new HashSet<string>(maker.Keys.Concat(pooled).Where(v => Layout(v) is not null && !model.Outputs.Any(o => o.Name == v)), StringComparer.Ordinal);
        bool Reads(string value, OnnxNode reader)
        {
            if (reader.OpType == "GlobalAveragePool" || WholePlaneMean(reader)) return true;
            if (linked.TryGetValue(reader, out var k) && reader.Inputs[0] == value && reader.Inputs.Count(i => i == value) == 1)
                return ((ConvOp)k.Op).ReadsInPlace(Layout(value)!);
            // the Add a linked convolution fuses, this value its residual
            return fusedBy.Any(f => f.Value.Residual == value && f.Value.Add == reader && held.Contains(f.Value.Final));
        }
        // a linked convolution whose input or residual is not held copies it into blocks first (InBlocks)
        bool Takes(OnnxNode node) => held.Contains(node.Inputs[0]) || Layout(node.Inputs[0]) is { } own && ((ConvOp)linked[node].Op).ReadsInPlace(own);
        bool Keeps(string value) => maker.TryGetValue(value, out var node)
            ? Takes(node) && (fusedBy[node].Residual is not { } r || Layout(r) is not null) && readers.GetValueOrDefault(value, []).All(n => Reads(value, n))
            : readers.GetValueOrDefault(value, []).All(n => Reads(value, n));
        while (held.RemoveWhere(v => !Keeps(v)) > 0) { }
        blockedValues.UnionWith(held);
    }

    /// <summary>Whether <paramref name="node"/> is an AveragePool whose one window is each whole plane (no pads): a
    /// GlobalAveragePool (ResNet-18's last node, a 7x7 AveragePool of 7x7 planes).</summary>
    bool WholePlaneMean(OnnxNode node)
    {
        if (node.OpType != "AveragePool" || shapes.Of(node.Inputs[0]) is not { Length: 4 } x || PoolProblem(node, x) is not null) return false;
        var window = Window.Of(node, x[2..], null);
        return window.Kernel.SequenceEqual(x[2..]) && window.Pads.All(p => p == 0);
    }

    /// <summary>What a convolution's step makes, as <see cref="Contraction"/> fuses it: the value after its folded
    /// BatchNormalization, the Add of a value of the same shape made before it (the residual: of two convolutions whose
    /// outputs are added, the later one adds) and a Relu, each the only reader; the residual, the Add and the Relu, if any.</summary>
    static (string Final, string? Residual, OnnxNode? Add, OnnxNode? Relu) Fused(OnnxModel model, ModelShapes shapes, Dictionary<string, List<OnnxNode>> readers, OnnxNode conv)
    {
        string output = AfterFold(model, shapes, readers, conv);
        string? residual = null;
        int at = model.Nodes.IndexOf(conv);
        // the Add goes to the convolution made after the other value (the pass makes the steps in the file's order)
        bool Before(string value) => model.Inputs.Any(i => i.Name == value) || model.Initializers.ContainsKey(value)
            || model.Nodes.Take(at).Any(n => n.Outputs.Contains(value));
        var add = Only(model, shapes, readers, output, "Add");
        if (add is not null && add.Inputs.Where(i => i != output).ToList() is [var other] && Before(other)
            && shapes.Of(other) is { } otherShape && shapes.Of(output) is { } shape && otherShape.SequenceEqual(shape))
            (residual, output) = (other, add.Outputs[0]);
        else add = null;
        var relu = Only(model, shapes, readers, output, "Relu");
        return (relu?.Outputs[0] ?? output, residual, add, relu);
    }

    /// <summary>A linked convolution's step (<see cref="ConvOp.RunLinked"/>): its BatchNormalization folded in, its input and
    /// residual read in blocks, its output (after the fused Add and Relu) stored in blocks.</summary>
    void Linked(OnnxNode node, ChosenKernel link)
    {
        var covers = new List<OnnxNode> { node };
        if (FoldableNorm(node) is { } bn && Fold(link, bn) is { } f)
        {
            link = f;
            folded.Add(bn);
            covers.Add(bn);
        }
        var op = (ConvOp)link.Op;
        var (final, residual, add, relu) = fusedBy[node];
        var feeds = node.Inputs.Skip(1).Where(i => i.Length > 0 && !model.Initializers.ContainsKey(i)).Distinct().ToDictionary(i => i, Read);
        var input = InBlocks(node.Inputs[0]);
        foreach (var n in new[] { add, relu }.OfType<OnnxNode>()) fused.Add(n);
        Flops += op.Flops;
        if (blockedValues.Contains(final))
        {
            var (y, layout) = AllocateBlocked(final);
            var res = residual is null ? ((float[], BlockedLayout)?)null : InBlocks(residual);
            steps.Add(new(op.Node.Name, op.Node.OpType, () => op.RunLinked(link.Kernel, feeds, input.Array, input.Layout, y, layout, res?.Item1, relu is not null),
                Covering([.. covers, add, relu]), op));
        }
        else // its output to readers in NCHW: the kernel's blocks written back, with the epilogue
        {
            var r = residual is null ? null : Read(residual);
            var y = Allocate(final);
            steps.Add(new(op.Node.Name, op.Node.OpType, () => op.RunLinked(link.Kernel, feeds, input.Array, input.Layout, y, null, r, relu is not null),
                Covering([.. covers, add, relu]), op));
        }
        LinkedConvolutions++;
    }

    /// <summary>The array and layout of a value in blocks: the one it is held in, or a copy of its NCHW array made by a step
    /// of its own here (once: later readers read the copy).</summary>
    (float[] Array, BlockedLayout Layout) InBlocks(string name)
    {
        if (inBlocks.TryGetValue(name, out var held)) return held;
        var x = Read(name);
        var (copy, layout) = AllocateBlocked(name);
        steps.Add(new(name + " into blocks", "Reorder", () => layout.From(x, copy, ContractionOp.AlignedStart(copy), threads), [name]));
        return (copy, layout);
    }

    /// <summary>The array of a value held in blocks: one made earlier of the same layout whose values are all read by then
    /// (as <see cref="Allocate"/> picks), else a new one (pinned, zeroed, from a 64-byte line): only interiors are ever written,
    /// so the padding stays zero.</summary>
    (float[] Array, BlockedLayout Layout) AllocateBlocked(string name)
    {
        var layout = BlockedLayout.Of(shapes.Of(name)!.Value, blocks.Block, blocks.Pad)!;
        var array = blockedUntil.Where(a => a.Value.Layout == layout && a.Value.Until < at).OrderBy(a => a.Value.Until).Select(a => a.Key).LastOrDefault()
            ?? ContractionOp.AlignedArray(layout.Length);
        blockedUntil[array] = (layout, LastRead(name));
        return inBlocks[name] = (array, layout);
    }

    readonly Dictionary<float[], (BlockedLayout Layout, int Until)> blockedUntil = new(ReferenceEqualityComparer.Instance);

}
