using Orleans.Concurrency;
using Orleans.Placement;
using Orleans.Runtime;

namespace LoopTune.Cluster;

/// <summary>
/// The pinning bookkeeping of the cluster: every worker as (host, core, silo, worker id). It refuses a worker on a
/// (host, core) that a live worker of another silo holds, so no two workers ever share a core. A worker whose silo is
/// dead or stopping (by Orleans' membership) is dropped. The state is soft: silos register their workers again every few
/// seconds, so a registry that is reactivated elsewhere after its silo died fills up again.
/// </summary>
[Alias("looptune.IWorkerRegistry")]
public interface IWorkerRegistry : IGrainWithIntegerKey
{
    /// <summary>Records <paramref name="workers"/> (all of one silo), or none of them: null when they are recorded (again),
    /// else why not, naming the host, the core and the worker holding it.</summary>
    Task<string?> Register(WorkerInfo[] workers);

    /// <summary>Drops the workers of <paramref name="silo"/> (it is stopping).</summary>
    Task Unregister(SiloAddress silo);

    /// <summary>The live workers, by host then core.</summary>
    [AlwaysInterleave]
    Task<WorkerInfo[]> Workers();
}

[OldestSiloPlacement]
sealed class WorkerRegistryGrain(IClusterMembershipService membership) : Grain, IWorkerRegistry
{
    readonly Dictionary<(string Host, int Core), WorkerInfo> workers = [];

    public Task<string?> Register(WorkerInfo[] list)
    {
        Prune();
        foreach (var w in list)
            foreach (var held in workers.Values.Where(h => h.HostId == w.HostId && h.Silo != w.Silo))
                if (w.Cores.Intersect(held.Cores).FirstOrDefault(-1) is var core and >= 0)
                    return Task.FromResult<string?>($"core {core} of host {w.HostId} is already held by worker {held.Id} of silo {held.Silo}{(held.Cores.Count > 1 ? $" (its team's cores {string.Join(",", held.Cores)})" : "")}: a core is never shared by two workers (give another --host-id, --cores or --workers)");
        foreach (var w in list) workers[(w.HostId, w.Core)] = w;
        return Task.FromResult<string?>(null);
    }

    public Task Unregister(SiloAddress silo)
    {
        foreach (var key in workers.Where(kv => kv.Value.Silo == silo).Select(kv => kv.Key).ToList()) workers.Remove(key);
        return Task.CompletedTask;
    }

    public Task<WorkerInfo[]> Workers()
    {
        Prune();
        return Task.FromResult(workers.Values.OrderBy(w => w.HostId, StringComparer.Ordinal).ThenBy(w => w.Core).ToArray());
    }

    void Prune()
    {
        var snapshot = membership.CurrentSnapshot;
        foreach (var key in workers.Where(kv => SiloLiveness.IsGone(snapshot.GetSiloStatus(kv.Value.Silo))).Select(kv => kv.Key).ToList())
            workers.Remove(key);
    }
}

/// <summary>Places a grain on the oldest active silo its caller knows. A silo that is joining asks for the registry before
/// the grain directory has handed it its share of the entries; with the default placement it could then start a second
/// registry of its own, empty, and take a core another silo holds. Every silo, a joining one too, knows the oldest
/// silo, and a silo asked to activate a grain it already holds uses that activation: so there is one registry.</summary>
[GenerateSerializer, Immutable]
public sealed class OldestSiloPlacement : PlacementStrategy
{
    internal static readonly OldestSiloPlacement Instance = new();
}

/// <summary>Puts a grain class under <see cref="OldestSiloPlacement"/>.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class OldestSiloPlacementAttribute() : PlacementAttribute(OldestSiloPlacement.Instance);

/// <summary>The director of <see cref="OldestSiloPlacement"/>: the compatible silo that started first (lowest generation,
/// then lowest address).</summary>
sealed class OldestSiloPlacementDirector : Orleans.Runtime.Placement.IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, Orleans.Runtime.Placement.PlacementTarget target, Orleans.Runtime.Placement.IPlacementContext context) =>
        Task.FromResult(context.GetCompatibleSilos(target).OrderBy(s => s.Generation).ThenBy(s => s.ToString(), StringComparer.Ordinal).First());
}

/// <summary>Reading Orleans' silo status.</summary>
static class SiloLiveness
{
    /// <summary>Dead or on its way out. A silo not (yet) in a membership view is not gone: it may have just joined.</summary>
    public static bool IsGone(SiloStatus status) => status is SiloStatus.Dead or SiloStatus.ShuttingDown or SiloStatus.Stopping;
}
