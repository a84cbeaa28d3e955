using System.Diagnostics;
using System.Text.Json.Nodes;
using LoopTune.Learning.Nn;

namespace LoopTune.Learning;

/// <summary>Hyperparameters of <see cref="ApexDqn"/>. Defaults follow Ape-X (Horgan et al. 2018) where it applies, scaled
/// down for a few cores (the original LoopTune trained with RLlib's APEX-DQN defaults on 39 workers; docs/design.md).</summary>
public sealed record ApexDqnConfig : ITrainerConfig
{
    /// <summary>Hidden layer widths of the dueling Q-network.</summary>
    public int[] Hidden { get; init; } = [256, 256];
    /// <summary>Hidden activation: "relu" or "tanh".</summary>
    public string Activation { get; init; } = "relu";
    /// <summary>A layer norm after each hidden layer.</summary>
    public bool LayerNorm { get; init; } = true;
    /// <summary>Adam's step size.</summary>
    public double LearningRate { get; init; } = 2.5e-4;
    /// <summary>Adam's epsilon.</summary>
    public double AdamEpsilon { get; init; } = 1.5e-4;
    /// <summary>Gradients are clipped to this global L2 norm (RLlib's Ape-X: 40).</summary>
    public double MaxGradNorm { get; init; } = 10;
    /// <summary>Discount factor.</summary>
    public double Gamma { get; init; } = 0.99;
    /// <summary>n of the n-step returns (Ape-X: 3).</summary>
    public int NStep { get; init; } = 3;
    /// <summary>Transitions per learner update (Ape-X: 512, on a GPU).</summary>
    public int BatchSize { get; init; } = 64;
    /// <summary>Replay capacity in transitions; the oldest is evicted when full.</summary>
    public int ReplayCapacity { get; init; } = 100_000;
    /// <summary>Priority exponent alpha (Ape-X: 0.6).</summary>
    public double PriorityAlpha { get; init; } = 0.6;
    /// <summary>Importance-sampling exponent beta (Ape-X: 0.4).</summary>
    public double PriorityBeta { get; init; } = 0.4;
    /// <summary>Added to |TD error| so that no priority is 0.</summary>
    public double PriorityEpsilon { get; init; } = 1e-3;
    /// <summary>Transitions in the replay before the learner starts updating.</summary>
    public int LearningStarts { get; init; } = 1_000;
    /// <summary>Environment steps each actor takes per iteration (RLlib's rollout_fragment_length).</summary>
    public int RolloutFragment { get; init; } = 20;
    /// <summary>Actors per worker: each its own episode and epsilon; a worker steps its actors in turn on its core.</summary>
    public int ActorsPerWorker { get; init; } = 4;
    /// <summary>Learner updates per environment step collected (replay ratio = this x batch size).</summary>
    public double UpdatesPerStep { get; init; } = 0.25;
    /// <summary>Learner updates between copies of the online network into the target network.</summary>
    public int TargetUpdatePeriod { get; init; } = 500;
    /// <summary>Iterations between weights pushed from the learner to the actors.</summary>
    public int WeightSyncPeriod { get; init; } = 1;
    /// <summary>Ape-X's actor exploration: actor i of N uses epsilon = EpsilonBase^(1 + EpsilonAlpha i / (N - 1)).</summary>
    public double EpsilonBase { get; init; } = 0.4;
    /// <summary>See <see cref="EpsilonBase"/> (Ape-X: 7).</summary>
    public double EpsilonAlpha { get; init; } = 7;
    /// <summary>Huber loss threshold.</summary>
    public double HuberDelta { get; init; } = 1;
    /// <summary>The sgemm of the learner's batches (<see cref="NetworkGemm"/>): "auto" (oneDNN, else OpenBLAS, else the
    /// managed GEMM), "managed", "onednn", "openblas", or "onednn_bf16" (oneDNN's products of factors rounded to bfloat16,
    /// summed in float32: about twice the products a second where the CPU multiplies bfloat16, refused where it does not;
    /// not chosen by "auto"). Actors act on one state at a time, always on the managed GEMM.</summary>
    public string Gemm { get; init; } = "auto";
    /// <summary>Ape-X's asynchronous learner: it updates continuously on its own thread while the actors act on their
    /// workers, taking their experience through a bounded queue and publishing weights every <see cref="PublishPeriod"/>
    /// updates. False: phased (the actors collect a round, then the learner updates while they idle).</summary>
    public bool Asynchronous { get; init; }
    /// <summary>Asynchronous: learner updates between two publications of its weights to the actors.</summary>
    public int PublishPeriod { get; init; } = 25;
    /// <summary>Asynchronous: experience batches (one worker's fragment each) the queue holds before an actor waits.</summary>
    public int QueueCapacity { get; init; } = 4;
    /// <summary>Asynchronous: environment steps the learner absorbs in one iteration (a row of the curves; evaluations and
    /// checkpoints come between iterations, the actors acting on meanwhile; a checkpoint stops them until the next).</summary>
    public int AsyncIterationSteps { get; init; } = 640;

