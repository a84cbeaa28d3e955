using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using LoopTune.CostModel;
using LoopTune.Search;
using LoopTune.Store;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune cost-model train|eval [--db PATH] [--vector-bits N] [--json]</c>: this machine's learned cost model
/// (<see cref="ScheduleCostModel"/>), fitted to the measurement store's records of this machine and kept in the data folder,
/// and its held-out evaluation (Spearman's rank correlation on problems, or rows, it was not fitted on).</summary>
static class CostModelCommand
{
    public static Command Create(Io io) => new("cost-model", "This machine's learned cost model: schedule features to predicted GFLOPS, fitted to the measurement store.")
    {
        Train(io), Eval(io),
    };

    static Command Train(Io io)
    {
        var (db, model, bits, json) = (SearchCommand.DbOption(), ModelOption(), Options.VectorBits(), Options.Json());
        var force = new Option<bool>("--force") { Description = "Fit again even when the saved model is up to date." };
        var command = new Command("train", $"Fit this machine's cost model to the store and save it, unless the saved one is up to date (the store grew by less than {ScheduleCostModel.RetrainGrowth:P0} since).")
        {
            db, model, force, bits, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            Options.ApplyVectorBits(p, bits);
            using var store = Open(p.GetValue(db));
            var (m, trained) = ScheduleCostModel.Refresh(store, p.GetValue(model), p.GetValue(force));
            string path = Path.GetFullPath(p.GetValue(model) ?? ScheduleCostModel.DefaultPath);
            if (p.GetValue(json))
            {
                var o = Header(store);
                (o["model"], o["trained"], o["rows"], o["store_rows"], o["computations"]) = (path, trained, m.Rows, m.StoreRows, m.Computations);
                (o["trees"], o["train_seconds"], o["trained_at"], o["features"]) = (m.Trees.Trees.Count, m.TrainSeconds, m.TrainedAt.ToString("O", CultureInfo.InvariantCulture), m.Features);
                io.Stdout.WriteLine(o.ToJsonString(Options.JsonStyle));
            }
            else if (trained)
                io.Out.MarkupLineInterpolated($"fitted the cost model of [bold]{store.Machine}[/] to {m.Rows:N0} measurements of {m.Computations:N0} computations ({m.StoreRows:N0} in the store) in {m.TrainSeconds:F1} s: [bold]{path}[/]");
            else
                io.Out.MarkupLineInterpolated($"the cost model {path} is up to date: fitted to {m.StoreRows:N0} measurements, the store has {store.CountOfThisMachine:N0} (it is fitted again past {ScheduleCostModel.RetrainGrowth:P0} more; --force fits it now)");
            return Program.Ok;
        }));
        return command;
    }

    static Command Eval(Io io)
    {
        var (db, bits, json, seed) = (SearchCommand.DbOption(), Options.VectorBits(), Options.Json(), SearchCommand.SeedOption());
        var split = new Option<string>("--split") { Description = "What is held out: computations (every schedule of a share of the problems), rows, or both.", DefaultValueFactory = _ => "both" };
        split.AcceptOnlyFromAmong("computations", "rows", "both");
        var holdout = new Option<double>("--holdout") { Description = "The share held out.", DefaultValueFactory = _ => 0.2 };
        var trainRows = new Option<int?>("--train-rows") { Description = "Fit on at most this many of the other rows (a seeded sample): how a machine with that few measurements would rank." };
        var command = new Command("eval", "Fit a model on the store's measurements outside a held-out share and rank the held-out ones: Spearman's rank correlation, over all of them and per computation. Nothing is saved.")
        {
            db, split, holdout, trainRows, seed, bits, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            Options.ApplyVectorBits(p, bits);
            using var store = Open(p.GetValue(db));
            var (samples, skipped) = ScheduleCostModel.Read(store);
            ScheduleCostModel.Require(samples, $"the measurement store {store.Path}", store.Machine);
            HoldOut[] splits = p.GetValue(split) switch { "computations" => [HoldOut.Computations], "rows" => [HoldOut.Rows], _ => [HoldOut.Computations, HoldOut.Rows] };
            var results = splits.Select(s => CostModelEvaluation.Evaluate(samples, s, ScheduleCostModel.LanesNow, p.GetValue(holdout), p.GetValue(seed), p.GetValue(trainRows))).ToList();
            if (p.GetValue(json))
            {
                var o = Header(store);
                (o["rows"], o["skipped"], o["computations"], o["holdout"]) = (samples.Count, skipped, samples.Select(s => s.Nest.Computation.Text).Distinct().Count(), p.GetValue(holdout));
                o["results"] = new JsonArray([.. results.Select(r => (JsonNode)new JsonObject
                {
                    ["split"] = r.Split, ["train_rows"] = r.TrainRows, ["test_rows"] = r.TestRows, ["train_computations"] = r.TrainComputations,
                    ["test_computations"] = r.TestComputations, ["spearman"] = Finite(r.Spearman), ["per_computation_spearman"] = Finite(r.PerComputation),
                    ["computations_ranked"] = r.ComputationsRanked, ["train_seconds"] = r.TrainSeconds,
                })]);
                io.Stdout.WriteLine(o.ToJsonString(Options.JsonStyle));
                return Program.Ok;
            }
            io.Out.MarkupLineInterpolated($"{samples.Count:N0} measurements of {samples.Select(s => s.Nest.Computation.Text).Distinct().Count():N0} computations of [bold]{store.Machine}[/] in {store.Path}{(skipped > 0 ? $" ({skipped} unreadable, left out)" : "")}");
            var t = new Table().AddColumn("held out").AddColumn(new TableColumn("fitted on").RightAligned()).AddColumn(new TableColumn("ranked").RightAligned())
                .AddColumn(new TableColumn("Spearman").RightAligned()).AddColumn(new TableColumn("per computation").RightAligned()).AddColumn(new TableColumn("fit").RightAligned());
            foreach (var r in results)
                t.AddRow(r.Split, $"{r.TrainRows:N0} rows, {r.TrainComputations:N0} comps", $"{r.TestRows:N0} rows, {r.TestComputations:N0} comps", $"{r.Spearman:F3}",
                    $"{r.PerComputation:F3} (mean of {r.ComputationsRanked})", $"{r.TrainSeconds:F1} s");
            io.Out.Write(t);
            return Program.Ok;
        }));
        return command;
    }

    /// <summary>Before a <c>cost_model</c> search: this machine's model fitted again from the store at <paramref name="db"/>
    /// (the data folder's when null) and saved when it is missing or stale (<see cref="ScheduleCostModel.Refresh"/>), said in
    /// one line on stderr; with too few measurements the search learns from its own alone, and a line says so.</summary>
    internal static void RefreshBeforeSearch(Io io, string? db)
    {
        try
        {
            using var store = new MeasurementStore(db);
            var (m, trained) = ScheduleCostModel.Refresh(store);
            if (trained) io.Stderr.WriteLine($"cost model: fitted to {m.Rows:N0} of the {m.StoreRows:N0} measurements of {store.Path} in {m.TrainSeconds:F1} s, saved as {ScheduleCostModel.DefaultPath}");
        }
        catch (CostModelError e) { io.Stderr.WriteLine($"cost model: none ({e.Message}); {CostModelSearch.MethodName} learns from its own measurements alone"); }
    }

    static JsonNode? Finite(double v) => double.IsFinite(v) ? v : null;

    static Option<string?> ModelOption() => new("--model") { Description = "The model file; default: cost-models/<machine>.ltcm in the data folder." };

    /// <summary>The store at <paramref name="db"/> (default: the data folder's); a path where there is none is refused rather than
    /// made into an empty store.</summary>
    static MeasurementStore Open(string? db) =>
        db is not null && !File.Exists(db) ? throw new CostModelError($"there is no measurement store at {Path.GetFullPath(db)}") : new MeasurementStore(db);

    static JsonObject Header(MeasurementStore store) => new() { ["db"] = store.Path, ["machine"] = store.Machine, ["runtime"] = store.Runtime };
}
