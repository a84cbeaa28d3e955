using System.Text.Json.Nodes;
using LoopTune.CostModel;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Search;
using LoopTune.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.CostModel;

/// <summary>The cost model against targets whose ranking is known: the trees, the schedule model on unseen problems, its file
/// and its refusals, the search that measures only what the model ranks first, and (Integration: in-process command lines)
/// <c>looptune cost-model train|eval</c> on a store of this machine with known speeds.</summary>
public sealed class CostModelTests
{
    const string Machine = "test machine | 512-bit vectors", Runtime = "test runtime";

    /// <summary>A known speed: more unrolled loops, a vectorized innermost loop and a longer innermost loop are faster, a
    /// packed input a little faster. Every part is readable from the features, none is one feature alone.</summary>
    internal static double Truth(Nest n)
    {
        var last = n[n.Count - 1];
        return (1 + n.Loops.Count(l => l.IsUnrolled)) * (last.IsVectorized ? 4 : 1) * Math.Log2(2 + n.Extent(n.Count - 1)) * (n.Packed != 0 ? 1.5 : 1);
    }

    static readonly Computation[] Problems = [.. new[] { (32, 48, 64), (64, 32, 48), (48, 64, 32), (80, 48, 96), (96, 80, 48), (64, 64, 64), (128, 32, 64), (32, 128, 96), (112, 48, 80), (48, 112, 64) }
        .Select(s => Computation.Matmul(s.Item1, s.Item2, s.Item3))];

    /// <summary>Up to <paramref name="perProblem"/> distinct random schedules of each problem (seeded), with their
    /// <see cref="Truth"/>.</summary>
    internal static List<CostSample> Samples(IEnumerable<Computation> problems, int perProblem, int seed)
    {
        var rng = new Random(seed);
        var list = new List<CostSample>();
        foreach (var c in problems)
        {
            var seen = new HashSet<string>();
            for (int i = 0; i < 4 * perProblem && seen.Count < perProblem; i++)
            {
                var g = Genome.Random(ActionSpace.Tile, Nest.Initial(c), rng, 1 + rng.Next(8), sample: true);
                if (seen.Add(g.Result.ScheduleKey)) list.Add(new CostSample(g.Result, Truth(g.Result)));
            }
        }
        return list;
    }

    internal static ScheduleCostModel TrainedOn(IReadOnlyList<CostSample> samples) => ScheduleCostModel.Train(samples, Machine, Runtime, 16, samples.Count);

    [Fact]
    public void Spearman_is_the_rank_correlation_with_ties_at_their_mean_rank()
    {
        Assert.Equal(1, CostModelEvaluation.Spearman([1, 2, 3, 10], [5, 6, 7, 8]), 12);
        Assert.Equal(-1, CostModelEvaluation.Spearman([1, 2, 3], [3, 2, 1]), 12);
        // ranks [0, 1.5, 1.5, 3] and [0, 2, 1, 3]: 4.5 / sqrt(4.5 * 5)
        Assert.Equal(4.5 / Math.Sqrt(22.5), CostModelEvaluation.Spearman([1, 2, 2, 3], [1, 3, 2, 4]), 12);
        Assert.True(double.IsNaN(CostModelEvaluation.Spearman([1, 1, 1], [1, 2, 3])));
    }

    [Fact]
    public void Boosted_trees_rank_held_out_rows_of_a_nonlinear_target()
    {
        var rng = new Random(7);
        static float F(float[] r) => 3 * r[0] + 2 * MathF.Sin(4 * r[1]) + r[2] * r[3];
        float[] Rows(int n) => [.. Enumerable.Range(0, n * 5).Select(_ => (float)rng.NextDouble())];
        var x = Rows(3000);
        var y = Enumerable.Range(0, 3000).Select(i => F(x[(i * 5)..(i * 5 + 5)])).ToArray();
        var trees = BoostedTrees.Fit(x, 5, y, new BoostingOptions(Trees: 150, Depth: 5, MinLeaf: 5));
        var test = Rows(500);
        var truth = Enumerable.Range(0, 500).Select(i => (double)F(test[(i * 5)..(i * 5 + 5)])).ToArray();
        var predicted = Enumerable.Range(0, 500).Select(i => (double)trees.Predict(test.AsSpan(i * 5, 5))).ToArray();
        Assert.True(CostModelEvaluation.Spearman(predicted, truth) >= 0.95, $"Spearman {CostModelEvaluation.Spearman(predicted, truth):F3}");
        // the bias alone knows nothing of the rows: the trees do the ranking
        Assert.Equal(y.Average(v => (double)v), trees.Bias, 4);
    }

