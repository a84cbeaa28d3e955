using System.Collections.Immutable;
using System.Text.Json.Nodes;
using LoopTune.Compare;
using LoopTune.Compare.Exporters;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Learning;
using LoopTune.Learning.Nn;
using LoopTune.Measure;
using LoopTune.Search;
using LoopTune.Tests.Search;
using LoopTune.Tests.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>Policies that know the machine: the observation's machine_tensor, a policy of another input refused (and one
/// from before the machine_tensor carried over exactly for training), the policy-guided search, the adaptation to this
/// machine, and comparisons that count only verified schedules.</summary>
public sealed class MachineAwareTests
{
    static Policy TilePolicy(int seed, int episodeLength = 4) =>
        Policy.FromNetwork(Net.Create(new NetworkShape("dqn", ObservationEncoder.Size, ActionSpace.Tile.Count, [16, 16], "relu", true), new Random(seed)), episodeLength, ActionSpace.Tile);

    /// <summary>Saves <paramref name="net"/> as a tile-space policy file of observation encoding <paramref name="encoder"/>
    /// (an older one's, written as the LoopTune of that time wrote it).</summary>
    static void SaveTile(string path, IPolicyNetwork net, string encoder) =>
        SafeTensors.Save(path, SafeTensors.FromParameters(net.Parameters), new Dictionary<string, string>
        {
            ["looptune.format"] = "looptune-policy/1", ["looptune.shape"] = System.Text.Json.JsonSerializer.Serialize(net.Shape),
            ["looptune.encoder"] = encoder, ["looptune.episode_length"] = "10", ["looptune.action_space"] = "tile",
        });

    [Fact]
    public void The_observation_ends_with_the_machine_tensor_of_the_environment()
    {
        var machine = Enumerable.Range(1, Observations.MachineFeatures).Select(i => i / 10f).ToArray();
        var env = new LoopTuneEnv(new FakeEvaluator(), 100, 5, ActionSpace.Tile, machine);
        env.Reset(Computation.Parse("mm 32 32 32"));
        var x = env.Encode();
        Assert.Equal(ObservationEncoder.Size, x.Length);
        Assert.Equal(machine, x[ObservationEncoder.MachineOffset..]);
        Assert.Equal(machine, (float[])env.Observe().Get("machine_tensor"));
    }

    [Fact]
    public void A_policy_of_another_input_is_refused_and_one_from_before_the_machine_tensor_is_carried_over_exactly()
    {
        using var temp = new TempFolder();
        // a policy of the first encoding (no machine_tensor, the seed's 17 actions): 348 inputs
        var at = ObservationEncoder.Positions(Policy.EncoderV1)!;
        int v1 = at.Length;
        Assert.Equal(348, v1);
        var old = Net.Create(new NetworkShape("dqn", v1, ActionSpace.Tile.Count, [16, 16], "relu", true), new Random(3));
        var path = temp["v1.safetensors"];
        SaveTile(path, old, Policy.EncoderV1);
        var refused = Assert.Throws<PolicyError>(() => Policy.Load(path));
        Assert.Contains(Policy.EncoderV1, refused.Message);
        Assert.Contains("train --init", refused.Message);

        // carried over for training: the same scores whatever the machine, as the new inputs weigh nothing yet
        var upgraded = Policy.LoadForInit(path);
        Assert.Equal(ObservationEncoder.Size, upgraded.Shape.Observations);
        var rng = new Random(4);
        var x = Enumerable.Range(0, ObservationEncoder.Size).Select(_ => (float)rng.NextDouble()).ToArray();
        var before = old.Scores(Net.Row([.. at.Select(i => x[i])])).Row(0).ToArray();
        Assert.Equal(before, upgraded.Network.Scores(Net.Row(x)).Row(0).ToArray());
        x[^1] = 7; // a machine input
        x[ObservationEncoder.MachineOffset - 2] = 1; // the pack action as the fifth previous action
        Assert.Equal(before, upgraded.Network.Scores(Net.Row(x)).Row(0).ToArray());

        // an encoding this build does not know, or a network of another input size, is refused by name
        var (tensors, meta) = SafeTensors.Load(path);
        SafeTensors.Save(path, tensors, new Dictionary<string, string>(meta) { ["looptune.encoder"] = "graph/v9" });
        Assert.Contains("graph/v9", Assert.Throws<PolicyError>(() => Policy.LoadForInit(path)).Message);
        var wide = temp["wide.safetensors"];
        Policy.Save(wide, Net.Create(new NetworkShape("dqn", ObservationEncoder.Size + 1, ActionSpace.Tile.Count, [8], "relu", true), new Random(1)), 10, space: ActionSpace.Tile);
        Assert.Contains($"{ObservationEncoder.Size + 1} inputs", Assert.Throws<PolicyError>(() => Policy.Load(wide)).Message);
    }

