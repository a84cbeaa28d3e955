using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Tests.Env;

/// <summary>A deterministic stand-in for timing: a fixed pseudo-random speed per (computation, schedule).</summary>
sealed class HashEvaluator : IEvaluator
{
    public int Calls { get; private set; }

    public Evaluated Evaluate(Nest nest)
    {
        Calls++;
        ulong h = 14695981039346656037;
        foreach (char ch in nest.Computation.Text + "|" + nest.ScheduleKey) h = (h ^ ch) * 1099511628211;
        double gflops = 1 + h % 10_000 / 100.0;
        return new Evaluated(gflops, nest.Computation.Flops / gflops / 1e9, false);
    }
}

public sealed class EnvTests
{
    static readonly Computation[] Benchmarks =
        [Computation.Matmul(64, 80, 96), Computation.Matmul(17, 33, 5), Computation.Conv(3, 9, 10, 4, 3, 2), Computation.Matmul(1, 1, 1)];

    static List<(string Ir, string Tree, float[] Loops, float[] Strides, float[] Prev, double Reward)> Rollout(int seed, int length)
    {
        var env = new LoopTuneEnv(new HashEvaluator(), 100, length);
        var (obs, info) = env.Reset(Benchmarks, seed);
        var rng = new Random(seed);
        var trace = new List<(string, string, float[], float[], float[], double)> { (obs.Ir, obs.LoopTree, obs.LoopsTensor, obs.StrideTensor, obs.PrevActionsTensor, 0) };
        for (bool done = false; !done;)
        {
            var legal = Enumerable.Range(0, Actions.LearnedCount).Where(i => info.ActionMask[i]).ToArray();
            var r = env.Step(legal[rng.Next(legal.Length)]);
            (obs, info, done) = (r.Observation, r.Info, r.Truncated);
            trace.Add((obs.Ir, obs.LoopTree, obs.LoopsTensor, obs.StrideTensor, obs.PrevActionsTensor, r.Reward));
        }
        return trace;
    }

    [Fact]
    public void SameSeedAndActionsGiveTheSameObservations()
    {
        for (int seed = 0; seed < 20; seed++)
        {
            var a = Rollout(seed, 12);
            var b = Rollout(seed, 12);
            Assert.Equal(a.Count, b.Count);
            for (int i = 0; i < a.Count; i++)
            {
                Assert.Equal(a[i].Ir, b[i].Ir);
                Assert.Equal(a[i].Tree, b[i].Tree);
                Assert.Equal(a[i].Loops, b[i].Loops);
                Assert.Equal(a[i].Strides, b[i].Strides);
                Assert.Equal(a[i].Prev, b[i].Prev);
                Assert.Equal(a[i].Reward, b[i].Reward);
            }
        }
    }

    [Fact]
    public void MaskAgreesWithTheRulesInEveryReachedState()
    {
        var rng = new Random(3);
        for (int episode = 0; episode < 60; episode++)
        {
            var env = new LoopTuneEnv(new HashEvaluator(), 100, 25);
            env.Reset(Benchmarks[episode % Benchmarks.Length]);
            for (int step = 0; step < 25; step++)
            {
                var mask = env.ActionMask();
                var before = env.State;
                for (int a = 0; a < Actions.LearnedCount; a++)
                {
                    if (mask[a]) continue;
                    Assert.ThrowsAny<ScheduleError>(() => env.Step(a));
                    Assert.Equal(before, env.State); // an illegal step changes nothing
                }
                var legal = Enumerable.Range(0, Actions.LearnedCount).Where(i => mask[i]).ToArray();
                Assert.NotEmpty(legal);
                env.Step(legal[rng.Next(legal.Length)]);
            }
        }
    }

    [Fact]
    public void RewardIsTheSpeedChangeOverThePeak()
    {
        var evaluator = new HashEvaluator();
        var env = new LoopTuneEnv(evaluator, 50);
        var (_, info) = env.Reset(Computation.Matmul(64, 64, 64));
        var before = info.Gflops;
        var r = env.Step("split_8");
        Assert.Equal((r.Info.Gflops - before) / 50, r.Reward, 12);
        Assert.Equal(evaluator.Evaluate(env.State).Gflops, r.Info.Gflops);
        var move = env.Step("down");
        Assert.Equal(0, move.Reward);
        Assert.True(move.Info.Recalled);
    }

    [Fact]
    public void EpisodeTruncatesAtItsLength()
    {
        var env = new LoopTuneEnv(new HashEvaluator(), 100, 3);
        env.Reset(Computation.Matmul(8, 8, 8));
        Assert.False(env.Step("down").Truncated);
        Assert.False(env.Step("up").Truncated);
        var last = env.Step("down");
        Assert.True(last.Truncated);
        Assert.False(last.Terminated);
        Assert.Throws<InvalidOperationException>(() => env.Step("up"));
    }

    [Fact]
    public void ObservationsHaveTheirDocumentedShapeAndRange()
    {
        var rng = new Random(11);
        for (int episode = 0; episode < 40; episode++)
        {
            var env = new LoopTuneEnv(new HashEvaluator(), 100, 20);
            var (obs, info) = env.Reset(Benchmarks[episode % Benchmarks.Length]);
            for (int step = 0; ; step++)
            {
                Check(obs, env.History);
                if (step == 20) break;
                var legal = Enumerable.Range(0, Actions.LearnedCount).Where(i => info.ActionMask[i]).ToArray();
                var r = env.Step(legal[rng.Next(legal.Length)]);
                (obs, info) = (r.Observation, r.Info);
            }
        }
    }

