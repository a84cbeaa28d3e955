using System.Collections.Concurrent;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Store;

namespace LoopTune;

/// <summary>
/// The best kernel for a contraction on this machine, for programs that use LoopTune as a library:
/// <code>
/// using var tuner = Tuner.Open();
/// TunedKernel k = tuner.Get("mm 256 256 256");    // tuned once with the default tuner, then recalled
/// k.Run(c, a, b);                                  // C += A * B
/// </code>
/// <list type="table">
/// <item><term>records</term><description>the tuning records of the <see cref="MeasurementStore"/> (the data folder's
/// <c>measurements.db</c>, or the SQLite file given), kept per machine key, runtime and thread count; the records
/// <c>looptune model</c> writes, and <c>looptune records</c> lists, exports and imports; and per timing context
/// (<see cref="TunerOptions.Cold"/>: a kernel tuned with an operand cold has a record of its own).</description></item>
/// <item><term>recalled</term><description>a computation with a record is neither searched nor measured nor verified
/// again (the record was verified when tuned); its <see cref="TunedKernel.Gflops"/> are the record's. Its kernel is the
/// record's compiled library, loaded (<see cref="TunedKernel.Native"/>, <see cref="CompiledRecords"/>: the schedule
/// exported as C and built by the machine's C compiler after the tune or the first recall, on a background thread), or
/// without one the schedule compiled by the JIT (1-8 ms, most of it RyuJIT's, which follows the code the schedule
/// spells out).</description></item>
/// <item><term>tuned</term><description>one without is tuned as <c>looptune tune</c> tunes (<see cref="PolicyTuning"/>:
/// the policy's search within <see cref="TunerOptions.Budget"/>, then the best schedule verified against the reference
/// and timed), and recorded. A kernel that fails verification is an internal error, never recorded.</description></item>
/// <item><term>threads</term><description>a tuner is thread-safe. Concurrent <see cref="Get(string)"/>s of one computation
/// tune it once: the others wait for that kernel. Searches in one process run one at a time (two searches timing kernels
/// at once would each measure the other); recalls do not wait for them. Two processes may both tune a computation
/// neither has a record of: the last record written stays.</description></item>
/// <item><term>compiled records</term><description>with <see cref="TunerOptions.CompiledRecords"/> (the default) and one
/// thread, a record's library is built in the background after its tune or its first recall without one, one build at a
/// time, holding the process's search lock (no search times kernels while the compiler runs); <see cref="Dispose"/>
/// waits for builds in flight; <see cref="Builds"/> says what each did. No C compiler: no library, the JIT.</description></item>
/// </list>
/// A bad spec, budget, policy or thread count is a <see cref="LoopTuneException"/> naming it.
/// </summary>
public sealed class Tuner : IDisposable
{
    /// <summary>One search at a time in the process, whatever the tuner.</summary>
    static readonly Lock searching = new();

    readonly MeasurementStore store;
    readonly ConcurrentDictionary<string, Lazy<TunedKernel>> kernels = new();
    readonly ConcurrentDictionary<string, Policy> policies = new();
    int searches, recalls;
    /// <summary>The records' libraries, or null (<see cref="TunerOptions.CompiledRecords"/> off, or more than one thread).</summary>
    readonly CompiledRecords? compiled;
    readonly Lock building = new();
    Task builds = Task.CompletedTask;
    readonly HashSet<string> queued = [];
    readonly ConcurrentQueue<string> built = new();

    Tuner(MeasurementStore store, TunerOptions options)
    {
        this.store = store;
        Options = options;
        if (options.CompiledRecords && options.Threads == 1) compiled = new CompiledRecords(CompiledRecords.FolderFor(store.Path), store.Machine);
    }

    /// <summary>The longest <see cref="Dispose"/> waits for the compiled records' builds in flight.</summary>
    public static readonly TimeSpan BuildWait = TimeSpan.FromSeconds(60);

    /// <summary>A tuner over the records at <paramref name="recordsPath"/> (a SQLite measurement store, created when
    /// missing; default: <c>measurements.db</c> in the data folder, which <c>$LOOPTUNE_HOME</c> moves) for this machine,
    /// tuning with <paramref name="options"/> (default: <see cref="TunerOptions"/>'s).</summary>
    public static Tuner Open(string? recordsPath = null, TunerOptions? options = null)
    {
        var checkedOptions = (options ?? new TunerOptions()).Validate();
        return new Tuner(new MeasurementStore(recordsPath), checkedOptions);
    }

    /// <summary>What this tuner tunes with.</summary>
    public TunerOptions Options { get; }

    /// <summary>The records' file.</summary>
    public string RecordsPath => store.Path;

    /// <summary>The machine key its records are kept under (<see cref="PeakCache.MachineKey"/>).</summary>
    public string MachineKey => store.Machine;

    /// <summary>Searches this tuner ran (computations it had no usable record of).</summary>
    public int Searches => Volatile.Read(ref searches);

    /// <summary>Kernels this tuner compiled or loaded from a record without searching.</summary>
    public int Recalls => Volatile.Read(ref recalls);

    /// <summary>What each compiled record's build finished with so far, as "spec: schedule: outcome" (kept, already
    /// built, or why not), in the order they finished.</summary>
    public IReadOnlyList<string> Builds => [.. built];

