using System.Collections.Concurrent;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using LoopTune.Store;

namespace LoopTune.Env;

/// <summary>The speed of one schedule: GFLOPS, seconds per run, whether it was recalled rather than timed now, and whether
/// it is an estimate from a slice of the kernel (a whole run would have lasted too long; <see cref="KernelTiming.MeasureBounded"/>).</summary>
public readonly record struct Evaluated(double Gflops, double Seconds, bool Recalled, bool Estimated = false);

/// <summary>What the environment and the searches ask for the speed of a schedule. The real one compiles and times the
/// kernel; tests pass a deterministic one.</summary>
public interface IEvaluator
{
    Evaluated Evaluate(Nest nest);
}

/// <summary>An evaluator that can also time a few schedules of one computation side by side and say which is fastest: what
/// a search asks at its end, so that its answer is not merely the luckiest of many
/// quick, noisy measurements.</summary>
public interface IConfirmingEvaluator : IEvaluator
{
    /// <summary>The index of the fastest of <paramref name="candidates"/> (schedules of one computation), timed for at most
    /// about <paramref name="within"/> (default: <see cref="MeasureOptions.Confirm"/>'s limit).</summary>
    int Fastest(IReadOnlyList<Nest> candidates, TimeSpan? within = null);
}

/// <summary>
/// Compiles and times each schedule (pinned, medians). A schedule seen before is recalled instead: first from this
/// process's memory, then from the <see cref="MeasurementStore"/> if one is given (shared by processes and runs), by
/// (computation, schedule key, machine, runtime): the cursor does not change the kernel, so it is not part of the key.
/// Buffers are kept for the last computation timed, so an episode on one benchmark allocates them once.
/// The evaluator owns the store it is given: disposing it closes the store. Kernels are compiled with <c>jit</c> (default:
/// <see cref="JitOptions.Default"/> when the evaluator is made); the store given must be keyed to the same vector width.
/// <para>At N threads (<see cref="Threads"/>, <see cref="RunThreads.Default"/> when the evaluator is made) each schedule is
/// timed as the tuner would run it: with the parallel loop <see cref="Transforms.Parallelize"/> gives it, on N threads;
/// the store given must then be keyed to N threads (<see cref="MeasurementStore.RuntimeAt"/>), as
/// <see cref="Evaluators.Default"/> keys it.</para>
/// <para>In a cold <see cref="Context"/> (<see cref="TimingContext"/>: one input operand read cold, as a model's weights are in
/// a forward pass) every run of the search's timings, of <see cref="Fastest"/>'s side by side and of the slices reads the
/// next of the workspace's copies of that operand (<see cref="KernelTiming.Workspace"/>); the store given must then be
/// keyed to that context (<see cref="MeasurementStore.RuntimeAt(int, TimingContext)"/>), or the first evaluation that
/// would consult it throws: hot and cold figures never answer each other.</para>
/// </summary>
public sealed class KernelEvaluator(MeasureOptions options, MeasurementStore? store = null, JitOptions? jit = null) : IConfirmingEvaluator, IDisposable
{
    readonly JitOptions jit = jit ?? JitOptions.Default;

    /// <summary>Seconds a whole run of a kernel may last before it is timed on a slice instead (an estimate, not kept in the
    /// store): a large unscheduled nest would otherwise spend a search's budget on one measurement.</summary>
    public double MaxRunSeconds { get; init; } = 0.05;

    readonly ConcurrentDictionary<(string, string), Evaluated> seen = new();
    KernelTiming.Workspace? buffers;

    /// <summary>An evaluator with the environment's timing (<see cref="MeasureOptions.Env"/>) and no store.</summary>
    public KernelEvaluator() : this(MeasureOptions.Env) { }

    public MeasurementStore? Store => store;

    /// <summary>The threads each schedule is timed on, with a parallel loop added (<see cref="Transforms.Parallelize"/>).</summary>
    public int Threads { get; init; } = RunThreads.Default;

    /// <summary>What the caches hold when each schedule is timed: hot (the default) or one operand cold.</summary>
    public TimingContext Context { get; init; }

    /// <summary>The schedule as this evaluator times it: with the parallel loop <see cref="Threads"/> call for.</summary>
    public Nest AsRun(Nest nest) => Transforms.Parallelize(nest, Threads);

    /// <summary><paramref name="nest"/> (as <see cref="AsRun"/> makes it) compiled to run on <see cref="Threads"/> threads.</summary>
    Kernel Compile(Nest nest)
    {
        var kernel = Kernel.Compile(nest, jit);
        kernel.Threads = Threads;
        return kernel;
    }

