using Orleans.Runtime;

namespace LoopTune.Cluster;

/// <summary>A handler threw while running an item: the run fails with its message.</summary>
public sealed class WorkFailedException(string message) : Exception(message);

/// <summary>
/// One run of items of one kind, from the caller's side: it queues what <see cref="RunAsync"/> submits, leases items to
/// the workers that ask (<see cref="IWorkSource"/>, reached by them as an Orleans observer), records each item's first
/// result (a result that comes twice, from an item that ran twice, is counted in <see cref="Duplicates"/> and dropped),
/// and, every <see cref="PollInterval"/>, asks the cluster's membership which silos are gone: their leased items are
/// re-queued or given up as <see cref="OnLost"/> says, and so are queued items addressed to their workers. A worker's
/// per-run state lives as long as the run: dispose the run to close it on the board.
/// </summary>
public sealed class WorkRun : IWorkSource, IAsyncDisposable
{
    /// <summary>How often the run checks for lost silos and posts itself on the board again.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    sealed class Item(long id, int index, object payload, WorkerInfo? target, TaskCompletionSource<WorkOutcome> done)
    {
        public long Id { get; } = id;
        public int Index { get; } = index;
        public object Payload { get; } = payload;
        public WorkerInfo? Target { get; set; } = target;
        public TaskCompletionSource<WorkOutcome> Done { get; } = done;
    }

    readonly object gate = new();
    readonly LinkedList<Item> queue = new();
    readonly Dictionary<long, (Item Item, WorkerInfo Worker)> leases = [];
    readonly Dictionary<long, Item> revoked = [];
    readonly IGrainFactory grains;
    readonly IWorkSource source;
    readonly IRunBoard board;
    readonly IManagementGrain management;
    readonly CancellationTokenSource closing = new();
    readonly Task monitor;
    long nextLease, nextItem;
    bool open = true;

    internal WorkRun(IGrainFactory grains, string kind, LostWork onLost)
    {
        (this.grains, Kind, OnLost) = (grains, kind, onLost);
        board = grains.GetGrain<IRunBoard>(0);
        management = grains.GetGrain<IManagementGrain>(0);
        source = grains.CreateObjectReference<IWorkSource>(this);
        Ticket = new RunTicket(Id, kind, source);
        monitor = Task.Run(() => Monitor(closing.Token));
    }

    public string Id { get; } = Guid.NewGuid().ToString("N");
    public string Kind { get; }
    public LostWork OnLost { get; }
    internal RunTicket Ticket { get; }

    /// <summary>Results that arrived for items that already had one.</summary>
    public int Duplicates { get; private set; }

    /// <summary>Items handed back because their silo was lost or stopping (re-queued or given up).</summary>
    public int LostLeases { get; private set; }

    /// <summary>Called for each item as it gets its outcome, before <see cref="RunAsync"/> hears of it (keep it short: the
    /// run waits for it).</summary>
    public Action<WorkOutcome>? Progress { get; set; }

