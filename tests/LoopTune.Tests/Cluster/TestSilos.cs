using System.Net;
using LoopTune.Cluster;

namespace LoopTune.Tests.Cluster;

/// <summary>A test handler: takes an int, returns "worker:value:n" where n counts the items this worker ran in this run
/// (its per-run state); optionally blocks each item until <see cref="Gate"/> opens, after signalling <see cref="Started"/>.</summary>
sealed class EchoHandler(bool blocking = false) : WorkHandler<int, string>
{
    public const string Name = "test/echo";
    public override string Kind => Name;
    public ManualResetEventSlim Gate { get; } = new(!blocking);
    public SemaphoreSlim Started { get; } = new(0);

    /// <summary>Per-run counters disposed so far (a run's state is disposed when the run closes).</summary>
    public int Disposed => disposed;
    int disposed;

    public override string Run(int value, WorkerContext context)
    {
        var counter = context.State.Get("counter", () => new Counter(() => Interlocked.Increment(ref disposed)));
        Started.Release();
        Gate.Wait();
        return $"{context.Worker.Id}:{value}:{++counter.N}";
    }

    sealed class Counter(Action disposed) : IDisposable
    {
        public int N;
        public void Dispose() => disposed();
    }
}

/// <summary>Silos of one test, in this process, each on its own free ports, all stopped on dispose.</summary>
sealed class TestSilos(ClusterAddress address) : IAsyncDisposable
{
    readonly List<HostedSilo> silos = [];

    public ClusterAddress Address { get; } = address;

    /// <summary>Starts a silo acting as host <paramref name="hostId"/> with workers on <paramref name="cores"/>.</summary>
    public async Task<HostedSilo> Start(string hostId, int[] cores, params IWorkHandler[] handlers)
    {
        var silo = await ClusterHost.StartSiloAsync(Settings(hostId, cores, handlers));
        silos.Add(silo);
        return silo;
    }

    public SiloSettings Settings(string hostId, int[] cores, params IWorkHandler[] handlers) =>
        new(Address, cores, hostId, handlers.Length > 0 ? handlers : [new EchoHandler()])
        {
            SiloPort = ClusterHost.FreePort(),
            GatewayPort = ClusterHost.FreePort(),
            Primary = Address.Kind == Membership.Localhost && silos.Count > 0 ? new IPEndPoint(IPAddress.Loopback, silos[0].Settings.SiloPort) : null,
            FastFailureDetection = true,
        };

    public Task<ClusterConnection> Connect() =>
        ClusterHost.ConnectAsync(Address, TimeSpan.FromSeconds(10), silos.Count > 0 ? silos[0].Settings.GatewayPort : 30000);

    public async ValueTask DisposeAsync()
    {
        for (int i = silos.Count - 1; i >= 0; i--) await silos[i].StopAsync();
    }
}
