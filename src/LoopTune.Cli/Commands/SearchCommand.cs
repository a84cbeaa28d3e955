using System.CommandLine;
using System.Text.Json.Nodes;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using LoopTune.Search;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune search (--spec "&lt;spec&gt;" | --bench FILE) --method NAME [--budget 10s] [--seed S] [--json]
/// [--debug FILE.dot] [--db PATH]</c>: run one schedule search from the unscheduled nest, verify the best kernel, and
/// print it with the actions that reach it.</summary>
static class SearchCommand
{
    public static Command Create(Io io)
    {
        var spec = new Option<string?>("--spec") { Description = "The computation: \"mm M N K\", \"conv C H W F R S\" (\"conv C H W F R S E\": output channels in blocks of E, innermost) or a contraction." };
        var bench = new Option<string?>("--bench") { Description = "A benchmark file (one written by 'dataset gen'), instead of --spec." };
        var method = new Option<string>("--method", "-m") { Description = $"The search: {string.Join(", ", Searches.Names)}.", Required = true };
        var budget = BudgetOption();
        var maxEvaluations = MaxEvaluationsOption();
        var seed = SeedOption();
        var debug = new Option<string?>("--debug") { Description = "Write the search tree (states, GFLOPS, actions) to this Graphviz DOT file." };
        var db = DbOption();
        var actions = ActionsOption();
        var bits = Options.VectorBits();
        var threads = Options.Threads("Threads every schedule is timed on, with an outer loop made parallel (the outermost that divides evenly among them)");
        var json = Options.Json();
        var command = new Command("search", "Search for a fast schedule of one computation, starting from the unscheduled nest.")
        {
            spec, bench, method, budget, maxEvaluations, seed, debug, db, actions, bits, threads, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            Options.ApplyVectorBits(p, bits);
            Options.ApplyThreads(p, threads);
            var space = ActionSpace.Get(p.GetValue(actions)!);
            var search = Searches.Get(p.GetValue(method)!);
            var limit = SearchBudget.Parse(p.GetValue(budget), p.GetValue(maxEvaluations));
            var (name, computation) = Target(p.GetValue(spec), p.GetValue(bench));
            if (search.Name == CostModelSearch.MethodName) CostModelCommand.RefreshBeforeSearch(io, p.GetValue(db));
            var evaluator = Evaluators.Default(p.GetValue(db));
            SearchResult result;
            try
            {
                result = search.Run(Nest.Initial(computation), evaluator, limit, p.GetValue(seed), space);
                result = result with { Best = evaluator.AsRun(result.Best) }; // as it was timed: with its parallel loop at N threads
            }
            finally { (evaluator as IDisposable)?.Dispose(); }
            var verification = KernelReport.Check(result.Best, Kernel.Compile(result.Best));
            if (p.GetValue(debug) is { } dot) WriteText(dot, result.Tree.ToDot($"{search.Name} {computation}"));
            if (p.GetValue(json)) io.Stdout.WriteLine(ToJson(result, search, name, limit, p.GetValue(seed), verification, p.GetValue(debug)).ToJsonString(Options.JsonStyle));
            else Print(io.Out, result, search, verification);
            if (!verification.Passed) io.Stderr.WriteLine($"internal error: the best kernel is wrong: {verification.Problem}");
            return verification.Passed ? Program.Ok : Program.Failure;
        }));
        return command;
    }

    internal static Option<string> ActionsOption()
    {
        var o = new Option<string>("--actions") { Description = "The action space the searches act in: tile (a loop and an edit per step, with register-tile macros), loop (no macros) or cursor (the action table's 18 actions at a cursor). A policy acts in its own.", DefaultValueFactory = _ => "tile" };
        o.AcceptOnlyFromAmong([.. ActionSpace.Names]);
        return o;
    }

    internal static Option<string> BudgetOption() => new("--budget")
    {
        Description = "Wall-clock limit of each search: a number with ms, s or m (500ms, 10s, 2m).", DefaultValueFactory = _ => "10s",
    };

    internal static Option<int?> MaxEvaluationsOption() => new("--max-evaluations") { Description = "Also stop a search after this many evaluations." };

    internal static Option<int> SeedOption() => new("--seed") { Description = "Seed of the searches' random choices.", DefaultValueFactory = _ => 0 };

    internal static Option<string?> DbOption() => new("--db") { Description = "The measurement store (SQLite file); default: measurements.db in the data folder." };

    /// <summary>The benchmark's name (null for a spec) and computation; exactly one of the two options must be given.</summary>
    static (string? Name, Computation Computation) Target(string? spec, string? bench)
    {
        if (spec is null == bench is null)
            throw new SearchError(spec is null ? "give the computation: --spec \"<spec>\" or --bench FILE" : "give --spec or --bench, not both");
        if (spec is not null) return (null, Computation.Parse(spec));
        var b = Benchmark.ReadFile(bench!);
        return (b.Name, b.Computation);
    }

    /// <summary>Writes a report file (<see cref="AtomicFile"/>), turning a path that cannot be written into bad input (exit 2).</summary>
    internal static void WriteText(string path, string text)
    {
        try { AtomicFile.WriteText(path, text); }
        catch (Exception e) when (e is ArgumentException or NotSupportedException) { throw new FileWriteError(path, e.Message, e); }
    }

    static JsonObject ToJson(SearchResult r, ISearch search, string? bench, SearchBudget budget, int seed, Verification v, string? debug) => new()
    {
        ["method"] = r.Method,
        ["description"] = search.Description,
        ["spec"] = r.Start.Computation.ToString(),
        ["computation"] = r.Start.Computation.Text,
        ["bench"] = bench,
        ["seed"] = seed,
        ["budget_s"] = budget.Time.TotalSeconds,
        ["max_evaluations"] = budget.MaxEvaluations,
        ["base_gflops"] = r.BaseGflops,
        ["base_estimated"] = r.BaseEstimated,
        ["best_gflops"] = r.BestGflops,
        ["best_estimated"] = r.BestEstimated,
        ["estimates"] = r.Estimates,
        ["speedup"] = r.Speedup,
        ["action_space"] = r.Space,
        ["ids"] = new JsonArray([.. r.Ids.Select(i => JsonValue.Create(ActionSpace.Get(r.Space).Describe(i)))]),
        ["actions"] = new JsonArray([.. r.Actions.Select(a => JsonValue.Create(a.Name))]),
        ["schedule"] = r.Best.Serialize(),
        ["schedule_key"] = r.Best.ScheduleKey,
        ["tree"] = r.Best.ToTree(),
        ["evaluations"] = r.Evaluations,
        ["measured"] = r.Measured,
        ["recalled"] = r.Recalled,
        ["seconds"] = r.Seconds,
        ["verified"] = v.Passed,
        ["debug"] = debug,
        ["machine"] = Machine.Current.ToJson(),
    };

    static void Print(IAnsiConsole o, SearchResult r, ISearch search, Verification v)
    {
        var c = r.Start.Computation;
        o.MarkupLineInterpolated($"[bold]{r.Method}[/] on [bold]{c}[/] ({c.Text}) in the {r.Space} space: {search.Description}");
        o.WriteLine();
        o.Write(new Text(r.Best.ToTree()));
        o.WriteLine();
        var t = new Table().Border(TableBorder.None).HideHeaders().AddColumn("").AddColumn("");
        t.AddRow("schedule", Markup.Escape(r.Best.Serialize()));
        t.AddRow("steps", Markup.Escape(r.Ids.Length == 0 ? "(none: nothing beat the start)" : string.Join(" ", r.Ids.Select(ActionSpace.Get(r.Space).Describe))));
        t.AddRow("actions", Markup.Escape(r.Actions.Length == 0 ? "(none)" : string.Join(",", r.Actions.Select(a => a.Name))));
        t.AddRow("speed", $"[bold]{r.BestGflops:F1} GFLOPS[/]{(r.BestEstimated ? " (estimated from a slice)" : "")}, {r.Speedup:F2}x the unscheduled {r.BaseGflops:F1} GFLOPS{(r.BaseEstimated ? " (estimated)" : "")}");
        t.AddRow("search", $"{r.Evaluations} evaluations ({r.Measured} timed now, {r.Recalled} recalled) in {r.Seconds:F2} s");
        t.AddRow("verified", v.Passed ? "[green]yes[/]" : $"[red]NO[/]: {Markup.Escape(v.Problem ?? "")}");
        o.Write(t);
    }
}
