using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Learning;
using LoopTune.Learning.Nn;
using LoopTune.Search;
using LoopTune.Tests.Search;
using LoopTune.Tests.Store;

using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>Policies: files that round-trip bit-exactly and refuse what they cannot be; rollouts and the policy search
/// that take only legal actions, replay to what they report, and keep to their budget.</summary>
public class PolicyTests
{
    static readonly NetworkShape Shape = new("dqn", ObservationEncoder.Size, Actions.LearnedCount, [32, 32], "relu", true);

    static Policy Random(int seed, string kind = "dqn") =>
        Policy.FromNetwork(Net.Create(Shape with { Kind = kind }, new Random(seed)), 8);

    [Theory]
    [InlineData("dqn")]
    [InlineData("ppo")]
    public void A_saved_policy_loads_with_the_same_scores_bit_for_bit(string kind)
    {
        using var dir = new TempFolder();
        var p = Random(1, kind);
        var path = Path.Combine(dir.Path, "p.safetensors");
        Policy.Save(path, p.Network, 8, new Dictionary<string, string> { ["looptune.dataset"] = "x" });
        var q = Policy.Load(path);
        Assert.Equal(8, q.EpisodeLength);
        Assert.Equal("x", q.Metadata["looptune.dataset"]);
        var nest = Nest.Initial(Computation.Parse("mm 64 32 16"));
        var x = ObservationEncoder.Encode(new Observation(nest, default, []), 0, 8);
        Assert.Equal(p.Network.Scores(Net.Row(x)).Data, q.Network.Scores(Net.Row(x)).Data);
    }

    [Fact]
    public void Files_that_are_not_policies_are_refused_by_name()
    {
        using var dir = new TempFolder();
        var garbage = Path.Combine(dir.Path, "garbage.safetensors");
        File.WriteAllBytes(garbage, [1, 2, 3]);
        Assert.Contains("garbage.safetensors", Assert.Throws<PolicyError>(() => Policy.Load(garbage)).Message);
        var plain = Path.Combine(dir.Path, "plain.safetensors");
        SafeTensors.Save(plain, [new NamedTensor("w", [2], [1f, 2f])]);
        Assert.Contains("not a LoopTune policy", Assert.Throws<PolicyError>(() => Policy.Load(plain)).Message);
        Assert.Contains("does not exist", Assert.Throws<PolicyError>(() => Policy.Load(Path.Combine(dir.Path, "none"))).Message);
        Assert.Contains("holds no policy", Assert.Throws<PolicyError>(() => Policy.Load(dir.Path)).Message);
    }

    [Fact]
    public void A_policy_of_another_shape_is_refused_naming_the_tensor()
    {
        using var dir = new TempFolder();
        var path = Path.Combine(dir.Path, "p.safetensors");
        Policy.Save(path, Random(2).Network, 8);
        var (tensors, meta) = SafeTensors.Load(path);
        var changed = tensors.Select((t, i) => i == 0 ? t with { Shape = [t.Shape[1], t.Shape[0]] } : t).ToList();
        SafeTensors.Save(path, changed, meta);
        var e = Assert.Throws<PolicyError>(() => Policy.Load(path));
        Assert.Contains(tensors[0].Name, e.Message);
    }

