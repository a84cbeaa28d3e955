using System.CommandLine;
using System.Text.Json.Nodes;
using LoopTune.Cli.Plots;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Search;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune compare-searches --dataset NAME [--split test] [--count 25] [--methods a,b] [--budget 10s] --out DIR
/// [--seed S] [--json] [--db PATH] [--quick]</c>: every method on the same benchmarks; writes results.csv, summary.md and two
/// PNG charts into DIR. The report is written into a temporary sibling folder and moved into place at the end, so a
/// failure leaves no half-written report (a previous report in DIR is replaced only then).</summary>
static class CompareSearchesCommand
{
    public const string Csv = "results.csv", Markdown = "summary.md";

    public static Command Create(Io io)
    {
        var o = new ComparisonOptions("--count", null, "Folder for results.csv, summary.md and the PNG charts (replaced if it exists).");
        var command = new Command("compare-searches", "Run every search method on the same benchmarks and write a CSV, a markdown summary and PNG charts.");
        foreach (var option in o.All) command.Options.Add(option);
        command.SetAction(p => io.Guard(() =>
        {
            var job = o.Parse(p);
            var (comparison, _, folder) = job.Run(io, "comparing searches", null, (temp, c, setup) => Write(temp, c,
                setup with { Timing = setup.Timing + " The searches' own quick figures are in results.csv as search_gflops." }));
            if (job.Json) io.Stdout.WriteLine(ToJson(comparison, folder).ToJsonString(Options.JsonStyle));
            else Print(io.Out, comparison, folder);
            bool verified = comparison.Rows.All(r => r.Verified);
            if (!verified) io.Stderr.WriteLine("internal error: a best schedule failed verification (see results.csv)");
            return verified ? Program.Ok : Program.Failure;
        }));
        return command;
    }

    /// <summary>The methods of --methods: the searches by name, and "policy" / "policy_topK" as <see cref="PolicySearch"/>es
    /// of the policy <paramref name="policyPath"/> (read once, only when a policy method is asked for).</summary>
    internal static IReadOnlyList<ISearch> ParseMethods(string? csv, string policyPath)
    {
        var names = csv?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        if (!names.Any(IsPolicy)) return Searches.ParseList(csv);
        if (names.Distinct().Count() != names.Length) throw new SearchError($"--methods '{csv}' names a method twice");
        foreach (var n in names) // every name checked before the policy is read, so a bad name is the error reported
        {
            if (IsPolicy(n)) _ = TopK(n);
            else _ = Searches.Get(n);
        }
        var loaded = new Lazy<Policy>(() =>
        {
            var pol = Policy.Load(policyPath);
            pol.WarmUp();
            return pol;
        });
        return [.. names.Select(n => IsPolicy(n) ? new PolicySearch(loaded.Value, TopK(n)) : Searches.Get(n))];
    }

    static bool IsPolicy(string name) => name == "policy" || name.StartsWith("policy_top", StringComparison.Ordinal);

    static int TopK(string name) =>
        name == "policy" ? 1
        : int.TryParse(name["policy_top".Length..], System.Globalization.CultureInfo.InvariantCulture, out int k) && k is >= 2 and <= 17 ? k
        : throw new SearchError($"unknown method '{name}': a policy method is 'policy' or 'policy_topK' with K from 2 to 17 (e.g. policy_top4)");

    static void Write(string folder, Comparison c, ComparisonSetup setup)
    {
        File.WriteAllText(Path.Combine(folder, Csv), c.ToCsv());
        File.WriteAllText(Path.Combine(folder, Markdown), ComparisonMarkdown.Write(c, setup));
        ComparisonCharts.Write(c, folder, setup.Dataset, PeakCache.GetOrMeasure());
    }

    static JsonObject ToJson(Comparison c, string folder) => new()
    {
        ["out"] = folder,
        ["files"] = new JsonArray(Csv, Markdown, ComparisonCharts.GflopsByBenchmark, ComparisonCharts.TimeVsQuality),
        ["benchmarks"] = new JsonArray([.. c.Benchmarks.Select(b => JsonValue.Create(b))]),
        ["methods"] = new JsonArray([.. c.Summaries.Select(s => new JsonObject
        {
            ["method"] = s.Method, ["geomean_gflops"] = s.GeomeanGflops, ["geomean_speedup"] = s.GeomeanSpeedup,
            ["geomean_vs_openblas"] = s.GeomeanVsOpenBlas, ["mean_seconds"] = s.MeanSeconds, ["max_seconds"] = s.MaxSeconds,
            ["mean_evaluations"] = s.MeanEvaluations,
        })]),
        ["best_method"] = c.BestMethod.Method,
        ["verified"] = c.Rows.All(r => r.Verified),
    };

    static void Print(IAnsiConsole o, Comparison c, string folder)
    {
        var t = new Table().AddColumn("method").AddColumn(new TableColumn("geomean GFLOPS").RightAligned()).AddColumn(new TableColumn("speedup").RightAligned())
            .AddColumn(new TableColumn("vs OpenBLAS").RightAligned()).AddColumn(new TableColumn("mean s").RightAligned()).AddColumn(new TableColumn("max s").RightAligned())
            .AddColumn(new TableColumn("mean evaluations").RightAligned());
        foreach (var s in c.Summaries)
            t.AddRow(s.Method, $"{s.GeomeanGflops:F1}", $"{s.GeomeanSpeedup:F2}x", s.GeomeanVsOpenBlas is double r ? $"{r:F2}x" : "n/a",
                s.MeanSeconds is double m ? $"{m:F1}" : "", s.MaxSeconds is double x ? $"{x:F1}" : "", s.MeanEvaluations is double e ? $"{e:F0}" : "");
        o.Write(t);
        o.MarkupLineInterpolated($"{c.Benchmarks.Length} benchmarks; report in [bold]{folder}[/] ({Csv}, {Markdown}, {ComparisonCharts.GflopsByBenchmark}, {ComparisonCharts.TimeVsQuality})");
    }
}