    /// <summary>A policy of an older <paramref name="encoder"/> (<paramref name="inputs"/> floats, <paramref name="actions"/>
    /// outputs) saved and read again, with today's observation after a vectorize, in which the old network read the
    /// vectorize one-hot at its old place.</summary>
    static (int[] At, IPolicyNetwork Old, Policy Upgraded, float[] X) Upgraded(TempFolder temp, string encoder, int inputs, int actions, int seed)
    {
        var at = ObservationEncoder.Positions(encoder)!;
        Assert.Equal(inputs, at.Length);
        Assert.Equal(at.Length, at.Distinct().Count());
        var old = Net.Create(new NetworkShape("dqn", at.Length, actions, [16, 16], "relu", true), new Random(seed));
        var path = temp[$"{seed}.safetensors"];
        SaveTile(path, old, encoder);
        var upgraded = Policy.Load(path);
        Assert.Equal(encoder, upgraded.Metadata["looptune.upgraded_from"]);
        var nest = Transforms.ApplyAll(Nest.Initial(Computation.Parse("mm 64 64 64")), Actions.ParseList("down,down,vectorize"));
        var x = ObservationEncoder.Encode(new Observation(nest, default, Actions.ParseList("down,down,vectorize")), 3, 10);
        Assert.Equal(1, x[at[Nest.MaxLoops * ObservationEncoder.OldLoopFeatures + Observations.StrideBuckets + Actions.Get("vectorize").Id]]);
        Assert.Equal(1, x[at[2 * ObservationEncoder.OldLoopFeatures + 5]]); // the third loop's vectorized flag
        return (at, old, upgraded, x);
    }

    [Fact]
    public void A_policy_from_before_the_pack_action_is_read_as_it_was()
    {
        using var temp = new TempFolder();
        var (at, old, upgraded, x) = Upgraded(temp, ObservationEncoder.V2, 357, ActionSpace.Tile.Count, 8);
        Assert.Equal(old.Scores(Net.Row([.. at.Select(i => x[i])])).Row(0).ToArray(), upgraded.Network.Scores(Net.Row(x)).Row(0).ToArray());
    }

    /// <summary>A v3 policy (before parallel: 23 features per loop, 18 actions, 290 tile ids) reads today's observation as
    /// it read its own, and keeps its scores of the old ids; parallel@i starts level with the mean.</summary>
    [Fact]
    public void A_policy_from_before_the_parallel_action_is_read_as_it_was()
    {
        using var temp = new TempFolder();
        int oldPer = ActionSpace.Tile.PerLoop - 1, oldCount = Nest.MaxLoops * oldPer;
        var (at, old, upgraded, x) = Upgraded(temp, ObservationEncoder.V3, 362, oldCount, 11);
        Assert.Equal($"{oldPer} per loop", upgraded.Metadata["looptune.upgraded_actions_from"]);
        var before = old.Scores(Net.Row([.. at.Select(i => x[i])])).Row(0).ToArray();
        var after = upgraded.Network.Scores(Net.Row(x)).Row(0).ToArray();
        int NewId(int oldId) => oldId / oldPer * ActionSpace.Tile.PerLoop + oldId % oldPer;
        for (int a = 1; a < oldCount; a++) Assert.Equal(before[a] - before[0], after[NewId(a)] - after[NewId(0)], 4);
        // the parallel flags, new inputs, weigh nothing
        x[Observations.LoopFeatures - 1] = 1;
        Assert.Equal(after, upgraded.Network.Scores(Net.Row(x)).Row(0).ToArray());
    }

    /// <summary>A cursor-space policy of 18 actions gets parallel as its 19th.</summary>
    [Fact]
    public void A_cursor_policy_from_before_the_parallel_action_keeps_its_actions()
    {
        using var temp = new TempFolder();
        var old = Net.Create(new NetworkShape("ppo", ObservationEncoder.Size, Actions.LearnedCount - 1, [8], "relu", true), new Random(12));
        var path = temp["cursor18.safetensors"];
        Policy.Save(path, old, 10, space: ActionSpace.Cursor);
        var widened = Policy.Load(path);
        Assert.Equal(Actions.LearnedCount, widened.Shape.Actions);
        Assert.Equal("18", widened.Metadata["looptune.upgraded_actions_from"]);
        var rng = new Random(13);
        var x = Enumerable.Range(0, ObservationEncoder.Size).Select(_ => (float)rng.NextDouble()).ToArray();
        var before = old.Scores(Net.Row(x)).Row(0).ToArray();
        var after = widened.Network.Scores(Net.Row(x)).Row(0).ToArray();
        for (int a = 1; a < before.Length; a++) Assert.Equal(before[a] - before[0], after[a] - after[0], 4);
    }

