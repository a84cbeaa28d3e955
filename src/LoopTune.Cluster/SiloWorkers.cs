using System.Collections.Concurrent;
using LoopTune.Learning;
using LoopTune.Measure;
using Microsoft.Extensions.Hosting;
using Orleans.Runtime;

namespace LoopTune.Cluster;

/// <summary>
/// A silo's measuring workers: one thread per core of <see cref="SiloSettings.Cores"/>, pinned for its whole life
/// (<see cref="WorkerPool"/>), registered with the <see cref="IWorkerRegistry"/> before any work (a refusal stops the
/// silo from starting). Each worker pulls items from the open runs on the <see cref="IRunBoard"/> whose kind the silo
/// has a handler for, runs them on its thread (never on the Orleans scheduler) and sends the results back. Stopping the
/// silo releases the items its workers hold, so the caller hands them on at once; a silo that dies instead is noticed by
/// the caller through Orleans' membership.
/// </summary>
sealed class SiloWorkers(IGrainFactory grains, ILocalSiloDetails silo, SiloSettings settings) : IHostedService
{
    static readonly TimeSpan MinIdle = TimeSpan.FromMilliseconds(10), MaxIdle = TimeSpan.FromMilliseconds(200), Reregister = TimeSpan.FromSeconds(3);

    sealed record Held(RunTicket Ticket, long Lease);

    readonly Dictionary<string, IWorkHandler> handlers = settings.Handlers.ToDictionary(h => h.Kind);
    readonly CancellationTokenSource stopping = new();
    readonly ConcurrentDictionary<(int Worker, string Run), WorkerState> states = new();
    readonly ConcurrentDictionary<string, DateTime> unreachable = new(); // run id -> when to try its caller again
    readonly List<Task> loops = [];
    WorkerPool? pool;
    Held?[] held = [];
    volatile RunTicket[] open = [];

    /// <summary>This silo's workers, by worker index (empty until started).</summary>
    public WorkerInfo[] Workers { get; private set; } = [];

