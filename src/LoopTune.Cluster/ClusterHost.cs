using System.Net;
using System.Net.Sockets;
using LoopTune.Measure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Orleans.Runtime;
using StackExchange.Redis;

namespace LoopTune.Cluster;

/// <summary>What a silo is given.</summary>
/// <param name="Address">The cluster's membership store.</param>
/// <param name="Cores">The cores of its workers, one worker each (<see cref="WorkerCores.Choose"/>).</param>
/// <param name="HostId">The machine, for the pinning bookkeeping (<see cref="DefaultHostId"/> unless a test or
/// <c>--host-id</c> says otherwise: several silos of one machine may act as separate hosts).</param>
/// <param name="Handlers">The kinds of work its workers run.</param>
public sealed record SiloSettings(ClusterAddress Address, IReadOnlyList<int> Cores, string HostId, IReadOnlyList<IWorkHandler> Handlers)
{
    /// <summary>The machine's host name.</summary>
    public static string DefaultHostId => Dns.GetHostName();

    /// <summary>The threads each worker's kernels run on (<c>--threads</c>): the worker's core and the
    /// <see cref="Measure.ThreadPinning.TeamCores"/> after it, which <see cref="Cores"/> leave free.</summary>
    public int Threads { get; init; } = 1;

    /// <summary>Orleans' silo-to-silo port.</summary>
    public int SiloPort { get; init; } = 11111;

    /// <summary>The port clients connect to.</summary>
    public int GatewayPort { get; init; } = 30000;

    /// <summary>The address other silos and clients reach this one at: by default 127.0.0.1 when the membership store is
    /// on this machine's loopback (a one-machine cluster), else this machine's first IPv4 address.</summary>
    public IPAddress? Advertise { get; init; }

    /// <summary>Localhost clustering only: the first silo of the process, which the others join (null: this is it).</summary>
    public IPEndPoint? Primary { get; init; }

    /// <summary>Declare an unresponsive silo dead after about two seconds instead of Orleans' default of tens of seconds
    /// (tests, and clusters on one machine).</summary>
    public bool FastFailureDetection { get; init; }
}

/// <summary>
/// The one place where LoopTune's Orleans silos and clients are set up from a <see cref="ClusterAddress"/>: membership
/// (localhost, Redis or PostgreSQL), endpoints, the workers of a silo. The store is checked first, so an unreachable one
/// is a <see cref="ClusterError"/> naming it within seconds, and so is a port already in use; a silo or client that fails
/// to start is stopped before the error is thrown, leaving nothing running.
/// </summary>
public static class ClusterHost
{
    public const string ClusterId = "looptune", ServiceId = "looptune";

