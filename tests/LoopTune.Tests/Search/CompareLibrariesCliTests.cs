using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using LoopTune.Cli.Commands;
using LoopTune.Compare;
using LoopTune.Compare.Exporters;
using LoopTune.Datasets;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Search;
using LoopTune.Tests.Measure;
using LoopTune.Tests.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Search;

/// <summary><c>looptune compare-libraries</c> in-process on tiny datasets with a cheap budget: the CSV checked against what
/// each library does on each contraction, the markdown against the CSV, the charts, a missing library column and wrong
/// results injected through <see cref="CompareLibrariesCommand.Libraries"/>, and bad input.</summary>
[Trait("Category", "Integration")]
public sealed class CompareLibrariesCliTests : IDisposable
{
    const string NoPeerSpec = "C[m,n] += A[m,k,l] * B[k,n] m=8 n=16 k=4 l=3";

    /// <summary>A matmul, a transposed and a batched product, a convolution and a contraction no library expresses.</summary>
    static readonly string[] Mixed =
    [
        "mm 24 16 8", "C[m,n] += A[k,m] * B[n,k] m=16 n=24 k=8", "C[b,m,n] += A[b,m,k] * B[b,k,n] b=3 m=8 n=16 k=8", "conv 2 8 8 4 3 3", NoPeerSpec,
    ];

    static readonly string[] Columns = ["unscheduled", "greedy1", "policy", "openblas", "blis", "onednn", "onnxruntime", "best library"];

    readonly TempFolder temp = new("looptune-libraries-cli");

    public void Dispose() => temp.Dispose();

    /// <summary>A dataset folder whose test split holds <paramref name="specs"/> as b1, b2, ...</summary>
    string Dataset(params string[] specs)
    {
        var folder = Directory.CreateDirectory(temp["ds"]).FullName;
        var names = specs.Select((_, i) => $"b{i + 1}").ToArray();
        for (int i = 0; i < specs.Length; i++)
            File.WriteAllText(Path.Combine(folder, names[i] + Benchmark.Extension), new Benchmark(names[i], Computation.Parse(specs[i])).FileText);
        DatasetManifest.Create("mixed", [], [.. names], 0, 0).WriteTo(Path.Combine(folder, DatasetManifest.FileName));
        return folder;
    }

    static (int Code, string Out, string Err) Run(string dataset, string outDir, int size, params string[] more) =>
        TestHome.Run(["compare-libraries", "--dataset", dataset, "--size", size.ToString(CultureInfo.InvariantCulture), "--methods", "greedy1,policy",
            "--budget", "300ms", "--quick", "--out", outDir, "--json", .. more]);