    /// <summary>Ape-X's epsilon for actor <paramref name="i"/> of <paramref name="n"/>.</summary>
    public double Epsilon(int i, int n) => Math.Pow(EpsilonBase, 1 + (n > 1 ? EpsilonAlpha * i / (n - 1) : 0));
}

/// <summary>
/// Ape-X DQN (Horgan et al. 2018) on a few cores: actors with their own epsilons act with a copy of the learner's network
/// (refreshed every <see cref="ApexDqnConfig.WeightSyncPeriod"/> iterations), compute the initial priorities of their
/// n-step transitions from their own TD errors, and feed one prioritized replay; the learner trains a dueling network
/// (Wang et al. 2016) with double-DQN targets (van Hasselt et al. 2016) and a Huber loss weighted by importance sampling.
/// Masks: an actor's greedy and random choices are among legal actions only, and the target's argmax is over the next
/// state's legal actions (stored with each transition), so an illegal action is never chosen and never bootstraps.
/// <para>Phased (the default): each iteration the actors collect one round while the learner waits, then the learner makes
/// <see cref="ApexDqnConfig.UpdatesPerStep"/> updates per step collected while the actors idle. Asynchronous
/// (<see cref="ApexDqnConfig.Asynchronous"/>, actors on this machine): the actors act continuously, between iterations
/// too (a checkpoint stops them until the next iteration), and the learner updates at the same time. The ratio is held
/// both ways: the learner takes a batch from the queue only when it owes no update (so it waits for experience when it
/// is ahead), and the queue is bounded (so the actors wait when it is behind).</para>
/// </summary>
public sealed class ApexDqn : ITrainer
{
    readonly ApexDqnConfig c;
    readonly IExperienceSource actors;
    readonly QNetwork online, target;
    readonly Adam adam;
    readonly PrioritizedReplay replay;
    readonly Rng learnerRng;
    readonly ISgemm? gemm;
    // the update's batches, overwritten by each update (the networks reuse theirs too: QNetwork.ReusesBuffers)
    Matrix? observations, nextObservations, targets, lossGradient;
    bool[] taken = [];
    float[] bootstrapped = [];
    ExperienceExchange? exchange;
    Task? streaming;
    float[]? weightsForActors;
    long updates;
    double updateBudget;

    /// <summary>A trainer with <paramref name="pool"/>'s workers, each running <see cref="ApexDqnConfig.ActorsPerWorker"/>
    /// actors on environments from <paramref name="makeEnv"/>(worker, actor), all drawn from <paramref name="seed"/>.</summary>
    public ApexDqn(ApexDqnConfig config, WorkerPool pool, Func<int, int, IRlEnv> makeEnv, int seed)
        : this(config, Envs(config, pool, makeEnv), pool, seed) { }

    ApexDqn(ApexDqnConfig config, IRlEnv[][] envs, WorkerPool pool, int seed)
        : this(config, ShapeOf(config, envs[0][0].ObservationSize, envs[0][0].ActionCount), shape => new LocalActors(config, shape, pool, envs, seed), seed) { }

    /// <summary>A learner of a <paramref name="shape"/> network fed by the actors <paramref name="actors"/> makes for that
    /// shape (on this machine or on a cluster's workers).</summary>
    public ApexDqn(ApexDqnConfig config, NetworkShape shape, Func<NetworkShape, IExperienceSource> actors, int seed)
    {
        c = config;
        var init = Rng.For(seed, 0);
        online = new QNetwork(shape, init.ToRandom());
        target = new QNetwork(shape, init.ToRandom());
        Net.CopyWeights(online, target);
        online.ReusesBuffers = target.ReusesBuffers = true;   // the learner's thread alone runs their batches
        weightsForActors = Net.Flatten(online);
        adam = new Adam(online.Parameters, new AdamOptions(c.LearningRate, Epsilon: c.AdamEpsilon, MaxGradNorm: c.MaxGradNorm));
        replay = new PrioritizedReplay(c.ReplayCapacity, c.PriorityAlpha);
        learnerRng = Rng.For(seed, 1);
        gemm = NetworkGemm.Choose(c.Gemm);
        this.actors = actors(shape);
        if (c.Asynchronous && this.actors is not IStreamingExperienceSource)
        {
            this.actors.Dispose();
            throw new LoopTuneException("Asynchronous=true needs the actors on this machine: a cluster's actors collect in rounds (train without --cluster, or without Asynchronous)");
        }
        if (c.PublishPeriod < 1 || c.QueueCapacity < 1 || c.AsyncIterationSteps < 1)
            throw new LoopTuneException($"PublishPeriod ({c.PublishPeriod}), QueueCapacity ({c.QueueCapacity}) and AsyncIterationSteps ({c.AsyncIterationSteps}) must be at least 1");
    }

