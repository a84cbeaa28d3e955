using System.CommandLine;
using LoopTune.Cli.Plots;
using LoopTune.Cluster;
using LoopTune.Compare;
using LoopTune.Compare.Exporters;
using LoopTune.Measure;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune compare-searches --dataset NAME [--split test] [--count 25] [--methods a,b] [--budget 10s] --out DIR
/// [--seed S] [--json] [--db PATH] [--quick]</c>: every method on the same benchmarks; writes results.csv, summary.md and two
/// PNG charts into DIR. The report is written into a temporary sibling folder and moved into place at the end, so a
/// failure leaves no half-written report (a previous report in DIR is replaced only then).</summary>
static class CompareSearchesCommand
{
    public const string Csv = "results.csv", Markdown = "summary.md", MachineFile = "machine.json";

    public static Command Create(Io io)
    {
        var o = new ComparisonOptions("--count", null, "Folder for results.csv, summary.md and the PNG charts (replaced if it exists).");
        var cluster = new ClusterOptions();
        var command = new Command("compare-searches", "Run every search method on the same benchmarks and write a CSV, a markdown summary and PNG charts.");
        foreach (var option in o.All.Concat(cluster.All)) command.Options.Add(option);
        command.SetAction(p => io.Guard(() =>
        {
            var address = cluster.Address(p);
            var job = o.Parse(p);
            if (address is not null) job.CheckCluster();
            void WriteReport(string temp, Comparison c, ComparisonSetup setup) =>
                Write(temp, c, setup with { Timing = setup.Timing + " The searches' own quick figures are in results.csv as search_gflops." });
            var (comparison, setup, folder) = address is null
                ? job.Run(io, "compare-searches", "comparing searches", null, WriteReport)
                : cluster.WithSession(io, p, address, session => job.Run(io, "compare-searches", "comparing searches", null, WriteReport,
                    progress => Sync.Wait(() => ComparisonWork.RunAsync(session.Connection, job.Plan, progress))));
            if (job.Json) io.Stdout.WriteLine(ComparisonJson.Serialize(ComparisonJson.Of(comparison, folder, Files(setup), setup)));
            else Print(io.Out, comparison, folder);
            bool verified = comparison.Rows.All(r => r.Verified);
            if (!verified) io.Stderr.WriteLine("internal error: a best schedule failed verification (see results.csv)");
            return verified ? Program.Ok : Program.Failure;
        }));
        return command;
    }

    static void Write(string folder, Comparison c, ComparisonSetup setup)
    {
        File.WriteAllText(Path.Combine(folder, Csv), ComparisonCsv.Write(c, setup.Machine));
        if (setup.Info is { } m) File.WriteAllText(Path.Combine(folder, MachineFile), m.ToJson().ToJsonString(Options.JsonStyle));
        double peak = PeakCache.GetOrMeasure();
        File.WriteAllText(Path.Combine(folder, Markdown), ComparisonMarkdown.Write(c, setup, peak));
        ComparisonCharts.Write(c, folder, setup.Dataset, peak);
    }

    static string[] Files(ComparisonSetup setup) =>
        [Csv, Markdown, ComparisonCharts.GflopsByBenchmark, ComparisonCharts.TimeVsQuality, .. setup.Info is null ? Array.Empty<string>() : [MachineFile]];

    static void Print(IAnsiConsole o, Comparison c, string folder)
    {
        var t = new Table().AddColumn("method").AddColumn(new TableColumn("vs best library").RightAligned()).AddColumn(new TableColumn("geomean GFLOPS").RightAligned())
            .AddColumn(new TableColumn("speedup").RightAligned()).AddColumn(new TableColumn("vs OpenBLAS").RightAligned()).AddColumn(new TableColumn("mean s").RightAligned())
            .AddColumn(new TableColumn("max s").RightAligned()).AddColumn(new TableColumn("mean evaluations").RightAligned());
        foreach (var s in c.Summaries)
            t.AddRow(s.Method, s.GeomeanVsBestLibrary is double b ? $"[bold]{b:F2}x[/]" : "n/a", $"{s.GeomeanGflops:F1}", $"{s.GeomeanSpeedup:F2}x", s.GeomeanVsOpenBlas is double r ? $"{r:F2}x" : "n/a",
                s.MeanSeconds is double m ? $"{m:F1}" : "", s.MaxSeconds is double x ? $"{x:F1}" : "", s.MeanEvaluations is double e ? $"{e:F0}" : "");
        o.Write(t);
        o.MarkupLineInterpolated($"{c.Benchmarks.Length} benchmarks; report in [bold]{folder}[/] ({Csv}, {Markdown}, {ComparisonCharts.GflopsByBenchmark}, {ComparisonCharts.TimeVsQuality})");
    }
}
