using Orleans.Concurrency;

namespace LoopTune.Cluster;

/// <summary>An open run as the silos see it: its id, the kind of its items and where to lease them.</summary>
[GenerateSerializer, Immutable, Alias("looptune.RunTicket")]
public sealed record RunTicket(string RunId, string Kind, IWorkSource Source);

/// <summary>The open runs at one version of the board.</summary>
[GenerateSerializer, Immutable, Alias("looptune.RunBoardView")]
public sealed record RunBoardView(long Version, RunTicket[] Runs);

/// <summary>
/// Where callers post their runs and the silos' workers find them. Soft state: a caller posts its run again every
/// half second while it is open, and a run not posted for <see cref="Expiry"/> is dropped (its caller is gone), so a
/// board reactivated after its silo died fills up again.
/// </summary>
[Alias("looptune.IRunBoard")]
public interface IRunBoard : IGrainWithIntegerKey
{
    /// <summary>Opens the run, or keeps it open.</summary>
    Task Post(RunTicket ticket);

    /// <summary>Closes the run: workers stop taking its items and drop their state for it.</summary>
    Task Close(string runId);

    /// <summary>The open runs: at once when the board's version is not <paramref name="version"/>, else when it changes
    /// or after about two seconds (a long poll).</summary>
    [AlwaysInterleave]
    Task<RunBoardView> Watch(long version);
}

sealed class RunBoardGrain : Grain, IRunBoard
{
    public static readonly TimeSpan Expiry = TimeSpan.FromSeconds(30);

    readonly Dictionary<string, (RunTicket Ticket, DateTime Posted)> runs = [];
    long version = 1;
    TaskCompletionSource changed = new();

    public Task Post(RunTicket ticket)
    {
        bool isNew = !runs.ContainsKey(ticket.RunId);
        runs[ticket.RunId] = (ticket, DateTime.UtcNow);
        if (isNew | Expire()) Changed();
        return Task.CompletedTask;
    }

    public Task Close(string runId)
    {
        if (runs.Remove(runId) | Expire()) Changed();
        return Task.CompletedTask;
    }

    public async Task<RunBoardView> Watch(long known)
    {
        if (Expire()) Changed();
        if (known == version) await Task.WhenAny(changed.Task, Task.Delay(TimeSpan.FromSeconds(2)));
        return new RunBoardView(version, [.. runs.Values.Select(r => r.Ticket)]);
    }

    bool Expire()
    {
        var old = runs.Where(r => DateTime.UtcNow - r.Value.Posted > Expiry).Select(r => r.Key).ToList();
        foreach (var id in old) runs.Remove(id);
        return old.Count > 0;
    }

    void Changed()
    {
        version++;
        var was = changed;
        changed = new TaskCompletionSource();
        was.TrySetResult();
    }
}