    static void Check(Observation obs, IReadOnlyList<LoopAction> history)
    {
        var nest = obs.Nest;
        Assert.True(obs.Runtime > 0 && obs.Flops > 0);
        Assert.Equal(nest, Nest.Parse(nest.Computation, obs.Ir));
        Assert.Contains("<- cursor", obs.LoopTree);

        var loops = obs.LoopsTensor;
        Assert.Equal(Nest.MaxLoops * Observations.LoopFeatures, loops.Length);
        Assert.All(loops, x => Assert.InRange(x, 0f, 1f));
        for (int i = 0; i < Nest.MaxLoops; i++)
        {
            var row = loops.AsSpan(i * Observations.LoopFeatures, Observations.LoopFeatures).ToArray();
            if (i >= nest.Count) { Assert.All(row, x => Assert.Equal(0f, x)); continue; }
            Assert.Equal(i == nest.Cursor ? 1f : 0f, row[0]);
            Assert.Equal(1f, row[7..].Sum(), 4);
        }
        Assert.Equal(1, loops.Where((x, j) => j % Observations.LoopFeatures == 0).Sum());

        var strides = obs.StrideTensor;
        Assert.Equal(Observations.StrideBuckets, strides.Length);
        Assert.All(strides, x => Assert.InRange(x, 0f, 1f));
        Assert.Equal(1f, strides.Sum(), 4);

        var prev = obs.PrevActionsTensor;
        Assert.Equal(Observations.PreviousActions * Actions.LearnedCount, prev.Length);
        for (int r = 0; r < Observations.PreviousActions; r++)
        {
            var row = prev.AsSpan(r * Actions.LearnedCount, Actions.LearnedCount).ToArray();
            if (r < history.Count) Assert.Equal(1f, row[history[^(r + 1)].Id]);
            Assert.Equal(r < history.Count ? 1f : 0f, row.Sum());
        }

        var tree = obs.IrTree;
        Assert.Equal(nest.Count + 1, tree.Nodes.Count);
        Assert.Equal(nest.Count, tree.Edges.Count);
        var graph = obs.IrGraph;
        Assert.Equal(nest.Count + 6, graph.Nodes.Count);
        Assert.All(graph.Edges.Where(e => e.Kind == "steps"), e => Assert.True((long)e.Features["stride"] != 0));
        foreach (var g in new[] { tree, graph })
        {
            var dot = g.ToDot();
            Assert.StartsWith("digraph", dot);
            Assert.All(g.Nodes, n => Assert.Contains($"  {n.Id} [", dot));
            Assert.Equal(g.Edges.Count, dot.Split("->").Length - 1);
        }
        Assert.All(Observation.Names, name => Assert.NotNull(obs.Get(name)));
    }

    [Fact]
    public void UnknownObservationAndActionAreErrors()
    {
        var env = new LoopTuneEnv(new HashEvaluator(), 100);
        var (obs, _) = env.Reset(Computation.Matmul(4, 4, 4));
        Assert.Throws<LoopTuneException>(() => obs.Get("pixels"));
        Assert.Throws<UnknownActionError>(() => env.Step("jump"));
        Assert.Throws<ArgumentOutOfRangeException>(() => env.Step(Actions.LearnedCount));
    }

    [Fact]
    public void RealEvaluatorRecallsRepeatedStates()
    {
        var env = new LoopTuneEnv(new KernelEvaluator(), 100);
        env.Reset(Computation.Matmul(16, 16, 16));
        var split = env.Step("split_4");
        Assert.False(split.Info.Recalled);
        env.Step("down");
        env.Step("merge");
        var again = env.Step("split_4");
        Assert.True(again.Info.Recalled);
        Assert.Equal(split.Info.Gflops, again.Info.Gflops);
        Assert.Equal(split.Observation.Ir, again.Observation.Ir);
    }

    [Fact]
    public void StoreAnswersARepeatedStateInALaterEvaluator()
    {
        var db = Path.Combine(Path.GetTempPath(), $"looptune-env-{Guid.NewGuid():N}.db");
        try
        {
            var nest = Transforms.ApplyAll(Nest.Initial(Computation.Matmul(24, 40, 8)), Actions.ParseList("down,down,vectorize"));
            Evaluated first;
            using (var a = Evaluators.Default(db)) first = a.Evaluate(nest);
            Assert.False(first.Recalled);
            using var b = Evaluators.Default(db);
            var again = b.Evaluate(Transforms.Apply(nest, Actions.Get("up"))); // the cursor is not part of the key
            Assert.True(again.Recalled);
            Assert.Equal(first.Gflops, again.Gflops, 9);
        }
        finally
        {
            foreach (var f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(db) + "*")) File.Delete(f);
        }
    }

    [Fact]
    public void KernelEvaluator_Fastest_picks_a_register_tile_over_the_plain_loops_whatever_its_place()
    {
        // the vectorized 4 x 32 tile runs tens of times faster than the unscheduled nest: a margin no noise closes
        var c = Computation.Matmul(64, 64, 64);
        var plain = Nest.Initial(c);
        var tile = Transforms.ApplyAll(plain, Actions.ParseList("split_4,down,swap_down,swap_down,unroll,up,up,split_32,down,swap_down,swap_down,split_16,unroll,down,vectorize"));
        using var evaluator = new KernelEvaluator();
        Assert.Equal(1, evaluator.Fastest([plain, tile]));
        Assert.Equal(0, evaluator.Fastest([tile, plain, plain]));
        Assert.Equal(0, evaluator.Fastest([plain]));
        Assert.Throws<ArgumentException>(() => evaluator.Fastest([plain, Nest.Initial(Computation.Matmul(8, 8, 8))]));
        Assert.Throws<ArgumentOutOfRangeException>(() => evaluator.Fastest([]));
    }
}