    [Fact]
    public void The_schedule_model_ranks_schedules_of_problems_it_never_saw()
    {
        var train = Samples(Problems[..8], 40, seed: 1);
        var test = Samples(Problems[8..], 40, seed: 2);
        Assert.True(train.Count >= ScheduleCostModel.MinRows);
        var model = TrainedOn(train);
        var predicted = model.Predict([.. test.Select(s => s.Nest)]);
        double rho = CostModelEvaluation.Spearman(predicted, [.. test.Select(s => s.Gflops)]);
        Assert.True(rho >= 0.9, $"held-out Spearman {rho:F3} over {test.Count} schedules");
        Assert.Equal(train.Count, model.Rows);
        Assert.Equal(8, model.Computations);
    }

    [Fact]
    public void A_held_out_evaluation_by_computation_holds_out_whole_problems()
    {
        var samples = Samples(Problems, 30, seed: 3);
        var r = CostModelEvaluation.Evaluate(samples, HoldOut.Computations, 16, fraction: 0.3, seed: 0);
        Assert.Equal(samples.Count, r.TrainRows + r.TestRows);
        Assert.Equal(Problems.Length, r.TrainComputations + r.TestComputations); // no problem on both sides
        Assert.True(r.Spearman >= 0.8, $"Spearman {r.Spearman:F3}");
        var rows = CostModelEvaluation.Evaluate(samples, HoldOut.Rows, 16, fraction: 0.3, seed: 0, maxTrainRows: 100);
        Assert.Equal(100, rows.TrainRows);
        Assert.True(rows.TrainComputations + rows.TestComputations > Problems.Length); // problems on both sides
    }

    [Fact]
    public void A_saved_model_predicts_what_it_predicted_and_refuses_another_machine()
    {
        using var temp = new TempFolder("looptune-cost-model");
        var samples = Samples(Problems[..6], 40, seed: 4);
        var model = TrainedOn(samples);
        string path = temp["model.ltcm"];
        model.Save(path);
        var loaded = ScheduleCostModel.Load(path, Machine, Runtime);
        var nests = samples.Take(50).Select(s => s.Nest).ToList();
        Assert.Equal(model.Predict(nests), loaded.Predict(nests));
        Assert.Equal((model.Rows, model.StoreRows, model.Lanes, model.Features), (loaded.Rows, loaded.StoreRows, loaded.Lanes, loaded.Features));
        var other = Assert.Throws<CostModelError>(() => ScheduleCostModel.Load(path, "another machine", Runtime));
        Assert.Contains(Machine, other.Message);
        Assert.Contains("another machine", other.Message);
        Assert.Contains("not on this machine", other.Message);
        Assert.Throws<CostModelError>(() => ScheduleCostModel.Load(path, Machine, "another runtime"));
    }

