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

    /// <summary>The slices the estimated schedules were timed on, for <see cref="Fastest"/> to time again (cleared when
    /// <see cref="SlicesKept"/> are kept: a long run's compiled code is not kept for ever).</summary>
    readonly ConcurrentDictionary<(string, string), Kernel> slices = new();
    const int SlicesKept = 256;
    KernelTiming.Workspace? buffers;

    /// <summary>An evaluator with the environment's timing (<see cref="MeasureOptions.Env"/>) and no store.</summary>
    public KernelEvaluator() : this(MeasureOptions.Env) { }

    /// <summary>Compiles and times one small kernel (mm 64^3, a 4-row tile) once per process, on no store, so that the code
    /// that compiles and times kernels is itself compiled before a budget's clock starts (<see cref="Prepare"/>): the first
    /// evaluation of a process took 100-105 ms here where the next took 4-9 ms (on mm 128 2304 768), a tenth of a default
    /// tune's second. Later calls return at once.</summary>
    static void WarmUp() => _ = warmedUp.Value;

    static readonly Lazy<bool> warmedUp = new(() =>
    {
        using var e = new KernelEvaluator();
        e.Evaluate(Nest.Parse(Computation.Matmul(64, 64, 64), ">m:16 k:64 m:4u n:64v"));
        return true;
    });

    public MeasurementStore? Store => store;

    /// <summary>The threads each schedule is timed on, with a parallel loop added (<see cref="Transforms.Parallelize"/>).</summary>
    public int Threads { get; init; } = RunThreads.Default;

    /// <summary>What the caches hold when each schedule is timed: hot (the default) or one operand cold.</summary>
    public TimingContext Context { get; init; }

    /// <summary>The variable whose loop is made parallel at <see cref="Threads"/> threads where one qualifies, in place of
    /// the rule's (<see cref="Transforms.Parallelize(Nest, int, string?)"/>); null: the rule.</summary>
    public string? ParallelOver { get; init; }

    /// <summary>The schedule as this evaluator times it: with the parallel loop <see cref="Threads"/> call for.</summary>
    public Nest AsRun(Nest nest) => Transforms.Parallelize(nest, Threads, ParallelOver);

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
        var kernel = Compile(run);
        var (m, slice) = KernelTiming.Bounded(run, kernel, options, Buffers(nest.Computation), MaxRunSeconds, jit);
        kernel.Release(); // its packed copies' buffers, mapped, for the next schedule's
        if (slice is null) store?.Put(run, m);
        else
        {
            if (slices.Count >= SlicesKept) slices.Clear();
            slices[key] = slice;
        }
        return seen[key] = new Evaluated(m.Gflops, m.MedianSeconds, false, slice is not null);
    }

    /// <summary>Runs <paramref name="nest"/>'s kernel (as <see cref="AsRun"/> makes it) on this evaluator's buffers of its
    /// computation, untimed, for about <see cref="WarmBuffersSeconds"/> (at most <see cref="WarmBuffersRuns"/> runs), so that the
    /// first evaluation on fresh buffers does not read low: on mm 128 2304 768 it read 161-174 GFLOPS where the same
    /// schedule reads 184-190 later; 20 runs of a kernel of the computation first removed that, 50 ms of a small kernel of
    /// another did not. Nothing when one run would take longer than <see cref="WarmBuffersSeconds"/> by
    /// <see cref="KernelTiming.Plan"/>'s prediction (a large problem, whose evaluations are slices anyway).</summary>
    public void WarmBuffers(Nest nest)
    {
        ArgumentNullException.ThrowIfNull(nest);
        var workspace = Buffers(nest.Computation);
        var run = AsRun(nest);
        if (KernelTiming.Plan(run, workspace, MaxRunSeconds, jit).Predicted > WarmBuffersSeconds) return;
        var kernel = Compile(run);
        try
        {
            var once = KernelTiming.Runner(kernel, workspace);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int i = 0; i < WarmBuffersRuns && clock.Elapsed.TotalSeconds < WarmBuffersSeconds; i++) once();
        }
        finally { kernel.Release(); }
    }

    /// <summary>How long <see cref="WarmBuffers"/> runs a kernel at most, and the longest run it starts.</summary>
    public const double WarmBuffersSeconds = 0.05;

    /// <summary>The most runs <see cref="WarmBuffers"/> makes.</summary>
    public const int WarmBuffersRuns = 20;

    /// <summary>What kernels are compiled with (their vector width, above all).</summary>
    public JitOptions Jit => jit;

    /// <summary>Compiles the candidates and times them side by side (<see cref="Timing.MeasureTogether"/> with
    /// <see cref="MeasureOptions.Confirm"/>, pinned, never from the store, sampling for at most <paramref name="within"/>): the
    /// index of the highest median GFLOPS. When one of them was an estimate (too slow to run whole), the slices of the
    /// estimated ones (those they were timed on, when kept) are timed side by side with the others whole
    /// (<see cref="KernelTiming.MeasureBoundedTogether"/>). A side-by-side timing costs a warm-up, a calibration and
    /// <see cref="MeasureOptions.MinSamples"/> rounds at least, whatever its limit (on a 4096^3 matmul, five slices given
    /// 0.09 s took 0.22); when that does not fit in <paramref name="within"/> for them all, the fastest by their figures
    /// are timed, as many as fit, and when not even two fit, their figures decide without a new timing.</summary>
    public int Fastest(IReadOnlyList<Nest> candidates, TimeSpan? within = null)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentOutOfRangeException.ThrowIfZero(candidates.Count);
        var c = candidates[0].Computation;
        if (candidates.Any(n => !n.Computation.Equals(c))) throw new ArgumentException("the candidates are schedules of different computations", nameof(candidates));
        if (candidates.Count == 1) return 0;
        // fastest first by the figures known; a run's time: an estimated kernel's stand-in is a slice of about a quarter
        // of the run limit (KernelTiming.Plan), one never evaluated here is taken to be as long
        var order = candidates.Select((n, i) => seen.TryGetValue((c.Text, n.ScheduleKey), out var e)
                ? (i, e.Gflops, Seconds: e.Estimated ? MaxRunSeconds / 4 : e.Seconds, e.Estimated)
                : (i, Gflops: 0.0, Seconds: MaxRunSeconds / 4, Estimated: false))
            .OrderByDescending(x => x.Gflops).ToList();
        double limit = Math.Min(within?.TotalSeconds ?? double.PositiveInfinity, MeasureOptions.Confirm.MaxSeconds);
        double Round(int n) => order.Take(n).Sum(x => x.Seconds);
        int count = order.Count;
        while (count > 1 && (MeasureOptions.Confirm.MinSamples + 2) * Round(count) > limit) count--;
        if (count == 1) return order[0].i;
        var chosen = order.Take(count).ToList();
        double round = Round(count);
        var options = MeasureOptions.Confirm with { MaxSeconds = Math.Max(limit - 2 * round, 1e-3) };
        var workspace = Buffers(c);
        var nests = chosen.Select(x => AsRun(candidates[x.i])).ToList();
        var kernels = nests.Select(Compile).ToList();
        try
        {
            IReadOnlyList<double> gflops;
            if (chosen.Any(x => x.Estimated))
                gflops = [.. KernelTiming.MeasureBoundedTogether(nests, kernels, options, workspace, MaxRunSeconds, jit,
                    [.. chosen.Select(x => slices.GetValueOrDefault((c.Text, candidates[x.i].ScheduleKey)))]).Select(m => m.Measurement.Gflops)];
            else
            {
                var runs = kernels.Select(k => KernelTiming.Runner(k, workspace)).ToList();
                using var pin = ThreadPinning.Pin();
                gflops = [.. Timing.MeasureTogether(runs, [.. chosen.Select(_ => c.Flops)], options).Measurements.Select(m => m.Gflops)];
            }
            int best = 0;
            for (int j = 1; j < gflops.Count; j++)
                if (gflops[j] > gflops[best]) best = j;
            return chosen[best].i;
        }
        finally
        {
            foreach (var k in kernels) k.Release();
        }
    }

    /// <summary>Allocates and fills the buffers kernels of <paramref name="c"/> are timed on (200 MB for a 4096^3 matmul,
    /// half a second here; in a cold <see cref="Context"/>, the copies of the cold operand too), and compiles the code that
    /// compiles and times kernels (<see cref="WarmUp"/>, once per process), so that a caller can do both before a search's
    /// clock starts; the first evaluation does them otherwise.</summary>
    public KernelTiming.Workspace Prepare(Computation c)
    {
        WarmUp();
        return Buffers(c);
    }

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
