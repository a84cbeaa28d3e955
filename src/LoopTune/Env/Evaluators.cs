using System.Collections.Concurrent;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using LoopTune.Store;

namespace LoopTune.Env;

/// <summary>The speed of one schedule: GFLOPS, seconds per run, and whether it was recalled rather than timed now.</summary>
public readonly record struct Evaluated(double Gflops, double Seconds, bool Recalled);

/// <summary>What the environment and the searches ask for the speed of a schedule. The real one compiles and times the
/// kernel; tests pass a deterministic one.</summary>
public interface IEvaluator
{
    Evaluated Evaluate(Nest nest);
}

/// <summary>
/// Compiles and times each schedule (pinned, medians). A schedule seen before is recalled instead: first from this
/// process's memory, then from the <see cref="MeasurementStore"/> if one is given (shared by processes and runs), by
/// (computation, schedule key, machine, runtime): the cursor does not change the kernel, so it is not part of the key.
/// Buffers are kept for the last computation timed, so an episode on one benchmark allocates them once.
/// The evaluator owns the store it is given: disposing it closes the store.
/// </summary>
public sealed class KernelEvaluator(MeasureOptions options, MeasurementStore? store = null) : IEvaluator, IDisposable
{
    readonly ConcurrentDictionary<(string, string), Evaluated> seen = new();
    KernelTiming.Workspace? buffers;

    /// <summary>An evaluator with the environment's timing (<see cref="MeasureOptions.Env"/>) and no store.</summary>
    public KernelEvaluator() : this(MeasureOptions.Env) { }

    public MeasurementStore? Store => store;

    public Evaluated Evaluate(Nest nest)
    {
        var key = (nest.Computation.Text, nest.ScheduleKey);
        if (seen.TryGetValue(key, out var e)) return e with { Recalled = true };
        if (store is not null && store.TryGet(nest, out var stored))
            return seen[key] = new Evaluated(stored.Gflops, stored.MedianSeconds, true);
        var m = Measure(nest);
        store?.Put(nest, m);
        return seen[key] = new Evaluated(m.Gflops, m.MedianSeconds, false);
    }

    Measurement Measure(Nest nest)
    {
        if (buffers?.Computation.Equals(nest.Computation) != true)
        {
            buffers?.Dispose();
            buffers = new KernelTiming.Workspace(nest.Computation);
        }
        return KernelTiming.Measure(Kernel.Compile(nest), options, buffers);
    }

    public void Dispose()
    {
        buffers?.Dispose();
        store?.Dispose();
    }
}

/// <summary>The evaluators a command line builds.</summary>
public static class Evaluators
{
    /// <summary>The real evaluator: compiles and times schedules with <paramref name="options"/> (default
    /// <see cref="MeasureOptions.Env"/>), answering repeated states from the measurement store at <paramref name="dbPath"/>
    /// (default: <see cref="MeasurementStore.DefaultPath"/> in the user's data folder).</summary>
    public static KernelEvaluator Default(string? dbPath = null, MeasureOptions? options = null) =>
        new(options ?? MeasureOptions.Env, new MeasurementStore(dbPath));
}
