using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Learning;

/// <summary>
/// The loop-nest environment (<see cref="LoopTuneEnv"/>, in any <see cref="ActionSpace"/>) as an <see cref="IRlEnv"/>: each
/// episode starts from the unscheduled nest of a benchmark drawn uniformly from <see cref="Benchmarks"/>, on one of the
/// task's environments (one per machine target, such as a vector width, each with its own evaluator and machine_tensor)
/// drawn uniformly too; it lasts the environment's episode length, and its reward is the environment's (ΔGFLOPS / peak).
/// The observation is <see cref="ObservationEncoder"/>'s, the score of a state its GFLOPS. An episode also ends in a
/// state where no action is legal.
/// </summary>
public sealed class LoopTuneTask : IRlEnv, IDisposable
{
    readonly LoopTuneEnv[] envs;
    LoopTuneEnv env;

    /// <summary>A task over <paramref name="envs"/> (one space, one episode length), which it disposes with their evaluators.</summary>
    public LoopTuneTask(IReadOnlyList<LoopTuneEnv> envs, IReadOnlyList<Computation> benchmarks)
    {
        ArgumentOutOfRangeException.ThrowIfZero(envs.Count);
        if (envs.Any(e => e.Space != envs[0].Space || e.EpisodeLength != envs[0].EpisodeLength))
            throw new ArgumentException("the environments of a task share one action space and one episode length", nameof(envs));
        this.envs = [.. envs];
        env = envs[0];
        Benchmarks = benchmarks.Count > 0 ? benchmarks : throw new ArgumentException("a task needs at least one benchmark", nameof(benchmarks));
    }

    /// <summary>A task over one environment of <paramref name="space"/> (default: the seed's cursor space).</summary>
    public LoopTuneTask(IEvaluator evaluator, double peakGflops, IReadOnlyList<Computation> benchmarks, int episodeLength = 10, ActionSpace? space = null, float[]? machine = null)
        : this([new LoopTuneEnv(evaluator, peakGflops, episodeLength, space, machine)], benchmarks) { }

    public IReadOnlyList<Computation> Benchmarks { get; }
    public int ObservationSize => ObservationEncoder.Size;
    public int ActionCount => env.Space.Count;

    /// <summary>The environment of the current episode.</summary>
    public LoopTuneEnv Env => env;

    /// <summary>A new episode: the environment drawn first when there are several, then the benchmark.</summary>
    public TimeStep Reset(Rng rng)
    {
        if (envs.Length > 1) env = envs[rng.Next(envs.Length)];
        return Reset(Benchmarks[rng.Next(Benchmarks.Count)]);
    }

    /// <summary>Starts an episode on <paramref name="benchmark"/> in the current environment (evaluation).</summary>
    public TimeStep Reset(Computation benchmark)
    {
        var (_, info) = env.Reset(benchmark);
        return new(env.Encode(), info.ActionMask, 0, false, info.Gflops);
    }

    public TimeStep Step(int action)
    {
        var r = env.Step(action);
        var mask = r.Info.ActionMask;
        return new(env.Encode(), mask, r.Reward, r.Truncated || r.Terminated || !mask.Contains(true), r.Info.Gflops);
    }

    public void Dispose()
    {
        foreach (var e in envs)
        {
            e.Dispose();
            (e.Evaluator as IDisposable)?.Dispose();
        }
    }
}