    public Evaluated Evaluate(Nest nest)
    {
        var key = (nest.Computation.Text, nest.ScheduleKey);
        if (seen.TryGetValue(key, out var e)) return e with { Recalled = true };
        var run = AsRun(nest);
        if (store is not null && store.Context != Context)
            throw new InvalidOperationException($"the measurement store is keyed to {store.Context} timings, the evaluator times {Context}: their figures must not mix");
        if (store is not null && store.TryGet(run, out var stored))
            return seen[key] = new Evaluated(stored.Gflops, stored.MedianSeconds, true);
        var (m, estimated) = KernelTiming.MeasureBounded(run, Compile(run), options, Buffers(nest.Computation), MaxRunSeconds, jit);
        if (!estimated) store?.Put(run, m);
        return seen[key] = new Evaluated(m.Gflops, m.MedianSeconds, false, estimated);
    }

    /// <summary>What kernels are compiled with (their vector width, above all).</summary>
    public JitOptions Jit => jit;

    /// <summary>Compiles the candidates and times them side by side (<see cref="Timing.MeasureTogether"/> with
    /// <see cref="MeasureOptions.Confirm"/>, pinned, never from the store, sampling for at most <paramref name="within"/>): the
    /// index of the highest median GFLOPS. When one of them was an estimate (too slow to run whole), the slices of the
    /// estimated ones are timed side by side with the others whole (<see cref="KernelTiming.MeasureBoundedTogether"/>).
    /// When a warm-up and one round of them all would not fit in <paramref name="within"/>, their figures decide without a
    /// new timing.</summary>
    public int Fastest(IReadOnlyList<Nest> candidates, TimeSpan? within = null)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentOutOfRangeException.ThrowIfZero(candidates.Count);
        var c = candidates[0].Computation;
        if (candidates.Any(n => !n.Computation.Equals(c))) throw new ArgumentException("the candidates are schedules of different computations", nameof(candidates));
        if (candidates.Count == 1) return 0;
        // a candidate too slow to run whole was estimated from a slice: timing them all side by side would overrun, so the
        // estimates and quick figures decide
        var known = candidates.Select(n => seen.TryGetValue((c.Text, n.ScheduleKey), out var e) ? e : (Evaluated?)null).ToList();
        bool estimated = known.Any(e => e is { Estimated: true });
        // an estimated kernel's stand-in is a slice of about a quarter of the run limit (KernelTiming.Plan)
        double limit = Math.Min(within?.TotalSeconds ?? double.PositiveInfinity, MeasureOptions.Confirm.MaxSeconds),
            round = known.Sum(e => e is { Estimated: true } ? MaxRunSeconds / 4 : e?.Seconds ?? 0);
        if (2 * round > limit)
            return known.Select((e, i) => (G: e?.Gflops ?? 0, i)).MaxBy(x => x.G).i;
        var workspace = Buffers(c);
        if (estimated)
        {
            var nests = candidates.Select(AsRun).ToList();
            var bounded = KernelTiming.MeasureBoundedTogether(nests, [.. nests.Select(Compile)], MeasureOptions.Confirm with { MaxSeconds = Math.Max(limit - round, 1e-3) },
                workspace, MaxRunSeconds, jit);
            return bounded.Select((m, i) => (G: m.Measurement.Gflops, i)).MaxBy(x => x.G).i;
        }
        var runs = candidates.Select(n => KernelTiming.Runner(Compile(AsRun(n)), workspace)).ToList();
        using var pin = ThreadPinning.Pin();
        var t = Timing.MeasureTogether(runs, [.. candidates.Select(_ => c.Flops)], MeasureOptions.Confirm with { MaxSeconds = Math.Max(limit - round, 1e-3) });
        int best = 0;
        for (int i = 1; i < candidates.Count; i++)
            if (t.Measurements[i].Gflops > t.Measurements[best].Gflops) best = i;
        return best;
    }

    /// <summary>Allocates and fills the buffers kernels of <paramref name="c"/> are timed on (200 MB for a 4096^3 matmul,
    /// half a second here; in a cold <see cref="Context"/>, the copies of the cold operand too), so that a caller can do it before a search's clock starts; the first evaluation does it
    /// otherwise.</summary>
    public KernelTiming.Workspace Prepare(Computation c) => Buffers(c);

    KernelTiming.Workspace Buffers(Computation c)
    {
        if (buffers?.Computation.Equals(c) != true)
        {
            buffers?.Dispose();
            buffers = new KernelTiming.Workspace(c, 1, Context);
        }
        return buffers;
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

    /// <summary>The real evaluator at vector width <paramref name="vectorBits"/> (one this machine accelerates): kernels
    /// compiled with vectors of at most that many bits, the store keyed to this machine at that width.</summary>
    public static KernelEvaluator At(int vectorBits, string? dbPath = null, MeasureOptions? options = null) =>
        new(options ?? MeasureOptions.Env, new MeasurementStore(dbPath, Machine.KeyAt(JitOptions.CheckVectorBits(vectorBits)), MeasurementStore.CurrentRuntime),
            JitOptions.Default with { MaxVectorBits = vectorBits });
}
