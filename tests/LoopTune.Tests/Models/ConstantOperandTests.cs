using LoopTune.Ir;
using LoopTune.Models;
using static LoopTune.Tests.Models.OnnxTestModels;

namespace LoopTune.Tests.Models;

/// <summary><see cref="ContractionOp.ConstantOperand"/>: the kernel operand made from the model's constant (the weights, the
/// one <c>model --weights cold</c> times cold) in every lowering, checked by its size against the constant's; none when
/// every input is fed.</summary>
public sealed class ConstantOperandTests
{
    static IReadOnlyList<ContractionOp> Ways(byte[] bytes)
    {
        var model = OnnxModel.Parse(bytes, "test.onnx");
        var shapes = ShapeInference.Infer(model);
        return [.. ModelLowering.Alternatives(model, shapes, model.Nodes[0]).Cast<ContractionOp>()];
    }

    static long Length(Computation c, Operand? operand) => operand switch
    {
        Operand.Left => c.Left.Length,
        Operand.Right => c.Right.Length,
        _ => 0,
    };

    [Fact]
    public void A_convolutions_weights_are_the_right_operand_except_in_the_columns_lowering_where_they_are_the_left()
    {
        var bytes = Model([Node("Conv", "conv", ["X", "W"], ["Y"], Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1))],
            [Value("X", [1, 8, 6, 6])], [Value("Y", null)], [Floats("W", [16, 8, 3, 3], Random(16 * 8 * 9, 1))]);
        var ways = Ways(bytes);
        Assert.Contains(ways, w => ((ConvOp)w).Lowering == ConvLowering.Columns);
        Assert.Contains(ways, w => ((ConvOp)w).Lowering == ConvLowering.Direct);
        foreach (var way in ways)
        {
            var expected = ((ConvOp)way).Lowering == ConvLowering.Columns ? Operand.Left : Operand.Right;
            Assert.Equal(expected, way.ConstantOperand);
            Assert.Equal(16 * 8 * 9, Length(way.Contraction, way.ConstantOperand)); // the weights, packed or not
        }
    }

    [Fact]
    public void A_products_constant_input_is_its_operand_and_with_both_fed_there_is_none()
    {
        var b = Ways(Model([Node("Gemm", "fc", ["A", "B"], ["Y"])], [Value("A", [5, 7])], [Value("Y", null)], [Floats("B", [7, 6], Random(42, 2))]));
        Assert.Equal(Operand.Right, Assert.Single(b).ConstantOperand);
        var a = Ways(Model([Node("MatMul", "mm", ["A", "B"], ["Y"])], [Value("B", [7, 6])], [Value("Y", null)], [Floats("A", [5, 7], Random(35, 3))]));
        Assert.Equal(Operand.Left, Assert.Single(a).ConstantOperand);
        var fed = Ways(Model([Node("MatMul", "mm", ["A", "B"], ["Y"])], [Value("A", [2, 3]), Value("B", [3, 4])], [Value("Y", null)], []));
        Assert.Null(Assert.Single(fed).ConstantOperand);
    }
}
