using System.Reflection;
using Google.Protobuf;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Models;
using LoopTune.Models.Onnx;
using static LoopTune.Tests.Models.OnnxTestModels;

namespace LoopTune.Tests.Models;

/// <summary>ResNet-18 as ML.NET ships it (Microsoft.ML.DnnImageFeaturizer.ResNet18 0.24.0,
/// tools/DnnImageModels/ResNet18Onnx/ResNet18.onnx, 63 MB, opset 8, a featurizer: it ends at the global average
/// pool), fetched by the test project's PackageDownload; its path comes in an assembly attribute.</summary>
[Trait("Category", "Integration")]
public class ResNet18Tests
{
    static string ModelPath => typeof(ResNet18Tests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "ResNet18Onnx").Value!;

    [Fact]
    public void Every_shape_is_inferred_and_the_22_convolutions_lower_to_contractions()
    {
        var model = OnnxModel.Load(ModelPath);
        Assert.Equal(74, model.Nodes.Length);
        var shapes = ShapeInference.Infer(model);
        Assert.Empty(shapes.Unknown);
        foreach (var node in model.Nodes) Assert.NotNull(shapes.Of(node.Outputs[0]));
        var output = Assert.Single(model.Outputs);
        Assert.Equal([1L, 512, 1, 1], shapes.Of(output.Name)!.Value.ToArray());
        Assert.Equal([1L, 512, 1, 1], output.Shape!.Value.Select(d => d.Value!.Value).ToArray());

        var lowered = ModelLowering.Lower(model, shapes);
        var convs = lowered.Where(l => l.Node.OpType == "Conv").ToList();
        Assert.Equal(22, convs.Count);
        Assert.All(convs, c => Assert.IsType<ConvOp>(c));
        Assert.All(lowered.Where(l => l.Node.OpType != "Conv"), l => Assert.IsType<NotTuned>(l));

        var first = (ConvOp)convs[0];
        Assert.Equal("O[f,h,w] += I[c,p,2*h+r,w+q] * W[f,c,r,p,q] f=64 h=112 w=112 c=3 p=2 r=7 q=4", first.Contraction.Text);
        Assert.Equal([7L, 7], first.Window.Kernel.ToArray());
        Assert.Equal([2L, 2], first.Window.Strides.ToArray());
        Assert.Equal([3L, 3, 2, 2], first.Window.Pads.ToArray());
        Assert.Contains("[1,3,229,229]", first.OutsideKernel[0]);
        Assert.Contains("copied into [1,3,2,229,115]", first.OutsideKernel[0]);
        // the 1x1 stride-2 shortcuts are matrix products of the subsampled input (mm F OH*OW C); the first conv of each
        // later stage pads only top and left; by default the strided windows (the stem, 3 3x3) are split into column phases
        Assert.Equal(["mm 128 784 64", "mm 256 196 128", "mm 512 49 256"],
            convs.Select(c => ((ConvOp)c).Contraction).Where(c => c.AsMatmul() is not null).Select(c => $"mm {c.AsMatmul()!.Value.M} {c.AsMatmul()!.Value.N} {c.AsMatmul()!.Value.K}"));
        Assert.Equal(3, convs.Count(c => ((ConvOp)c).Contraction.Text.StartsWith("O[f,h,w] += I[c,p,2*h+r,w+q] * W[f,c,r,p,q] ", StringComparison.Ordinal) && ((ConvOp)c).Window.Kernel[0] == 3));
        Assert.Equal(4, convs.Count(c => ((ConvOp)c).SplitsPhases));
        // every window larger than 1x1 may also be a product over its columns: the 3x3 stride-2 ones are mm F OH*OW 9C
        var columns = model.Nodes.Where(n => n.OpType == "Conv").Select(n => ModelLowering.Alternatives(model, shapes, n).Cast<ConvOp>().Single(c => c.Lowering == ConvLowering.Columns)).ToList();
        Assert.Contains(columns, c => c.Contraction.Text == "C[m,n] += A[m,k] * B[k,n] m=512 n=49 k=2304");
        Assert.Equal(3, convs.Count(c => ((ConvOp)c).Window.Pads.SequenceEqual([1L, 1, 0, 0])));
    }

    [Fact]
    public void The_resnet18_dataset_holds_the_models_distinct_contractions_in_order()
    {
        var model = OnnxModel.Load(ModelPath);
        var convs = ModelLowering.Lower(model, ShapeInference.Infer(model)).OfType<ConvOp>().ToList();
        // the layer table, lowered, is the model's convolutions one by one, windows included
        Assert.Equal(convs.Count, LoopTune.Datasets.ModelShapes.ResNet18Layers.Count);
        foreach (var (layer, conv) in LoopTune.Datasets.ModelShapes.ResNet18Layers.Zip(convs))
        {
            Assert.Equal(conv.Contraction, layer.Lower().Contraction);
            Assert.Equal(conv.Window.Pads.ToArray(), layer.Pads);
            Assert.Equal(conv.Flops, layer.Lower().Flops);
        }
        var distinct = convs.Select(c => c.Contraction).Distinct().ToList();
        var dataset = LoopTune.Datasets.ModelShapes.ResNet18Convs().Select(s => Computation.Parse(s.Spec)).ToList();
        Assert.Equal(distinct.Count, dataset.Count);
        foreach (var (fromModel, fromTable) in distinct.Zip(dataset))
            Assert.True(fromModel.Equals(fromTable) || (fromModel.AsConv() is { } shape && shape == fromTable.AsConv() && fromModel.Flops == fromTable.Flops),
                $"{fromModel.Text} vs {fromTable.Text}");
    }

    [Fact]
    public void The_first_convolution_run_with_a_compiled_kernel_matches_onnx_runtime()
    {
        var bytes = File.ReadAllBytes(ModelPath);
        var model = OnnxModel.Parse(bytes, ModelPath);
        var shapes = ShapeInference.Infer(model);
        var conv = Assert.IsType<ConvOp>(ModelLowering.Lower(model, shapes, model.Nodes[0]));

        // ONNX Runtime gives the first conv's output when it is a graph output
        var proto = ModelProto.Parser.ParseFrom(bytes);
        proto.Graph.Output.Add(new ValueInfoProto { Name = model.Nodes[0].Outputs[0] });
        var input = model.Inputs[0];
        var image = Random(3 * 224 * 224, 18);
        var ort = RunOnnxRuntime(proto.ToByteArray(), new Dictionary<string, (float[], long[])> { [input.Name] = (image, [1, 3, 224, 224]) }, model.Nodes[0].Outputs[0]);

        var output = conv.Run(Kernel.Compile(Nest.Initial(conv.Contraction)), new Dictionary<string, float[]> { [input.Name] = image });
        Assert.Equal(ort.Single().Value.Shape, conv.OutputShape.ToArray());
        AssertClose(ort.Single().Value.Data, output);
    }
}
