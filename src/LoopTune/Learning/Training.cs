using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Learning.Logging;
using LoopTune.Measure;
using LoopTune.Search;

namespace LoopTune.Learning;

/// <summary>What <c>looptune train</c> asks for: named fields, the defaults those of the command.</summary>
public sealed record TrainRequest
{
    /// <summary>A named dataset or a dataset folder; training uses its train split, evaluation its test split.</summary>
    public required string Dataset { get; init; }

    /// <summary>"apex_dqn" or "ppo" (<see cref="Training.Trainers"/>).</summary>
    public string Trainer { get; init; } = "apex_dqn";

    /// <summary>Stop after this many iterations in all (a resumed run counts the ones before).</summary>
    public int? Iterations { get; init; }

    /// <summary>Stop after this much wall time in this process.</summary>
    public TimeSpan? Time { get; init; }

    /// <summary>Measuring workers, one per core.</summary>
    public int Workers { get; init; } = 1;

    /// <summary>Episode length in actions.</summary>
    public int Steps { get; init; } = 10;

    /// <summary>Test benchmarks in each evaluation: the last ones of the test split (reports take the first ones).</summary>
    public int EvalSize { get; init; } = 10;

    /// <summary>Budget of the policy on each test benchmark (a greedy rollout usually needs far less).</summary>
    public TimeSpan EvalTime { get; init; } = TimeSpan.FromSeconds(4);

    /// <summary>Evaluate every this many iterations (0: only at the end).</summary>
    public int EvalEvery { get; init; }

    /// <summary>Save a checkpoint at least this often (and at the end).</summary>
    public double CheckpointSeconds { get; init; } = 60;

    /// <summary>Seed of every random choice.</summary>
    public int Seed { get; init; }

    /// <summary>The run folder.</summary>
    public required string Out { get; init; }

    /// <summary>Continue the run in <see cref="Out"/> from its latest checkpoint.</summary>
    public bool Resume { get; init; }

    /// <summary>Measurement store (default: the user's).</summary>
    public string? Db { get; init; }

    /// <summary>Hyperparameter overrides, e.g. {"LearningRate": 1e-4}.</summary>
    public JsonObject? Set { get; init; }

    /// <summary>A policy whose weights the networks start from (a warm start), or null for random weights.</summary>
    public string? Init { get; init; }

    /// <summary>The action space: "cursor" (the action table's 18: the seed's 17 and pack), "loop" or "tile" (<see cref="ActionSpace"/>).</summary>
    public string Actions { get; init; } = "cursor";

    /// <summary>The vector widths the JIT uses, one drawn per episode (each its own evaluator, peak and machine_tensor), so
    /// that one machine teaches several; null: the JIT's width alone.</summary>
    public int[]? VectorBits { get; init; }

    /// <summary>Evaluate with the policy-guided search (<see cref="PolicyGuidedSearch"/>, the tuner's method, within
    /// <see cref="EvalTime"/>) instead of the greedy rollout, so that the policy kept is the one that tunes best (on this
    /// machine's workers; a cluster's evaluate greedily).</summary>
    public bool EvalSearch { get; init; }

    /// <summary>The widths the run trains at: <see cref="VectorBits"/>, or the JIT's.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int[] Widths => VectorBits is { Length: > 0 } v ? v : [Jit.JitOptions.Default.VectorBits];
}

/// <summary>An evaluation of a policy on test benchmarks: per benchmark, the unscheduled and best GFLOPS and the time.</summary>
public sealed record PolicyEvaluation(IReadOnlyList<(string Benchmark, double Start, double Best, double Seconds, string Schedule)> Rows, double Peak)
{
    public double GeomeanGflops => Math.Exp(Rows.Average(r => Math.Log(r.Best)));
    public double GeomeanSpeedup => Math.Exp(Rows.Average(r => Math.Log(r.Best / r.Start)));
    public double PeakFraction => GeomeanGflops / Peak;
    public double MeanSeconds => Rows.Average(r => r.Seconds);