    /// <summary>How long the store may take to answer, and a silo to join the cluster.</summary>
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(5), StartTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Configures <paramref name="silo"/> as <paramref name="s"/> says (its workers included).</summary>
    public static void Configure(ISiloBuilder silo, SiloSettings s)
    {
        silo.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (ClusterId, ServiceId));
        silo.Configure<SiloOptions>(o => o.SiloName = $"{s.HostId}-{s.SiloPort}");
        silo.AddPlacementDirector<OldestSiloPlacement, OldestSiloPlacementDirector>();
        var a = s.Address;
        if (a.Kind == Membership.Localhost) silo.UseLocalhostClustering(s.SiloPort, s.GatewayPort, s.Primary, ServiceId, ClusterId);
        else
        {
            var advertise = s.Advertise ?? (a.IsLoopback ? IPAddress.Loopback : MachineAddress());
            silo.ConfigureEndpoints(advertise, s.SiloPort, s.GatewayPort, listenOnAnyHostAddress: !IPAddress.IsLoopback(advertise));
            if (a.Kind == Membership.Redis) silo.UseRedisClustering(o => o.ConfigurationOptions = RedisOptions(a));
            else silo.UseAdoNetClustering(o => (o.Invariant, o.ConnectionString) = ("Npgsql", a.ConnectionString));
        }
        if (s.FastFailureDetection)
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromMilliseconds(500);
                o.NumMissedProbesLimit = 2;
                o.NumVotesForDeathDeclaration = 1;
                o.TableRefreshTimeout = TimeSpan.FromSeconds(1);
            });
        silo.Services.AddSingleton(s);
        silo.Services.AddSingleton<SiloWorkers>();
    }

    /// <summary>Configures <paramref name="client"/> for the cluster at <paramref name="a"/> (for localhost, the silo of
    /// this process whose gateway is <paramref name="gatewayPort"/>); connection attempts are retried until <paramref name="deadline"/>.</summary>
    public static void Configure(IClientBuilder client, ClusterAddress a, int gatewayPort, DateTime deadline)
    {
        client.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (ClusterId, ServiceId));
        client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(5));
        if (a.Kind == Membership.Localhost) client.UseLocalhostClustering(gatewayPort, ServiceId, ClusterId);
        else if (a.Kind == Membership.Redis) client.UseRedisClustering(o => o.ConfigurationOptions = RedisOptions(a));
        else client.UseAdoNetClustering(o => (o.Invariant, o.ConnectionString) = ("Npgsql", a.ConnectionString));
        client.UseConnectionRetryFilter(async (_, cancel) =>
        {
            if (DateTime.UtcNow >= deadline) return false;
            await Task.Delay(TimeSpan.FromSeconds(1), cancel);
            return true;
        });
    }

    /// <summary>Starts a silo with its workers; returns once they are registered and pulling work.</summary>
    public static async Task<HostedSilo> StartSiloAsync(SiloSettings s, CancellationToken cancel = default)
    {
        if (s.Cores.Count == 0) throw new ClusterError("a silo needs at least one worker core");
        if (string.IsNullOrWhiteSpace(s.HostId) || s.HostId.Contains('/')) throw new ClusterError($"--host-id '{s.HostId}': give a non-empty name without '/'");
        await StoreProbe.CheckAsync(s.Address, ProbeTimeout, cancel);
        var listen = s.Address.Kind == Membership.Localhost || (s.Advertise ?? (s.Address.IsLoopback ? IPAddress.Loopback : null)) is { } ip && IPAddress.IsLoopback(ip)
            ? IPAddress.Loopback : IPAddress.Any;
        StoreProbe.CheckPortFree("--silo-port", s.SiloPort, listen);
        StoreProbe.CheckPortFree("--gateway-port", s.GatewayPort, listen);
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.UseOrleans(silo => Configure(silo, s));
        builder.Services.AddHostedService(sp => sp.GetRequiredService<SiloWorkers>()); // after Orleans': starts once the silo is up, stops first
        var host = builder.Build();
        try
        {
            await host.StartAsync(cancel).WaitAsync(StartTimeout, cancel);
        }
        catch (Exception e)
        {
            await Abandon(host);
            throw Explain(e, s);
        }
        return new HostedSilo(host, s, host.Services.GetRequiredService<SiloWorkers>().Workers, host.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress);
    }

    /// <summary>Connects a client to the cluster at <paramref name="a"/>, trying for at most <paramref name="wait"/> to
    /// find a silo (SLURM may start the caller before the silos); <paramref name="gatewayPort"/> is the in-process
    /// silo's for localhost.</summary>
    public static async Task<ClusterConnection> ConnectAsync(ClusterAddress a, TimeSpan wait, int gatewayPort = 30000, CancellationToken cancel = default)
    {
        await StoreProbe.CheckAsync(a, ProbeTimeout, cancel);
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.UseOrleansClient(client => Configure(client, a, gatewayPort, DateTime.UtcNow + wait));
        var host = builder.Build();
        try
        {
            await host.StartAsync(cancel).WaitAsync(wait + StartTimeout, cancel);
        }
        catch (Exception e)
        {
            await Abandon(host);
            throw e is LoopTuneException or OperationCanceledException ? e : new ClusterError($"cannot join the cluster of {a.Describe()} (no silo found within {wait.TotalSeconds:0} s): {e.Message}", e);
        }
        return new ClusterConnection(host, a);
    }

    /// <summary>The kinds of work every LoopTune silo runs (<c>looptune silo</c>, and the silo of <c>--cluster localhost</c>).</summary>
    public static IReadOnlyList<IWorkHandler> DefaultHandlers() => [new ComparisonWork.Handler(), new TrainingWork.Handler()];

    /// <summary>A free TCP port on the loopback interface (for the silo of a one-process cluster, and tests).</summary>
    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    static ConfigurationOptions RedisOptions(ClusterAddress a)
    {
        var o = ConfigurationOptions.Parse(a.ConnectionString);
        o.ConnectTimeout = (int)ProbeTimeout.TotalMilliseconds;
        o.AbortOnConnectFail = false; // after the first check, ride out a store that restarts
        return o;
    }

    static IPAddress MachineAddress() =>
        Dns.GetHostAddresses(Dns.GetHostName()).FirstOrDefault(ip => ip.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(ip))
        ?? throw new ClusterError($"this machine ({Dns.GetHostName()}) has no IPv4 address other silos could reach; give --advertise IP");

    static Exception Explain(Exception e, SiloSettings s)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is LoopTuneException) return x;
            if (x is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse })
                return new ClusterError($"a port of the silo is already in use (--silo-port {s.SiloPort}, --gateway-port {s.GatewayPort}): {x.Message}", e);
        }
        if (e is TimeoutException) return new ClusterError($"the silo did not join the cluster of {s.Address.Describe()} within {StartTimeout.TotalSeconds:0} s", e);
        return e is OperationCanceledException ? e : new ClusterError($"the silo could not start with {s.Address.Describe()}: {e.Message}", e);
    }

    /// <summary>Stops a host that failed to start, abruptly, so that nothing of it keeps running.</summary>
    internal static async Task Abandon(IHost host)
    {
        try { await host.StopAsync(new CancellationToken(true)).WaitAsync(TimeSpan.FromSeconds(10)); }
        catch (Exception) { /* it never fully started */ }
        host.Dispose();
    }
}
