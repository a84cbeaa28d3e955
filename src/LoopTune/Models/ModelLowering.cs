using System.Collections.Immutable;
using LoopTune.Ir;

namespace LoopTune.Models;

/// <summary>
/// Turns a model's contractions into <see cref="ContractionOp"/>s: every 2-d <c>Conv</c> with group 1 and dilation 1
/// (<see cref="ConvOp"/>), every <c>Gemm</c> (<see cref="GemmOp"/>) and every <c>MatMul</c> (<see cref="MatMulOp"/>).
/// Every other node, and a contraction that cannot be lowered, is <see cref="NotTuned"/> with the reason; the rest goes on.
/// </summary>
public static class ModelLowering
{
    /// <summary>One result per node, in the model's order.</summary>
    public static ImmutableArray<LoweredNode> Lower(OnnxModel model, ModelShapes shapes) =>
        [.. model.Nodes.Select(n => Lower(model, shapes, n))];

    /// <summary>The contraction of one node (its default lowering), or why it has none.</summary>
    public static LoweredNode Lower(OnnxModel model, ModelShapes shapes, OnnxNode node) => Alternatives(model, shapes, node)[0];

    /// <summary>Every way the node may be lowered, the default first: a convolution with a window larger than 1x1 read in
    /// place or as a matrix product over its windows' columns, and in blocks of output channels once per block that divides
    /// its channels (<see cref="ConvOp.LowerEach"/>); any other node has one. Each computes the node; which runs faster is
    /// for the caller to measure.</summary>
    public static ImmutableArray<LoweredNode> Alternatives(OnnxModel model, ModelShapes shapes, OnnxNode node)
    {
        if (node.OpType is not ("Conv" or "Gemm" or "MatMul") || node.Domain is not ("" or "ai.onnx"))
            return [new NotTuned(node, $"{node.OpType} is not a contraction")];
        foreach (var name in node.Inputs.Where(i => i.Length > 0).Append(node.Outputs[0]))
            if (shapes.Of(name) is null)
                return [new NotTuned(node, $"the shape of {name} is unknown ({shapes.Unknown.GetValueOrDefault(name, "not inferred")})")];
        ImmutableArray<long> Shape(int input) => shapes.Of(node.Inputs[input])!.Value;
        var y = shapes.Of(node.Outputs[0])!.Value;
        try
        {
            return node.OpType switch
            {
                "Conv" => ConvOp.LowerEach(node, model, Shape(0), Shape(1), y),
                "Gemm" => [GemmOp.Lower(node, model, Shape(0), Shape(1), node.Input(2) is { } c ? shapes.Of(c) : null, y)],
                _ => [MatMulOp.Lower(node, model, Shape(0), Shape(1), y)],
            };
        }
        catch (SpecError e)
        {
            return [new NotTuned(node, $"its contraction is out of range: {e.Problem}")];
        }
        catch (ArgumentException e)
        {
            throw new OnnxError(model.Source, $"node {node}: {e.Message}", e);
        }
    }
}
