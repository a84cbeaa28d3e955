using System.Text.Json;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Learning;
using LoopTune.Measure;

namespace LoopTune.Cluster;

/// <summary>
/// Ape-X training spread over a cluster: every worker of every silo runs a group of actors (<see cref="DqnActorGroup"/>,
/// kept in the worker's state for the run), the learner runs in the calling process. Each iteration is one item per
/// worker: the learner's weights when they changed since the worker last had them, back comes an
/// <see cref="ExperienceBatch"/>. Items of a lost silo are given up: training goes on with the workers left, and a worker
/// that joins (a silo that comes back) gets actors and weights at the next iteration. Evaluations are items too, one per
/// test benchmark.
/// </summary>
public static class TrainingWork
{
    public const string Kind = "train/apex_dqn";

    /// <summary>What every worker needs to build the run's actors on its own machine.</summary>
    /// <param name="Dataset">A named dataset or a folder that exists on every machine.</param>
    /// <param name="Actions">The action space.</param>
    /// <param name="Steps">Episode length.</param>
    /// <param name="Config">The <see cref="ApexDqnConfig"/> as JSON (a few fields; weights never travel as JSON).</param>
    /// <param name="Seed">The run's seed.</param>
    /// <param name="Db">A measurement store path on each machine, or null for the user's default store there.</param>
    /// <param name="Threads">The threads the rewards' kernels run on (<c>--threads</c>): each worker's own count, or it refuses.</param>
    [GenerateSerializer, Immutable, Alias("looptune.TrainRunSpec")]
    public sealed record RunSpec(string Dataset, string Actions, int Steps, string Config, int Seed, string? Db, int Threads = 1)
    {
        public ApexDqnConfig ApexConfig() => JsonSerializer.Deserialize<ApexDqnConfig>(Config) ?? throw new ClusterError("empty trainer configuration");
    }

    /// <summary>One round of experience from a worker's actors <paramref name="First"/> .. First + ActorsPerWorker - 1 of
    /// <paramref name="Total"/>, acting with weights version <paramref name="Version"/> (sent as <paramref name="Weights"/>
    /// unless the worker already has them).</summary>
    [GenerateSerializer, Immutable, Alias("looptune.TrainCollect")]
    public sealed record Collect(RunSpec Run, int First, int Total, int Version, float[]? Weights);

    /// <summary>What a collect item gives back: the worker's <see cref="ExperienceBatch"/> (on the wire through
    /// <see cref="ExperienceBatchConverter"/>), or none when the worker (new, or its silo restarted) has no weights of that
    /// version and took no step (<see cref="NeedWeights"/>).</summary>
    [GenerateSerializer, Immutable, Alias("looptune.TrainBatch")]
    public sealed record Batch([property: Id(0)] ExperienceBatch? Experience)
    {
        public static readonly Batch Refused = new((ExperienceBatch?)null);

        public bool NeedWeights => Experience is null;
    }

    /// <summary>A greedy rollout of the learner's policy (weights <paramref name="Weights"/>) on one test benchmark.</summary>
    [GenerateSerializer, Immutable, Alias("looptune.TrainEvaluate")]
    public sealed record Evaluate(RunSpec Run, float[] Weights, string Spec, TimeSpan Budget);

    /// <summary>An evaluation row (<see cref="PolicyEvaluation.Rows"/>) with the peak of the machine that measured it.</summary>
    [GenerateSerializer, Immutable, Alias("looptune.TrainEvalRow")]
    public sealed record EvalRow(string Benchmark, double Start, double Best, double Seconds, string Schedule, double Peak);

    /// <summary>Runs collect and evaluate items on a worker; the worker's actors, evaluator and peak live in its state for
    /// the run. The evaluator is the machine's measurement store (the run's --db, else the user's) unless
    /// <paramref name="evaluators"/> gives one (tests: a deterministic one).</summary>
    public sealed class Handler(Func<RunSpec, IEvaluator>? evaluators = null) : IWorkHandler
    {
        public string Kind => TrainingWork.Kind;