    [Fact]
    public void A_file_that_is_no_cost_model_is_refused_naming_it()
    {
        using var temp = new TempFolder("looptune-cost-model");
        var samples = Samples(Problems[..6], 40, seed: 5);
        string good = temp["good.ltcm"];
        TrainedOn(samples).Save(good);
        var bytes = File.ReadAllBytes(good);
        string text = temp["text.ltcm"], cut = temp["cut.ltcm"], longer = temp["longer.ltcm"];
        File.WriteAllText(text, "not a model");
        File.WriteAllBytes(cut, bytes[..(bytes.Length / 2)]);
        File.WriteAllBytes(longer, [.. bytes, 1, 2, 3]);
        foreach (var bad in new[] { text, cut, longer })
        {
            var e = Assert.Throws<CostModelError>(() => ScheduleCostModel.Load(bad, Machine, Runtime));
            Assert.Contains(bad, e.Message);
            Assert.Contains("is not a LoopTune cost model", e.Message);
        }
        Assert.Contains("there is no cost model", Assert.Throws<CostModelError>(() => ScheduleCostModel.Load(temp["none.ltcm"], Machine, Runtime)).Message);
    }

    [Fact]
    public void Too_few_measurements_are_refused_saying_how_many_are_needed()
    {
        var few = Samples(Problems[..2], 150, seed: 6);
        var e = Assert.Throws<CostModelError>(() => TrainedOn(few.Take(50).ToList()));
        Assert.Contains($"at least {ScheduleCostModel.MinRows} measurements of at least {ScheduleCostModel.MinComputations} computations", e.Message);
        Assert.Contains("50 measurement(s) of 1 computation(s)", e.Message);
        // enough rows of too few problems are refused too
        Assert.Throws<CostModelError>(() => TrainedOn(few));
    }

    [Fact]
    public void An_empty_store_is_refused_and_a_grown_one_makes_its_model_stale()
    {
        using var temp = new TempFolder("looptune-cost-model");
        using (var store = new MeasurementStore(temp["empty.db"], Machine, Runtime))
        {
            var e = Assert.Throws<CostModelError>(() => ScheduleCostModel.Refresh(store, temp["m.ltcm"]));
            Assert.Contains("holds 0 measurement(s)", e.Message);
            Assert.False(File.Exists(temp["m.ltcm"]));
        }
        using var filled = new MeasurementStore(temp["filled.db"], Machine, Runtime);
        foreach (var s in Samples(Problems[..6], 40, seed: 8))
            filled.Put(s.Nest, new Measurement(s.Nest.Computation.Flops / (s.Gflops * 1e9), s.Nest.Computation.Flops / (s.Gflops * 1e9), 3, 1, s.Nest.Computation.Flops));
        var (model, trained) = ScheduleCostModel.Refresh(filled, temp["m.ltcm"]);
        Assert.True(trained);
        Assert.Equal(filled.CountOfThisMachine, model.StoreRows);
        Assert.False(ScheduleCostModel.Refresh(filled, temp["m.ltcm"]).Trained); // up to date
        Assert.True(ScheduleCostModel.Refresh(filled, temp["m.ltcm"], force: true).Trained);
        // stale past 10 % more rows and at least MinRows more
        Assert.False(model.IsStale(model.StoreRows + ScheduleCostModel.MinRows - 1));
        Assert.True(model.IsStale(model.StoreRows + ScheduleCostModel.MinRows));
        // a store of another machine has no rows of this one
        using var foreign = new MeasurementStore(temp["filled.db"], "another machine", Runtime);
        Assert.Equal(0, foreign.CountOfThisMachine);
        Assert.Throws<CostModelError>(() => ScheduleCostModel.Refresh(foreign, temp["m.ltcm"])); // the model is of this machine
    }

