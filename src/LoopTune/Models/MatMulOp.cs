using System.Collections.Immutable;
using LoopTune.Ir;
using static LoopTune.Models.ContractionText;

namespace LoopTune.Models;

/// <summary>
/// A <c>MatMul</c> (numpy's matmul) as <c>Y[b,m,n] += A[b,m,k] * B[b,k,n]</c>: each batch dim is an index variable
/// (<c>b</c>, or <c>b1</c>, <c>b2</c>, ... for several); an operand without a batch dim (or with a 1 there) is not
/// indexed by it, so it is shared by every batch. A 1-d A is a row, a 1-d B a column, and their dim of size 1 is left
/// out. Nothing is done outside the kernel: Y starts as zeros and the operands are read as they are.
/// </summary>
public sealed class MatMulOp : ContractionOp
{
    MatMulOp(OnnxNode node, OnnxModel model, Computation contraction, ImmutableArray<long> outputShape, ImmutableArray<string> outside)
        : base(node, model, contraction, outputShape, outside) { }

    internal static LoweredNode Lower(OnnxNode node, OnnxModel model, ImmutableArray<long> aShape, ImmutableArray<long> bShape, ImmutableArray<long> y)
    {
        var a = aShape.Length == 1 ? [1, aShape[0]] : aShape;
        var b = bShape.Length == 1 ? [bShape[0], 1] : bShape;
        var batch = ShapeInference.Broadcast(a[..^2], b[..^2]);
        var names = Enumerable.Range(0, batch.Length).Select(i => batch.Length == 1 ? "b" : $"b{i + 1}").ToList();
        var text = new ContractionText();
        for (int i = 0; i < batch.Length; i++) text.Var(names[i], batch[i]);
        text.Var("m", a[^2]).Var("n", b[^1]).Var("k", a[^1]);
        List<(long, string)>[] BatchDims(ImmutableArray<long> operand)
        {
            int skip = batch.Length - (operand.Length - 2);
            return [.. Enumerable.Range(skip, batch.Length - skip).Select(i => operand[i - skip] == batch[i] ? D(names[i]) : One())];
        }
        text.Tensor("Y", [.. names.Select(D), D("m"), D("n")])
            .Tensor("A", [.. BatchDims(a), D("m"), D("k")])
            .Tensor("B", [.. BatchDims(b), D("k"), D("n")]);
        var outside = ImmutableArray.Create($"A = {node.Inputs[0]} {ModelShapes.Format(aShape)} as it is",
            $"B = {node.Inputs[1]} {ModelShapes.Format(bShape)} as it is", "Y starts as zeros");
        return new MatMulOp(node, model, text.Build(), y, outside);
    }

    protected override (string? Left, string? Right) OperandInputs() => (Node.Inputs[0], Node.Inputs[1]);

    protected override (float[] Left, float[] Right) Prepare(float[] output, Func<string, float[]> value) =>
        (Sized(value(Node.Inputs[0]), Node.Inputs[0], Contraction.Left.Length), Sized(value(Node.Inputs[1]), Node.Inputs[1], Contraction.Right.Length));
}
