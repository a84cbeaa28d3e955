using System.Text.Json.Nodes;
using LoopTune.Datasets;
using LoopTune.Tests.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Datasets;

/// <summary><c>looptune dataset gen|list|show</c> in-process, and the named datasets.</summary>
[Trait("Category", "Integration")]
public sealed class DatasetCliTests : IDisposable
{
    readonly TempFolder temp = new("looptune-ds-cli");

    public void Dispose() => temp.Dispose();

    static (int Code, string Out, string Err) Run(params string[] args) => TestHome.Run(args);

    [Fact]
    public void GenIsByteStableForASeed()
    {
        string[] Gen(string dir, string seed) => ["dataset", "gen", "--kind", "mm", "--dimA", "64:256:16,64:128:32", "--dimB", "64:128:32,16|32", "--out", dir, "--seed", seed, "--split", "0.7"];
        var first = Run(Gen(temp["a"], "11"));
        Assert.True(first.Code == 0, first.Err);
        Assert.Equal(0, Run(Gen(temp["b"], "11")).Code);
        Assert.Equal(0, Run(Gen(temp["c"], "12")).Code);
        GeneratorTests.AssertSameFiles(temp["a"], temp["b"]);
        Assert.NotEqual(File.ReadAllText(temp["a/manifest.json"]), File.ReadAllText(temp["c/manifest.json"]));
        Assert.Equal(13 * 3 * 2 + 1, Directory.GetFiles(temp["a"]).Length);
        Assert.Contains("78 mm benchmarks", first.Out);
    }

    [Fact]
    public void GenJsonAndConv()
    {
        var (code, output, err) = Run("dataset", "gen", "--kind", "conv", "--channels", "8|16", "--image", "12", "--filters", "4:8:4", "--out", temp["conv"], "--json");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!.AsObject();
        Assert.Equal(("conv", 4, 3, 1), (json["kind"]!.GetValue<string>(), json["count"]!.GetValue<int>(), json["train"]!.GetValue<int>(), json["test"]!.GetValue<int>()));
        Assert.Equal("conv 16 12 12 8 3 3\n", File.ReadAllLines(temp["conv/conv16_12_12_8_3_3.txt"])[1] + "\n");
    }

