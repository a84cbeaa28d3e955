using System.Diagnostics;
using LoopTune.Learning.Nn;

namespace LoopTune.Learning;

/// <summary>
/// What a group of Ape-X actors sends its learner after one round: n-step transitions with their initial priorities, as
/// flat arrays (row i of <see cref="Observations"/> is <c>[i * ObservationSize, (i + 1) * ObservationSize)</c>), and the
/// figures of the episodes that ended. Plain arrays, so that it crosses a process boundary as it is.
/// </summary>
/// <param name="ObservationSize">Floats per observation.</param>
/// <param name="ActionCount">Actions per mask.</param>
/// <param name="Steps">Environment steps taken to make it.</param>
/// <param name="Observations">The states, row after row.</param>
/// <param name="Actions">The action taken in each state.</param>
/// <param name="Returns">The discounted rewards of the next n steps.</param>
/// <param name="NextObservations">The states n steps later.</param>
/// <param name="NextMasks">Their legal actions, row after row.</param>
/// <param name="Discounts">gamma^n, or 0 when the episode ended within the n steps.</param>
/// <param name="Priorities">|TD error| + epsilon under the actors' network.</param>
/// <param name="EpisodeReturns">Sum of rewards of each episode that ended.</param>
/// <param name="EpisodeFinals">Its last score (GFLOPS).</param>
/// <param name="EpisodeBests">Its best score.</param>
/// <param name="EpisodeStarts">Its first score.</param>
public sealed record ExperienceBatch(int ObservationSize, int ActionCount, int Steps,
    float[] Observations, int[] Actions, float[] Returns, float[] NextObservations, bool[] NextMasks, float[] Discounts, double[] Priorities,
    double[] EpisodeReturns, double[] EpisodeFinals, double[] EpisodeBests, double[] EpisodeStarts)
{
    public int Count => Actions.Length;

    /// <summary>Packs <paramref name="ts"/> (with <paramref name="priorities"/>) and <paramref name="stats"/>.</summary>
    internal static ExperienceBatch Pack(int observationSize, int actionCount, int steps, IReadOnlyList<Transition> ts, double[] priorities, EpisodeStats stats)
    {
        var (obs, next) = (new float[ts.Count * observationSize], new float[ts.Count * observationSize]);
        var masks = new bool[ts.Count * actionCount];
        for (int i = 0; i < ts.Count; i++)
        {
            ts[i].Observation.CopyTo(obs, i * observationSize);
            ts[i].NextObservation.CopyTo(next, i * observationSize);
            ts[i].NextMask.CopyTo(masks, i * actionCount);
        }
        var (returns, finals, bests, starts) = stats.Columns();
        return new(observationSize, actionCount, steps, obs, [.. ts.Select(t => t.Action)], [.. ts.Select(t => t.Return)], next, masks,
            [.. ts.Select(t => t.Discount)], priorities, returns, finals, bests, starts);
    }

    /// <summary>Transition <paramref name="i"/>, unpacked.</summary>
    public Transition this[int i] => new(Observations.AsSpan(i * ObservationSize, ObservationSize).ToArray(), Actions[i], Returns[i],
        NextObservations.AsSpan(i * ObservationSize, ObservationSize).ToArray(), NextMasks.AsSpan(i * ActionCount, ActionCount).ToArray(), Discounts[i]);

    /// <summary>Adds this batch's transitions to <paramref name="replay"/> with their priorities, copied row by row.</summary>
    internal void AddTransitionsTo(PrioritizedReplay replay)
    {
        for (int i = 0; i < Count; i++)
            replay.Add(Observations.AsSpan(i * ObservationSize, ObservationSize), Actions[i], Returns[i], NextObservations.AsSpan(i * ObservationSize, ObservationSize),
                NextMasks.AsSpan(i * ActionCount, ActionCount), Discounts[i], Priorities[i]);
    }

    /// <summary>Adds the episodes of this batch to <paramref name="to"/>.</summary>
    internal void AddEpisodesTo(EpisodeStats to)
    {
        for (int i = 0; i < EpisodeReturns.Length; i++) to.Add(EpisodeReturns[i], EpisodeFinals[i], EpisodeBests[i], EpisodeStarts[i]);
    }
}

/// <summary>
/// Where an Ape-X learner's actors run: on this machine's workers (<see cref="LocalActors"/>) or on a cluster's. One
/// <see cref="Collect"/> is one round of experience from every actor that can be reached; a lost actor only means fewer
/// batches.
/// </summary>
public interface IExperienceSource : IDisposable
{
    /// <summary>How many actors there are in all (Ape-X's epsilon schedule spreads over them).</summary>
    int Actors { get; }

