using System.Collections.Concurrent;
using Orleans.Runtime;

namespace LoopTune.Cluster;

/// <summary>One measuring worker of the cluster: a thread pinned to <paramref name="Core"/> of host
/// <paramref name="HostId"/> for its whole life, in the silo <paramref name="Silo"/>.</summary>
/// <param name="Id">Unique in the cluster while the worker lives: <c>HOST/coreN</c> (the registry holds one worker per
/// (host, core)).</param>
/// <param name="HostId">The machine (the host name unless <c>--host-id</c> says otherwise).</param>
/// <param name="Core">The core the worker's thread is pinned to.</param>
/// <param name="Silo">The silo that runs the worker.</param>
/// <param name="Machine">The machine type (<see cref="Measure.PeakCache.MachineKey"/>): measurements of one type compare.</param>
/// <param name="Pinned">Whether the OS really pinned the thread (false where it refuses).</param>
/// <param name="Threads">The threads its kernels run on (<c>looptune silo --threads</c>): a run at another count is refused.</param>
/// <param name="Team">The cores of its kernels' team, <paramref name="Core"/> first (<see cref="Measure.ThreadPinning.TeamCores"/>);
/// null for <paramref name="Core"/> alone.</param>
[GenerateSerializer, Immutable, Alias("looptune.WorkerInfo")]
public sealed record WorkerInfo(string Id, string HostId, int Core, SiloAddress Silo, string Machine, bool Pinned, int Threads = 1, int[]? Team = null)
{
    public static string MakeId(string hostId, int core) => $"{hostId}/core{core}";

    /// <summary>Every core the worker runs on: its own and its team's.</summary>
    public IReadOnlyList<int> Cores => Team ?? [Core];

    /// <summary>Refuses (a <see cref="LoopTuneException"/>) an item of a run whose kernels run on <paramref name="threads"/>
    /// threads when this worker's run on another count, and otherwise makes it the count of the work on this thread
    /// (<see cref="Jit.RunThreads"/>).</summary>
    public void UseThreads(int threads)
    {
        if (threads != Threads)
            throw new ClusterError($"worker {Id} runs kernels on {Threads} thread(s) and this run asks for {threads}: start its silo with 'looptune silo --threads {threads}' (or run with --threads {Threads})");
        Jit.RunThreads.Use(threads);
    }

    public override string ToString() => Id;
}

/// <summary>An item handed to a worker: it holds it until it completes, fails or releases it, or until its silo is lost.</summary>
/// <param name="Id">The lease (a new one each time the item is handed out).</param>
/// <param name="Payload">The request (an Orleans-serializable object the run's handler knows).</param>
[GenerateSerializer, Immutable, Alias("looptune.WorkLease")]
public sealed record WorkLease(long Id, object Payload);

/// <summary>
/// The caller's side of a run, reached by the silos' workers (an Orleans observer of the calling process). Calls to one
/// source are handled one at a time, so each returns at once: a worker with nothing to do asks again later.
/// </summary>
[Alias("looptune.IWorkSource")]
public interface IWorkSource : IGrainObserver
{
    /// <summary>Hands <paramref name="worker"/> the next item it may run (one addressed to it, or to any worker), or null.</summary>
    Task<WorkLease?> Lease(WorkerInfo worker);

    /// <summary>Records the result of lease <paramref name="lease"/> (unless the item already has one: it may have run
    /// twice) and hands the worker its next item, as <see cref="Lease"/> does.</summary>
    Task<WorkLease?> Complete(long lease, object? result, WorkerInfo worker);

    /// <summary>The handler threw: the run fails with <paramref name="error"/> (<paramref name="badInput"/>: a
    /// <see cref="LoopTuneException"/>, bad input rather than a bug).</summary>
    Task Fail(long lease, string error, bool badInput);

    /// <summary>The worker's silo is stopping before the item ran to its end: it is treated as lost (see <see cref="LostWork"/>).</summary>
    Task Release(long lease);
}

