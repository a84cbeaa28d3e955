namespace LoopTune.Models;

/// <summary>
/// One 2-d convolution layer of a known network, batch 1, group 1, dilation 1: C channels of H x W to F filters of
/// R x S, with strides and ONNX's pads (top, left, bottom, right). <see cref="Lower"/> gives the contraction
/// <c>looptune model</c> tunes for such a node: the layer is made a one-node model (<see cref="SingleNodeModel.Make"/>) and
/// goes through the same shape inference and <see cref="ModelLowering"/> as a model read from a file, so the named
/// datasets built from layer tables (<c>resnet18</c>) hold exactly the model's contractions, without reading the model.
/// </summary>
public sealed record ConvLayer(int C, int H, int W, int F, int R, int S, int StrideH, int StrideW, long[] Pads)
{
    /// <summary>The output's rows and columns.</summary>
    public (long OH, long OW) Output => ((H + Pads[0] + Pads[2] - R) / StrideH + 1, (W + Pads[1] + Pads[3] - S) / StrideW + 1);

    /// <summary>The layer as <see cref="ModelLowering"/> lowers it; a layer it leaves untuned (or a window larger than
    /// the padded image) is an <see cref="ArgumentException"/> naming the reason.</summary>
    public ConvOp Lower() => Lowerings()[0];

    /// <summary>Every lowering of the layer (<see cref="ModelLowering.Alternatives"/>), the default first.</summary>
    public IReadOnlyList<ConvOp> Lowerings()
    {
        if (Pads.Length != 4) throw new ArgumentException($"a 2-d convolution has 4 pads, not {Pads.Length}");
        var (oh, ow) = Output;
        if (oh < 1 || ow < 1) throw new ArgumentException($"the {R}x{S} window is larger than the padded {H}x{W} image");
        var made = SingleNodeModel.Make("Conv", [new("X", [1, C, H, W]), new("W", [F, C, R, S])], [1, F, oh, ow],
            new NodeAttribute("kernel_shape", [R, S]), new NodeAttribute("strides", [StrideH, StrideW]), new NodeAttribute("pads", Pads));
        var model = OnnxModel.Parse(made.Bytes, ToString());
        var ways = ModelLowering.Alternatives(model, ShapeInference.Infer(model), model.Nodes[0]);
        return ways[0] is ConvOp ? [.. ways.Cast<ConvOp>()] : throw new ArgumentException(ways[0].ToString());
    }

    /// <inheritdoc/>
    public override string ToString() => $"conv {C}x{H}x{W} -> {F}, {R}x{S}, strides {StrideH},{StrideW}, pads {ModelShapes.Format(Pads)}";
}