    static IRlEnv[][] Envs(ApexDqnConfig c, WorkerPool pool, Func<int, int, IRlEnv> makeEnv) =>
        [.. Enumerable.Range(0, pool.Count).Select(w => Enumerable.Range(0, c.ActorsPerWorker).Select(k => makeEnv(w, k)).ToArray())];

    /// <summary>The dueling network <paramref name="c"/> asks for, with <paramref name="observations"/> inputs and
    /// <paramref name="actions"/> outputs.</summary>
    public static NetworkShape ShapeOf(ApexDqnConfig c, int observations, int actions) => new("dqn", observations, actions, c.Hidden, c.Activation, c.LayerNorm);

    public string Name => "apex_dqn";
    public object Config => c;
    public IPolicyNetwork Policy => online;
    public long EnvSteps { get; private set; }
    public int Iterations { get; private set; }
    public int ReplayCount => replay.Count;

    /// <summary>The learner's prioritized replay (for tests of the priorities it sets).</summary>
    internal PrioritizedReplay Replay => replay;

    /// <summary>The learner's actors.</summary>
    internal IExperienceSource Source => actors;

    /// <summary>The asynchronous learner's exchange with its actors (null before the first asynchronous iteration).</summary>
    internal ExperienceExchange? Exchange => exchange;

    /// <summary>The sgemm the learner's batches run on ("managed" when no library is used).</summary>
    public string GemmName => gemm?.Name ?? "managed";

    bool Learning => replay.Count >= Math.Max(c.LearningStarts, c.BatchSize);

    public IReadOnlyDictionary<string, double> Iterate() =>
        c.Asynchronous ? IterateAsynchronously((IStreamingExperienceSource)actors) : IteratePhased();

    IReadOnlyDictionary<string, double> IteratePhased()
    {
        var clock = Stopwatch.StartNew();
        var collected = actors.Collect(weightsForActors);
        weightsForActors = null;
        double collectSeconds = clock.Elapsed.TotalSeconds;
        int steps = collected.Sum(b => b.Steps);
        var all = new EpisodeStats();
        foreach (var batch in collected) Absorb(batch, all);

        var values = new Dictionary<string, double>();
        all.AddTo(values);
        if (Learning)
        {
            updateBudget += steps * c.UpdatesPerStep;
            var learnClock = Stopwatch.StartNew();
            double loss = 0, q = 0, norm = 0;
            int n = 0;
            for (; updateBudget >= 1; updateBudget--, n++)
            {
                var (l, qm, g) = Update();
                (loss, q, norm) = (loss + l, q + qm, norm + g);
            }
            if (n > 0)
            {
                (values["loss"], values["q_mean"], values["grad_norm"], values["updates"]) = (loss / n, q / n, norm / n, n);
                // the learner's own speed: with UpdatesPerStep, how many environment steps a second one learner can keep up with
                values["learner_updates_per_s"] = n / Math.Max(learnClock.Elapsed.TotalSeconds, 1e-9);
            }
        }
        Iterations++;
        if (Iterations % c.WeightSyncPeriod == 0) weightsForActors = Net.Flatten(online);
        AddCommon(values, collected.Count, clock);
        values["env_steps_per_s"] = steps / Math.Max(collectSeconds, 1e-9);
        return values;
    }

    /// <summary>Adds <paramref name="batch"/>'s transitions to the replay and its episodes to <paramref name="episodes"/>;
    /// returns its environment steps.</summary>
    int Absorb(ExperienceBatch batch, EpisodeStats episodes)
    {
        batch.AddTransitionsTo(replay);
        batch.AddEpisodesTo(episodes);
        EnvSteps += batch.Steps;
        return batch.Steps;
    }