    [Fact]
    public void The_search_measures_exactly_the_models_top_ranked_candidates_of_each_round()
    {
        var model = TrainedOn(Samples(Problems, 30, seed: 9));
        var rounds = new List<CostModelRound>();
        var fake = new FakeEvaluator(Truth);
        var search = new CostModelSearch(new CostModelOptions(Candidates: 200, MeasurePerRound: 4, InitialRandom: 32, Epsilon: 0, MaxMeasurePerRound: 4, DistinctTiles: false), model) { Observer = rounds.Add };
        var start = Nest.Initial(Computation.Matmul(64, 48, 80));
        var r = search.Run(start, fake, SearchBudget.Seconds(60, 41), seed: 1, ActionSpace.Tile);
        Assert.Equal(41, r.Evaluations);
        Assert.Equal(10, rounds.Count); // 40 measured, 4 a round
        foreach (var round in rounds)
        {
            Assert.Equal(4, round.Chosen.Count);
            Assert.Empty(round.Explored);
            var chosen = round.Chosen.Select(n => n.ScheduleKey).ToHashSet();
            double lowest = round.Candidates.Where(c => chosen.Contains(c.Nest.ScheduleKey)).Min(c => c.Score);
            double highestLeft = round.Candidates.Where(c => !chosen.Contains(c.Nest.ScheduleKey)).Max(c => c.Score);
            Assert.True(lowest >= highestLeft, $"round {round.Round}: a chosen candidate scored {lowest}, one left out {highestLeft}");
        }
        // what was measured is the start and the chosen candidates, nothing else
        var measured = rounds.SelectMany(x => x.Chosen).Select(n => n.ScheduleKey).Append(start.ScheduleKey).ToHashSet();
        Assert.Equal(measured.Order(), fake.Calls.Keys.Order());
        Assert.All(fake.Calls.Values, n => Assert.Equal(1, n));
        Assert.Equal(fake.Calls.Keys.Max(k => Truth(Nest.Parse(start.Computation, ">" + k))), r.BestGflops);
    }

    [Fact]
    public void With_distinct_tiles_a_round_measures_the_best_scored_of_each_register_tile_first()
    {
        var model = TrainedOn(Samples(Problems, 30, seed: 9));
        var rounds = new List<CostModelRound>();
        var search = new CostModelSearch(new CostModelOptions(Candidates: 200, MeasurePerRound: 4, InitialRandom: 32, Epsilon: 0, MaxMeasurePerRound: 4), model) { Observer = rounds.Add };
        Assert.True(search.Options.DistinctTiles); // the default
        search.Run(Nest.Initial(Computation.Matmul(64, 48, 80)), new FakeEvaluator(Truth), SearchBudget.Seconds(60, 41), seed: 1, ActionSpace.Tile);
        Assert.Equal(10, rounds.Count);
        int spread = 0;
        foreach (var round in rounds)
        {
            // the best-scored candidate of each tile, best first
            var firsts = round.Candidates.Select((c, i) => (c, i)).OrderByDescending(x => x.c.Score).ThenBy(x => x.i)
                .DistinctBy(x => CostModelSearch.TileOf(x.c.Nest)).Select(x => x.c.Nest.ScheduleKey).ToList();
            var chosen = round.Chosen.Select(n => n.ScheduleKey).ToHashSet();
            if (firsts.Count >= 4) Assert.Equal(firsts.Take(4).ToHashSet(), chosen);
            else Assert.Subset(chosen, firsts.ToHashSet());
            if (round.Chosen.Select(CostModelSearch.TileOf).Distinct().Count() == 4) spread++;
        }
        Assert.True(spread >= 5, $"only {spread} of 10 rounds measured four tiles");
        Assert.Equal("n':16v", CostModelSearch.TileOf(Nest.Parse(Computation.Matmul(64, 48, 80), ">m:64 k:80 n:3 n:16v")));
        Assert.Equal("m':4u n:3u n':16v", CostModelSearch.TileOf(Nest.Parse(Computation.Matmul(64, 48, 80), ">m:16 k:80 m:4u n:3u n:16v")));
        Assert.Equal("", CostModelSearch.TileOf(Nest.Initial(Computation.Matmul(64, 48, 80))));
        Assert.Equal("c':2u h:14u r:3u f:16v", CostModelSearch.TileOf(Nest.Parse(Computation.Parse("conv 16 16 8 16 3 3"), ">w:6 s:3 c:8 c:2u h:14u r:3u f:16v")));
    }