    public IReadOnlyDictionary<string, double> Values() => new Dictionary<string, double>
    {
        ["eval_gflops_geomean"] = GeomeanGflops, ["eval_speedup_geomean"] = GeomeanSpeedup,
        ["eval_peak_fraction"] = PeakFraction, ["eval_seconds_mean"] = MeanSeconds,
    };
}

/// <summary>What a training run reports as it goes.</summary>
public interface ITrainingObserver
{
    void Started(string runFolder, ITrainer trainer, string? resumedFrom, IReadOnlyList<string> workers);
    void Iteration(ITrainer trainer, IReadOnlyDictionary<string, double> values, double fractionDone);
    void Checkpoint(string folder);
    void Evaluated(PolicyEvaluation result);
}

/// <summary>The <c>train</c> command's engine: a run folder, a worker per core, a trainer, the loop with its
/// checkpoints, curves and evaluations.</summary>
public static class Training
{
    public static readonly IReadOnlyList<string> Trainers = ["apex_dqn", "ppo"];

    /// <summary>Runs the training <paramref name="r"/> asks for; returns the run folder and the final evaluation.
    /// <paramref name="site"/> says where the actors and evaluations run (default: <see cref="LocalSite"/>, this
    /// machine's workers).</summary>
    public static (string Folder, PolicyEvaluation? Eval) Run(TrainRequest r, ITrainingObserver observer, CancellationToken cancel = default,
        Func<TrainRequest, ITrainingSite>? site = null)
    {
        if (!Trainers.Contains(r.Trainer)) throw new LoopTuneException($"unknown trainer '{r.Trainer}'; the trainers are: {string.Join(", ", Trainers)}");
        if (r.Steps < 1) throw new LoopTuneException($"--steps {r.Steps}: an episode needs at least one step");
        if (r.Iterations is < 1) throw new LoopTuneException($"--iter {r.Iterations}: at least one iteration");
        if (r.EvalSize < 0) throw new LoopTuneException($"--eval-size {r.EvalSize}: must be 0 or more");
        var folder = Path.GetFullPath(r.Out);
        var request = r.Resume ? ReadRun(folder, r) : r;
        var dataset = Dataset.Load(request.Dataset);
        if (dataset.Train.Count == 0) throw new LoopTuneException($"dataset {dataset.Name} has no training benchmarks");
        var space = ActionSpace.Get(request.Actions);
        var makeSite = site ?? (q => new LocalSite(q, WorkerPool.ChooseCores(q.Workers)));
        foreach (int bits in request.Widths) Jit.JitOptions.CheckVectorBits(bits);
        if (request.Widths.Distinct().Count() != request.Widths.Length) throw new LoopTuneException($"--vector-bits {string.Join(",", request.Widths)} names a width twice");
        var init = !r.Resume && request.Init is { } ip ? Policy.LoadForInit(ip) : null;
        var config = Configure(request); // a bad --set is an error before the run folder is made
        if (!r.Resume) CreateRun(folder, request);

        try
        {
            using var where = makeSite(request);
            return Train(new TrainingRun(request, config, space, folder, dataset, init), where, observer, cancel);
        }
        catch (Exception) when (!r.Resume && RunFolder.LatestCheckpoint(folder) is null)
        {
            // nothing worth keeping was written: leave no half-made run folder behind
            try { Directory.Delete(folder, true); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>A checked run: the request (on --resume the first invocation's, with this one's limits), its trainer's
    /// hyperparameters, the action space, the run folder, the dataset and the policy it starts from.</summary>
    sealed record TrainingRun(TrainRequest Request, ITrainerConfig Config, ActionSpace Space, string Folder, Dataset Dataset, Policy? Init);

    static (string Folder, PolicyEvaluation? Eval) Train(TrainingRun run, ITrainingSite site, ITrainingObserver observer, CancellationToken cancel)
    {
        var (request, config, space, folder, dataset, init) = run;
        using var trainer = site.CreateTrainer(config, dataset);
        if (init is not null && init.Space != space)
            throw new LoopTuneException($"--init {init.Source} acts in the '{init.Space.Name}' action space; this run trains in '{space.Name}'");
        if (init is not null)
        {
            if (!init.Shape.SameAs(trainer.Policy.Shape))
                throw new LoopTuneException($"--init {init.Source} is a {init.Shape} network; this run trains a {trainer.Policy.Shape} network");
            trainer.InitFrom(init.Network);
        }
        string? resumedFrom = request.Resume ? RunFolder.LoadCheckpoint(folder, trainer) : null;
        using var log = new TrainingLog(folder);
        if (request.Resume) log.TruncateAfter(trainer.EnvSteps);
        observer.Started(folder, trainer, resumedFrom, site.Workers);

        var info = new Dictionary<string, string>
        {
            ["looptune.dataset"] = dataset.Name, ["looptune.seed"] = request.Seed.ToString(CultureInfo.InvariantCulture),
            ["looptune.machines"] = TrainedOn(request, init), ["looptune.vector_bits"] = string.Join(",", request.Widths),
        };
        var clock = Stopwatch.StartNew();
        var lastSave = Stopwatch.StartNew();
        // the last benchmarks of the test split: the reports (compare-searches) take the first ones, so a run's best
        // checkpoint is never chosen on the benchmarks it is then reported on
        var test = dataset.Test.Skip(Math.Max(0, dataset.Test.Count - request.EvalSize)).ToList();
        PolicyEvaluation? eval = null;
        double best = BestSoFar(folder);
        if (init is not null && test.Count > 0)
        {
            // the policy the run starts from is the first candidate: a run kept by its evaluations never ends worse than it began
            eval = site.Evaluate(Policy.FromNetwork(trainer.Policy, request.Steps, space), test, request.EvalTime);
            log.Log(0, eval.Values());
            observer.Evaluated(eval);
            KeepBest(ref best, folder, trainer, eval, request.Steps, space, info);
        }
        int startIteration = trainer.Iterations;
        while (!cancel.IsCancellationRequested && (request.Iterations is not int n || trainer.Iterations < n) && (request.Time is not { } t || clock.Elapsed < t))
        {
            var values = new Dictionary<string, double>(trainer.Iterate());
            if (request.EvalEvery > 0 && trainer.Iterations % request.EvalEvery == 0 && test.Count > 0)
            {
                eval = site.Evaluate(Policy.FromNetwork(trainer.Policy, request.Steps, space), test, request.EvalTime);
                foreach (var (k, v) in eval.Values()) values[k] = v;
                observer.Evaluated(eval);
                KeepBest(ref best, folder, trainer, eval, request.Steps, space, info);
            }
            log.Log(trainer.EnvSteps, values);
            double done = Math.Max(request.Iterations is int m ? (trainer.Iterations - startIteration) / (double)Math.Max(1, m - startIteration) : 0,
                request.Time is { } tt ? clock.Elapsed / tt : 0);
            observer.Iteration(trainer, values, Math.Min(1, done));
            if (lastSave.Elapsed.TotalSeconds >= request.CheckpointSeconds)
            {
                observer.Checkpoint(RunFolder.SaveCheckpoint(folder, trainer, request.Steps, space, info));
                lastSave.Restart();
            }
        }
        observer.Checkpoint(RunFolder.SaveCheckpoint(folder, trainer, request.Steps, space, info));
        if (test.Count > 0 && (eval is null || request.EvalEvery <= 0 || trainer.Iterations % request.EvalEvery != 0))
        {
            eval = site.Evaluate(Policy.FromNetwork(trainer.Policy, request.Steps, space), test, request.EvalTime);
            log.Log(trainer.EnvSteps, eval.Values());
            observer.Evaluated(eval);
            KeepBest(ref best, folder, trainer, eval, request.Steps, space, info);
        }
        if (eval is not null) AtomicFile.WriteText(Path.Combine(folder, "eval.json"), EvalJson(eval, trainer).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return (folder, eval);
    }

    /// <summary>The machines a run's policy has learned on, a line each (<c>slug: description</c>): those of the policy it
    /// started from (<c>--init</c>), then this machine at each of the run's widths.</summary>
    static string TrainedOn(TrainRequest r, Policy? init)
    {
        var lines = new List<string>(init?.TrainedOn ?? []);
        foreach (var m in r.Widths.Select(Measure.Machine.At))
            if (!lines.Any(l => l.StartsWith(m.Slug + ":", StringComparison.Ordinal))) lines.Add($"{m.Slug}: {m.Describe()}");
        return string.Join("\n", lines);
    }

    /// <summary>The hyperparameters of <paramref name="r"/>'s trainer: its defaults with the request's --set fields.</summary>
    static ITrainerConfig Configure(TrainRequest r) => r.Trainer == "apex_dqn" ? Configure(new ApexDqnConfig(), r.Set) : Configure(new PpoConfig(), r.Set);

    /// <summary>The default hyperparameters with <paramref name="set"/>'s fields replaced; an unknown field is an error.</summary>
    public static T Configure<T>(T defaults, JsonObject? set) where T : class
    {
        if (set is null || set.Count == 0) return defaults;
        var node = JsonSerializer.SerializeToNode(defaults)!.AsObject();
        foreach (var (k, v) in set)
        {
            if (!node.ContainsKey(k)) throw new LoopTuneException($"--set {k}: {typeof(T).Name} has no such field; the fields are: {string.Join(", ", node.Select(p => p.Key))}");
            node[k] = v?.DeepClone();
        }
        try { return node.Deserialize<T>() ?? defaults; }
        catch (JsonException e) { throw new LoopTuneException($"--set: {e.Message}", e); }
    }

    static void CreateRun(string folder, TrainRequest r)
    {
        if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())
            throw new LoopTuneException($"--out {folder} is not empty: give a new folder, or --resume to continue the run in it");
        Directory.CreateDirectory(folder);
        // what was asked, and the machine at each width it trains at (the block every report carries)
        var run = JsonSerializer.SerializeToNode(r with { Resume = false })!.AsObject();
        run["machines"] = new JsonArray([.. r.Widths.Select(b => (JsonNode)Measure.Machine.At(b).ToJson())]);
        AtomicFile.WriteText(Path.Combine(folder, RunFolder.RunFile), run.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The request a resumed run continues: the original one, with this invocation's limits.</summary>
    static TrainRequest ReadRun(string folder, TrainRequest now)
    {
        var file = Path.Combine(folder, RunFolder.RunFile);
        if (!File.Exists(file)) throw new LoopTuneException($"--resume: {folder} is not a training run (no {RunFolder.RunFile})");
        if (RunFolder.LatestCheckpoint(folder) is null) throw new LoopTuneException($"--resume: {folder} has no checkpoint to resume from");
        TrainRequest first;
        try { first = JsonSerializer.Deserialize<TrainRequest>(File.ReadAllText(file)) ?? throw new JsonException("empty"); }
        catch (JsonException e) { throw new LoopTuneException($"--resume: {file} cannot be read ({e.Message})", e); }
        if (now.Trainer != first.Trainer) throw new LoopTuneException($"--resume: the run in {folder} trains '{first.Trainer}', not '{now.Trainer}'");
        return first with { Iterations = now.Iterations, Time = now.Time, Resume = true, EvalSize = now.EvalSize, EvalTime = now.EvalTime, EvalEvery = now.EvalEvery, Db = now.Db ?? first.Db };
    }

    /// <summary>The run's best policy so far by evaluation (geomean GFLOPS on the test benchmarks): a learner's policy can
    /// get worse for a while, so the best one evaluated is kept as best.safetensors, its figures in its metadata.</summary>
    public const string BestFile = "best.safetensors";

    /// <summary>The evaluation of the run's best.safetensors (0 when there is none yet), read once when a run starts.</summary>
    static double BestSoFar(string folder)
    {
        var path = Path.Combine(folder, BestFile);
        if (!File.Exists(path)) return 0;
        try { return double.Parse(Policy.Load(path).Metadata.GetValueOrDefault("looptune.eval_gflops_geomean", "0"), CultureInfo.InvariantCulture); }
        catch (Exception e) when (e is PolicyError or FormatException) { return 0; }
    }

    /// <summary>Saves the trainer's policy as best.safetensors when <paramref name="eval"/> beats <paramref name="best"/>.</summary>
    static void KeepBest(ref double best, string folder, ITrainer trainer, PolicyEvaluation eval, int steps, ActionSpace space, Dictionary<string, string> info)
    {
        if (eval.GeomeanGflops <= best) return;
        best = eval.GeomeanGflops;
        var meta = RunFolder.PolicyInfo(trainer, info);
        meta["looptune.eval_gflops_geomean"] = eval.GeomeanGflops.ToString("R", CultureInfo.InvariantCulture);
        meta["looptune.eval_benchmarks"] = eval.Rows.Count.ToString(CultureInfo.InvariantCulture);
        Policy.Save(Path.Combine(folder, BestFile), trainer.Policy, steps, meta, space);
    }

    static JsonObject EvalJson(PolicyEvaluation e, ITrainer t) => new()
    {
        ["trainer"] = t.Name, ["iterations"] = t.Iterations, ["env_steps"] = t.EnvSteps,
        ["geomean_gflops"] = e.GeomeanGflops, ["geomean_speedup"] = e.GeomeanSpeedup, ["peak_fraction"] = e.PeakFraction, ["mean_seconds"] = e.MeanSeconds,
        ["benchmarks"] = new JsonArray([.. e.Rows.Select(r => (JsonNode)new JsonObject
        {
            ["benchmark"] = r.Benchmark, ["start_gflops"] = r.Start, ["best_gflops"] = r.Best, ["seconds"] = r.Seconds, ["schedule"] = r.Schedule,
        })]),
    };
}

/// <summary>Where a training run's actors act and its evaluations run: this machine's workers (<see cref="LocalSite"/>) or
/// a cluster's. A site measures on cores no learner uses.</summary>
public interface ITrainingSite : IDisposable
{
    /// <summary>The workers, one line each ("core 1", or a host and core on a cluster), for the run's report.</summary>
    IReadOnlyList<string> Workers { get; }

    /// <summary>The trainer <paramref name="config"/> (an <see cref="ApexDqnConfig"/> or a <see cref="PpoConfig"/>) asks
    /// for, its actors on this site's workers, training on <paramref name="dataset"/>'s train split.</summary>
    ITrainer CreateTrainer(ITrainerConfig config, Dataset dataset);

    /// <summary>The policy's greedy rollout (a <see cref="PolicySearch"/> within <paramref name="budget"/>) on each
    /// benchmark, the benchmarks shared out over the workers.</summary>
    PolicyEvaluation Evaluate(Policy policy, IReadOnlyList<Computation> benchmarks, TimeSpan budget);
}

/// <summary>One machine target a run trains at: a vector width with its evaluator, peak and machine_tensor.</summary>
public sealed record TrainingTarget(int VectorBits, IEvaluator Evaluator, double Peak, float[] Machine)
{
    /// <summary>This machine at <paramref name="bits"/>, measured by <paramref name="evaluator"/>.</summary>
    public static TrainingTarget At(int bits, IEvaluator evaluator) =>
        new(bits, evaluator, PeakCache.GetOrMeasure(bits), Observations.MachineTensor(Measure.Machine.At(bits)));
}

/// <summary>The environments of a training run, as any worker builds them: the task of the run's action space over the
/// training benchmarks, one environment per machine target (each episode draws one), measured by the worker's evaluators.</summary>
public static class TrainingEnvs
{
    public static IRlEnv Make(ActionSpace space, IReadOnlyList<TrainingTarget> targets, IReadOnlyList<Computation> train, int steps) =>
        new LoopTuneTask([.. targets.Select(t => new LoopTuneEnv(new Shared(t.Evaluator), t.Peak, steps, space, t.Machine))], train);

    /// <summary>The Ape-X network of a task in <paramref name="space"/> (the observation encoder's size of inputs).</summary>
    public static NetworkShape Shape(ApexDqnConfig config, ActionSpace space) => ApexDqn.ShapeOf(config, ObservationEncoder.Size, space.Count);

    /// <summary>One policy rollout (or, with <paramref name="search"/>, a policy-guided search) per benchmark, as an evaluation
    /// row (the benchmark's text, and the width when asked).</summary>
    public static (string, double, double, double, string) Rollout(Policy policy, Computation benchmark, IEvaluator evaluator, TimeSpan budget, TrainingTarget? target = null,
        bool nameWidth = false, bool search = false)
    {
        float[]? machine = target?.Machine;
        Func<float[]>? m = machine is null ? null : () => machine;
        ISearch method = search ? new PolicyGuidedSearch(_ => policy, policy.Source, machine: m, peak: target is null ? null : () => target.Peak)
            : new PolicySearch(_ => policy, policy.Source, 1, m);
        var res = method.Run(Nest.Initial(benchmark), evaluator, new SearchBudget(budget), 0, policy.Space);
        return (nameWidth && target is not null ? $"{benchmark.Text} @{target.VectorBits}" : benchmark.Text, res.BaseGflops, res.BestGflops, res.Seconds, res.Best.Serialize());
    }

    /// <summary>A worker's evaluator lent to its environments: they do not dispose it (the worker does).</summary>
    sealed class Shared(IEvaluator inner) : IEvaluator
    {
        public Evaluated Evaluate(Nest nest) => inner.Evaluate(nest);
    }
}

/// <summary>This machine: one worker per core of <paramref name="cores"/>, pinned, each with its own evaluator per vector
/// width on the request's measurement store; the learner updates on the calling thread while the workers idle. Evaluations
/// take the run's widths in turn, benchmark by benchmark.</summary>
public sealed class LocalSite : ITrainingSite
{
    readonly TrainRequest request;
    readonly WorkerPool pool;
    readonly TrainingTarget[][] targets;

    /// <param name="request">The run.</param>
    /// <param name="cores">One worker per core.</param>
    /// <param name="evaluators">The evaluator of a worker at a vector width (default: compiled and timed, on the request's store).</param>
    public LocalSite(TrainRequest request, int[] cores, Func<int, IEvaluator>? evaluators = null)
    {
        this.request = request;
        foreach (int bits in request.Widths) Measure.Machine.At(bits); // the peaks and FMA timings, measured before the workers start
        pool = new WorkerPool(cores);
        targets = new TrainingTarget[pool.Count][];
        pool.Run(w => targets[w] = [.. request.Widths.Select(b => TrainingTarget.At(b, evaluators?.Invoke(b) ?? Evaluators.At(b, request.Db)))]);
    }

    public IReadOnlyList<string> Workers => [.. pool.Cores.Select(c => $"core {c}")];

    public ITrainer CreateTrainer(ITrainerConfig config, Dataset dataset)
    {
        var space = ActionSpace.Get(request.Actions);
        IRlEnv MakeEnv(int w, int _) => TrainingEnvs.Make(space, targets[w], dataset.Train, request.Steps);
        return config switch
        {
            ApexDqnConfig c => new ApexDqn(c, pool, MakeEnv, request.Seed),
            _ => new Ppo((PpoConfig)config, pool, MakeEnv, request.Seed),
        };
    }

    public PolicyEvaluation Evaluate(Policy policy, IReadOnlyList<Computation> benchmarks, TimeSpan budget)
    {
        var rows = new (string, double, double, double, string)[benchmarks.Count];
        pool.Run(w =>
        {
            for (int i = w; i < benchmarks.Count; i += pool.Count)
            {
                var t = targets[w][i % targets[w].Length];
                rows[i] = TrainingEnvs.Rollout(policy, benchmarks[i], t.Evaluator, budget, t, nameWidth: targets[w].Length > 1, search: request.EvalSearch);
            }
        });
        // the peak of each benchmark's width, averaged as the GFLOPS are (geometrically), for the peak fraction
        return new PolicyEvaluation(rows, Math.Exp(benchmarks.Select((_, i) => Math.Log(targets[0][i % targets[0].Length].Peak)).DefaultIfEmpty(Math.Log(targets[0][0].Peak)).Average()));
    }

    public void Dispose()
    {
        foreach (var e in targets.SelectMany(t => t ?? []).Select(t => t.Evaluator)) (e as IDisposable)?.Dispose();
        pool.Dispose();
    }
}