    IWorkerRegistry Registry => grains.GetGrain<IWorkerRegistry>(0);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        pool = new WorkerPool(settings.Cores);
        Workers = [.. settings.Cores.Select((core, i) => new WorkerInfo(WorkerInfo.MakeId(settings.HostId, core), settings.HostId, core, silo.SiloAddress, PeakCache.MachineKey, pool.Pinned[i],
            settings.Threads, settings.Threads > 1 ? ThreadPinning.TeamCores(settings.Threads, core) : null))];
        held = new Held?[Workers.Length];
        string? refused;
        try { refused = await Registry.Register(Workers); }
        catch
        {
            pool.Dispose();
            throw;
        }
        if (refused is not null)
        {
            pool.Dispose();
            throw new ClusterError(refused);
        }
        var stop = stopping.Token;
        loops.Add(Task.Run(() => WatchBoard(stop), CancellationToken.None));
        loops.Add(Task.Run(() => KeepRegistered(stop), CancellationToken.None));
        for (int w = 0; w < Workers.Length; w++)
        {
            int worker = w;
            loops.Add(Task.Run(() => Work(worker, stop), CancellationToken.None));
        }
    }

    /// <summary>A graceful stop releases the held items and leaves the registry; a cancelled token (an abrupt stop, as
    /// after a crash) says nothing to anyone.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (pool is null) return;
        stopping.Cancel();
        if (!cancellationToken.IsCancellationRequested)
        {
            var goodbyes = held.OfType<Held>().Select(h => h.Ticket.Source.Release(h.Lease)).Append(Registry.Unregister(silo.SiloAddress));
            await Quietly(Task.WhenAll(goodbyes), TimeSpan.FromSeconds(3));
        }
        await Quietly(Task.WhenAll(loops), TimeSpan.FromSeconds(0.5)); // loops in the middle of an item do not wait for it
        var p = pool;
        foreach (var key in states.Keys) Drop(key);
        // a worker in the middle of an item keeps its core until the item ends; its thread is a background thread
        _ = Task.Run(p.Dispose, CancellationToken.None);
        pool = null;
    }

    async Task Work(int w, CancellationToken stop)
    {
        var me = Workers[w];
        var idle = MinIdle;
        int turn = w;
        while (!stop.IsCancellationRequested)
        {
            var runs = open;
            RunTicket? ticket = null;
            WorkLease? lease = null;
            for (int i = 0; i < runs.Length && lease is null && !stop.IsCancellationRequested; i++)
            {
                ticket = runs[(turn + i) % runs.Length];
                if (unreachable.TryGetValue(ticket.RunId, out var until) && until > DateTime.UtcNow) continue;
                try { lease = await ticket.Source.Lease(me); }
                catch (Exception) when (!stop.IsCancellationRequested) { Unreachable(ticket); }
            }
            turn++;
            if (lease is null || ticket is null)
            {
                await Pause(idle, stop);
                idle = TimeSpan.FromTicks(Math.Min(idle.Ticks * 2, MaxIdle.Ticks));
                continue;
            }
            idle = MinIdle;
            while (lease is not null)
            {
                if (stop.IsCancellationRequested)
                {
                    await Quietly(ticket.Source.Release(lease.Id), TimeSpan.FromSeconds(2));
                    break;
                }
                lease = await RunOne(w, ticket, lease, stop);
            }
        }
    }

    /// <summary>Runs one leased item on worker <paramref name="w"/>'s thread, reports it, and returns the next lease.</summary>
    async Task<WorkLease?> RunOne(int w, RunTicket ticket, WorkLease lease, CancellationToken stop)
    {
        Volatile.Write(ref held[w], new Held(ticket, lease.Id));
        object? result = null;
        Exception? error = null;
        try
        {
            var handler = handlers[ticket.Kind];
            var context = new WorkerContext(Workers[w], ticket.RunId, states.GetOrAdd((w, ticket.RunId), _ => new WorkerState()), stop);
            result = await pool!.Post(w, () => handler.Run(lease.Payload, context));
        }
        catch (Exception e) { error = e; }
        try
        {
            if (error is null) return await ticket.Source.Complete(lease.Id, result, Workers[w]);
            await ticket.Source.Fail(lease.Id, error.Message, error is LoopTuneException);
        }
        catch (Exception e) when (!stop.IsCancellationRequested)
        {
            // the result could not be sent (the caller is gone, or the result does not serialize): say why if possible
            try { await ticket.Source.Fail(lease.Id, $"could not send the result of a {ticket.Kind} item: {e.Message}", false); }
            catch (Exception) { Unreachable(ticket); }
        }
        catch (Exception) { /* stopping */ }
        finally { Volatile.Write(ref held[w], null); }
        return null;
    }

    async Task WatchBoard(CancellationToken stop)
    {
        var board = grains.GetGrain<IRunBoard>(0);
        long version = 0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var view = await board.Watch(version).WaitAsync(stop);
                version = view.Version;
                open = [.. view.Runs.Where(r => handlers.ContainsKey(r.Kind))];
                var live = view.Runs.Select(r => r.RunId).ToHashSet();
                foreach (var key in states.Keys.Where(k => !live.Contains(k.Run))) Drop(key);
                foreach (var id in unreachable.Keys.Where(id => !live.Contains(id))) unreachable.TryRemove(id, out _);
            }
            catch (Exception) when (!stop.IsCancellationRequested) { await Pause(TimeSpan.FromMilliseconds(500), stop); }
            catch (OperationCanceledException) { }
        }
    }

    /// <summary>Registers the workers again every few seconds, so that a registry reactivated elsewhere (its silo died) knows them.</summary>
    async Task KeepRegistered(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            await Pause(Reregister, stop);
            if (stop.IsCancellationRequested) break;
            try { await Registry.Register(Workers).WaitAsync(stop); }
            catch (Exception) { /* try again later */ }
        }
    }

    void Unreachable(RunTicket ticket) => unreachable[ticket.RunId] = DateTime.UtcNow + TimeSpan.FromSeconds(5);

    /// <summary>Disposes a worker's state for a run on the worker's own thread, after what it is running.</summary>
    void Drop((int Worker, string Run) key)
    {
        if (states.TryRemove(key, out var state) && pool is { } p)
        {
            try { _ = p.Post(key.Worker, () => { state.Dispose(); return 0; }); }
            catch (InvalidOperationException) { /* the pool is shutting down */ }
        }
    }

    static async Task Pause(TimeSpan delay, CancellationToken stop)
    {
        try { await Task.Delay(delay, stop); }
        catch (OperationCanceledException) { }
    }

    static async Task Quietly(Task task, TimeSpan limit)
    {
        try { await task.WaitAsync(limit); }
        catch (Exception) { /* best effort while stopping */ }
    }
}