    /// <summary>Submits <paramref name="requests"/> and returns their outcomes, in the order given, once every one has a
    /// result or is lost. A handler's exception fails the whole batch (its queued items are withdrawn) with a
    /// <see cref="WorkFailedException"/>, or a <see cref="ClusterError"/> when it was bad input.</summary>
    public async Task<WorkOutcome[]> RunAsync(IReadOnlyList<WorkRequest> requests, CancellationToken cancel = default)
    {
        var items = new List<Item>(requests.Count);
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(!open, this);
            for (int i = 0; i < requests.Count; i++)
            {
                var item = new Item(nextItem++, i, requests[i].Payload, requests[i].Worker, new(TaskCreationOptions.RunContinuationsAsynchronously));
                items.Add(item);
                queue.AddLast(item);
            }
        }
        await board.Post(Ticket);
        try { return await Task.WhenAll(items.Select(i => i.Done.Task)).WaitAsync(cancel); }
        finally
        {
            lock (gate)
                foreach (var item in items) queue.Remove(item);
        }
    }

    public Task<WorkLease?> Lease(WorkerInfo worker)
    {
        lock (gate) return Task.FromResult(Next(worker));
    }

    public Task<WorkLease?> Complete(long lease, object? result, WorkerInfo worker)
    {
        lock (gate)
        {
            Item? item = leases.Remove(lease, out var held) ? held.Item : revoked.Remove(lease, out var late) ? late : null;
            if (item is not null && Settle(item, new WorkOutcome(item.Index, result, worker))) queue.Remove(item); // a re-queued copy no one leased yet
            else Duplicates++;
            return Task.FromResult(Next(worker));
        }
    }

    public Task Fail(long lease, string error, bool badInput)
    {
        lock (gate)
        {
            if (leases.Remove(lease, out var held))
            {
                var message = $"worker {held.Worker.Id} (silo {held.Worker.Silo}): {error}";
                held.Item.Done.TrySetException(badInput ? new ClusterError(message) : new WorkFailedException(message));
            }
        }
        return Task.CompletedTask;
    }

    public Task Release(long lease)
    {
        lock (gate)
        {
            if (leases.Remove(lease, out var held)) Lose(lease, held.Item);
        }
        return Task.CompletedTask;
    }

    /// <summary>The next item for <paramref name="worker"/>: the first queued one addressed to it or to anyone. A worker
    /// holds one item at a time, so an item still leased to a worker that asks for another never reached it (the answer
    /// that carried it was lost, as when the client's gateway silo died): it is handed back first.</summary>
    WorkLease? Next(WorkerInfo worker)
    {
        foreach (var (lease, held) in leases.Where(l => l.Value.Worker.Id == worker.Id).ToList())
        {
            leases.Remove(lease);
            Lose(lease, held.Item);
        }
        if (!open) return null;
        for (var node = queue.First; node is not null; node = node.Next)
        {
            var item = node.Value;
            if (item.Target is { } t && t.Id != worker.Id) continue;
            queue.Remove(node);
            long id = nextLease++;
            leases[id] = (item, worker);
            return new WorkLease(id, item.Payload);
        }
        return null;
    }

    /// <summary>Hands back the item of a lost lease: re-queued at the front for any worker, or given up.</summary>
    void Lose(long lease, Item item)
    {
        LostLeases++;
        revoked[lease] = item; // its result may still arrive, and is taken if none came before
        HandBack(item);
    }

    /// <summary>Re-queues an item that has no result at the front, for any worker, or gives it up.</summary>
    void HandBack(Item item)
    {
        if (item.Done.Task.IsCompleted) return;
        if (OnLost == LostWork.Requeue)
        {
            item.Target = null;
            queue.AddFirst(item);
        }
        else Settle(item, new WorkOutcome(item.Index, null, null));
    }

    /// <summary>Gives an item its outcome unless it has one (false then); <see cref="Progress"/> hears of it first, so
    /// that it has heard of every outcome when <see cref="RunAsync"/> returns.</summary>
    bool Settle(Item item, WorkOutcome outcome)
    {
        if (item.Done.Task.IsCompleted) return false;
        try { Progress?.Invoke(outcome); }
        catch (Exception) { /* a progress display must not lose a result */ }
        return item.Done.TrySetResult(outcome);
    }

    /// <summary>Hands back the leases of silos that membership says are gone, and the queued items addressed to them.</summary>
    internal void SilosGone(IReadOnlySet<SiloAddress> gone)
    {
        if (gone.Count == 0) return;
        lock (gate)
        {
            foreach (var (lease, held) in leases.Where(l => gone.Contains(l.Value.Worker.Silo)).ToList())
            {
                leases.Remove(lease);
                Lose(lease, held.Item);
            }
            foreach (var item in queue.Where(i => i.Target is { } t && gone.Contains(t.Silo)).ToList())
            {
                queue.Remove(item);
                HandBack(item);
            }
        }
    }

    async Task Monitor(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(PollInterval, stop);
                await board.Post(Ticket);
                var hosts = await management.GetHosts(onlyActive: false);
                SilosGone(hosts.Where(h => SiloLiveness.IsGone(h.Value)).Select(h => h.Key).ToHashSet());
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // the board's or the management grain's silo may be going away: try again at the next poll
            }
        }
    }

    /// <summary>Closes the run: the board drops it, workers drop their state for it, late results are ignored.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (gate)
        {
            if (!open) return;
            open = false;
            foreach (var item in queue) item.Done.TrySetCanceled();
            queue.Clear();
        }
        closing.Cancel();
        await monitor;
        try { await board.Close(Id).WaitAsync(TimeSpan.FromSeconds(5)); }
        catch (Exception e) when (e is not OutOfMemoryException) { /* the board expires runs that are not posted again */ }
        grains.DeleteObjectReference<IWorkSource>(source);
        closing.Dispose();
    }
}