    void AddCommon(Dictionary<string, double> values, int batches, Stopwatch clock)
    {
        values["epsilon_max"] = c.Epsilon(0, actors.Actors);
        values["epsilon_min"] = c.Epsilon(actors.Actors - 1, actors.Actors);
        values["replay"] = replay.Count;
        values["actor_batches"] = batches;
        values["iteration_seconds"] = clock.Elapsed.TotalSeconds;
    }

    /// <summary>One asynchronous iteration: the actors stream (started by the first, they go on acting between iterations)
    /// while this thread, the learner, alternates between updates (while it owes some: <see cref="ApexDqnConfig.UpdatesPerStep"/>
    /// per step absorbed) and taking the next batch (only when it owes none, waiting for one if need be), publishing its
    /// weights every <see cref="ApexDqnConfig.PublishPeriod"/> updates, until it has absorbed
    /// <see cref="ApexDqnConfig.AsyncIterationSteps"/> steps.</summary>
    IReadOnlyDictionary<string, double> IterateAsynchronously(IStreamingExperienceSource source)
    {
        var clock = Stopwatch.StartNew();
        exchange ??= new ExperienceExchange(c.QueueCapacity);
        double actorWait = exchange.ActorWaitSeconds;
        if (streaming is null)
        {
            exchange.SetStopping(false);
            if (weightsForActors is not null) exchange.Publish(weightsForActors);
            else exchange.Publish(online);
            streaming = source.Stream(exchange);
        }
        else if (weightsForActors is not null) exchange.Publish(weightsForActors);   // new weights (InitFrom) reach acting actors
        weightsForActors = null;
        var all = new EpisodeStats();
        long steps = 0;
        int batches = 0, n = 0;
        double loss = 0, q = 0, norm = 0, learnSeconds = 0, learnerWait = 0;
        while (steps < c.AsyncIterationSteps)
        {
            if (Learning && updateBudget >= 1)
            {
                long start = Stopwatch.GetTimestamp();
                var (l, qm, g) = Update();
                learnSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
                (loss, q, norm, n, updateBudget) = (loss + l, q + qm, norm + g, n + 1, updateBudget - 1);
                if (updates % c.PublishPeriod == 0) exchange.Publish(online);
                continue;
            }
            if (streaming.IsCompleted)
            {
                StopActing();   // every actor stopped: an actor's exception is thrown here
                throw new InvalidOperationException("every actor stopped while the learner was running");
            }
            long waitStart = Stopwatch.GetTimestamp();
            bool took = exchange.TryTake(TimeSpan.FromMilliseconds(50), out var batch);
            learnerWait += Stopwatch.GetElapsedTime(waitStart).TotalSeconds;
            if (took) (steps, batches) = (steps + Take(batch, all), batches + 1);
        }
        Iterations++;
        var values = new Dictionary<string, double>();
        all.AddTo(values);
        if (n > 0)
        {
            (values["loss"], values["q_mean"], values["grad_norm"], values["updates"]) = (loss / n, q / n, norm / n, n);
            values["learner_updates_per_s"] = n / Math.Max(learnSeconds, 1e-9);
        }
        double seconds = clock.Elapsed.TotalSeconds;
        AddCommon(values, batches, clock);
        values["env_steps_per_s"] = steps / Math.Max(seconds, 1e-9);
        values["updates_per_s"] = n / Math.Max(seconds, 1e-9);
        values["learner_wait_s"] = learnerWait;
        values["actor_wait_s"] = exchange.ActorWaitSeconds - actorWait;
        values["weight_version"] = exchange.LatestVersion;
        return values;
    }

    /// <summary>Absorbs an asynchronous batch: its steps earn updates once the learner has started learning.</summary>
    int Take(ExperienceBatch batch, EpisodeStats episodes)
    {
        bool learning = Learning;
        int steps = Absorb(batch, episodes);
        if (learning) updateBudget += steps * c.UpdatesPerStep;
        return steps;
    }

    /// <summary>Stops the asynchronous actors after the fragment each has in hand and absorbs every batch they sent (none
    /// lost, none taken twice; the updates they earn are made next iteration), so that their state can be saved or
    /// replaced; the next iteration starts them again with the latest weights. Rethrows an actor's exception.</summary>
    void StopActing()
    {
        if (streaming is null || exchange is null) return;
        exchange.SetStopping(true);
        var unused = new EpisodeStats();
        while (!streaming.IsCompleted || exchange.Waiting > 0)
            if (exchange.TryTake(TimeSpan.FromMilliseconds(10), out var batch)) Take(batch, unused);
        var stopped = streaming;
        streaming = null;
        stopped.GetAwaiter().GetResult();
    }