    [Theory]
    [InlineData("dqn")]
    [InlineData("ppo")]
    public void A_tile_policy_from_before_the_block_macros_keeps_its_ranking_of_the_old_edits(string kind)
    {
        using var temp = new TempFolder();
        int oldPer = ActionSpace.Tile.PerLoop - 3, oldCount = Nest.MaxLoops * oldPer;
        var old = Net.Create(new NetworkShape(kind, ObservationEncoder.Size, oldCount, [16, 16], "relu", true), new Random(5));
        // a trained policy's output biases differ from zero: give them some, so that the new edits' level is tested
        foreach (var p in old.Parameters.Where(p => p.Name.EndsWith("out.bias", StringComparison.Ordinal)))
            for (int i = 0; i < p.Value.Length; i++) p.Value[i] = i % 7 * 0.1f;
        var path = temp["tile25.safetensors"];
        SaveTile(path, old, ObservationEncoder.Name);
        var widened = Policy.Load(path);
        Assert.Equal(ActionSpace.Tile.Count, widened.Shape.Actions);
        Assert.Equal($"{oldPer} per loop", widened.Metadata["looptune.upgraded_actions_from"]);
        var rng = new Random(6);
        var x = Enumerable.Range(0, ObservationEncoder.Size).Select(_ => (float)rng.NextDouble()).ToArray();
        var before = old.Scores(Net.Row(x)).Row(0).ToArray();
        var after = widened.Network.Scores(Net.Row(x)).Row(0).ToArray();
        int NewId(int oldId) => oldId / oldPer * ActionSpace.Tile.PerLoop + oldId % oldPer;
        // the old edits keep their differences (the dueling mean and the softmax shift every score alike)
        for (int a = 1; a < oldCount; a++)
            Assert.Equal(before[a] - before[0], after[NewId(a)] - after[NewId(0)], 4);
        int block = ActionSpace.Tile.Parse("block_l2@3");
        Assert.InRange(after[block], after.Min(), after.Max());
    }

    [Theory]
    [InlineData(3)]
    [InlineData(9)]
    public void The_policy_guided_search_replays_through_the_environment_keeps_its_budget_and_never_loses_to_the_greedy_rollout(int seed)
    {
        var policy = TilePolicy(seed);
        var machine = new float[Observations.MachineFeatures];
        var start = Nest.Initial(Computation.Parse("mm 64 48 32"));
        var greedy = new PolicySearch(_ => policy, "test", 1, () => machine).Run(start, new FakeEvaluator(), SearchBudget.Seconds(30), 0, ActionSpace.Tile);
        var eval = new FakeEvaluator();
        var r = new PolicyGuidedSearch(_ => policy, "test", machine: () => machine, peak: () => 100).Run(start, eval, SearchBudget.Seconds(30, 40), 0, ActionSpace.Cursor);
        Assert.Equal("tile", r.Space); // the policy's own space
        Assert.InRange(r.Evaluations, greedy.Evaluations, 40);
        Assert.All(eval.Calls.Values, c => Assert.Equal(1, c));
        Assert.True(r.BestGflops >= greedy.BestGflops, $"{r.BestGflops} < the greedy rollout's {greedy.BestGflops}");
        var env = new LoopTuneEnv(new FakeEvaluator(), 100, policy.EpisodeLength, ActionSpace.Tile);
        env.Reset(start.Computation);
        foreach (int id in r.Ids) env.Step(id);
        Assert.Equal(r.Best.ScheduleKey, env.State.ScheduleKey);
        Assert.True(r.Ids.Length <= policy.EpisodeLength);
        Assert.Equal(FakeEvaluator.Hashed(r.Best), r.BestGflops);
    }

    [Fact]
    public void Comparison_summaries_count_only_verified_schedules()
    {
        ComparisonRow Row(string b, double best, bool verified) => new(b, "m", 1, best, best, 1, 1, 0.1, [], "s", [PeerResult.Measured("onednn", 10)], verified);
        var c = Comparison.FromRows([Row("a", 20, true), Row("b", 1000, false)], ["m"], ["a", "b"]);
        var s = c.Summary("m");
        Assert.Equal(1, s.Counted);
        Assert.Equal(20, s.GeomeanGflops, 9);
        Assert.Equal(2.0, s.GeomeanVsBestLibrary!.Value, 9);
        Assert.Equal(1.0, c.Summary(Comparison.BestLibrary).GeomeanVsBestLibrary!.Value, 9);
        Assert.Contains(",onednn,10,", ComparisonCsv.Write(c, "here").Split('\n')[1]);
    }

