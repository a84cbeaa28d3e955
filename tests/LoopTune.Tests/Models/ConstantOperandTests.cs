using LoopTune.Ir;
using LoopTune.Jit;
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

    /// <summary>A kernel that packs the weights whole (<c>pack=W</c>) packs a constant's once, in the node's first run, and
    /// reuses the copy (as the libraries lay their weights out once); weights fed as an input are packed in every run, so
    /// each run computes with the weights given.</summary>
    [Fact]
    public void A_kernel_packs_constant_weights_once_and_fed_weights_in_every_run()
    {
        LoopTune.Models.Onnx.NodeProto[] conv = [Node("Conv", "conv", ["X", "W"], ["Y"], Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1))];
        const string Tile = ">h:6 c:8 r:3 s:3 w:6u f:16v pack=W"; // along the 16 output channels, W packed
        var constant = Ways(Model(conv, [Value("X", [1, 8, 6, 6])], [Value("Y", null)], [Floats("W", [16, 8, 3, 3], Random(1152, 1))]))
            .Cast<ConvOp>().Single(w => w.Lowering == ConvLowering.Direct);
        var (packed, plain) = (Kernel.Compile(Nest.Parse(constant.Contraction, Tile)), Kernel.Compile(Nest.Initial(constant.Contraction)));
        var feeds = new Dictionary<string, float[]> { ["X"] = Random(288, 5) };
        var want = constant.Run(plain, feeds);
        for (int run = 0; run < 3; run++) AssertClose(want, constant.Run(packed, feeds));
        ConvOp Fed() => Ways(Model(conv, [Value("X", [1, 8, 6, 6]), Value("W", [16, 8, 3, 3])], [Value("Y", null)], []))
            .Cast<ConvOp>().Single(w => w.Lowering == ConvLowering.Direct);
        var (fed, reference) = (Fed(), Fed()); // an op each, so that each keeps its kernel between runs
        Assert.Null(fed.ConstantOperand);
        var w = feeds["W"] = new float[1152];
        for (int run = 0; run < 3; run++)
        {
            Random(1152, 10 + run).CopyTo(w); // new weights in the same array: a copy kept from the run before would be stale
            AssertClose(reference.Run(plain, feeds), fed.Run(packed, feeds));
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