    [Fact]
    public void TheReportHoldsEveryEntryOfEveryBenchmarkAsTheLibrariesGiveIt()
    {
        var outDir = temp["report"];
        var (code, stdout, err) = Run(Dataset(Mixed), outDir, Mixed.Length);
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(stdout)!.AsObject();
        var benchmarks = json["benchmarks"]!.AsArray().Select(b => b!.GetValue<string>()).ToList();
        Assert.Equal(["b1", "b2", "b3", "b4", "b5"], benchmarks.Order());
        Assert.Equal(["results.csv", "summary.md", "gflops_by_benchmark.png", "ratio_to_best_library.png", "machine.json"], json["files"]!.AsArray().Select(f => f!.GetValue<string>()));
        Assert.Equal(LoopTune.Measure.Machine.Current.Key, (string)JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "machine.json")))!["key"]!);

        var rows = ReadCsv(Path.Combine(outDir, "results.csv"));
        Assert.Equal(benchmarks.Count * Columns.Length, rows.Count);
        foreach (var (b, i) in benchmarks.Select((b, i) => (b, i)))
        {
            var mine = rows.Skip(i * Columns.Length).Take(Columns.Length).ToList();
            Assert.All(mine, r => Assert.Equal(b, r["benchmark"]));
            Assert.Equal(Columns, mine.Select(r => r["name"]));
            var c = Computation.Parse(mine[0]["spec"]);
            Assert.Equal(Mixed[int.Parse(b[1..], CultureInfo.InvariantCulture) - 1], c.ToString());
            foreach (var r in mine.Where(r => r["kind"] == "method"))
            {
                Assert.Equal("ok", r["status"]);
                Assert.Equal(r["note"], Nest.Parse(c, ">" + r["note"]).ScheduleKey);
                Assert.True(int.Parse(r["evaluations"], CultureInfo.InvariantCulture) >= 1);
            }
            foreach (var (library, r) in LibraryPeers.All.Zip(mine.Where(r => r["kind"] == "library")))
            {
                Assert.Equal(library.Key, r["name"]);
                var (status, note) = Expected(library, c);
                Assert.Equal((status, note), (r["status"], r["note"]));
                Assert.Equal(status == "ok", r["gflops"] != "" && Gflops(r) > 0);
            }
            var libraries = mine.Where(r => r["kind"] == "library" && r["gflops"] != "").ToList();
            var best = mine[^1];
            Assert.Equal("best_library", best["kind"]);
            if (libraries.Count == 0) Assert.Equal(("", "none measured"), (best["gflops"], best["status"]));
            else
            {
                var fastest = libraries.MaxBy(Gflops)!;
                Assert.Equal((fastest["gflops"], fastest["name"]), (best["gflops"], best["note"]));
                foreach (var r in mine.Where(r => r["gflops"] != ""))
                {
                    double ratio = Gflops(r) / Gflops(best); // both rounded to 4 decimals in the CSV, as the ratio is
                    Assert.Equal(ratio, double.Parse(r["ratio_to_best_library"], CultureInfo.InvariantCulture), 1e-3 * Math.Max(1, ratio));
                }
            }
            if (c.ToString() == NoPeerSpec) Assert.Empty(libraries);
        }

        var md = File.ReadAllText(Path.Combine(outDir, "summary.md"));
        foreach (var name in Columns)
        {
            var measured = rows.Where(r => r["name"] == name && r["gflops"] != "").Select(Gflops).ToList();
            var line = md.Split('\n').Single(l => l.StartsWith($"| {name} | ", StringComparison.Ordinal));
            var cells = line.Split('|').Select(x => x.Trim()).ToArray();
            Assert.Equal($"{measured.Count} of {benchmarks.Count}", cells[6]);
            if (measured.Count > 0) Assert.Equal(Comparison.Geomean(measured), double.Parse(cells[3], CultureInfo.InvariantCulture), 0.051);
        }
        foreach (var b in benchmarks)
        {
            var cells = md.Split('\n').Single(l => l.StartsWith($"| {b} | ", StringComparison.Ordinal)).Split('|').Select(x => x.Trim()).ToArray();
            foreach (var (name, j) in Columns.Select((n, j) => (n, j)))
            {
                var r = rows.Single(r => r["benchmark"] == b && r["name"] == name);
                string cell = cells[3 + j];
                if (r["gflops"] == "") Assert.Equal(r["status"] switch { "missing" => "missing", "none measured" => "", _ => "n/a" }, cell);
                else Assert.Equal(Gflops(r), double.Parse(cell.Split(' ')[0], CultureInfo.InvariantCulture), 0.051);
            }
        }
        Assert.Contains(LibraryComparisonMarkdown.PaperHeading, md);
        Assert.Contains("TVM was not run for this report", md);
        Assert.Contains("| MetaSchedule (TVM's auto-scheduler) | 2.8x |", md);
        foreach (var png in new[] { "gflops_by_benchmark.png", "ratio_to_best_library.png" })
        {
            var bytes = File.ReadAllBytes(Path.Combine(outDir, png));
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
            Assert.True(bytes.Length > 10_000, $"{png} has only {bytes.Length} bytes");
        }
        Assert.Equal(["ds", "report"], Directory.GetFileSystemEntries(temp.Path).Select(Path.GetFileName).Order());
        Assert.Equal(["gflops_by_benchmark.png", "machine.json", "ratio_to_best_library.png", "results.csv", "summary.md"], Directory.GetFiles(outDir).Select(Path.GetFileName).Order());
    }

    /// <summary>What a library's row must say on <paramref name="c"/> (status, note): a native library's convolution or its
    /// GEMM's BLAS form, ONNX Runtime's one-node model (<see cref="OnnxRuntimePeer.Classify"/>), or why none.</summary>
    static (string Status, string Note) Expected(LibraryPeers library, Computation c)
    {
        NativePeer peer = library.Gemm is null ? library.Peer : c.AsConv() is null ? library.Gemm : library.Conv!;
        if (!peer.Available) return ("missing", peer.Problem!);
        if (library.Gemm is null)
        {
            var (node, why) = OnnxRuntimePeer.Classify(c);
            return node is null ? ("no peer", "no peer: " + why) : ("ok", node.Describe);
        }
        if (c.AsConv() is not null) return ("ok", library.Conv!.Timed);
        var (form, reason) = GemmForm.Classify(c);
        return form is null ? ("no peer", "no peer: " + reason) : ("ok", form.Describe());
    }

    [Fact]
    public void AMissingLibraryIsAColumnOfMissingAndAWrongOneIsFlaggedNeverTimed()
    {
        var missing = NativeGemm.OpenBlas("libno-such-blas-looptune.so.0");
        var (wrongGemm, wrongConv) = (new GemmPeerTests.ManagedGemm(dropLastK: true), new ConvPeerTests.WrongPeer());
        CompareLibrariesCommand.Libraries.Value =
            [LibraryPeers.All[0], new LibraryPeers("blis", missing, new Im2colBlas(missing)), new LibraryPeers("onednn", wrongGemm, wrongConv)];
        var outDir = temp["report"];
        try
        {
            var (code, stdout, err) = Run(Dataset("mm 16 16 8", "conv 2 6 6 3 3 3"), outDir, 2);
            Assert.True(code == 0, err);
            var flagged = JsonNode.Parse(stdout)!["flagged"]!.AsArray().Select(f => (f!["library"]!.GetValue<string>(), f["status"]!.GetValue<string>())).ToList();
            Assert.Equal([("blis", "missing"), ("onednn", "wrong result"), ("blis", "missing"), ("onednn", "wrong result")], flagged);
        }
        finally { CompareLibrariesCommand.Libraries.Value = null; }
        Assert.Equal((1, 1), (wrongGemm.Calls, wrongConv.Runs));

        var rows = ReadCsv(Path.Combine(outDir, "results.csv"));
        foreach (var r in rows.Where(r => r["name"] == "blis"))
            Assert.Equal(("", "missing", missing.Problem), (r["gflops"], r["status"], r["note"]));
        foreach (var r in rows.Where(r => r["name"] == "onednn"))
        {
            Assert.Equal(("", "wrong result"), (r["gflops"], r["status"]));
            Assert.StartsWith("wrong result: ", r["note"]);
        }
        var openblas = LibraryPeers.All[0];
        foreach (var best in rows.Where(r => r["kind"] == "best_library"))
            Assert.Equal(openblas.Peer.Available ? "openblas" : "", best["note"]);

        var md = File.ReadAllText(Path.Combine(outDir, "summary.md"));
        Assert.Contains("**2 library result(s) were WRONG** and were not timed", md);
        foreach (var b in new[] { "b1", "b2" })
        {
            var cells = md.Split('\n').Single(l => l.StartsWith($"| {b} | ", StringComparison.Ordinal)).Split('|').Select(x => x.Trim()).ToArray();
            Assert.Equal(("missing", "**WRONG**"), (cells[7], cells[8]));
            Assert.Contains($"- {b}, onednn: **wrong result**: ", md);
            Assert.Contains($"- {b}, blis: **missing**: {missing.Problem}", md);
        }
        Assert.Contains("- blis: missing (library not found", md);
        Assert.Equal(["ds", "report"], Directory.GetFileSystemEntries(temp.Path).Select(Path.GetFileName).Order());
    }

    [Theory]
    [InlineData("neither a dataset folder nor a named dataset", "--dataset", "/nonexistent-looptune-dataset")]
    [InlineData("unknown search method 'nope'", "--methods", "greedy1,nope")]
    [InlineData("--size must be at least 1, not 0", "--size", "0")]
    [InlineData("--size must be at least 1, not 0", "--count", "0")] // compare-searches' name for it
    [InlineData("bad budget '1x'", "--budget", "1x")]
    [InlineData("does not exist", "--methods", "policy", "--policy", "/nonexistent-looptune-policy.safetensors")]
    [InlineData("names a method twice", "--methods", "genetic,genetic")]
    [InlineData("'--out' is required", "--out")]
    [InlineData("validation", "--split", "validation")]
    [InlineData("unknown library 'mkl'; the libraries are: openblas, blis, onednn, onnxruntime", "--libraries", "openblas,mkl")]
    public void BadInputExitsWithTwoAndWritesNothing(string message, params string[] args)
    {
        var dataset = args.Contains("--dataset") ? [] : new[] { "--dataset", Dataset("mm 8 8 8") };
        var output = args.Contains("--out") ? [] : new[] { "--out", temp["report"] };
        var (code, stdout, err) = TestHome.Run(["compare-libraries", .. dataset, .. output, .. args.Where(a => a != "--out")]);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.Equal("", stdout);
        Assert.Equal(args.Contains("--dataset") ? [] : ["ds"], Directory.GetFileSystemEntries(temp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void OnnxRuntimeAloneIsTheBestLibraryOfTheBenchmarksItRuns()
    {
        var outDir = temp["report"];
        var (code, stdout, err) = Run(Dataset("mm 24 16 8", "conv 2 8 8 4 3 3", NoPeerSpec), outDir, 3, "--libraries", "ONNXRuntime");
        Assert.True(code == 0, err);
        var ort = OnnxRuntimePeer.Instance;
        Assert.Contains(ort.Describe(), JsonNode.Parse(stdout)!["libraries"]!.AsArray().Select(l => l!.GetValue<string>()));
        var rows = ReadCsv(Path.Combine(outDir, "results.csv"));
        Assert.Equal(["unscheduled", "greedy1", "policy", "onnxruntime", "best library"], rows.Where(r => r["benchmark"] == "b1").Select(r => r["name"]));
        foreach (var b in new[] { "b1", "b2", "b3" })
        {
            var c = Computation.Parse(rows.First(r => r["benchmark"] == b)["spec"]);
            var mine = rows.Single(r => r["benchmark"] == b && r["name"] == "onnxruntime");
            Assert.Equal(Expected(LibraryPeers.OnnxRuntime(ort), c), (mine["status"], mine["note"]));
            var best = rows.Single(r => r["benchmark"] == b && r["kind"] == "best_library");
            Assert.Equal(mine["status"] == "ok" ? ("onnxruntime", mine["gflops"]) : ("", ""), (best["note"], best["gflops"]));
        }
        if (ort.Available) Assert.Equal(2, rows.Count(r => r["name"] == "onnxruntime" && r["status"] == "ok"));
    }

    [Fact]
    public void HelpNamesTheOptionsAndTvm()
    {
        var (code, stdout, _) = TestHome.Run("compare-libraries", "--help");
        Assert.Equal(0, code);
        foreach (var word in new[] { "--dataset", "--split", "--size", "--methods", "--budget", "--policy", "--out", "--json", "--libraries", "onnxruntime", "TVM", "policy,genetic" })
            Assert.Contains(word, stdout);
    }

    static double Gflops(Dictionary<string, string> row) => double.Parse(row["gflops"], CultureInfo.InvariantCulture);

    /// <summary>An RFC 4180 CSV file as one dictionary per line, keyed by the header.</summary>
    static List<Dictionary<string, string>> ReadCsv(string path)
    {
        var lines = new List<List<string>>();
        var field = new StringBuilder();
        var line = new List<string>();
        bool quoted = false;
        string text = File.ReadAllText(path);
        for (int i = 0; i < text.Length; i++)
        {
            char ch = text[i];
            if (quoted && ch == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
            else if (ch == '"') quoted = !quoted;
            else if (!quoted && ch == ',') { line.Add(field.ToString()); field.Clear(); }
            else if (!quoted && ch == '\n') { line.Add(field.ToString()); field.Clear(); lines.Add(line); line = []; }
            else field.Append(ch);
        }
        Assert.False(quoted);
        Assert.Empty(line);
        var header = lines[0];
        Assert.All(lines, l => Assert.Equal(header.Count, l.Count));
        return [.. lines.Skip(1).Select(l => header.Zip(l).ToDictionary(p => p.First, p => p.Second))];
    }
}