    /// <summary>The kernel of <paramref name="spec"/> (<c>mm M N K</c>, <c>conv C H W F R S</c> or a contraction, as
    /// <see cref="Computation.Parse(string)"/> reads it): this tuner's, recalled from the records, or tuned now.</summary>
    public TunedKernel Get(string spec) => Get(Computation.Parse(spec));

    /// <summary>The kernel of <paramref name="computation"/> (<see cref="Get(string)"/>). A failed attempt (bad input, an
    /// internal error) is thrown to every caller waiting for it and forgotten, so a later call tries again.</summary>
    public TunedKernel Get(Computation computation)
    {
        ArgumentNullException.ThrowIfNull(computation);
        var entry = kernels.GetOrAdd(computation.Text, _ => new Lazy<TunedKernel>(() => Make(computation), LazyThreadSafetyMode.ExecutionAndPublication));
        try { return entry.Value; }
        catch
        {
            kernels.TryRemove(new(computation.Text, entry));
            throw;
        }
    }

    /// <summary><see cref="Get(string)"/> on the thread pool, for callers that must not block (a first call searches for
    /// about <see cref="TunerOptions.Budget"/> and then times the result). <paramref name="cancellation"/> cancels a call
    /// that has not started; a search that has runs to its budget.</summary>
    public Task<TunedKernel> GetAsync(string spec, CancellationToken cancellation = default) => Task.Run(() => Get(spec), cancellation);

    /// <summary>The kernel compiled from this machine's record, or tuned (inside the process's search lock, where a record
    /// another tuner wrote meanwhile is looked for again) and recorded.</summary>
    TunedKernel Make(Computation c)
    {
        if (Recall(c) is { } recalled) return recalled;
        lock (searching)
        {
            if (Recall(c) is { } meanwhile) return meanwhile;
            var tuned = Tune(c);
            Interlocked.Increment(ref searches);
            return tuned;
        }
    }

    /// <summary>The kernel of <paramref name="c"/>'s record, compiled; null without a record, or with one whose schedule no
    /// longer reads or compiles (it is then tuned again and replaced).</summary>
    TunedKernel? Recall(Computation c)
    {
        if (!store.TryGetRecord(c, Options.Threads, Options.Context, out var record)) return null;
        if (compiled?.Load(c, record.Schedule) is { } native)
        {
            Interlocked.Increment(ref recalls);
            return new TunedKernel(native, record, () => Compile(Nest.Parse(c, record.Schedule)));
        }
        Nest nest;
        Kernel kernel;
        try { kernel = Compile(nest = Nest.Parse(c, record.Schedule)); }
        catch (Exception e) when (e is LoopTuneException or ArgumentException) { return null; }
        Interlocked.Increment(ref recalls);
        BuildLater(nest);
        return new TunedKernel(kernel, record, recalled: true);
    }

    Kernel Compile(Nest nest)
    {
        var kernel = Kernel.Compile(nest, null, warmUp: false);
        kernel.Threads = Options.Threads;
        return kernel;
    }

    /// <summary>Queues the build of <paramref name="nest"/>'s compiled record (once per schedule per tuner), after the builds
    /// queued before it, on the thread pool, inside the search lock.</summary>
    void BuildLater(Nest nest)
    {
        if (compiled is null) return;
        string what = $"{nest.Computation.Text}: {nest.Serialize()}";
        lock (building)
        {
            if (!queued.Add(what)) return;
            builds = builds.ContinueWith(_ =>
            {
                string outcome;
                try
                {
                    lock (searching) outcome = compiled.Build(nest);
                }
                catch (Exception e) when (e is LoopTuneException or IOException or UnauthorizedAccessException or InvalidOperationException or DllNotFoundException or EntryPointNotFoundException)
                {
                    outcome = $"not built: {e.Message}";
                }
                built.Enqueue($"{what}: {outcome}");
            }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }
    }

    /// <summary>The default tuner's search and final timing on <see cref="TunerOptions.Threads"/> threads (each schedule
    /// timed with the parallel loop <see cref="Transforms.Parallelize"/> gives it, as <c>looptune tune --threads</c> does),
    /// recorded once verified.</summary>
    TunedKernel Tune(Computation c)
    {
        var pol = policies.GetOrAdd(Policy.Choose(Options.Policy, c), Policy.Load);
        var search = PolicyTuning.Method(pol, Options.Budget, 1, out var limit);
        var (result, best, _, _) = PolicyTuning.Tune(search, pol, c, limit, MeasureOptions.Default, null, Options.Threads, Options.Context);
        if (!best.Verification.Passed)
            throw new InvalidOperationException($"the kernel tuned for {c.Text} ({best.Nest.Serialize()}) is wrong: {best.Verification.Problem}");
        var record = new TuningRecord(best.Nest.Serialize(), PolicyTuning.MethodOf(result, best.Nest, Options.Threads), Options.Budget, best.Gflops, DateTime.UtcNow);
        store.PutRecord(c, Options.Threads, Options.Context, record);
        BuildLater(best.Nest);
        return new TunedKernel(best.Kernel, record, recalled: false);
    }

    /// <summary>Waits for the compiled records' builds in flight (at most <see cref="BuildWait"/>), closes the records' store
    /// and frees the large buffers timing kept for reuse (<see cref="AlignedBuffer.ReleaseKept"/>). Kernels already
    /// returned keep working.</summary>
    public void Dispose()
    {
        Task pending;
        lock (building) pending = builds;
        pending.Wait(BuildWait);
        store.Dispose();
        AlignedBuffer.ReleaseKept();
    }
}
