using System.Text.Json.Nodes;
using LoopTune.Jit;
using LoopTune.Tests.Jit;
using LoopTune.Tests.TestUtil;
using static LoopTune.Tests.Models.OnnxTestModels;

namespace LoopTune.Tests.Cli;

/// <summary>--threads on the commands: its parsing and bad input, and runs at two threads whose kernels and libraries still
/// compute the reference's result. With the parallel kernels' tests: they keep both cores busy.</summary>
[Trait("Category", "Integration")]
[Collection(nameof(AllCores))]
public sealed class ThreadsCliTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => TestHome.Run(args);

    [Theory]
    [InlineData("x")]
    [InlineData("1.5")]
    [InlineData("")]
    public void A_thread_count_that_is_not_a_number_or_all_is_bad_input(string threads)
    {
        foreach (var args in new[] { new[] { "tune", "--spec", "mm 8 8 8", "--budget", "0" }, ["search", "--spec", "mm 8 8 8", "-m", "random"], ["bench", "--scaling-only"] })
        {
            var (code, output, err) = Run([.. args, "--threads", threads]);
            Assert.Equal(2, code);
            Assert.Contains($"--threads must be a number from 1 to {ThreadCountError.Max} (the cores this process may use) or 'all'; got '{threads}'", err);
            Assert.Equal("", output);
        }
    }

    [Fact]
    public void Too_many_threads_and_a_scaling_table_without_counts_are_bad_input()
    {
        var (code, _, err) = Run("compare-searches", "--dataset", "mm64_256_16_range", "--out", Path.Combine(Path.GetTempPath(), "never"), "--threads", "9999");
        Assert.Equal(2, code);
        Assert.Contains($"threads must be from 1 to {ThreadCountError.Max}", err);
        (code, _, err) = Run("bench", "--scaling-only");
        Assert.Equal(2, code);
        Assert.Contains("--scaling-only needs --threads", err);
        (code, _, err) = Run("train", "--dataset", "mm64_256_16_range", "--out", Path.Combine(Path.GetTempPath(), "never"), "--threads", "all", "--workers", "2");
        if (ThreadCountError.Max >= 2)
        {
            Assert.Equal(2, code);
            Assert.Contains("workers of", err);
        }
    }

    [Fact]
    public void Run_at_all_threads_times_the_kernel_and_every_library_on_them_and_checks_them()
    {
        int n = ThreadCountError.Max;
        var (code, output, err) = Run("run", "mm 64 64 64", "--schedule", "m:8p n:4 k:64 m:8u n:16v", "--threads", "all", "--quick", "--json");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!;
        Assert.True(json["verified"]!.GetValue<bool>());
        Assert.Equal(n, json["threads"]!.GetValue<int>());
        foreach (var (key, problem) in json["peer_problems"]!.AsObject())
            Assert.False(problem?.GetValue<string>().StartsWith("wrong result", StringComparison.Ordinal) ?? false, $"{key}: {problem}");
    }

    [Fact]
    public void Search_at_two_threads_returns_a_verified_schedule_with_its_parallel_loop()
    {
        if (ThreadCountError.Max < 2) return;
        var (code, output, err) = Run("search", "--spec", "mm 64 64 64", "-m", "greedy1", "--budget", "300ms", "--threads", "2", "--json");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!;
        Assert.True(json["verified"]!.GetValue<bool>());
        Assert.Contains("p", json["schedule"]!.GetValue<string>().Split(' ').Select(l => l[^1..]));
    }

    /// <summary>A model at every core: the contractions tuned and run on them, each node and the forward pass still within
    /// the bound of ONNX Runtime's (itself given as many threads).</summary>
    [Fact]
    public void Model_at_all_threads_matches_onnx_runtime_node_by_node_and_end_to_end()
    {
        using var temp = new TempFolder("looptune-model-threads");
        var file = temp["conv.onnx"];
        File.WriteAllBytes(file, Model(
            [
                Node("Conv", "conv", ["X", "W"], ["Y1"], Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1)),
                Node("Relu", "relu", ["Y1"], ["R"]),
                Node("Conv", "conv2", ["R", "W2"], ["Y"], Ints("kernel_shape", 1, 1)),
            ],
            [Value("X", [1, 8, 16, 16])], [Value("Y", null)], [Floats("W", [16, 8, 3, 3], Random(1152, 1)), Floats("W2", [8, 16, 1, 1], Random(128, 2))]));
        var (code, stdout, err) = TestHome.Run("model", file, "--run", "--budget", "0", "--quick", "--json", "--threads", "all", "--out", temp["r"], "--db", temp["m.db"]);
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(stdout)!;
        Assert.True(json["end_to_end"]!["within_bound"]!.GetValue<bool>(), json["end_to_end"]!.ToJsonString());
        Assert.All(json["ops"]!.AsArray().Where(r => r!["tuned"]!.GetValue<bool>()), r => Assert.True(r!["verified"]!.GetValue<bool>(), r.ToJsonString()));
    }
}
