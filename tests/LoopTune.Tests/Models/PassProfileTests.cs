using LoopTune.Cli.Commands;
using LoopTune.Measure;
using LoopTune.Models;
using static LoopTune.Tests.Models.OnnxTestModels;

namespace LoopTune.Tests.Models;

/// <summary>Where a forward pass spends its time: our steps split into kernel and around it, ONNX Runtime's profile read,
/// and the two laid against each other node by node.</summary>
public class PassProfileTests
{
    /// <summary>X [1,16,12,12] -> conv1 (16 filters 3x3, pads 1, bias) -> bn -> Relu -> R; conv2 (16 filters 3x3, pads 1) of R
    /// -> Add R -> Y; a MaxPool 2x2/2 of Y -> Z.</summary>
    static byte[] Net() => Model(
        [
            Node("Conv", "conv1", ["X", "W1", "B1"], ["Y1"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
            BatchNorm("bn", "Y1", "N1"),
            Node("Relu", "relu", ["N1"], ["R"]),
            Node("Conv", "conv2", ["R", "W2"], ["Y2"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
            Node("Add", "add", ["Y2", "R"], ["Y"]),
            Node("MaxPool", "pool", ["Y"], ["Z"], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2)),
        ],
        [Value("X", [1, 16, 12, 12])], [Value("Z", null)],
        [Floats("W1", [16, 16, 3, 3], Random(2304, 1)), Floats("B1", [16], Random(16, 2)), .. Norm("bn", 16, 3), Floats("W2", [16, 16, 3, 3], Random(2304, 4))]);

    /// <summary>The runner of <paramref name="bytes"/> (<see cref="ModelRunnerTests.Build"/>) with its input X filled.</summary>
    static ModelRunner Runner(byte[] bytes)
    {
        var runner = ModelRunnerTests.Build(bytes).Runner;
        Random(runner.Value("X").Length, 5).CopyTo(runner.Value("X"));
        return runner;
    }

    [Fact]
    public void Each_contraction_step_is_split_into_its_kernel_and_the_work_around_it_and_names_the_nodes_it_does()
    {
        var profile = Runner(Net()).Profile(5);
        Assert.Equal(["conv1", "conv2", "pool"], profile.Select(p => p.Node));
        // conv1 does the folded BatchNormalization and the fused Relu, conv2 the fused Add: each with its output
        Assert.Equal("conv1 Y1 bn N1 relu R", string.Join(" ", profile[0].Covers));
        Assert.Equal("conv2 Y2 add Y", string.Join(" ", profile[1].Covers));
        Assert.Equal("pool Z", string.Join(" ", profile[2].Covers));
        foreach (var step in profile.Take(2))
        {
            // both are timed inside the step's own time in every pass, so their medians cannot pass the step's
            Assert.InRange(step.KernelSeconds!.Value, double.Epsilon, step.Seconds);
            Assert.InRange(step.AroundSeconds!.Value, 0, step.Seconds);
        }
        Assert.Null(profile[2].KernelSeconds);
        Assert.Null(profile[2].AroundSeconds);
    }

    [Fact]
    public void An_onnx_runtime_profile_gives_each_node_in_the_order_it_first_ran_with_its_median_time()
    {
        const string json = """
            [{"cat":"Session","name":"model_loading_array","dur":900,"args":{}},
             {"cat":"Node","name":"conv_fence_before","dur":0,"args":{"op_name":"Conv"}},
             {"cat":"Node","name":"conv_kernel_time","dur":100,"args":{"op_name":"Conv"}},
             {"cat":"Node","name":"pool_kernel_time","dur":7,"args":{"op_name":"MaxPool"}},
             {"cat":"Session","name":"SequentialExecutor::Execute","dur":150,"args":{}},
             {"cat":"Node","name":"conv_kernel_time","dur":300,"args":{"op_name":"Conv"}},
             {"cat":"Node","name":"pool_kernel_time","dur":5,"args":{"op_name":"MaxPool"}},
             {"cat":"Node","name":"conv_kernel_time","dur":200,"args":{"op_name":"Conv"}},
             {"cat":"Node","name":"pool_kernel_time","dur":9,"args":{"op_name":"MaxPool"}}]
            """;
        Assert.Equal([new ProfiledNode("conv", "Conv", 200e-6), new ProfiledNode("pool", "MaxPool", 7e-6)], OnnxRuntimeNode.ParseProfile(json));
    }

    [Fact]
    public void Onnx_runtime_nodes_are_laid_against_the_steps_that_do_their_work_by_node_or_value_name()
    {
        NodeTime Step(string node, params string[] covers) => new(node, "Conv", 1e-3, null, null, [.. covers]);
        var ours = new[] { Step("conv1", "conv1", "Y1", "relu", "R"), Step("conv2", "conv2", "Y2", "add", "Y"), Step("pool", "pool", "Z") };
        var theirs = new[]
        {
            new ProfiledNode("ReorderInput", "ReorderInput", 1e-6), // its layout change: no step of ours
            new ProfiledNode("R_nchwc", "Conv", 2e-6), // a fused node named after its output, in its blocked layout
            new ProfiledNode("conv2", "Conv", 3e-6), // named after our node
            new ProfiledNode("add", "Add", 4e-6), // not fused by it: both go to conv2
            new ProfiledNode("Z_nchwc", "MaxPool", 5e-6),
        };
        var (perStep, other) = ModelEndToEnd.Match(ours, theirs);
        Assert.Equal([2e-6, 7e-6, 5e-6], perStep);
        Assert.Equal(["ReorderInput"], other.Select(n => n.Name));
        Assert.Equal([null, null], ModelEndToEnd.Match([ours[0], ours[2]], [new ProfiledNode("Y", "Add", 1e-6)]).PerStep);
    }

    [Fact]
    public void Onnx_runtime_profiles_a_whole_model_each_of_whose_contractions_we_find_and_leaves_no_file()
    {
        var bytes = Net();
        var runner = Runner(bytes);
        var steps = runner.Profile(3);
        string pattern = $"looptune-ort-profile-{Environment.ProcessId}-*";
        int before = Directory.GetFiles(Path.GetTempPath(), pattern).Length;
        IReadOnlyList<ProfiledNode> theirs;
        using (var ort = new OnnxRuntimeNode(bytes, [("X", [1, 16, 12, 12])], "Z", [1, 16, 6, 6], new Dictionary<string, float[]> { ["X"] = runner.Value("X") }, profile: true))
        {
            for (int i = 0; i < 3; i++) ort.Run();
            theirs = ort.EndProfiling();
        }
        Assert.NotEmpty(theirs);
        Assert.All(theirs, n => Assert.True(n.Seconds > 0, $"{n}"));
        var (perStep, _) = ModelEndToEnd.Match(steps, theirs);
        Assert.All(perStep.Take(2), t => Assert.True(t > 0, string.Join(", ", theirs.Select(n => n.Name))));
        Assert.Equal(before, Directory.GetFiles(Path.GetTempPath(), pattern).Length);
    }
}
