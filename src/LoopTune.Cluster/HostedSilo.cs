using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Runtime;

namespace LoopTune.Cluster;

/// <summary>A silo running in this process with its workers (<see cref="ClusterHost.StartSiloAsync"/>).</summary>
public sealed class HostedSilo : IAsyncDisposable
{
    readonly IHost host;
    int stopped;

    internal HostedSilo(IHost host, SiloSettings settings, IReadOnlyList<WorkerInfo> workers, SiloAddress address) =>
        (this.host, Settings, Workers, Address) = (host, settings, workers, address);

    public SiloSettings Settings { get; }

    /// <summary>Its workers, one per core of <see cref="SiloSettings.Cores"/>.</summary>
    public IReadOnlyList<WorkerInfo> Workers { get; }

    /// <summary>Its address in the cluster.</summary>
    public SiloAddress Address { get; }

    /// <summary>The silo's grain factory (for code running in the silo's process).</summary>
    public IGrainFactory Grains => host.Services.GetRequiredService<IGrainFactory>();

    /// <summary>How long a graceful stop may take before it turns abrupt (a membership store that is gone would otherwise
    /// hold it for minutes).</summary>
    public static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Stops the silo. Graceful: its workers hand back the items they hold and leave the registry, and the silo
    /// leaves the cluster, within <see cref="StopTimeout"/>. Not graceful: it stops as if it crashed, saying nothing; the
    /// cluster notices through its membership's failure detection.</summary>
    public async Task StopAsync(bool graceful = true)
    {
        if (Interlocked.Exchange(ref stopped, 1) != 0) return;
        using var limit = new CancellationTokenSource(StopTimeout);
        if (!graceful) limit.Cancel(); // Orleans and the workers read a cancelled token as "stop now, say nothing"
        try { await host.StopAsync(limit.Token).WaitAsync(StopTimeout * 2); }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException) { /* it stopped as far as it could */ }
        finally { host.Dispose(); }
    }

    public ValueTask DisposeAsync() => new(StopAsync());
}

/// <summary>A client's connection to a cluster (<see cref="ClusterHost.ConnectAsync"/>): the registered workers, and runs.</summary>
public sealed class ClusterConnection : IAsyncDisposable
{
    readonly IHost host;

    internal ClusterConnection(IHost host, ClusterAddress address) =>
        (this.host, Address, Client) = (host, address, host.Services.GetRequiredService<IClusterClient>());

    public ClusterAddress Address { get; }
    public IClusterClient Client { get; }

    /// <summary>The live workers of the cluster, by host then core.</summary>
    public Task<WorkerInfo[]> Workers() => Client.GetGrain<IWorkerRegistry>(0).Workers();

    /// <summary>Waits until at least <paramref name="min"/> workers are registered and returns them; a
    /// <see cref="ClusterError"/> naming the store when they are not there after <paramref name="timeout"/>.</summary>
    public async Task<WorkerInfo[]> WaitForWorkersAsync(int min, TimeSpan timeout, CancellationToken cancel = default)
    {
        if (min < 1) throw new ClusterError($"--min-workers {min}: at least one worker is needed");
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var workers = await Workers();
            if (workers.Length >= min) return workers;
            if (DateTime.UtcNow >= deadline)
                throw new ClusterError($"only {workers.Length} of the {min} workers asked for (--min-workers) registered with {Address.Describe()} within {timeout.TotalSeconds:0} s");
            await Task.Delay(TimeSpan.FromMilliseconds(250), cancel);
        }
    }

    /// <summary>Opens a run of items of <paramref name="kind"/>: submit items with <see cref="WorkRun.RunAsync"/>,
    /// dispose it to close it.</summary>
    public WorkRun OpenRun(string kind, LostWork onLost) => new(Client, kind, onLost);

    public async ValueTask DisposeAsync()
    {
        try { await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(10)); }
        catch (Exception) { /* the cluster may already be gone */ }
        host.Dispose();
    }
}
