using System.Text.Json.Nodes;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Learning;
using LoopTune.Search;
using LoopTune.Tests.Search;

using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>The learners against environments whose optimum is known: each must find it within a test-sized budget,
/// never choose an illegal action, and improve a loop-nest task (with a fast deterministic evaluator) over its start.</summary>
[Trait("Category", "Integration")]
public class LearnerTests
{
    static readonly ApexDqnConfig SmallDqn = new()
    {
        Hidden = [32, 32], LearningRate = 1e-3, LearningStarts = 200, BatchSize = 32, RolloutFragment = 10,
        ActorsPerWorker = 4, UpdatesPerStep = 0.5, TargetUpdatePeriod = 50, ReplayCapacity = 5_000,
    };

    static readonly PpoConfig SmallPpo = new()
    {
        Hidden = [32, 32], LearningRate = 3e-3, RolloutSteps = 32, ActorsPerWorker = 4, Minibatches = 4, Epochs = 4, EntropyCoef = 0.01,
    };

    static (ITrainer, List<KeyChainEnv>, WorkerPool) Make(string trainer, int seed)
    {
        var envs = new List<KeyChainEnv>();
        var pool = new WorkerPool(WorkerPool.ChooseCores(1));
        IRlEnv Env(int w, int a)
        {
            var e = new KeyChainEnv();
            envs.Add(e);
            return e;
        }
        ITrainer t = trainer == "apex_dqn" ? new ApexDqn(SmallDqn, pool, Env, seed) : new Ppo(SmallPpo, pool, Env, seed);
        return (t, envs, pool);
    }

    [Theory]
    [InlineData("apex_dqn")]
    [InlineData("ppo")]
    public void Finds_the_optimum_behind_a_trap_and_never_picks_an_illegal_action(string name)
    {
        var (trainer, envs, pool) = Make(name, seed: 1);
        using var _ = pool;
        using var __ = trainer;
        var probe = new KeyChainEnv();
        var policy = Policy.FromNetwork(trainer.Policy, probe.Length);
        double before = probe.GreedyReturn(policy);
        for (int i = 0; i < 300 && probe.GreedyReturn(policy) < 1; i++) trainer.Iterate();
        Assert.True(before < 1, $"the untrained policy already had the optimum ({before}): the test would prove nothing");
        Assert.Equal(1.0, probe.GreedyReturn(policy), 6);
        Assert.All(envs, e => Assert.Equal(0, e.IllegalChosen));
        Assert.Equal(0, probe.IllegalChosen);
    }

    [Theory]
    [InlineData("apex_dqn")]
    [InlineData("ppo")]
    public void The_same_seed_gives_the_same_weights(string name)
    {
        float[] Train(int seed)
        {
            var (trainer, _, pool) = Make(name, seed);
            using var _ = pool;
            using var __ = trainer;
            for (int i = 0; i < 30; i++) trainer.Iterate();
            return [.. trainer.Policy.Parameters.SelectMany(p => p.Value)];
        }
        Assert.Equal(Train(3), Train(3));
        Assert.NotEqual(Train(3), Train(4));
    }

    [Theory]
    [InlineData("apex_dqn")]
    [InlineData("ppo")]
    public void A_restored_trainer_has_the_saved_state_and_ppo_continues_exactly(string name)
    {
        var (a, _, poolA) = Make(name, 5);
        var (b, _, poolB) = Make(name, 99);
        using var _ = poolA;
        using var __ = poolB;
        using var ___ = a;
        using var ____ = b;
        for (int i = 0; i < 40; i++) a.Iterate();
        static JsonObject Copy(JsonObject o) => JsonNode.Parse(o.ToJsonString())!.AsObject();
        b.Restore(a.Tensors(), Copy(a.State()));
        Assert.Equal(a.State().ToJsonString(), b.State().ToJsonString());
        Assert.Equal(a.Tensors().Select(t => (t.Name, t.Data)), b.Tensors().Select(t => (t.Name, t.Data)));
        if (name != "ppo") return; // DQN's replay is not part of a checkpoint: a resumed run refills it
        // a restore starts new episodes; do the same to the original, then both must agree iteration for iteration
        a.Restore(a.Tensors(), Copy(a.State()));
        for (int i = 0; i < 10; i++)
        {
            a.Iterate();
            b.Iterate();
        }
        Assert.Equal(a.Policy.Parameters.SelectMany(p => p.Value), b.Policy.Parameters.SelectMany(p => p.Value));
    }