/// <summary>What becomes of an item whose worker's silo is lost (dead, or stopping) before the item completed.</summary>
public enum LostWork
{
    /// <summary>It goes back to the queue for any worker: every item gets exactly one result (compare-searches).</summary>
    Requeue,

    /// <summary>It is given up: its outcome is <see cref="WorkOutcome.Lost"/> (training: a lost silo loses only its actors).</summary>
    GiveUp,
}

/// <summary>An item submitted to a run: a request, and optionally the one worker that must run it (a worker whose
/// per-run state, such as its actors, the item needs).</summary>
public sealed record WorkRequest(object Payload, WorkerInfo? Worker = null);

/// <summary>What came of one submitted item: its result and the worker that produced it, or <see cref="Lost"/>.</summary>
/// <param name="Index">The item's position in what was submitted.</param>
/// <param name="Result">The handler's result (null when lost).</param>
/// <param name="Worker">The worker whose result was recorded (null when lost).</param>
public sealed record WorkOutcome(int Index, object? Result, WorkerInfo? Worker)
{
    /// <summary>The item was given up with its silo (<see cref="LostWork.GiveUp"/>).</summary>
    public bool Lost => Worker is null;

    /// <summary>The result as a <typeparamref name="T"/>.</summary>
    public T As<T>() => Result is T t ? t : throw new InvalidOperationException($"item {Index}: expected a {typeof(T).Name}, got {Result?.GetType().Name ?? "nothing (lost)"}");
}

/// <summary>What a handler sees besides its request.</summary>
/// <param name="Worker">The worker running it.</param>
/// <param name="RunId">The run the item belongs to.</param>
/// <param name="State">This worker's state for this run: kept between the run's items, disposed when the run ends.</param>
/// <param name="Stopping">Signalled when the silo stops.</param>
public sealed record WorkerContext(WorkerInfo Worker, string RunId, WorkerState State, CancellationToken Stopping);

/// <summary>A worker's state for one run, by key (training keeps its actors' environments and episodes here). Only the
/// worker's own thread uses it; values that are <see cref="IDisposable"/> are disposed, on that thread, when the run ends.</summary>
public sealed class WorkerState : IDisposable
{
    readonly ConcurrentDictionary<string, object> values = new();

    /// <summary>The value under <paramref name="key"/>, made by <paramref name="create"/> the first time.</summary>
    public T Get<T>(string key, Func<T> create) where T : notnull =>
        values.GetOrAdd(key, _ => create()) is T t ? t : throw new InvalidOperationException($"state '{key}' holds a {values[key].GetType().Name}, not a {typeof(T).Name}");

    public int Count => values.Count;

    public void Dispose()
    {
        foreach (var v in values.Values) (v as IDisposable)?.Dispose();
        values.Clear();
    }
}

/// <summary>Runs the items of one kind on a worker's pinned thread. Every silo registers the handlers it offers
/// (<see cref="SiloSettings.Handlers"/>); a worker takes items only from runs whose kind it has.</summary>
public interface IWorkHandler
{
    /// <summary>The kind of item, such as <c>compare-searches/pair</c>.</summary>
    string Kind { get; }

    /// <summary>Runs one item on the worker's thread; a <see cref="LoopTuneException"/> fails the run as bad input.</summary>
    object? Run(object request, WorkerContext context);
}

/// <summary>A typed <see cref="IWorkHandler"/>: requests and results are Orleans-serializable types
/// (<c>[GenerateSerializer]</c>; arrays stay arrays on the wire).</summary>
public abstract class WorkHandler<TRequest, TResult> : IWorkHandler
{
    public abstract string Kind { get; }

    public abstract TResult Run(TRequest request, WorkerContext context);

    object? IWorkHandler.Run(object request, WorkerContext context) =>
        request is TRequest r ? Run(r, context) : throw new InvalidOperationException($"{Kind} takes a {typeof(TRequest).Name}, not a {request.GetType().Name}");
}
