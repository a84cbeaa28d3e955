using System.Text.Json.Nodes;
using LoopTune.Cli.Commands;
using LoopTune.Models;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Models;

/// <summary><see cref="SyntheticResNet"/>: a ResNet of bottleneck blocks with seeded random weights, against ONNX Runtime
/// (which must accept it and whose output our forward pass must match), and <c>looptune model resnet50</c>'s file.</summary>
public sealed class SyntheticResNetTests : IDisposable
{
    readonly TempFolder temp = new("looptune-synthetic");

    public void Dispose() => temp.Dispose();

    /// <summary>Two stages of one block each (the second downsampling), 16 stem channels, 32x32 images, 10 classes.</summary>
    static byte[] Small(int seed = 50) => SyntheticResNet.Bottleneck([1, 1], width: 16, image: 32, classes: 10, seed: seed);

    [Fact]
    public void The_same_seed_writes_the_same_model_and_another_seed_other_weights()
    {
        Assert.Equal(Small(), Small());
        Assert.NotEqual(Small(), Small(seed: 51));
        var model = OnnxModel.Parse(Small(), "small");
        // stem; per block 1x1, 3x3, 1x1 and the first block's 1x1 shortcut; then the classifier
        Assert.Equal(1 + 2 * 4, model.Nodes.Count(n => n.OpType == "Conv"));
        Assert.Equal(model.Nodes.Count(n => n.OpType == "Conv"), model.Nodes.Count(n => n.OpType == "BatchNormalization"));
        Assert.Single(model.Nodes, n => n.OpType == "Gemm");
        Assert.Throws<ArgumentException>(() => SyntheticResNet.Bottleneck([2, 0]));
    }

    [Fact]
    public void OnnxRuntime_runs_it_and_its_activations_stay_in_range()
    {
        var input = OnnxTestModels.Random(3 * 32 * 32, 7);
        var y = OnnxTestModels.RunOnnxRuntime(Small(), new Dictionary<string, (float[], long[])> { ["data"] = (input, [1, 3, 32, 32]) }, "logits")["logits"];
        Assert.Equal([1L, 10], y.Shape);
        // neither vanished nor blown up through the blocks
        Assert.All(y.Data, v => Assert.True(float.IsFinite(v) && Math.Abs(v) < 1e3, $"{v}"));
        Assert.True(y.Data.Max() - y.Data.Min() > 1e-3, string.Join(", ", y.Data));
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void Its_forward_pass_in_blocks_links_every_convolution_but_the_stem_and_matches_OnnxRuntime()
    {
        if (ConvOp.Blocks(32).Length == 0) return; // no vectors: no pass in blocks (as ModelCommandTests)
        var file = temp["small.onnx"];
        File.WriteAllBytes(file, Small());
        var (code, stdout, err) = TestHome.Run("model", file, "--run", "--budget", "0", "--quick", "--json", "--out", temp["report"], "--db", temp["m.db"], "--activations", "blocks");
        Assert.True(code == 0, err);
        var e2e = JsonNode.Parse(stdout)!["end_to_end"]!.AsObject();
        Assert.True(e2e["within_bound"]!.GetValue<bool>(), e2e.ToJsonString());
        string held = e2e["activations"]!.GetValue<string>();
        Assert.StartsWith("blocks of ", held);
        // linked: every convolution whose channels in and out the block divides (not the stem: it reads the RGB image)
        long block = long.Parse(held["blocks of ".Length..], System.Globalization.CultureInfo.InvariantCulture);
        var model = OnnxModel.Parse(Small(), "small");
        var shapes = ShapeInference.Infer(model);
        int divided = model.Nodes.Count(n => n.OpType == "Conv" && shapes.Of(n.Inputs[0])!.Value[1] % block == 0 && shapes.Of(n.Outputs[0])!.Value[1] % block == 0);
        Assert.True(divided > 0, held);
        Assert.Equal(divided, e2e["linked_convolutions"]!.GetValue<int>());
    }

    [Fact]
    public void Model_resnet50_writes_its_file_into_the_data_folder_once()
    {
        using var home = DataFolder.Use(temp["home"]);
        var log = new StringWriter();
        string path = ModelCommand.Locate("resnet50", log);
        Assert.Equal(Path.Combine(temp["home"], "models", "resnet50-random-weights.onnx"), path);
        Assert.Contains("seeded random weights", log.ToString());
        var model = OnnxModel.Load(path);
        Assert.Equal(53, model.Nodes.Count(n => n.OpType == "Conv")); // ResNet-50's: the stem, 16 blocks of 3, 4 shortcuts
        Assert.Equal("data", model.Inputs.Single().Name);
        Assert.Equal(224, ShapeInference.Infer(model).Of("data")!.Value[2]);
        var again = new StringWriter();
        Assert.Equal(path, ModelCommand.Locate("RESNET50", again));
        Assert.Equal("", again.ToString());
    }
}
