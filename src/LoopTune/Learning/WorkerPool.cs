using System.Collections.Concurrent;
using LoopTune.Measure;

namespace LoopTune.Learning;

/// <summary>
/// Measuring workers: one thread per core, each pinned to its own core for its whole life, so no two workers ever share a
/// core. <see cref="Run"/> hands every worker one piece of work and waits for all of them; between two runs the workers
/// idle, and that is when the learner updates (on the calling thread), so the learner never takes a core from a worker
/// that is timing a kernel.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    readonly BlockingCollection<Action>[] queues;
    readonly Thread[] threads;

    /// <summary>Starts one worker per entry of <paramref name="cores"/> (distinct core ids).</summary>
    public WorkerPool(IReadOnlyList<int> cores) : this(cores, sharing: false) { }

    /// <summary>Simulated workers for throughput measurements, which time nothing: <paramref name="workers"/> threads,
    /// worker w pinned to <paramref name="cores"/>[w mod count], so that several share a core (a measuring pool never does).</summary>
    public static WorkerPool Sharing(int workers, IReadOnlyList<int> cores)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        ArgumentNullException.ThrowIfNull(cores);
        if (cores.Count == 0) throw new ArgumentException("a pool needs at least one core", nameof(cores));
        return new WorkerPool([.. Enumerable.Range(0, workers).Select(w => cores[w % cores.Count])], sharing: true);
    }

    WorkerPool(IReadOnlyList<int> cores, bool sharing)
    {
        if (cores.Count == 0) throw new ArgumentException("a pool needs at least one core", nameof(cores));
        if (!sharing && cores.Distinct().Count() != cores.Count) throw new ArgumentException($"cores {string.Join(", ", cores)} repeat a core: a core is never shared by two workers", nameof(cores));
        Cores = [.. cores];
        Pinned = new bool[cores.Count];
        queues = [.. cores.Select(_ => new BlockingCollection<Action>())];
        threads = new Thread[cores.Count];
        using var started = new CountdownEvent(cores.Count);
        for (int w = 0; w < cores.Count; w++)
        {
            int worker = w;
            threads[w] = new Thread(() =>
            {
                Pinned[worker] = ThreadPinning.PinCurrentThread(Cores[worker]);
                started.Signal();
                foreach (var work in queues[worker].GetConsumingEnumerable()) work();
            })
            { IsBackground = true, Name = $"looptune-worker-{worker}-core-{Cores[worker]}" };
            threads[w].Start();
        }
        started.Wait();
    }

    /// <summary>The core of each worker, by worker index.</summary>
    public int[] Cores { get; }

    /// <summary>Whether each worker's thread really is pinned to its core (false where the OS refuses pinning).</summary>
    public bool[] Pinned { get; }

    public int Count => Cores.Length;

    /// <summary>How many cores this process may run on.</summary>
    public static int AvailableCores => ThreadPinning.CurrentAffinity() is { Count: > 0 } a ? a.Count : Environment.ProcessorCount;

    /// <summary>The cores a pool of <paramref name="workers"/> gets: the first cores this process may run on, or at N threads
    /// (<see cref="Jit.RunThreads"/>) every N-th of them, the N - 1 after each for its kernels' team
    /// (<see cref="Affinity.TeamCores"/>); a <see cref="LoopTuneException"/> when there are fewer.</summary>
    public static int[] ChooseCores(int workers)
    {
        var allowed = ThreadPinning.CurrentAffinity();
        var cores = allowed.Count > 0 ? allowed : [.. Enumerable.Range(0, Environment.ProcessorCount)];
        int threads = Jit.RunThreads.Default;
        if (workers < 1) throw new LoopTuneException($"--workers {workers}: at least one worker is needed");
        if (workers * threads > cores.Count)
            throw new LoopTuneException($"--workers {workers}{(threads > 1 ? $" of {threads} threads each" : "")}: this process may run on {cores.Count} core(s) ({string.Join(", ", cores)}), and a worker never shares its cores");
        return [.. cores.Where((_, i) => i % threads == 0).Take(workers)];
    }

    /// <summary>Runs <paramref name="work"/>(worker index) on every worker at once and returns when all are done; the first
    /// exception of a worker is rethrown here.</summary>
    public void Run(Action<int> work)
    {
        var errors = new Exception?[Count];
        using var done = new CountdownEvent(Count);
        for (int w = 0; w < Count; w++)
        {
            int worker = w;
            queues[w].Add(() =>
            {
                try { work(worker); }
                catch (Exception e) { errors[worker] = e; }
                finally { done.Signal(); }
            });
        }
        done.Wait();
        if (errors.FirstOrDefault(e => e is not null) is { } error) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
    }

    /// <summary>Runs <paramref name="work"/> on worker <paramref name="worker"/> alone, after what is already queued there;
    /// the task completes with its result or exception, never on the worker's thread (a worker that pulls its own work,
    /// as a cluster's workers do, awaits it without holding the core).</summary>
    public Task<T> Post<T>(int worker, Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        queues[worker].Add(() =>
        {
            try { done.SetResult(work()); }
            catch (Exception e) { done.SetException(e); }
        });
        return done.Task;
    }

    public void Dispose()
    {
        foreach (var q in queues) q.CompleteAdding();
        foreach (var t in threads) t.Join();
        foreach (var q in queues) q.Dispose();
    }
}