    [Fact]
    public void A_greedy_rollout_takes_legal_actions_and_times_each_new_kernel_once()
    {
        var mm = Computation.Parse("mm 48 40 24");
        var eval = new FakeEvaluator();
        var r = Rollout.Greedy(Random(3), mm, eval, 12);
        Assert.Equal(12, r.Actions.Count);
        var replay = Transforms.ApplyAll(Nest.Initial(mm), r.Actions);
        Assert.Equal(r.Final.Serialize(), replay.Serialize());
        int changes = 0;
        var n = Nest.Initial(mm);
        foreach (var a in r.Actions)
        {
            var next = Transforms.Apply(n, a);
            if (next.ScheduleKey != n.ScheduleKey) changes++;
            n = next;
        }
        Assert.Equal(changes + 1, r.Measured);
        Assert.Equal(r.Measured, eval.Total); // the evaluator was asked exactly for the start and each changed kernel
        Assert.Equal(FakeEvaluator.Hashed(r.Best), r.BestGflops);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void The_policy_search_replays_to_its_best_and_keeps_to_its_evaluation_budget(int topK)
    {
        var start = Nest.Initial(Computation.Parse("mm 64 64 32"));
        var eval = new FakeEvaluator();
        var s = new PolicySearch(Random(4), topK);
        var r = s.Run(start, eval, new SearchBudget(TimeSpan.FromSeconds(30), 25), 0);
        Assert.Equal(r.Best.ScheduleKey, Transforms.ApplyAll(start, r.Actions).ScheduleKey);
        Assert.Equal(FakeEvaluator.Hashed(r.Best), r.BestGflops);
        Assert.True(r.Evaluations <= 25);
        Assert.All(eval.Calls.Values, c => Assert.Equal(1, c));
        if (topK > 1) Assert.Equal(25, r.Evaluations); // the branches use the whole budget
        Assert.Equal(topK > 1 ? "policy_top4" : "policy", s.Name);
    }
}

/// <summary>The loop action space against the seed's rules: every legal id is a legal walk plus one kernel change.</summary>
public class ActionSpaceTests
{
    [Fact]
    public void Every_legal_loop_id_is_a_legal_walk_and_one_kernel_change_and_every_other_id_is_refused()
    {
        var rng = new Random(5);
        foreach (var spec in new[] { "mm 64 48 32", "conv 8 10 10 16 3 3" })
        {
            var nest = Nest.Initial(Computation.Parse(spec));
            for (int step = 0; step < 8; step++)
            {
                var mask = ActionSpace.Loop.Mask(nest);
                int seed = Moves.KernelActions.Length - 2; // the seed's kernel actions; pack and parallel are the last edits of a loop
                Assert.Equal(Nest.MaxLoops * (seed + 4), mask.Length);
                for (int id = 0; id < mask.Length; id++)
                {
                    if (!mask[id])
                    {
                        Assert.Throws<InvalidOperationException>(() => ActionSpace.Loop.Apply(nest, id));
                        Assert.Null(ActionSpace.Loop.TryApply(nest, id));
                        continue;
                    }
                    var (actions, result) = ActionSpace.Loop.Apply(nest, id);
                    Assert.Equal(result.ScheduleKey, Transforms.ApplyAll(nest, actions).ScheduleKey); // legal, else ApplyAll throws
                    Assert.NotEqual(nest.ScheduleKey, result.ScheduleKey);
                    int per = seed + 4, k = id % per;
                    Assert.NotEqual(per - 1, k); // parallel: never at one thread
                    var walked = Transforms.ApplyAll(nest, actions.TakeWhile(a => a.Kind is ActionKind.Up or ActionKind.Down));
                    Assert.Equal(id / per, walked.Cursor); // the edit happens at the loop the id names
                    if (k == per - 2) Assert.Equal("pack", actions[^1].Name);
                    else if (k >= seed)
                    {
                        // sink / hoist: repeated swaps of that loop, as far as the rules allow
                        var swap = Actions.Get(k == seed ? "swap_down" : "swap_up");
                        Assert.All(actions.SkipWhile(a => a.Kind is ActionKind.Up or ActionKind.Down), a => Assert.Equal(swap, a));
                        Assert.False(Transforms.IsLegal(result, swap));
                    }
                }
                var legal = Enumerable.Range(0, mask.Length).Where(i => mask[i]).ToList();
                if (legal.Count == 0) break;
                nest = ActionSpace.Loop.Apply(nest, legal[rng.Next(legal.Count)]).Result;
            }
        }
    }

