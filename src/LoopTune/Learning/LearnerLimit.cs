using System.Diagnostics;
using System.Text.Json.Nodes;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Measure;

namespace LoopTune.Learning;

/// <summary>What <c>looptune learner-limit</c> asks for: named fields, the defaults those of the command.</summary>
public sealed record LearnerLimitRequest
{
    /// <summary>The simulated worker counts, one row each.</summary>
    public int[] Workers { get; init; } = [1, 2, 4, 8, 16, 32, 64];

    /// <summary>Wall time of each row, from its start (filling the replay included) to the policy's evaluation; a row runs
    /// on until it has measured one iteration after its first with updates (a phased round of many workers lasts long).</summary>
    public TimeSpan Time { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Environment steps a second each simulated worker offers: a real worker's rate (docs/results.md measured
    /// 110-135 cold steps a second on matmuls), or more for actors that measure a fraction of their steps and let a cost
    /// model score the rest.</summary>
    public double StepsPerSecondPerWorker { get; init; } = 125;

    /// <summary>The Ape-X hyperparameters besides the defaults (e.g. {"Asynchronous": true, "Gemm": "managed"}).</summary>
    public JsonObject? Set { get; init; }

    /// <summary>A named dataset or folder: the actors' episodes draw its train split, the evaluation its test split.</summary>
    public string Dataset { get; init; } = "mm64_256_16_range";

    /// <summary>The action space.</summary>
    public string Actions { get; init; } = "tile";

    /// <summary>Episode length in actions.</summary>
    public int Steps { get; init; } = 10;

    /// <summary>Test benchmarks the policy is evaluated on (the last ones of the test split).</summary>
    public int EvalSize { get; init; } = 10;

    /// <summary>Seed of every random choice.</summary>
    public int Seed { get; init; }
}

/// <summary>One row of the learner's limit: <paramref name="Workers"/> simulated workers offering
/// <paramref name="OfferedStepsPerSecond"/>; the steps a second the learner absorbed and its updates a second, both from the
/// end of its first iteration with updates (<paramref name="LearningSeconds"/> of it); the seconds the actors and the
/// learner waited for each other; the greedy policy's geometric-mean speed-up over the unscheduled nests of the test
/// benchmarks, scored by the evaluator, after the row's wall time; and <paramref name="GcPauseSeconds"/>, how long the
/// garbage collector held the process's threads (the learner's among them) over the same span.</summary>
public sealed record LearnerLimitRow(int Workers, bool Asynchronous, string Gemm, double OfferedStepsPerSecond, double StepsPerSecond,
    double UpdatesPerSecond, double UpdatesPerStep, double LearningSeconds, double ActorWaitSeconds, double LearnerWaitSeconds, double Evaluation,
    double GcPauseSeconds = 0);

/// <summary>
/// Measures how many workers one Ape-X learner keeps up with (issue 23): <c>W</c> simulated workers, threads that share the
/// actors' core (<see cref="WorkerPool.Sharing"/>) and pace themselves to a real worker's step rate, act on environments
/// scored by a cheap evaluator (<see cref="SyntheticEvaluator"/>, or a cost model's: <c>evaluator</c>), while the learner runs
/// on the calling thread, pinned to another core. With the updates per environment step held, the steps absorbed a second
/// stop growing with <c>W</c> where the learner's updates a second reach its limit: past that, the actors wait.
/// </summary>
public static class LearnerLimit
{
    /// <summary>One row for <paramref name="workers"/> workers; <paramref name="evaluator"/> scores every schedule (default:
    /// a <see cref="SyntheticEvaluator"/> at this machine's peak).</summary>
    public static LearnerLimitRow Run(LearnerLimitRequest r, int workers, IEvaluator? evaluator = null)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (workers < 1) throw new LoopTuneException($"--workers {workers}: at least one worker is needed");
        if (!(r.StepsPerSecondPerWorker > 0)) throw new LoopTuneException($"--worker-rate {r.StepsPerSecondPerWorker}: a worker offers a positive number of steps a second");
        var config = Training.Configure(new ApexDqnConfig { AsyncIterationSteps = 200 }, r.Set);
        var dataset = Dataset.Load(r.Dataset);
        var space = ActionSpace.Get(r.Actions);
        int bits = Jit.JitOptions.Default.VectorBits;
        double peak = PeakCache.GetOrMeasure(bits);
        var target = new TrainingTarget(bits, evaluator ?? new SyntheticEvaluator(peak), peak, Observations.MachineTensor(Machine.At(bits)));
        var (actorCore, learnerCore) = Cores();
        using var pin = ThreadPinning.Pin(learnerCore);
        using var pool = WorkerPool.Sharing(workers, [actorCore]);
        var envs = Enumerable.Range(0, workers).Select(_ => Enumerable.Range(0, config.ActorsPerWorker)
            .Select(_ => TrainingEnvs.Make(space, [target], dataset.Train, r.Steps)).ToArray()).ToArray();
        using var trainer = new ApexDqn(config, TrainingEnvs.Shape(config, space),
            shape => new LocalActors(config, shape, pool, envs, r.Seed) { StepsPerSecondPerWorker = r.StepsPerSecondPerWorker }, r.Seed);

