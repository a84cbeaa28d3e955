using LoopTune.Models;
using LoopTune.Tests.TestUtil;
using static LoopTune.Tests.Models.OnnxTestModels;

namespace LoopTune.Tests.Models;

/// <summary>Reading ONNX files: the typed model, initializers in both encodings, shape inference against ONNX
/// Runtime's output shapes, and the errors for files that are not ONNX models.</summary>
public class OnnxModelTests
{
    /// <summary>Conv, BatchNormalization, Relu, MaxPool (ceil mode), a residual Add, AveragePool, GlobalAveragePool,
    /// Flatten, Reshape (a constant shape), Gemm and MatMul, with every intermediate value a graph output.</summary>
    static byte[] SmallCnn(bool raw)
    {
        string[] values = ["c1", "bn", "r1", "mp", "c2", "sum", "ap", "gap", "flat", "resh", "fc", "mm"];
        return Model(
            [
                Node("Conv", "c1", ["X", "W1", "B1"], ["c1"], Ints("strides", 2, 2), Ints("pads", 3, 3, 2, 2)),
                Node("BatchNormalization", "bn", ["c1", "g", "b", "mean", "var"], ["bn"]),
                Node("Relu", "r1", ["bn"], ["r1"]),
                Node("MaxPool", "mp", ["r1"], ["mp"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Int("ceil_mode", 1)),
                Node("Conv", "c2", ["mp", "W2"], ["c2"], Ints("pads", 1, 1, 1, 1)),
                Node("Add", "sum", ["c2", "mp"], ["sum"]),
                Node("AveragePool", "ap", ["sum"], ["ap"], Ints("kernel_shape", 2, 2), Ints("strides", 1, 1)),
                Node("GlobalAveragePool", "gap", ["ap"], ["gap"]),
                Node("Flatten", "flat", ["gap"], ["flat"]),
                Node("Reshape", "resh", ["flat", "shape"], ["resh"]),
                Node("Gemm", "fc", ["resh", "Wfc"], ["fc"], Int("transB", 1)),
                Node("MatMul", "mm", ["fc", "Wmm"], ["mm"]),
            ],
            [Value("X", [-1, 3, 17, 15])],
            [.. values.Select(v => Value(v, null))],
            [
                Floats("W1", [4, 3, 7, 7], Random(588, 1), raw), Floats("B1", [4], Random(4, 2), raw),
                Floats("g", [4], [1, 2, 0.5f, 1], raw), Floats("b", [4], [0, 0.1f, 0, -0.1f], raw),
                Floats("mean", [4], [0, 0, 0.1f, 0], raw), Floats("var", [4], [1, 1, 2, 1], raw),
                Floats("W2", [4, 4, 3, 3], Random(144, 3), raw),
                Int64s("shape", [-1, 4], raw), Floats("Wfc", [5, 4], Random(20, 4), raw), Floats("Wmm", [5, 3], Random(15, 5), raw),
            ]);
    }

    [Fact]
    public void The_typed_model_has_the_nodes_attributes_initializers_inputs_and_outputs_of_the_file()
    {
        var model = OnnxModel.Parse(SmallCnn(raw: true), "cnn.onnx");
        Assert.Equal(13, model.Opset);
        Assert.Equal(8, model.IrVersion);
        Assert.Equal(12, model.Nodes.Length);
        var conv = model.Nodes[0];
        Assert.Equal(("c1", "Conv"), (conv.Name, conv.OpType));
        Assert.Equal(["X", "W1", "B1"], conv.Inputs.ToArray());
        Assert.Equal([3L, 3, 2, 2], conv.Ints("pads")!.Value.ToArray());
        Assert.Equal(OnnxAttributeType.Ints, conv.Attributes["strides"].Type);
        Assert.Equal(1, model.Nodes[3].Int("ceil_mode", 0));
        Assert.Equal("X", Assert.Single(model.Inputs).Name);
        Assert.Equal("[N,3,17,15]", $"[{string.Join(",", model.Inputs[0].Shape!.Value)}]");
        Assert.Equal(12, model.Outputs.Length);
        Assert.Equal([4L, 3, 7, 7], model.Initializers["W1"].Dims.ToArray());
        Assert.Equal(Random(588, 1), model.Initializers["W1"].Floats);
        Assert.Equal([-1L, 4], model.Initializers["shape"].Integers);
    }

    [Fact]
    public void Raw_data_and_typed_fields_give_the_same_initializers()
    {
        var raw = OnnxModel.Parse(SmallCnn(raw: true), "raw.onnx");
        var typed = OnnxModel.Parse(SmallCnn(raw: false), "typed.onnx");
        Assert.Equal(raw.Initializers.Keys.Order(), typed.Initializers.Keys.Order());
        foreach (var (name, t) in raw.Initializers)
        {
            Assert.Equal(t.Dims.ToArray(), typed.Initializers[name].Dims.ToArray());
            if (t.IsFloat) Assert.Equal(t.Floats, typed.Initializers[name].Floats);
            else Assert.Equal(t.Integers, typed.Initializers[name].Integers);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Inferred_shapes_are_the_shapes_of_onnx_runtimes_outputs(int batch)
    {
        var bytes = SmallCnn(raw: true);
        var model = OnnxModel.Parse(bytes, "cnn.onnx");
        var shapes = ShapeInference.Infer(model, symbolicSize: batch);
        var names = model.Outputs.Select(o => o.Name).ToArray();
        var ort = RunOnnxRuntime(bytes, new Dictionary<string, (float[], long[])> { ["X"] = (Random(batch * 3 * 17 * 15, 9), [batch, 3, 17, 15]) }, names);
        foreach (var name in names) Assert.True(ort[name].Shape.SequenceEqual(shapes.Of(name)!.Value), $"{name}: inferred {ModelShapes.Format(shapes.Of(name)!.Value)}, ONNX Runtime {ModelShapes.Format(ort[name].Shape)}");
        Assert.Empty(shapes.Unknown);
    }

    [Fact]
    public void An_operator_without_a_shape_rule_leaves_its_output_unknown_and_a_contraction_after_it_not_tuned()
    {
        var bytes = Model([Node("TopK", "top", ["X", "K"], ["T", "I"]), Node("MatMul", "mm", ["T", "W"], ["Y"])],
            [Value("X", [2, 3])], [Value("Y", null)], [Int64s("K", [2]), Floats("W", [2, 2], Random(4, 1))]);
        var model = OnnxModel.Parse(bytes, "topk.onnx");
        var shapes = ShapeInference.Infer(model);
        Assert.Equal("top (TopK): no shape rule for TopK", shapes.Unknown["T"]);
        var mm = Assert.IsType<NotTuned>(ModelLowering.Lower(model, shapes)[1]);
        Assert.Equal("the shape of T is unknown (top (TopK): no shape rule for TopK)", mm.Reason);
    }

    [Fact]
    public void Shapes_that_do_not_fit_their_operator_are_an_error_naming_the_node()
    {
        var bytes = Model([Node("Conv", "c", ["X", "W"], ["Y"])], [Value("X", [1, 3, 8, 8])], [Value("Y", null)], [Floats("W", [2, 4, 3, 3], Random(72, 1))]);
        var e = Assert.Throws<OnnxError>(() => ShapeInference.Infer(OnnxModel.Parse(bytes, "bad.onnx")));
        Assert.Equal("bad.onnx: node c (Conv): input X [1,3,8,8] has 3 channels; weights W [2,4,3,3] with group 1 need 4", e.Message);
    }

    [Fact]
    public void Every_truncation_of_a_model_is_an_onnx_error()
    {
        var bytes = SmallCnn(raw: true);
        for (int length = 0; length < bytes.Length; length++)
        {
            var e = Record.Exception(() => OnnxModel.Parse(bytes.AsSpan(0, length), "cut.onnx"));
            Assert.True(e is OnnxError { File: "cut.onnx" }, $"cut at {length} of {bytes.Length}: {e?.GetType().Name ?? "no error"}");
        }
    }

    [Fact]
    public void A_truncated_file_is_an_onnx_error_naming_the_file()
    {
        using var folder = new TempFolder();
        var bytes = SmallCnn(raw: true);
        string path = folder["cut.onnx"];
        File.WriteAllBytes(path, bytes[..(bytes.Length * 2 / 3)]);
        var e = Assert.Throws<OnnxError>(() => OnnxModel.Load(path));
        Assert.StartsWith($"{path}: ", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Theory]
    [InlineData("not a model at all, just text\n")]
    [InlineData("{\"graph\": {\"node\": []}}")]
    [InlineData("\u0089PNG\r\n\u001a\n\0\0\0\rIHDR")]
    public void A_file_that_is_not_onnx_is_an_onnx_error_naming_the_file(string content)
    {
        using var folder = new TempFolder();
        string path = folder["model.onnx"];
        File.WriteAllBytes(path, content.Select(c => (byte)c).ToArray());
        var e = Assert.Throws<OnnxError>(() => OnnxModel.Load(path));
        Assert.StartsWith($"{path}: ", e.Message);
        Assert.Contains("not an ONNX model", e.Message);
    }

    [Fact]
    public void A_missing_file_and_an_empty_file_are_onnx_errors_naming_the_file()
    {
        using var folder = new TempFolder();
        Assert.StartsWith($"{folder["none.onnx"]}: cannot read the file", Assert.Throws<OnnxError>(() => OnnxModel.Load(folder["none.onnx"])).Message);
        File.WriteAllBytes(folder["empty.onnx"], []);
        Assert.Equal($"{folder["empty.onnx"]}: the file is empty, not an ONNX model", Assert.Throws<OnnxError>(() => OnnxModel.Load(folder["empty.onnx"])).Message);
    }
}
