using System.Globalization;
using System.Text.Json.Nodes;
using LoopTune.Datasets;
using LoopTune.Tests.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Search;

/// <summary><c>looptune search</c> and <c>looptune compare-searches</c> in-process: bad input, the --json contract, the report.</summary>
[Trait("Category", "Integration")]
public sealed class SearchCliTests : IDisposable
{
    readonly TempFolder temp = new("looptune-search-cli");

    public void Dispose() => temp.Dispose();

    static (int Code, string Out, string Err) Run(params string[] args) => TestHome.Run(args);

    [Theory]
    [InlineData("unknown search method 'nope'", "search", "--spec", "mm 8 8 8", "--method", "nope")]
    [InlineData("bad budget '10'", "search", "--spec", "mm 8 8 8", "--method", "random", "--budget", "10")]
    [InlineData("bad budget 'soon'", "search", "--spec", "mm 8 8 8", "--method", "random", "--budget", "soon")]
    [InlineData("--spec \"<spec>\" or --bench FILE", "search", "--method", "random")]
    [InlineData("not both", "search", "--spec", "mm 8 8 8", "--bench", "x.txt", "--method", "random")]
    [InlineData("bad spec", "search", "--spec", "mm 8 8", "--method", "random")]
    [InlineData("--method", "search", "--spec", "mm 8 8 8")]
    [InlineData("unknown search method 'best'", "compare-searches", "--dataset", "mm64_128_16_range", "--methods", "random,best", "--out", "never")]
    [InlineData("bad budget '1x'", "compare-searches", "--dataset", "mm64_128_16_range", "--budget", "1x", "--out", "never")]
    public void BadInputExitsWithTwo(string message, params string[] args)
    {
        var (code, output, err) = Run(args);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.Equal("", output);
        Assert.False(Directory.Exists("never"));
    }

    [Fact]
    public void SearchJsonHasTheContractedFields()
    {
        var dot = temp["tree.dot"];
        var (code, output, err) = Run("search", "--spec", "mm 16 24 8", "--method", "greedy1", "--budget", "2s", "--seed", "3", "--json",
            "--debug", dot, "--db", temp["store.db"]);
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!.AsObject();
        Assert.Equal("greedy1", json["method"]!.GetValue<string>());
        double best = json["best_gflops"]!.GetValue<double>(), baseline = json["base_gflops"]!.GetValue<double>();
        Assert.True(best >= baseline && baseline > 0, $"best {best}, base {baseline}");
        var actions = json["actions"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();
        var replayed = LoopTune.Ir.Transforms.ApplyAll(LoopTune.Ir.Nest.Initial(LoopTune.Ir.Computation.Matmul(16, 24, 8)), actions.Select(LoopTune.Ir.Actions.Get));
        Assert.Equal(json["schedule"]!.GetValue<string>(), replayed.Serialize());
        Assert.True(json["evaluations"]!.GetValue<int>() >= 1);
        Assert.InRange(json["seconds"]!.GetValue<double>(), 0, 10);
        Assert.True(json["verified"]!.GetValue<bool>());
        Assert.Contains("C[m,n]", json["tree"]!.GetValue<string>());
        Assert.StartsWith("digraph", File.ReadAllText(dot));
    }

    [Fact]
    public void SearchReadsABenchmarkFile()
    {
        var file = temp["mm8_8_8.txt"];
        File.WriteAllText(file, "# mm8_8_8\nmm 8 8 8\n");
        var (code, output, err) = Run("search", "--bench", file, "--method", "random", "--budget", "300ms", "--db", temp["store.db"]);
        Assert.True(code == 0, err);
        Assert.Contains("random", output);
        Assert.Contains("GFLOPS", output);
        Assert.Contains("evaluations", output);
    }

    [Fact]
    public void CompareSearchesWritesTheReport()
    {
        DatasetGenerator.Matmul("16|32,16", "16,16|24").Write(temp["ds"], 0.5, 0);
        var outDir = temp["report"];
        var (code, output, err) = Run("compare-searches", "--dataset", temp["ds"], "--methods", "greedy1,random", "--budget", "1s",
            "--count", "2", "--out", outDir, "--quick", "--json");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!.AsObject();
        Assert.Equal(2, json["benchmarks"]!.AsArray().Count);
        var csv = File.ReadAllLines(Path.Combine(outDir, "results.csv"));
        Assert.StartsWith("benchmark,method,base_gflops,best_gflops,speedup,evaluations,seconds,actions,openblas_gflops", csv[0]);
        Assert.Equal(1 + 2 * 2, csv.Length);
        Assert.EndsWith(",best_sample_gflops,verified,best_library,best_library_gflops,ratio_to_best_library,action_space,machine,estimated", csv[0]);
        foreach (var line in csv.Skip(1).Select(l => l.Split(',')))
        { // the fastest sample of the re-timing is never slower than its median (columns 4 and 8th from the end; the quoted actions lie between)
            double median = double.Parse(line[3], CultureInfo.InvariantCulture), fastest = double.Parse(line[^8], CultureInfo.InvariantCulture);
            Assert.True(fastest >= median, $"{fastest} < {median}");
        }
        var md = File.ReadAllText(Path.Combine(outDir, "summary.md"));
        foreach (var row in new[] { "| unscheduled |", "| greedy1 |", "| random |", "geomean GFLOPS", "geomean ratio to OpenBLAS", "geomean ratio to the best library", "| best library |", "mean seconds", "fastest samples", "tile** action space" })
            Assert.Contains(row, md);
        foreach (var png in new[] { "gflops_by_benchmark.png", "time_vs_quality.png" })
        {
            var bytes = File.ReadAllBytes(Path.Combine(outDir, png));
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
            Assert.True(bytes.Length > 10_000, $"{png} has only {bytes.Length} bytes");
        }
        Assert.Equal(["ds", "report"], Directory.GetFileSystemEntries(temp.Path).Select(Path.GetFileName).Order());
        Assert.DoesNotContain(Directory.GetFiles(outDir), f => Path.GetFileName(f).StartsWith(".store"));
    }

    [Fact]
    public void AFailedComparisonLeavesNoReport()
    {
        var outDir = temp["report"];
        var (code, _, err) = Run("compare-searches", "--dataset", temp["no-such-dataset"], "--methods", "random", "--budget", "1s", "--out", outDir);
        Assert.Equal(2, code);
        Assert.Contains("neither a dataset folder nor a named dataset", err);
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }
}