    /// <summary>The actors' random generators, saved in checkpoints; empty where the actors are not in this process.</summary>
    IReadOnlyList<Rng> Rngs { get; }

    /// <summary>One round: every actor group loads <paramref name="weights"/> (the learner's flattened parameters) when it
    /// is not null, then steps its actors; returns the batches that came back.</summary>
    IReadOnlyList<ExperienceBatch> Collect(float[]? weights);

    /// <summary>Drops the episodes in flight: the next round starts new ones (a restored learner asks for this).</summary>
    void Restart();
}

/// <summary>
/// The actors that share one worker (one core): each with its own environment, epsilon and random generator, stepping in
/// turn with one copy of the learner's network, and computing the initial priorities of their n-step transitions from
/// their own TD errors (Ape-X). A worker of a cluster holds one of these between rounds.
/// </summary>
public sealed class DqnActorGroup : IDisposable
{
    readonly ApexDqnConfig c;
    readonly QNetwork net;
    readonly Actor[] actors;
    Matrix? stacked;

    /// <summary>Actors <paramref name="first"/> .. first + envs.Count - 1 of <paramref name="total"/>: actor i's epsilon is
    /// Ape-X's <see cref="ApexDqnConfig.Epsilon"/>(i, total), its generator is drawn from (<paramref name="seed"/>, 100 + i).</summary>
    public DqnActorGroup(ApexDqnConfig config, NetworkShape shape, IReadOnlyList<IRlEnv> envs, int first, int total, int seed)
    {
        c = config;
        net = new QNetwork(shape, new Random(0)) { ReusesBuffers = true };   // one worker at a time steps this group
        actors = [.. envs.Select((env, k) => new Actor(env, c.Epsilon(first + k, total), Rng.For(seed, 100 + first + k)))];
    }

    public IReadOnlyList<Rng> Rngs => [.. actors.Select(a => a.Rng)];

    /// <summary>Loads the learner's flattened parameters.</summary>
    public void SetWeights(float[] weights) => Net.LoadFlat(net, weights);

    /// <summary>Each actor steps <see cref="ApexDqnConfig.RolloutFragment"/> times, in turn.</summary>
    public ExperienceBatch Collect()
    {
        var stats = new EpisodeStats();
        var made = new List<Transition>();
        for (int s = 0; s < c.RolloutFragment; s++)
            foreach (var a in actors) a.Step(net, c, made, stats);
        return ExperienceBatch.Pack(net.Shape.Observations, net.Shape.Actions, c.RolloutFragment * actors.Length, made, Priorities(made), stats);
    }

    public void Restart()
    {
        foreach (var a in actors) a.InFlight = false;
    }

    /// <summary>|R + discount max_legal Q(s') - Q(s, a)| + epsilon under the actors' network (Ape-X's initial priorities).</summary>
    double[] Priorities(List<Transition> ts)
    {
        if (ts.Count == 0) return [];
        var idx = Enumerable.Range(0, ts.Count).ToArray();
        // the network's results and the stacked states are buffers overwritten by the next: each used up before it
        var next = net.Forward(Batch.Stack(idx, i => ts[i].NextObservation, net.Shape.Observations, ref stacked));
        var nextMax = idx.Select(i => ts[i].Discount > 0 ? next[i, Net.MaskedArgmax(next.Row(i), ts[i].NextMask)] : 0f).ToArray();
        var q = net.Forward(Batch.Stack(idx, i => ts[i].Observation, net.Shape.Observations, ref stacked));
        return [.. idx.Select(i => Math.Abs(ts[i].Return + ts[i].Discount * nextMax[i] - q[i, ts[i].Action]) + c.PriorityEpsilon)];
    }

    public void Dispose()
    {
        foreach (var a in actors) (a.Env as IDisposable)?.Dispose();
    }

    /// <summary>One actor: its epsilon and its n-step window besides what every actor has.</summary>
    sealed class Actor(IRlEnv env, double epsilon, Rng rng) : EpisodeActor(env, rng)
    {
        readonly List<(float[] Obs, int Action, double Reward)> window = [];

        protected override void OnNewEpisode() => window.Clear();

        public void Step(QNetwork net, ApexDqnConfig c, List<Transition> output, EpisodeStats stats)
        {
            var s = Current();
            int a = Rng.NextDouble() < epsilon ? Rng.Choose(s.Mask) : Net.MaskedArgmax(net.Forward(Net.Row(s.Observation)).Row(0), s.Mask);
            var t = Advance(a, stats);
            window.Add((s.Observation, a, t.Reward));
            if (window.Count == c.NStep) Emit(t, c, output);
            if (t.Done)
                while (window.Count > 0) Emit(t, c, output);
        }