    [Fact]
    public void Every_legal_tile_id_is_a_legal_sequence_of_the_seeds_actions_and_changes_the_kernel()
    {
        var rng = new Random(9);
        var space = ActionSpace.Tile;
        foreach (var spec in new[] { "mm 64 48 32", "conv 8 10 10 16 3 3" })
        {
            var nest = Nest.Initial(Computation.Parse(spec));
            for (int step = 0; step < 6; step++)
            {
                var mask = space.Mask(nest);
                Assert.Equal(Nest.MaxLoops * (Moves.KernelActions.Length + 2 + 8 + 3), mask.Length); // the seed's 15, sink, hoist, 8 tile, 3 block, pack
                for (int id = 0; id < mask.Length; id++)
                {
                    if (!mask[id])
                    {
                        Assert.Throws<InvalidOperationException>(() => space.Apply(nest, id));
                        continue;
                    }
                    var (actions, result) = space.Apply(nest, id);
                    Assert.Equal(result.ScheduleKey, Transforms.ApplyAll(nest, actions).ScheduleKey);
                    Assert.NotEqual(nest.ScheduleKey, result.ScheduleKey);
                    string name = space.Describe(id);
                    if (name.StartsWith("tile_vec", StringComparison.Ordinal) || name.StartsWith("sink_vec", StringComparison.Ordinal))
                        Assert.Equal("vectorize", actions[^1].Name); // a vectorize is only legal innermost
                    if (name.StartsWith("tile_", StringComparison.Ordinal))
                        Assert.Equal(nest.Count + 1, result.Count); // one split
                    if (name.StartsWith("sink_", StringComparison.Ordinal)) // the sunk loop ends annotated, even if it was already
                        Assert.Equal(name.StartsWith("sink_vec", StringComparison.Ordinal) ? Annotation.Vectorize : Annotation.Unroll, result[result.Cursor].Annotation);
                }
                var legal = Enumerable.Range(0, mask.Length).Where(i => mask[i]).ToList();
                if (legal.Count == 0) break;
                nest = space.Apply(nest, legal[rng.Next(legal.Count)]).Result;
            }
        }
    }

    [Fact]
    public void Sink_unroll_keeps_the_unroll_of_a_loop_that_has_one()
    {
        var space = ActionSpace.Tile;
        var nest = Nest.Parse(Computation.Parse("mm 64 64 64"), ">m:16 m:4u n:64 k:64");
        var (actions, result) = space.Apply(nest, space.Parse("sink_unroll@1"));
        Assert.Equal("m:16 n:64 k:64 m:4u", result.ScheduleKey);
        Assert.Equal(["down", "swap_down", "swap_down"], actions.Select(a => a.Name));
        Assert.False(space.Mask(result)[space.Parse("sink_unroll@3")]); // nothing left to do: no id
    }

    [Fact]
    public void Three_tile_macros_build_a_convolutions_register_tile()
    {
        // the hand schedule h:32 f:8 c:16 r:3 s:3 f:4u w:2u w:16v (97 % of the peak) up to the order of two loops
        var space = ActionSpace.Tile;
        var nest = Nest.Initial(Computation.Parse("conv 16 34 34 32 3 3"));
        var path = new List<LoopAction>();
        foreach (var edit in new[] { "tile_vec_16@2", "sink_unroll@2", "tile_unroll_4@0" })
        {
            int id = Enumerable.Range(0, space.Count).Single(i => space.Describe(i) == edit);
            Assert.True(space.Mask(nest)[id], $"{edit} in {nest.Serialize()}");
            (var actions, nest) = space.Apply(nest, id);
            path.AddRange(actions);
        }
        Assert.Equal("f:8 h:32 c:16 r:3 s:3 w:2u f:4u w:16v", nest.ScheduleKey);
        Assert.Equal(nest.ScheduleKey, Transforms.ApplyAll(Nest.Initial(Computation.Parse("conv 16 34 34 32 3 3")), path).ScheduleKey);
    }
}
