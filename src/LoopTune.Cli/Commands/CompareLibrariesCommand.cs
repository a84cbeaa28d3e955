using System.CommandLine;
using LoopTune.Cli.Plots;
using LoopTune.Compare;
using LoopTune.Compare.Exporters;
using LoopTune.Measure;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune compare-libraries --dataset NAME|DIR [--split test] [--size 25] [--methods policy,genetic] [--budget 10s]
/// [--policy PATH|default] [--libraries a,b] --out DIR [--json]</c>: the original's <c>compare_tvm.py</c>. On each benchmark
/// the unscheduled nest, each method's best schedule, and OpenBLAS, BLIS, oneDNN (their GEMM for a matrix product in any
/// layout, their convolution for a convolution) and ONNX Runtime (a one-node model), or those <c>--libraries</c> names, all re-timed the same way in this process after the searches (the machinery of
/// <c>compare-searches</c>). Writes results.csv, summary.md (geometric means, ratios to the best library, per-benchmark
/// GFLOPS, and the original paper's TVM and numpy ratios marked as cited, not measured) and two PNG charts into DIR,
/// atomically. A missing library is reported as missing, a library's wrong result is flagged and never timed.</summary>
static class CompareLibrariesCommand
{
    public const string Csv = "results.csv", Markdown = "summary.md", DefaultMethods = "policy,genetic";

    /// <summary>The library columns when set (for tests: a library that gives a wrong result, one that is missing), else
    /// <see cref="LibraryPeers.All"/>. Async-local, so it only reaches the command run on the flow that set it.</summary>
    internal static readonly AsyncLocal<IReadOnlyList<LibraryPeers>?> Libraries = new();

    public static Command Create(Io io)
    {
        var o = new ComparisonOptions("--size", DefaultMethods,
            "Folder for results.csv, summary.md, gflops_by_benchmark.png and ratio_to_best_library.png (replaced if it exists).");
        var command = new Command("compare-libraries",
            "Compare the methods' schedules with OpenBLAS, BLIS, oneDNN and ONNX Runtime on the same benchmarks (the original's compare_tvm.py; TVM is not available here and is cited, not measured): a CSV, a markdown summary and PNG charts.");
        var only = new Option<string?>("--libraries")
        {
            Description = $"Comma-separated libraries to time (default: all of {string.Join(", ", LibraryPeers.All.Select(l => l.Key))}); the best library is the fastest of them.",
        };
        foreach (var option in o.All) command.Options.Add(option);
        command.Options.Add(only);
        command.SetAction(p => io.Guard(() =>
        {
            var libraries = Libraries.Value ?? LibraryPeers.Select(p.GetValue(only));
            var job = o.Parse(p);
            LibraryComparison? report = null;
            var (comparison, setup, folder) = job.Run(io, "compare-libraries", "comparing with the libraries", (c, n) => [.. libraries.Select(l => l.Prepare(c, n))],
                (temp, c, setup) => report = Write(temp, new LibraryComparison(c, job.Plan.Benchmarks, [.. libraries.Select(l => l.Key)]), setup, libraries),
                settings: new Dictionary<string, string> { ["--libraries"] = string.Join(",", libraries.Select(l => l.Key)) });
            if (job.Json) io.Stdout.WriteLine(ComparisonJson.Serialize(ComparisonJson.Of(report!, folder, Files(setup), [.. libraries.Select(l => l.Describe())], setup)));
            else Print(io.Out, report!, folder);
            bool verified = comparison.Rows.All(r => r.Verified);
            if (!verified) io.Stderr.WriteLine("internal error: a best schedule failed verification (see results.csv)");
            return verified ? Program.Ok : Program.Failure;
        }));
        return command;
    }

    static LibraryComparison Write(string folder, LibraryComparison lc, ComparisonSetup setup, IReadOnlyList<LibraryPeers> libraries)
    {
        double peak = PeakCache.GetOrMeasure();
        File.WriteAllText(Path.Combine(folder, Csv), ComparisonCsv.Write(lc, setup.Machine));
        if (setup.Info is { } m) File.WriteAllText(Path.Combine(folder, CompareSearchesCommand.MachineFile), m.ToJson().ToJsonString(Options.JsonStyle));
        File.WriteAllText(Path.Combine(folder, Markdown), LibraryComparisonMarkdown.Write(lc, setup, peak, libraries.Select(l => l.Describe()),
            [LibraryCharts.GflopsByBenchmark, LibraryCharts.RatioToBestLibrary]));
        LibraryCharts.Write(lc, folder, setup.Dataset, peak);
        return lc;
    }

    static string[] Files(ComparisonSetup setup) =>
        [Csv, Markdown, LibraryCharts.GflopsByBenchmark, LibraryCharts.RatioToBestLibrary, .. setup.Info is null ? Array.Empty<string>() : [CompareSearchesCommand.MachineFile]];

    static void Print(IAnsiConsole o, LibraryComparison lc, string folder)
    {
        var t = new Table().AddColumn("").AddColumn("kind").AddColumn(new TableColumn("geomean GFLOPS").RightAligned())
            .AddColumn(new TableColumn("vs best library").RightAligned()).AddColumn(new TableColumn("measured").RightAligned()).AddColumn(new TableColumn("mean s").RightAligned());
        int n = lc.Comparison.Benchmarks.Length;
        foreach (var s in lc.Summaries)
            t.AddRow(Markup.Escape(s.Name), LibraryComparison.KindName(s.Kind), s.GeomeanGflops is double g ? $"{g:F1}" : "",
                s.GeomeanVsBestLibrary is double r ? $"{r:F2}x" : "", $"{s.Measured}/{n}", s.MeanSeconds is double m ? $"{m:F1}" : "");
        o.Write(t);
        foreach (var e in lc.Entries.Where(e => e.Status is "wrong result" or "failed verification"))
            o.MarkupLineInterpolated($"[red]{e.Benchmark} {e.Name}: {e.Status}[/]: {e.Note}");
        o.MarkupLineInterpolated($"{n} benchmarks; report in [bold]{folder}[/] ({Csv}, {Markdown}, {LibraryCharts.GflopsByBenchmark}, {LibraryCharts.RatioToBestLibrary}); TVM not measured (cited in {Markdown})");
    }
}