        public object? Run(object request, WorkerContext context) => request switch
        {
            Collect c => RunCollect(c, context),
            Evaluate e => RunEvaluate(e, context),
            _ => throw new InvalidOperationException($"{Kind} takes a {nameof(Collect)} or an {nameof(Evaluate)}, not a {request.GetType().Name}"),
        };

        Batch RunCollect(Collect c, WorkerContext context)
        {
            context.Worker.UseThreads(c.Run.Threads);
            var site = context.State.Get("site", () => new WorkerSite(c.Run, evaluators));
            var actors = context.State.Get("actors", () => site.Actors(c.First, c.Total));
            if (c.Weights is not null)
            {
                actors.Group.SetWeights(c.Weights);
                actors.Version = c.Version;
            }
            return actors.Version == c.Version ? new Batch(actors.Group.Collect()) : Batch.Refused;
        }

        EvalRow RunEvaluate(Evaluate e, WorkerContext context)
        {
            context.Worker.UseThreads(e.Run.Threads);
            var site = context.State.Get("site", () => new WorkerSite(e.Run, evaluators));
            var shape = TrainingEnvs.Shape(site.Config, site.Space);
            var net = new QNetwork(shape, new Random(0));
            Net.LoadFlat(net, e.Weights);
            var (benchmark, start, best, seconds, schedule) = TrainingEnvs.Rollout(Policy.FromNetwork(net, e.Run.Steps, site.Space), Computation.Parse(e.Spec), site.Evaluator, e.Budget, site.Target);
            return new EvalRow(benchmark, start, best, seconds, schedule, site.Peak);
        }
    }

    /// <summary>A worker's side of a run: the dataset, the measurement store and the peak of its machine.</summary>
    sealed class WorkerSite(RunSpec run, Func<RunSpec, IEvaluator>? evaluators) : IDisposable
    {
        public ApexDqnConfig Config { get; } = run.ApexConfig();
        public ActionSpace Space { get; } = ActionSpace.Get(run.Actions);
        public IEvaluator Evaluator { get; } = evaluators?.Invoke(run) ?? Evaluators.Default(run.Db);
        public double Peak { get; } = PeakCache.GetOrMeasure();
        readonly Dataset dataset = Dataset.Load(run.Dataset);

        /// <summary>The worker's machine at the JIT's width.</summary>
        public TrainingTarget Target => target ??= new TrainingTarget(Jit.JitOptions.Default.VectorBits, Evaluator, Peak, Observations.MachineTensor(Machine.Current));
        TrainingTarget? target;

        public WorkerActors Actors(int first, int total)
        {
            var envs = Enumerable.Range(0, Config.ActorsPerWorker).Select(_ => TrainingEnvs.Make(Space, [Target], dataset.Train, run.Steps)).ToList();
            return new WorkerActors(new DqnActorGroup(Config, TrainingEnvs.Shape(Config, Space), envs, first, total, run.Seed));
        }

        public void Dispose() => (Evaluator as IDisposable)?.Dispose();
    }

    /// <summary>A worker's actors and the version of the weights they act with (-1: none yet).</summary>
    sealed class WorkerActors(DqnActorGroup group) : IDisposable
    {
        public DqnActorGroup Group { get; } = group;
        public int Version { get; set; } = -1;

        public void Dispose() => Group.Dispose();
    }
}

/// <summary>
/// Training on a cluster's workers (<c>train --cluster</c>): the Ape-X learner in this process, its actors on every worker
/// the cluster has at each iteration. Only Ape-X: its replay takes experience from any actor with any recent weights,
/// which is what lets actors come and go; PPO learns from its current policy's own rollouts and stays on one machine.
/// </summary>
public sealed class ClusterSite : ITrainingSite
{
    readonly ClusterConnection cluster;
    readonly TrainRequest request;
    readonly WorkRun run;
    TrainingWork.RunSpec? spec;