    [Fact]
    public void Where_measuring_is_quicker_than_the_rest_of_a_round_the_next_rounds_measure_more_of_the_top_ranked()
    {
        // the fake evaluator answers at once: breeding and scoring 200 candidates takes far longer than measuring 2
        var model = TrainedOn(Samples(Problems, 30, seed: 9));
        var rounds = new List<CostModelRound>();
        var search = new CostModelSearch(new CostModelOptions(Candidates: 200, MeasurePerRound: 2, InitialRandom: 32, Epsilon: 0, MaxMeasurePerRound: 12, DistinctTiles: false), model) { Observer = rounds.Add };
        var r = search.Run(Nest.Initial(Computation.Matmul(64, 48, 80)), new FakeEvaluator(Truth), SearchBudget.Seconds(60, 51), seed: 1, ActionSpace.Tile);
        Assert.Equal(51, r.Evaluations);
        Assert.Equal(2, rounds[0].Chosen.Count);
        Assert.All(rounds.Skip(1), x => Assert.InRange(x.Chosen.Count, 2, 12));
        Assert.Contains(rounds, x => x.Chosen.Count == 12);
        foreach (var round in rounds) // still the model's top-ranked
        {
            var chosen = round.Chosen.Select(n => n.ScheduleKey).ToHashSet();
            Assert.True(round.Candidates.Where(c => chosen.Contains(c.Nest.ScheduleKey)).Min(c => c.Score)
                >= round.Candidates.Where(c => !chosen.Contains(c.Nest.ScheduleKey)).Select(c => c.Score).DefaultIfEmpty(double.NegativeInfinity).Max());
        }
        Assert.Throws<SearchError>(() => new CostModelSearch(new CostModelOptions(MeasurePerRound: 8, MaxMeasurePerRound: 4)));
    }

    [Fact]
    public void With_epsilon_the_explored_candidates_are_others_than_the_top_ranked()
    {
        var rounds = new List<CostModelRound>();
        var search = new CostModelSearch(new CostModelOptions(Candidates: 100, MeasurePerRound: 4, InitialRandom: 16, Epsilon: 0.5, UseSavedModel: false, MaxMeasurePerRound: 4, DistinctTiles: false)) { Observer = rounds.Add };
        search.Run(Nest.Initial(Computation.Matmul(32, 48, 64)), new FakeEvaluator(Truth), SearchBudget.Seconds(60, 41), seed: 2, ActionSpace.Tile);
        Assert.Contains(rounds, x => x.Explored.Count > 0);
        foreach (var round in rounds)
        {
            Assert.Equal(4, round.Chosen.Count + round.Explored.Count);
            double top = round.Candidates.OrderByDescending(c => c.Score).Take(round.Chosen.Count).Select(c => c.Score).DefaultIfEmpty(double.NegativeInfinity).Min();
            Assert.All(round.Chosen, n => Assert.True(round.Candidates.First(c => c.Nest.ScheduleKey == n.ScheduleKey).Score >= top));
            Assert.Empty(round.Explored.Select(n => n.ScheduleKey).Intersect(round.Chosen.Select(n => n.ScheduleKey)));
        }
    }

