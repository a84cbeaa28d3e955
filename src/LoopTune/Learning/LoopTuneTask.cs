using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Learning;

/// <summary>
/// The observation a policy reads, as one float vector: the environment's default tensors, and the share of the episode
/// left (a policy with a step limit must know how many steps it has).
/// <code>
/// | slice      | size | source                                       |
/// |------------|------|----------------------------------------------|
/// | 0..229     | 230  | loops_tensor (10 loops x 23 features)        |
/// | 230..261   | 32   | stride_tensor                                |
/// | 262..346   | 85   | prev_actions_tensor (5 x 17 one-hot)         |
/// | 347        | 1    | steps taken / episode length                 |
/// </code>
/// </summary>
public static class ObservationEncoder
{
    /// <summary>The encoding's name, stored with every policy: a policy only reads observations of its own encoding.</summary>
    public const string Name = "loops+strides+prev_actions+time/v1";

    public static int Size { get; } = Nest.MaxLoops * Observations.LoopFeatures + Observations.StrideBuckets
        + Observations.PreviousActions * Actions.Count + 1;

    public static float[] Encode(Observation o, int step, int episodeLength)
    {
        var x = new float[Size];
        o.LoopsTensor.CopyTo(x, 0);
        o.StrideTensor.CopyTo(x, o.LoopsTensor.Length);
        o.PrevActionsTensor.CopyTo(x, o.LoopsTensor.Length + o.StrideTensor.Length);
        x[^1] = step / (float)episodeLength;
        return x;
    }
}

/// <summary>
/// The loop-nest environment (<see cref="LoopTuneEnv"/>) as an <see cref="IRlEnv"/>: each episode starts from the
/// unscheduled nest of a benchmark drawn uniformly from <see cref="Benchmarks"/>, lasts <c>episodeLength</c> steps, and
/// its reward is the environment's (ΔGFLOPS / peak). The score of a state is its GFLOPS.
/// </summary>
public sealed class LoopTuneTask(IEvaluator evaluator, double peakGflops, IReadOnlyList<Computation> benchmarks, int episodeLength = 10) : IRlEnv, IDisposable
{
    readonly LoopTuneEnv env = new(evaluator, peakGflops, episodeLength);

    public IReadOnlyList<Computation> Benchmarks { get; } = benchmarks.Count > 0 ? benchmarks : throw new ArgumentException("a task needs at least one benchmark", nameof(benchmarks));
    public int ObservationSize => ObservationEncoder.Size;
    public int ActionCount => Actions.Count;
    public LoopTuneEnv Env => env;

    public TimeStep Reset(Rng rng) => Reset(Benchmarks[rng.Next(Benchmarks.Count)]);

    /// <summary>Starts an episode on <paramref name="benchmark"/> (evaluation).</summary>
    public TimeStep Reset(Computation benchmark)
    {
        var (o, info) = env.Reset(benchmark);
        return new(ObservationEncoder.Encode(o, 0, env.EpisodeLength), info.ActionMask, 0, false, info.Gflops);
    }

    public TimeStep Step(int action)
    {
        var r = env.Step(action);
        return new(ObservationEncoder.Encode(r.Observation, env.Steps, env.EpisodeLength), r.Info.ActionMask, r.Reward, r.Truncated || r.Terminated, r.Info.Gflops);
    }

    public void Dispose()
    {
        env.Dispose();
        if (evaluator is IDisposable d) d.Dispose();
    }
}
