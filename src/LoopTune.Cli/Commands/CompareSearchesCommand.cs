using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using LoopTune.Cli.Plots;
using LoopTune.Cluster;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Search;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune compare-searches --dataset NAME [--split test] [--count 25] [--methods a,b] [--budget 10s] --out DIR
/// [--seed S] [--json] [--db PATH] [--quick] [--cluster ADDR [--min-workers N] [--workers N]]</c>: every method on the same
/// benchmarks; writes results.csv, summary.md and two PNG charts into DIR. With --cluster, the (benchmark, method) pairs are
/// spread over the cluster's workers (<see cref="ComparisonWork"/>) and each row names the machine that measured it. The report is written into a temporary sibling folder and moved into place at the end, so a
/// failure leaves no half-written report (a previous report in DIR is replaced only then).</summary>
static class CompareSearchesCommand
{
    public const string Csv = "results.csv", Markdown = "summary.md";

    public static Command Create(Io io)
    {
        var dataset = new Option<string>("--dataset") { Description = "A named dataset (see 'dataset list') or a dataset folder.", Required = true };
        var split = new Option<string>("--split") { Description = "Which list of the dataset: test or train.", DefaultValueFactory = _ => "test" };
        split.AcceptOnlyFromAmong("test", "train");
        var count = new Option<int>("--count") { Description = "How many benchmarks: the first N of the split.", DefaultValueFactory = _ => 25 };
        var methods = new Option<string?>("--methods")
        {
            Description = $"Comma-separated methods (default all searches: {string.Join(",", Searches.Names)}). 'policy' is the trained policy's greedy rollout, 'policy_topK' (e.g. policy_top4) adds rollouts branching to its next choices within the budget.",
        };
        var policy = new Option<string>("--policy") { Description = "The policy of the 'policy' methods: default (shipped), a .safetensors file, a checkpoint or a training run folder.", DefaultValueFactory = _ => "default" };
        var budget = SearchCommand.BudgetOption();
        var maxEvaluations = SearchCommand.MaxEvaluationsOption();
        var output = new Option<string>("--out") { Description = "Folder for results.csv, summary.md and the PNG charts (replaced if it exists).", Required = true };
        var seed = SearchCommand.SeedOption();
        var db = new Option<string?>("--db")
        {
            Description = "Share this measurement store between all searches. Default: each search starts from a new, empty store, so its time counts all its own measurements.",
        };
        var quick = new Option<bool>("--quick") { Description = "Re-time the results with the quick timing instead of the default one." };
        var json = Options.Json();
        var cluster = new ClusterOptions();
        var command = new Command("compare-searches", "Run every search method on the same benchmarks and write a CSV, a markdown summary and PNG charts.")
        {
            dataset, split, count, methods, policy, budget, maxEvaluations, output, seed, db, quick, json,
        };
        foreach (var o in cluster.All) command.Options.Add(o);
        command.SetAction(p => io.Guard(() =>
        {
            var address = cluster.Address(p);
            var searches = ComparisonMethods.Parse(p.GetValue(methods), p.GetValue(policy)!);
            var limit = SearchBudget.Parse(p.GetValue(budget), p.GetValue(maxEvaluations));
            if (p.GetValue(count) < 1) throw new SearchError($"--count must be at least 1, not {p.GetValue(count)}");
            var data = Dataset.Load(p.GetValue(dataset)!);
            var list = p.GetValue(split) == "train" ? data.TrainBenchmarks : data.TestBenchmarks;
            if (list.IsEmpty) throw new DatasetError($"the {p.GetValue(split)} split of {data.Name} is empty");
            var benchmarks = list.Take(p.GetValue(count)).ToList();
            var timing = p.GetValue(quick) ? MeasureOptions.Quick : MeasureOptions.Default;
            var setup = new ComparisonSetup(data.Name, p.GetValue(split)!, limit, p.GetValue(seed), "", "", PeakCache.MachineKey);
            var report = new ReportFolder(p.GetValue(output)!);
            try
            {
                var evaluators = new EvaluatorSource(p.GetValue(db), report.Temp);
                var comparison = address is null
                    ? RunWithProgress(io, progress => Comparison.Run(benchmarks, searches, limit, p.GetValue(seed), evaluators.Next, timing, progress))
                    : RunOnCluster(io, () => cluster.OpenAsync(p, address), session => RunWithProgress(io, progress => Options.Wait(() => ComparisonWork.RunAsync(session.Connection,
                        benchmarks, [.. searches.Select(s => s.Name)], p.GetValue(policy)!, limit, p.GetValue(seed), p.GetValue(quick),
                        p.GetValue(db) is { } shared ? Path.GetFullPath(shared) : null, progress))));
                setup = setup with
                {
                    Evaluator = address is null ? evaluators.Describe() : evaluators.DescribeOnCluster(),
                    Timing = $"GFLOPS are re-timed after the searches, each schedule, the unscheduled nest and OpenBLAS alike, with the {(p.GetValue(quick) ? "quick" : "default")} timing (median of {timing.MinSamples}+ samples over {timing.MinSeconds:0.###}+ s); the searches' own quick figures are in results.csv as search_gflops.",
                };
                evaluators.Clean();
                Write(report.Temp, comparison, setup);
                report.Commit();
                if (p.GetValue(json)) io.Stdout.WriteLine(ToJson(comparison, report.Target).ToJsonString(Options.JsonStyle));
                else Print(io.Out, comparison, report.Target);
                bool verified = comparison.Rows.All(r => r.Verified);
                if (!verified) io.Stderr.WriteLine("internal error: a best schedule failed verification (see results.csv)");
                return verified ? Program.Ok : Program.Failure;
            }
            finally { report.Abandon(); }
        }));
        return command;
    }