    [Theory]
    [InlineData("--dimA", "64:32:16,64", "'64:32:16'")]
    [InlineData("--dimA", "a|b,64", "'a'")]
    [InlineData("--dimA", "0,64", "'0'")]
    [InlineData("--dimA", "64:256:0,64", "step '0'")]
    [InlineData("--dimB", "64,x", "--dimB dimension 2 (n) 'x'")]
    [InlineData("--channels", "8", "--channels does not apply to --kind mm")]
    public void BadGeneratorArgumentsExitWithTwoAndWriteNothing(string option, string value, string named)
    {
        string[] args = option == "--dimB" ? ["--dimA", "64,64", "--dimB", value] : option == "--dimA" ? ["--dimA", value, "--dimB", "64,64"] : ["--dimA", "64,64", "--dimB", "64,64", option, value];
        var (code, output, err) = Run(["dataset", "gen", .. args, "--out", temp["out"]]);
        Assert.Equal(2, code);
        Assert.Contains(named, err);
        Assert.Equal("", output);
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void GenNeedsOut() => Assert.Equal(2, Run("dataset", "gen", "--dimA", "64,64", "--dimB", "64,64").Code);

    [Fact]
    public void ListShowsTheNamedDatasets()
    {
        var (code, output, err) = Run("dataset", "list", "--json");
        Assert.True(code == 0, err);
        var rows = JsonNode.Parse(output)!["datasets"]!.AsArray().Select(r => r!.AsObject()).ToDictionary(r => r["name"]!.GetValue<string>());
        Assert.Equal(2197, rows["mm64_256_16_range"]["count"]!.GetValue<int>());
        Assert.Equal(125, rows["mm64_128_16_range"]["count"]!.GetValue<int>());
        Assert.Equal("conv", rows["conv_small"]["kind"]!.GetValue<string>());
        var text = Run("dataset", "list");
        Assert.Contains("mm64_256_16_range", text.Out);
    }

    [Fact]
    public void MergeKeepsEachSplitAndNeverTrainsOnATestedShape()
    {
        var merged = Dataset.Load("mm64_4096");
        var small = Dataset.Load("mm64_256_16_range");
        var large = Dataset.Load("mm256_4096_log");
        Assert.Equal(2197 + 729 - 1, merged.Benchmarks.Length); // mm256_256_256 is in both
        Assert.Single(merged.Benchmarks, b => b.Name == "mm256_256_256");
        Assert.Empty(merged.Manifest.Train.Intersect(merged.Manifest.Test));
        Assert.Equal(merged.Benchmarks.Select(b => b.Name).Order(), merged.Manifest.Train.Concat(merged.Manifest.Test).Order());
        Assert.Equal(small.Manifest.Test.Concat(large.Manifest.Test).Distinct(), merged.Manifest.Test);
        Assert.All(merged.Manifest.Test.TakeLast(10), n => Assert.Contains(n, large.Manifest.Test)); // training evaluates on large matmuls
        Assert.Equal("mm64_256_16_range+mm256_4096_log", merged.Manifest.Arguments.Single().Value);

        var (code, output, err) = Run("dataset", "merge", "conv_small", "resnet50_conv", "--out", temp["m"], "--json");
        Assert.True(code == 0, err);
        Assert.Equal(97, JsonNode.Parse(output)!["count"]!.GetValue<int>());
        GeneratorTests.AssertSameFiles(temp["m"], Dataset.Load("conv_small_resnet50").Folder);
    }

    [Theory]
    [InlineData("different kinds", "conv_small", "mm64_128_16_range")]
    [InlineData("at least two", "conv_small")]
    [InlineData("neither a dataset folder", "conv_small", "nope")]
    public void MergeRefusesBadInputAndWritesNothing(string message, params string[] parts)
    {
        var (code, _, err) = Run(["dataset", "merge", .. parts, "--out", temp["bad"]]);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.False(Directory.Exists(temp["bad"]));
    }

    [Fact]
    public void NamedDatasetsAreGeneratedOnFirstUse()
    {
        var d = Dataset.Load("mm64_256_16_range");
        Assert.Equal((2197, 1758, 439), (d.Benchmarks.Length, d.Train.Count, d.Test.Count));
        Assert.True(NamedDataset.Find("mm64_256_16_range")!.IsGenerated);
        Assert.StartsWith(Path.Combine(Environment.GetEnvironmentVariable("LOOPTUNE_HOME")!, "datasets"), d.Folder);
        Assert.Contains(d.Benchmarks, b => b.Name == "mm64_80_96" && b.Computation.ToString() == "mm 64 80 96");
        Assert.Equal(d.Manifest.Train.AsEnumerable(), Dataset.Load("mm64_256_16_range").Manifest.Train);
        Assert.Equal(125, Dataset.Load("mm64_128_16_range").Benchmarks.Length);
        var conv = Dataset.Load("conv_small");
        Assert.Equal(81, conv.Benchmarks.Length);
        Assert.All(conv.Benchmarks, b => Assert.Equal([3, 3], b.Computation.Sizes[^2..].AsEnumerable()));
        Assert.Contains("mm64_128_16_range", Assert.Throws<DatasetError>(() => Dataset.Load("no_such_set")).Message);
    }

    [Fact]
    public void ShowGivesTheStartAndOneStepPerAction()
    {
        var bench = temp["mm8_8_8.txt"];
        File.WriteAllText(bench, "# a tiny one\nmm 8 8 8\n");
        var (code, output, err) = Run("dataset", "show", "--bench", bench, "--actions", "down,split_2,down", "--json");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!.AsObject();
        Assert.Equal("mm8_8_8", json["bench"]!.GetValue<string>());
        var steps = json["steps"]!.AsArray().Select(s => s!.AsObject()).ToArray();
        Assert.Equal([null, "down", "split_2", "down"], steps.Select(s => s["action"]?.GetValue<string>()));
        Assert.Equal("m:8 n:4 >n:2 k:8", steps[3]["schedule"]!.GetValue<string>());
        Assert.All(steps, s => Assert.True(s["verified"]!.GetValue<bool>() && s["gflops"]!.GetValue<double>() > 0));
        Assert.Contains("for n' in 2  <- cursor", steps[3]["tree"]!.GetValue<string>());
        var text = Run("dataset", "show", "--bench", bench, "--actions", "down");
        Assert.Equal(0, text.Code);
        Assert.Contains("1. down", text.Out);
    }

    [Fact]
    public void ShowNamesTheStepOfAnIllegalAction()
    {
        var bench = temp["mm8_8_8.txt"];
        File.WriteAllText(bench, "mm 8 8 8\n");
        var (code, output, err) = Run("dataset", "show", "--bench", bench, "--actions", "down,down,down", "--json");
        Assert.Equal(2, code);
        Assert.Contains("step 3", err);
        Assert.Contains("innermost", err);
        Assert.Equal("", output);
    }

    [Theory]
    [InlineData("missing.txt", "cannot read benchmark")]
    [InlineData("two.txt", "2 spec lines")]
    [InlineData("bad.txt", "bad spec")]
    public void ShowRejectsBadBenchmarkFiles(string file, string message)
    {
        File.WriteAllText(temp["two.txt"], "mm 4 4 4\nmm 8 8 8\n");
        File.WriteAllText(temp["bad.txt"], "mm 4 4\n");
        var (code, _, err) = Run("dataset", "show", "--bench", temp[file]);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
    }

    [Fact]
    public void EverySubcommandHasHelp()
    {
        foreach (var sub in new[] { "gen", "list", "show" })
        {
            var (code, output, _) = Run("dataset", sub, "--help");
            Assert.Equal(0, code);
            Assert.Contains("Description:", output);
        }
        Assert.DoesNotContain("store-stress", Run("--help").Out);
    }
}
