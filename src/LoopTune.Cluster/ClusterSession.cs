namespace LoopTune.Cluster;

/// <summary>
/// A command's side of a cluster (compare-searches now, training later): for <c>--cluster localhost</c>, a silo in this
/// process with workers on the given cores, and a client of it; for a membership store, a client that waits until
/// <c>--min-workers</c> workers are registered (the silos run elsewhere: <c>looptune silo</c> on each machine).
/// </summary>
public sealed class ClusterSession : IAsyncDisposable
{
    ClusterSession(HostedSilo? silo, ClusterConnection connection, WorkerInfo[] workers) => (Silo, Connection, Workers) = (silo, connection, workers);

    /// <summary>The in-process silo (localhost only).</summary>
    public HostedSilo? Silo { get; }
    public ClusterConnection Connection { get; }

    /// <summary>The workers registered when the session opened.</summary>
    public WorkerInfo[] Workers { get; }

    /// <summary>Opens the session; <paramref name="localCores"/> are the in-process silo's (localhost only), and
    /// <paramref name="wait"/> bounds the wait for a silo and for <paramref name="minWorkers"/> workers.</summary>
    public static async Task<ClusterSession> OpenAsync(ClusterAddress address, IReadOnlyList<int> localCores, int minWorkers, TimeSpan wait, CancellationToken cancel = default)
    {
        if (minWorkers < 1) throw new ClusterError($"--min-workers {minWorkers}: at least one worker is needed");
        HostedSilo? silo = null;
        ClusterConnection? connection = null;
        try
        {
            if (address.Kind == Membership.Localhost)
            {
                if (minWorkers > localCores.Count)
                    throw new ClusterError($"--min-workers {minWorkers}: --cluster localhost has {localCores.Count} worker(s), one per core given (--workers)");
                silo = await ClusterHost.StartSiloAsync(new SiloSettings(address, localCores, SiloSettings.DefaultHostId, ClusterHost.DefaultHandlers())
                {
                    SiloPort = ClusterHost.FreePort(),
                    GatewayPort = ClusterHost.FreePort(),
                    Threads = Jit.RunThreads.Default,
                }, cancel);
            }
            connection = await ClusterHost.ConnectAsync(address, wait, silo?.Settings.GatewayPort ?? 0, cancel);
            var workers = await connection.WaitForWorkersAsync(minWorkers, wait, cancel);
            return new ClusterSession(silo, connection, workers);
        }
        catch
        {
            if (connection is not null) await connection.DisposeAsync();
            if (silo is not null) await silo.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Connection.DisposeAsync();
        if (Silo is not null) await Silo.DisposeAsync();
    }
}