    /// <summary>Opens the cluster session (saying on stderr what it waits for), runs <paramref name="run"/> with it and closes it.</summary>
    static Comparison RunOnCluster(Io io, Func<Task<ClusterSession>> open, Func<ClusterSession, Comparison> run)
    {
        io.Stderr.WriteLine("joining the cluster and waiting for its workers...");
        var session = Options.Wait(open);
        try
        {
            io.Stderr.WriteLine($"{session.Workers.Length} worker(s): {string.Join(", ", session.Workers.Select(w => w.Id))}");
            return run(session);
        }
        finally { Options.Wait(() => session.DisposeAsync().AsTask()); }
    }

    static void Write(string folder, Comparison c, ComparisonSetup setup)
    {
        File.WriteAllText(Path.Combine(folder, Csv), c.ToCsv());
        File.WriteAllText(Path.Combine(folder, Markdown), ComparisonMarkdown.Write(c, setup));
        ComparisonCharts.Write(c, folder, setup.Dataset, PeakCache.GetOrMeasure());
    }

    /// <summary>Runs the comparison with a Spectre progress bar on stderr when stderr is a terminal, else with one plain line
    /// per step on stderr; stdout stays clean for --json.</summary>
    static Comparison RunWithProgress(Io io, Func<Action<ComparisonProgress>, Comparison> run)
    {
        if (io.Stderr != Console.Error || Console.IsErrorRedirected)
        {
            var clock = Stopwatch.StartNew();
            return run(p => io.Stderr.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1}s] {p.Done}/{p.Total} {Describe(p)}"));
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        Comparison? result = null;
        console.Progress().AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("comparing searches");
                result = run(p =>
                {
                    task.MaxValue = p.Total;
                    task.Value = p.Done;
                    task.Description = Markup.Escape(Describe(p));
                });
            });
        return result!;
    }

    static string Describe(ComparisonProgress p) => string.Join(" ", new[] { p.Benchmark, p.Method, p.What }.Where(s => s.Length > 0));

    static JsonObject ToJson(Comparison c, string folder)
    {
        var json = new JsonObject
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
        if (c.Distributed) // which machine measured how many rows
            json["machines"] = new JsonArray([.. c.Rows.GroupBy(r => (r.Host, r.Machine)).Select(g => new JsonObject { ["host"] = g.Key.Host, ["machine"] = g.Key.Machine, ["rows"] = g.Count() })]);
        return json;
    }

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

    /// <summary>The evaluators of the searches: a new, empty store per search in the report's temporary folder, or one
    /// shared store when --db is given.</summary>
    sealed class EvaluatorSource(string? sharedDb, string temp)
    {
        int made;

        public IEvaluator Next() => Evaluators.Default(sharedDb ?? Path.Combine(temp, $".store-{made++}.db"));

        public string Describe() => sharedDb is null
            ? "a new, empty measurement store for each search (cold: its seconds pay for every measurement it makes)."
            : $"the measurement store {Path.GetFullPath(sharedDb)}, shared by all searches (schedules already in it are recalled, not timed, and cost almost no time).";

        /// <summary>The same on a cluster, where each worker's machine opens the stores.</summary>
        public string DescribeOnCluster() => sharedDb is null
            ? "a new, empty measurement store for each search, on the machine of the worker running it (cold: its seconds pay for every measurement it makes)."
            : $"the measurement store {Path.GetFullPath(sharedDb)} on each worker's machine, shared by the searches run there (schedules already in it are recalled, not timed).";

        /// <summary>Deletes the per-search stores from the report folder.</summary>
        public void Clean()
        {
            foreach (var f in Directory.EnumerateFiles(temp, ".store-*")) File.Delete(f);
        }
    }

    /// <summary>A report folder written atomically: everything goes into <see cref="Temp"/>, a sibling of the target, which
    /// <see cref="Commit"/> renames into place (moving an old report aside first and deleting it after).</summary>
    sealed class ReportFolder
    {
        public ReportFolder(string target)
        {
            Target = Path.GetFullPath(target);
            if (File.Exists(Target)) throw new SearchError($"--out {target} is a file; give a folder");
            var parent = Path.GetDirectoryName(Target) ?? throw new SearchError($"--out {target} has no parent folder");
            Temp = Path.Combine(parent, $".{Path.GetFileName(Target)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
            try { Directory.CreateDirectory(Temp); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new SearchError($"cannot write the report next to {target}: {e.Message}"); }
        }

        public string Target { get; }
        public string Temp { get; }
        bool committed;

        public void Commit()
        {
            string? old = Directory.Exists(Target) ? Temp + ".old" : null;
            if (old is not null) Directory.Move(Target, old);
            Directory.Move(Temp, Target);
            committed = true;
            if (old is not null) Directory.Delete(old, recursive: true);
        }

        /// <summary>Removes the temporary folder unless it was committed.</summary>
        public void Abandon()
        {
            if (committed || !Directory.Exists(Temp)) return;
            try { Directory.Delete(Temp, recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* best effort */ }
        }
    }
}
