using LoopTune.Learning;

namespace LoopTune.Tests.Learning;

/// <summary>The asynchronous Ape-X learner (<see cref="ApexDqnConfig.Asynchronous"/>) and its actors: every transition the
/// actors send reaches the replay once (counted, and each observation is unique to one step of one environment), the
/// steps absorbed are the steps the environments took, weight versions only grow, and every actor group acts with the
/// weights published when an iteration starts or later ones.</summary>
public sealed class AsyncLearnerTests
{
    /// <summary>Observations (environment id, step number) that no two steps share; episodes of 4 steps; reward 1 for action 0.</summary>
    sealed class NumberedEnv(int id) : IRlEnv
    {
        int step, inEpisode;
        public int Steps => step;
        public HashSet<(float, float)> Seen { get; } = [];
        public int ObservationSize => 2;
        public int ActionCount => 3;
        public TimeStep Reset(Rng rng) => Observe(0, false, reset: true);
        public TimeStep Step(int action) => Observe(action == 0 ? 1 : 0, ++inEpisode == 4, reset: false);

        TimeStep Observe(double reward, bool done, bool reset)
        {
            if (reset) inEpisode = 0;
            else step++;
            float[] x = [id, reset ? -1 - step : step];   // a reset state is numbered apart from the step states
            Seen.Add((x[0], x[1]));
            return new TimeStep(x, [true, true, true], reward, done, reward);
        }
    }

    [Fact]
    public void Experience_reaches_the_replay_once_and_actors_act_with_the_latest_weights()
    {
        var c = new ApexDqnConfig
        {
            Hidden = [8], Asynchronous = true, Gemm = "managed", BatchSize = 8, LearningStarts = 16, RolloutFragment = 5,
            ActorsPerWorker = 2, PublishPeriod = 2, QueueCapacity = 1, AsyncIterationSteps = 60, NStep = 2,
        };
        var envs = new List<NumberedEnv>();
        using var pool = WorkerPool.Sharing(3, WorkerPool.ChooseCores(1));
        using var trainer = new ApexDqn(c, pool, (w, k) =>
        {
            lock (envs)
            {
                envs.Add(new NumberedEnv(10 * w + k));
                return envs[^1];
            }
        }, seed: 4);
        long before = 0;
        IReadOnlyList<long> previous = [0, 0, 0];
        for (int i = 0; i < 4; i++)
        {
            var values = trainer.Iterate();                    // (re)starts the actors with the latest weights: version before + 1
            Assert.True(values["weight_version"] > before);
            trainer.State();                                   // a checkpoint stops them and absorbs what they sent
            var exchange = trainer.Exchange!;
            long latest = exchange.LatestVersion;
            var acting = ((LocalActors)trainer.Source).ActingVersions;
            Assert.All(acting, v => Assert.InRange(v, before + 1, latest));
            Assert.All(acting.Zip(previous), p => Assert.True(p.First > p.Second, $"version {p.First} after {p.Second}"));
            Assert.Equal(exchange.TransitionsSent, trainer.ReplayCount);
            (before, previous) = (latest, acting);
        }
        Assert.True(trainer.Exchange!.LatestVersion > 4, "the learner published mid-iteration too");
        Assert.True(trainer.State()["updates"]!.GetValue<long>() > 0);

        // no loss: the steps absorbed are the steps taken; no duplication: every state in the replay is a distinct state an
        // environment produced, and transitions are one per step but for the last NStep - 1 of each actor, still in its window
        Assert.Equal(envs.Sum(e => e.Steps), trainer.EnvSteps);
        var states = Enumerable.Range(0, trainer.ReplayCount).Select(i => trainer.Replay[i].Observation).Select(o => (o[0], o[1])).ToList();
        Assert.Equal(states.Count, states.Distinct().Count());
        Assert.All(states, s => Assert.Single(envs, e => e.Seen.Contains(s)));
        Assert.InRange(trainer.ReplayCount, trainer.EnvSteps - envs.Count * (c.NStep - 1), trainer.EnvSteps);
    }

    [Fact]
    public async Task Actors_never_load_a_mix_of_two_weight_versions_and_publishing_allocates_nothing()
    {
        // every weight of version v is v: a copy torn between two versions shows two values. The learner publishes as fast
        // as it can, so the three buffers are rewritten under the readers' copies again and again.
        using var exchange = new ExperienceExchange(1);
        const int length = 4096, versions = 20_000;
        var weights = new float[length];
        bool done = false;
        long loads = 0;
        // the readers on threads of their own, all running before the first publication: on a loaded machine (the full
        // suite) pool threads started after the 20,000 publications were done, each loaded the last one once (loads 3)
        using var started = new CountdownEvent(3);
        var readers = Enumerable.Range(0, 3).Select(_ => Task.Factory.StartNew(() =>
        {
            started.Signal();
            var copy = new float[length];
            long have = 0;
            while (!Volatile.Read(ref done) || have < exchange.LatestVersion)
            {
                long v = exchange.LoadIfNewer(have, w =>
                {
                    // half, a pause as long as a few publications, the rest: copies do get overwritten
                    w.AsSpan(0, length / 2).CopyTo(copy);
                    Thread.SpinWait(2000);
                    w.AsSpan(length / 2).CopyTo(copy.AsSpan(length / 2));
                });
                if (v == have) continue;
                Assert.True(v > have, $"version {v} after {have}");
                Assert.All(copy, x => Assert.Equal(v, x));
                (have, loads) = (v, Interlocked.Increment(ref loads));
            }
            return have;
        }, TaskCreationOptions.LongRunning)).ToList();
        Assert.True(started.Wait(TimeSpan.FromSeconds(30)), "the readers did not start");
        long allocated = 0;
        for (int v = 1; v <= versions; v++)
        {
            Array.Fill(weights, v);
            long before = GC.GetAllocatedBytesForCurrentThread();
            exchange.Publish(weights);
            if (v > 3) allocated += GC.GetAllocatedBytesForCurrentThread() - before; // the buffers are made by the first three
        }
        Volatile.Write(ref done, true);
        var last = await Task.WhenAll(readers).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.All(last, v => Assert.Equal(versions, v));
        // no array per publication: 20,000 of them allocated less than one buffer in all (the runtime itself may allocate
        // on this thread once, e.g. when tiered compilation starts its worker: 7,688 bytes in one run of the full suite)
        Assert.True(allocated < length * sizeof(float), $"{allocated} bytes allocated by {versions - 3} publications");
        Assert.True(loads > 3);
    }

    [Fact]
    public void Asynchronous_learning_refuses_actors_that_collect_in_rounds()
    {
        var c = new ApexDqnConfig { Hidden = [8], Asynchronous = true, Gemm = "managed" };
        var shape = ApexDqn.ShapeOf(c, 2, 3);
        var error = Assert.ThrowsAny<LoopTuneException>(() => new ApexDqn(c, shape, _ => new Rounds(), seed: 0));
        Assert.Contains("Asynchronous=true needs the actors on this machine", error.Message);
    }

    /// <summary>Actors that can only collect in rounds, as a cluster's.</summary>
    sealed class Rounds : IExperienceSource
    {
        public int Actors => 1;
        public IReadOnlyList<Rng> Rngs => [];
        public IReadOnlyList<ExperienceBatch> Collect(float[]? weights) => [];
        public void Restart() { }
        public void Dispose() { }
    }
}