        var clock = Stopwatch.StartNew();
        (double Seconds, long Steps, long Updates)? from = null;
        var pausedBefore = TimeSpan.Zero;
        double actorWait = 0, learnerWait = 0;
        bool measured = false;
        // past the wall time only until the span has one iteration (a phased round of many workers can outlast the row)
        while (clock.Elapsed < r.Time || !measured)
        {
            var values = trainer.Iterate();
            // from the end of the first iteration that updated: an asynchronous iteration ends by absorbing what the actors
            // had in hand, whose updates the next one makes, so each end of the measured span owes about as many
            if (from is null && values.ContainsKey("updates"))
            {
                from = (clock.Elapsed.TotalSeconds, trainer.EnvSteps, Updates(trainer));
                pausedBefore = GC.GetTotalPauseDuration();
            }
            else if (from is not null)
            {
                measured = true;
                actorWait += values.GetValueOrDefault("actor_wait_s");
                learnerWait += values.GetValueOrDefault("learner_wait_s");
            }
        }
        double paused = from is null ? 0 : (GC.GetTotalPauseDuration() - pausedBefore).TotalSeconds;
        var (start, steps0, updates0) = from ?? (clock.Elapsed.TotalSeconds, trainer.EnvSteps, Updates(trainer));
        double seconds = Math.Max(clock.Elapsed.TotalSeconds - start, 1e-9);
        long steps = trainer.EnvSteps - steps0, updates = Updates(trainer) - updates0;
        return new LearnerLimitRow(workers, config.Asynchronous, trainer.GemmName, workers * r.StepsPerSecondPerWorker, steps / seconds,
            updates / seconds, steps > 0 ? updates / (double)steps : 0, seconds, actorWait, learnerWait,
            Evaluate(Policy.FromNetwork(trainer.Policy, r.Steps, space), dataset, r.EvalSize, target), paused);
    }

    static long Updates(ApexDqn trainer) => (long)trainer.State()["updates"]!;

    /// <summary>The actors' core and the learner's: the first two this process may use, or one shared by both.</summary>
    static (int Actors, int Learner) Cores()
    {
        var cores = ThreadPinning.CurrentAffinity();
        return cores.Count switch
        {
            0 => (0, Math.Min(1, Environment.ProcessorCount - 1)),
            1 => (cores[0], cores[0]),
            _ => (cores[0], cores[1]),
        };
    }

    /// <summary>The geometric mean over the last <paramref name="size"/> test benchmarks of the greedy rollout's best score
    /// over the unscheduled nest's.</summary>
    static double Evaluate(Policy policy, Dataset dataset, int size, TrainingTarget target)
    {
        var test = dataset.Test.Skip(Math.Max(0, dataset.Test.Count - size)).ToList();
        if (test.Count == 0) return double.NaN;
        return Math.Exp(test.Average(c => Speedup(Rollout.Greedy(policy, c, target.Evaluator, machine: target.Machine))));
    }

    static double Speedup(RolloutResult r) => Math.Log(r.BestGflops / r.StartGflops);

    /// <summary>Whether a row kept up with what its workers offered: it absorbed at least 95 % of it.</summary>
    public static bool KeptUp(LearnerLimitRow row) => row.StepsPerSecond >= 0.95 * row.OfferedStepsPerSecond;

}