    [Theory]
    [InlineData("apex_dqn", "cursor")]
    [InlineData("ppo", "cursor")]
    [InlineData("apex_dqn", "loop")]
    [InlineData("ppo", "loop")]
    public void Improves_a_loop_nest_task_over_its_start(string name, string actions)
    {
        // a fast deterministic evaluator with structure: vectorizing the innermost loop pays when it is unit-stride
        // in the output, unrolling a small loop right above it pays a little more
        var mm = Computation.Parse("mm 64 64 64");
        var evaluator = new FakeEvaluator(Model);
        var pool = new WorkerPool(WorkerPool.ChooseCores(1));
        using var _ = pool;
        var space = ActionSpace.Get(actions);
        // a fixed machine_tensor: this machine's is partly measured (the FMA latency), so a fresh data folder, as CI's,
        // gave the learner slightly different inputs on each run, and one run in many did not find the optimum in time
        float[] machine = [.. Enumerable.Repeat(0.5f, LoopTune.Env.Observations.MachineFeatures)];
        IRlEnv Env(int w, int a) => new LoopTuneTask(evaluator, 100, [mm], 6, space, machine);
        using ITrainer trainer = name == "apex_dqn"
            ? new ApexDqn(SmallDqn with { Hidden = [64, 64] }, pool, Env, 2)
            : new Ppo(SmallPpo with { Hidden = [64, 64], RolloutSteps = 24 }, pool, Env, 2);
        var policy = Policy.FromNetwork(trainer.Policy, 6, space);
        double start = Model(Nest.Initial(mm));
        for (int i = 0; i < 800; i++)
        {
            trainer.Iterate();
            if (i % 20 == 19 && Model(Rollout.Greedy(policy, mm, evaluator, machine: machine).Final) >= 40) break;
        }
        var final = Rollout.Greedy(policy, mm, evaluator, machine: machine).Final;
        Assert.True(Model(final) >= 40, $"{name}: the greedy rollout ends at {Model(final)} GFLOPS ({final.Serialize()}); start {start}, vectorized unit-stride innermost gives 40");
    }

    /// <summary>At two threads the learned spaces offer parallel; a learner finds the loop where it pays most (here, by
    /// construction, the one over n: 30 GFLOPS, over m, the outermost: 14, none: 10), which the untrained policy does not
    /// take.</summary>
    [Theory]
    [InlineData("apex_dqn")]
    [InlineData("ppo")]
    public void Learns_which_loop_to_make_parallel_at_two_threads(string name)
    {
        if (LoopTune.Affinity.ProcessCores().Count < 2) return;
        LoopTune.Jit.RunThreads.Use(2);
        try
        {
            var mm = Computation.Parse("mm 64 48 32");
            static double Speed(Nest n) => n.ParallelLoop < 0 ? 10 : n.Computation.Vars[n[n.ParallelLoop].Var] == "n" ? 30 : 14;
            var evaluator = new FakeEvaluator(Speed);
            var space = ActionSpace.Loop;
            float[] machine = [.. Enumerable.Repeat(0.5f, LoopTune.Env.Observations.MachineFeatures)];
            using var pool = new WorkerPool(WorkerPool.ChooseCores(1)); // made at two threads: its workers' masks offer parallel
            IRlEnv Env(int w, int a) => new LoopTuneTask(evaluator, 100, [mm], 3, space, machine);
            using ITrainer trainer = name == "apex_dqn" ? new ApexDqn(SmallDqn, pool, Env, 5) : new Ppo(SmallPpo, pool, Env, 5);
            var policy = Policy.FromNetwork(trainer.Policy, 3, space);
            double Greedy() => Speed(Rollout.Greedy(policy, mm, evaluator, machine: machine).Final);
            double before = Greedy();
            Assert.True(before < 30, $"the untrained policy already made n parallel ({before}): the test would prove nothing");
            for (int i = 0; i < 400 && Greedy() < 30; i++) trainer.Iterate();
            var final = Rollout.Greedy(policy, mm, evaluator, machine: machine).Final;
            Assert.True(Speed(final) == 30, $"{name}: the greedy rollout ends at {final.Serialize()} ({Speed(final)}); n parallel gives 30");
        }
        finally { LoopTune.Jit.RunThreads.Use(1); }
    }

    static double Model(Nest n)
    {
        var c = n.Computation;
        var inner = n[n.Count - 1];
        bool unitStride = c.Tensors[0].VarStrides[inner.Var] == 1 && n.InnerStep(n.Count - 1) == 1;
        double g = 2;
        if (inner.IsVectorized && unitStride) g = 40;
        if (g == 40 && n.Count >= 2 && n[n.Count - 2].IsUnrolled && n[n.Count - 2].Size <= 8) g = 60;
        return g;
    }

    [Fact]
    public void Ape_x_epsilons_fall_geometrically_from_the_base()
    {
        var c = new ApexDqnConfig();
        Assert.Equal(0.4, c.Epsilon(0, 8), 12);
        Assert.Equal(Math.Pow(0.4, 8), c.Epsilon(7, 8), 12);
        Assert.Equal(0.4, c.Epsilon(0, 1), 12);
    }

    [Fact]
    public void Prioritized_replay_draws_in_proportion_to_priority_and_weights_by_importance()
    {
        var replay = new PrioritizedReplay(4, alpha: 1);
        var t = new Transition([0f], 0, 0, [0f], [true], 0);
        replay.Add(t, 1);
        replay.Add(t, 3);
        var rng = new Rng(7);
        var counts = new int[2];
        float w0 = 0, w1 = 0;
        for (int i = 0; i < 4000; i++)
        {
            var (idx, w) = replay.Sample(1, 1.0, rng);
            counts[idx[0]]++;
            if (idx[0] == 0) w0 = w[0]; else w1 = w[0];
        }
        Assert.InRange(counts[1] / 4000.0, 0.72, 0.78);
        // beta 1: weights are 1 / (N P), normalised by the largest: P = 1/4 and 3/4 -> 2 and 2/3 -> 1 and 1/3
        Assert.Equal(1f, w0, 5);
        Assert.Equal(1f / 3, w1, 5);
    }
}