        /// <summary>The transition from the oldest state in the window to <paramref name="t"/>.</summary>
        void Emit(TimeStep t, ApexDqnConfig c, List<Transition> output)
        {
            double r = 0, g = 1;
            foreach (var (_, _, reward) in window)
            {
                r += g * reward;
                g *= c.Gamma;
            }
            output.Add(new Transition(window[0].Obs, window[0].Action, (float)r, t.Observation, t.Mask, t.Done ? 0 : (float)g));
            window.RemoveAt(0);
        }
    }
}

/// <summary>The actors on this machine: one <see cref="DqnActorGroup"/> per worker of a <see cref="WorkerPool"/>, each
/// collecting on its worker's pinned core, in rounds while the learner waits (<see cref="Collect"/>) or continuously
/// beside an asynchronous learner (<see cref="Stream"/>).</summary>
public sealed class LocalActors : IStreamingExperienceSource
{
    readonly WorkerPool pool;
    readonly DqnActorGroup[] groups;
    readonly long[] versions;
    readonly long[] due;

    /// <summary>Worker w of <paramref name="pool"/> steps the actors on <paramref name="envs"/>[w] (the same count on
    /// every worker); actors are numbered worker by worker.</summary>
    public LocalActors(ApexDqnConfig config, NetworkShape shape, WorkerPool pool, IRlEnv[][] envs, int seed)
    {
        if (envs.Length != pool.Count) throw new ArgumentException($"{envs.Length} environment groups for {pool.Count} workers", nameof(envs));
        this.pool = pool;
        Actors = envs.Sum(e => e.Length);
        int first = 0;
        groups = new DqnActorGroup[envs.Length];
        for (int w = 0; w < envs.Length; first += envs[w++].Length)
            groups[w] = new DqnActorGroup(config, shape, envs[w], first, Actors, seed);
        versions = new long[groups.Length];
        due = new long[groups.Length];
    }

    public int Actors { get; }
    public IReadOnlyList<Rng> Rngs => [.. groups.SelectMany(g => g.Rngs)];
    public IReadOnlyList<long> ActingVersions => [.. Enumerable.Range(0, versions.Length).Select(w => Volatile.Read(ref versions[w]))];

    /// <summary>Environment steps a second each worker makes at most (0: as many as it can): a simulated worker
    /// (<see cref="WorkerPool.Sharing"/>) stands for a real one whose steps take this long, sleeping off the rest of its
    /// fragment's time.</summary>
    public double StepsPerSecondPerWorker { get; init; }

    public IReadOnlyList<ExperienceBatch> Collect(float[]? weights)
    {
        var batches = new ExperienceBatch[groups.Length];
        pool.Run(w =>
        {
            if (weights is not null) groups[w].SetWeights(weights);
            batches[w] = Paced(w);
        });
        return batches;
    }

    public Task Stream(ExperienceExchange exchange)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        return Task.WhenAll(Enumerable.Range(0, groups.Length).Select(w => Act(w, exchange)));
    }

    /// <summary>Worker <paramref name="w"/>'s fragments, one piece of work each, until the exchange stops.</summary>
    async Task Act(int w, ExperienceExchange exchange)
    {
        do
        {
            var (batch, rest) = await pool.Post(w, () =>
            {
                Volatile.Write(ref versions[w], exchange.LoadIfNewer(versions[w], groups[w].SetWeights));
                return Fragment(w);
            }).ConfigureAwait(false);
            if (rest > TimeSpan.Zero) await Task.Delay(rest).ConfigureAwait(false);
            await exchange.Send(batch).ConfigureAwait(false);
        }
        while (!exchange.Stopping);
    }

    /// <summary>Worker <paramref name="w"/>'s next fragment and a sleep until its time at <see cref="StepsPerSecondPerWorker"/>
    /// is up (a worker behind its pace starts the next at once).</summary>
    ExperienceBatch Paced(int w)
    {
        var (batch, rest) = Fragment(w);
        if (rest > TimeSpan.Zero) Thread.Sleep(rest);
        return batch;
    }

    /// <summary>Worker <paramref name="w"/>'s next fragment, and how long it must wait before its next to keep to
    /// <see cref="StepsPerSecondPerWorker"/>.</summary>
    (ExperienceBatch, TimeSpan) Fragment(int w)
    {
        long start = Stopwatch.GetTimestamp();
        var batch = groups[w].Collect();
        if (!(StepsPerSecondPerWorker > 0)) return (batch, TimeSpan.Zero);
        due[w] = Math.Max(due[w], start) + (long)(batch.Steps / StepsPerSecondPerWorker * Stopwatch.Frequency);
        return (batch, Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due[w]));
    }

    public void Restart()
    {
        foreach (var g in groups) g.Restart();
    }

    public void Dispose()
    {
        foreach (var g in groups) g.Dispose();
    }
}