    sealed class Quiet : ITrainingObserver
    {
        public int Checkpoints { get; private set; }
        public void Started(string runFolder, ITrainer trainer, string? resumedFrom, IReadOnlyList<string> workers) { }
        public void Iteration(ITrainer trainer, IReadOnlyDictionary<string, double> values, double fractionDone) { }
        public void Checkpoint(string folder) => Checkpoints++;
        public void Evaluated(PolicyEvaluation result) { }
    }

    [Fact]
    public void Adapt_writes_the_policy_where_default_finds_it_and_resumes_where_it_stopped()
    {
        using var temp = new TempFolder();
        using var home = DataFolder.Use(temp["home"]);
        var init = temp["init.safetensors"];
        Policy.Save(init, TilePolicy(5).Network, 4, new Dictionary<string, string> { ["looptune.machines"] = "another-machine: an older one" }, ActionSpace.Tile);
        var dataset = temp["ds"];
        DatasetGenerator.Matmul("8:24:8,8:24:8", "8:24:8,8:24:8").Write(dataset, 0.8, 0);
        var set = new JsonObject { ["RolloutFragment"] = 5, ["LearningStarts"] = 8, ["BatchSize"] = 8, ["ActorsPerWorker"] = 1 };
        var request = new AdaptRequest([dataset], TimeSpan.FromSeconds(2), 1, false, Set: set, From: new Dictionary<string, string> { ["default"] = init },
            EvalSize: 2, EvalTime: TimeSpan.FromSeconds(0.5), EvalEvery: 0);
        ITrainingSite Site(TrainRequest q) => new LocalSite(q, WorkerPool.ChooseCores(1), _ => new FakeEvaluator());

        var first = Assert.Single(Adaptation.Run(request, _ => new Quiet(), default, Site));
        Assert.Equal(Policy.AdaptedPath("default"), first.PolicyFile);
        Assert.StartsWith(temp["home"], first.PolicyFile);
        var adapted = Policy.Load("default");
        Assert.Equal(first.PolicyFile, adapted.Source);
        Assert.Equal(first.PolicyFile, Policy.Choose("default", Computation.Parse("mm 16 16 16")));
        Assert.Equal(2, adapted.TrainedOn.Count); // the machine it came from, then this one
        Assert.StartsWith(Machine.Slug + ":", adapted.TrainedOn[1]);
        Assert.Equal(LoopTune.Jit.JitOptions.Default.VectorBits.ToString(System.Globalization.CultureInfo.InvariantCulture), adapted.Metadata["looptune.vector_bits"]);
        int Iterations() => (int)JsonNode.Parse(File.ReadAllText(Path.Combine(RunFolder.LatestCheckpoint(first.RunFolder)!, "state.json")))!["iterations"]!;
        int before = Iterations();

        // resumed with more time: the same run goes on from its checkpoint for the time it has left (3 s more than the first
        // run used, which on a loaded machine can pass its own 2 s: a fixed total of 4 s once left the resume none)
        double total = first.Seconds + 3;
        var second = Assert.Single(Adaptation.Run(request with { Time = TimeSpan.FromSeconds(total), Resume = true }, _ => new Quiet(), default, Site));
        Assert.True(Iterations() > before, $"{Iterations()} iterations after the resume, {before} before ({first.Seconds:F2} s used before it)");
        Assert.InRange(second.Seconds, total - 0.5, total + 30);
        Assert.True(File.Exists(second.PolicyFile));

        // and the command line's --policy default is the adapted policy
        var (code, stdout, err) = TestHome.Run("tune", "--spec", "mm 16 16 16", "--budget", "0", "--no-peers", "--quick", "--json");
        Assert.True(code == 0, err);
        Assert.Equal(first.PolicyFile, (string)JsonNode.Parse(stdout)!["policy"]!);
    }

    [Theory]
    [InlineData("--time", "0s")]
    [InlineData("--dataset", "no-such-dataset")]
    [InlineData("--vector-bits", "96")]
    [InlineData("--workers", "-1")]
    public void Adapt_refuses_bad_input_naming_it(string option, string value)
    {
        using var temp = new TempFolder();
        using var home = DataFolder.Use(temp.Path);
        var (code, _, err) = TestHome.Run("adapt", option, value);
        Assert.Equal(2, code);
        Assert.Contains(value.TrimEnd('s'), err);
        Assert.False(Directory.Exists(Path.Combine(temp.Path, "policies")));
    }
}
