using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

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