    /// <summary>One learner step on a prioritized batch: double-DQN n-step targets from the target network at the online
    /// network's legal argmax, weighted Huber loss on the actions taken, new priorities. Returns (loss, mean Q, grad norm).</summary>
    (double Loss, double MeanQ, double GradNorm) Update()
    {
        var (idx, weights) = replay.Sample(c.BatchSize, c.PriorityBeta, learnerRng);
        using var library = Gemm.Use(gemm);
        int obs = online.Shape.Observations, actionsN = online.Shape.Actions;
        var next = Batch.Stack(idx, replay.NextObservation, obs, ref nextObservations);
        // the networks' results are their buffers until their next Forward: the next states' are used up before the states'
        var nextOnline = online.Forward(next);
        var nextTarget = target.Forward(next);
        if (bootstrapped.Length != idx.Length) (bootstrapped, taken) = (new float[idx.Length], new bool[idx.Length * actionsN]);
        var y = bootstrapped;
        for (int b = 0; b < idx.Length; b++)
        {
            int t = idx[b];
            float discount = replay.Discount(t);
            y[b] = replay.Return(t) + (discount > 0 ? discount * nextTarget[b, Net.MaskedArgmax(nextOnline.Row(b), replay.NextMask(t))] : 0);
        }
        var q = online.Forward(Batch.Stack(idx, replay.Observation, obs, ref observations));
        var targets = Layer.Buffer(ref this.targets, q.Rows, q.Cols, reuse: true);
        q.Data.CopyTo(targets.Data, 0);
        var mask = taken;
        Array.Clear(mask);
        double meanQ = 0;
        for (int b = 0; b < idx.Length; b++)
        {
            int a = replay.Action(idx[b]);
            targets[b, a] = y[b];
            mask[b * actionsN + a] = true;
            meanQ += q[b, a];
        }
        var grad = Layer.Buffer(ref lossGradient, q.Rows, q.Cols, reuse: true);   // every element written by the loss
        float loss = Losses.Huber(q, targets, grad, (float)c.HuberDelta, weights, mask);
        adam.ZeroGrad();
        online.Backward(grad);
        double norm = adam.Step();
        for (int b = 0; b < idx.Length; b++)
            replay.Update(idx[b], Math.Abs(q[b, replay.Action(idx[b])] - y[b]) + c.PriorityEpsilon);
        if (++updates % c.TargetUpdatePeriod == 0) Net.CopyWeights(online, target);
        return (loss, meanQ / idx.Length, norm);
    }

    public IReadOnlyList<NamedTensor> Tensors() =>
    [
        .. SafeTensors.FromParameters(online.Parameters),
        .. SafeTensors.FromParameters(target.Parameters).Select(t => t with { Name = "target." + t.Name }),
        .. adam.State(),
    ];

    public JsonObject State()
    {
        StopActing();
        var state = Checkpointing.Common(Iterations, EnvSteps, adam.Steps, learnerRng, actors.Rngs);
        (state["updates"], state["update_budget"]) = (updates, updateBudget);
        return state;
    }

    public void InitFrom(IPolicyNetwork policy)
    {
        foreach (var n in (IPolicyNetwork[])[online, target]) Net.CopyWeights(policy, n);
        weightsForActors = Net.Flatten(online);
    }

    public void Restore(IReadOnlyList<NamedTensor> tensors, JsonObject state)
    {
        StopActing();
        SafeTensors.LoadInto(online.Parameters, tensors, "checkpoint");
        SafeTensors.LoadInto(target.Parameters, [.. tensors.Where(t => t.Name.StartsWith("target.", StringComparison.Ordinal)).Select(t => t with { Name = t.Name["target.".Length..] })], "checkpoint (target network)");
        adam.RestoreState(Checkpointing.AdamState(tensors), (long)state["adam_steps"]!);
        weightsForActors = Net.Flatten(online);
        (Iterations, EnvSteps) = Checkpointing.Restore(state, learnerRng, actors.Rngs);
        (updates, updateBudget) = ((long)state["updates"]!, (double)state["update_budget"]!);
        actors.Restart();
    }

    public void Dispose()
    {
        try { StopActing(); }
        finally { actors.Dispose(); }
        exchange?.Dispose();
        (gemm as IDisposable)?.Dispose();   // a bfloat16 sgemm's oneDNN primitives and copies
    }
}
