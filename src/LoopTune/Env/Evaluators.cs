using System.Collections.Concurrent;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;

namespace LoopTune.Env;

/// <summary>The speed of one schedule: GFLOPS, seconds per run, and whether it was recalled rather than timed now.</summary>
public readonly record struct Evaluated(double Gflops, double Seconds, bool Recalled);

/// <summary>What the environment and the searches ask for the speed of a schedule. The real one compiles and times the
/// kernel; tests pass a deterministic one.</summary>
public interface IEvaluator
{
    Evaluated Evaluate(Nest nest);
}

/// <summary>Compiles and times each schedule (pinned, medians), remembering results in this process by
/// (computation, schedule key): the cursor does not change the kernel, so it is not part of the key.</summary>
public sealed class KernelEvaluator(MeasureOptions options) : IEvaluator
{
    readonly ConcurrentDictionary<(string, string), Evaluated> seen = new();

    public KernelEvaluator() : this(MeasureOptions.Quick) { }

    public Evaluated Evaluate(Nest nest)
    {
        var key = (nest.Computation.Text, nest.ScheduleKey);
        if (seen.TryGetValue(key, out var e)) return e with { Recalled = true };
        var m = KernelTiming.Measure(Kernel.Compile(nest), options);
        return seen[key] = new Evaluated(m.Gflops, m.MedianSeconds, false);
    }
}