    /// <summary>A store of this machine and runtime holding the synthetic speeds of <see cref="CostModelTests.Truth"/>.</summary>
    static string Store(TempFolder temp)
    {
        string path = temp["store.db"];
        using var store = new MeasurementStore(path);
        foreach (var s in CostModelTests.Samples([.. new[] { 32, 48, 64, 80, 96, 112 }.Select(n => LoopTune.Ir.Computation.Matmul(n, 64, 48))], 45, seed: 11))
        {
            double seconds = s.Nest.Computation.Flops / (s.Gflops * 1e9);
            store.Put(s.Nest, new Measurement(seconds, seconds, 3, 1, s.Nest.Computation.Flops));
        }
        return path;
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void Train_saves_a_model_once_and_eval_ranks_held_out_problems()
    {
        using var temp = new TempFolder("looptune-cost-model");
        string db = Store(temp), model = temp["m.ltcm"];
        var (code, output, err) = TestHome.Run("cost-model", "train", "--db", db, "--model", model, "--json");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!.AsObject();
        Assert.True(json["trained"]!.GetValue<bool>());
        int rows = json["rows"]!.GetValue<int>();
        Assert.True(rows >= ScheduleCostModel.MinRows, $"{rows} rows");
        Assert.Equal(6, json["computations"]!.GetValue<int>());
        Assert.True(File.Exists(model));
        // the store has not grown: the model is up to date
        (code, output, err) = TestHome.Run("cost-model", "train", "--db", db, "--model", model, "--json");
        Assert.True(code == 0, err);
        Assert.False(JsonNode.Parse(output)!["trained"]!.GetValue<bool>());
        (code, output, err) = TestHome.Run("cost-model", "eval", "--db", db, "--split", "computations", "--holdout", "0.34", "--json");
        Assert.True(code == 0, err);
        var result = Assert.Single(JsonNode.Parse(output)!["results"]!.AsArray())!;
        Assert.Equal("computations", result["split"]!.GetValue<string>());
        Assert.Equal(rows, result["train_rows"]!.GetValue<int>() + result["test_rows"]!.GetValue<int>());
        Assert.True(result["spearman"]!.GetValue<double>() >= 0.8, output);
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void Bad_input_is_exit_two_with_a_clear_refusal()
    {
        using var temp = new TempFolder("looptune-cost-model");
        string empty = temp["empty.db"];
        new MeasurementStore(empty).Dispose();
        string foreign = temp["foreign.db"];
        using (var other = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={foreign}"))
        {
            other.Open();
            using var c = other.CreateCommand();
            c.CommandText = "CREATE TABLE songs (title TEXT)";
            c.ExecuteNonQuery();
        }
        string otherModel = temp["other.ltcm"];
        ScheduleCostModel.Train(CostModelTests.Samples([.. new[] { 32, 48, 64, 80 }.Select(n => LoopTune.Ir.Computation.Matmul(n, 48, 64))], 60, seed: 12),
            "another machine", "another runtime", 16, 240).Save(otherModel);
        File.WriteAllText(temp["junk.ltcm"], "junk");
        foreach (var (args, message) in new (string[], string)[]
        {
            (["cost-model", "train", "--db", empty, "--model", temp["x.ltcm"]], $"at least {ScheduleCostModel.MinRows} measurements"),
            (["cost-model", "eval", "--db", empty], $"at least {ScheduleCostModel.MinRows} measurements"),
            (["cost-model", "eval", "--db", temp["missing.db"]], "there is no measurement store"),
            (["cost-model", "eval", "--db", foreign], "another program's SQLite database"),
            (["cost-model", "train", "--db", Store(temp), "--model", otherModel], "learned on another machine"),
            (["cost-model", "train", "--db", temp["store.db"], "--model", temp["junk.ltcm"]], "is not a LoopTune cost model"),
        })
        {
            var (code, output, err) = TestHome.Run(args);
            Assert.True(code == 2, $"{string.Join(" ", args)}: exit {code}, {err}");
            Assert.Contains(message, err);
            Assert.Equal("", output);
        }
        Assert.False(File.Exists(temp["x.ltcm"]));
        Assert.False(File.Exists(temp["missing.db"]));
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void A_cost_model_search_runs_from_the_command_line_without_a_model()
    {
        using var temp = new TempFolder("looptune-cost-model");
        var (code, output, err) = TestHome.Run("search", "--spec", "mm 24 16 32", "--method", "cost_model", "--budget", "1s", "--db", temp["s.db"], "--json");
        Assert.True(code == 0, err);
        Assert.Contains("learns from its own measurements alone", err);
        var json = JsonNode.Parse(output)!.AsObject();
        Assert.Equal("cost_model", json["method"]!.GetValue<string>());
        Assert.True(json["verified"]!.GetValue<bool>());
        Assert.True(json["best_gflops"]!.GetValue<double>() >= json["base_gflops"]!.GetValue<double>());
    }
}
