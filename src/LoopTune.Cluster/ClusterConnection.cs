using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace LoopTune.Cluster;

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