    public ClusterSite(ClusterConnection cluster, TrainRequest request)
    {
        CheckTrainer(request.Trainer);
        (this.cluster, this.request) = (cluster, request);
        run = cluster.OpenRun(TrainingWork.Kind, LostWork.GiveUp);
    }

    /// <summary>A <see cref="ClusterError"/> unless <paramref name="trainer"/> can train on a cluster (apex_dqn).</summary>
    public static void CheckTrainer(string trainer)
    {
        if (trainer != "apex_dqn")
            throw new ClusterError($"--cluster trains apex_dqn (Ape-X: actors on every worker feed one replay); {trainer} learns from its own current rollouts and runs on one machine (drop --cluster)");
    }

    public IReadOnlyList<string> Workers => [.. Current().Select(w => $"{w.HostId} core {w.Core}")];

    WorkerInfo[] Current() => Sync.Wait(cluster.Workers);

    public ITrainer CreateTrainer(ITrainerConfig config, Dataset dataset)
    {
        var c = (ApexDqnConfig)config;
        var run = spec = new TrainingWork.RunSpec(request.Dataset, request.Actions, request.Steps, JsonSerializer.Serialize(c), request.Seed, request.Db, Jit.RunThreads.Default);
        return new ApexDqn(c, TrainingEnvs.Shape(c, ActionSpace.Get(request.Actions)), _ => new ClusterActors(this, run, c), request.Seed);
    }

    public PolicyEvaluation Evaluate(Policy policy, IReadOnlyList<Computation> benchmarks, TimeSpan budget)
    {
        var runSpec = spec ?? throw new InvalidOperationException("CreateTrainer comes before Evaluate");
        var weights = Net.Flatten(policy.Network);
        var outcomes = Sync.Wait(() => run.RunAsync([.. benchmarks.Select(b => new WorkRequest(new TrainingWork.Evaluate(runSpec, weights, b.ToString(), budget)))]));
        var rows = outcomes.Where(o => !o.Lost).Select(o => o.As<TrainingWork.EvalRow>()).ToList();
        if (rows.Count == 0) throw new ClusterError("every evaluation item was lost with its silo");
        return new PolicyEvaluation([.. rows.Select(r => (r.Benchmark, r.Start, r.Best, r.Seconds, r.Schedule))], rows[0].Peak);
    }

    public void Dispose() => Sync.Wait(() => run.DisposeAsync().AsTask());

    /// <summary>The actors of the cluster's workers: slot i (actors i*ActorsPerWorker ..) goes to the i-th worker seen, so a
    /// worker keeps its actors' numbers (and epsilons) for the run.</summary>
    sealed class ClusterActors(ClusterSite site, TrainingWork.RunSpec spec, ApexDqnConfig c) : IExperienceSource
    {
        readonly Dictionary<string, int> slots = [];
        readonly Dictionary<string, int> has = [];
        float[] latest = [];
        int version = -1;

        public int Actors => Math.Max(1, slots.Count) * c.ActorsPerWorker;
        public IReadOnlyList<Rng> Rngs => [];

        public IReadOnlyList<ExperienceBatch> Collect(float[]? weights)
        {
            if (weights is not null) (latest, version) = (weights, version + 1);
            var workers = site.Current();
            foreach (var w in workers) slots.TryAdd(w.Id, slots.Count);
            int total = Actors;
            var requests = workers.Select(w => new WorkRequest(new TrainingWork.Collect(spec, slots[w.Id] * c.ActorsPerWorker, total, version,
                has.GetValueOrDefault(w.Id, -1) == version ? null : latest), w)).ToList();
            var outcomes = Sync.Wait(() => site.run.RunAsync(requests));
            var batches = new List<ExperienceBatch>();
            foreach (var o in outcomes)
            {
                string id = workers[o.Index].Id;
                if (o.Lost || o.As<TrainingWork.Batch>() is not { NeedWeights: false } batch) has.Remove(id); // weights again next time
                else
                {
                    has[id] = version;
                    batches.Add(batch.Experience!);
                }
            }
            return batches;
        }

        public void Restart() => has.Clear();

        public void Dispose() { }
    }
}
