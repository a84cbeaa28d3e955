using System.CommandLine;
using LoopTune.Cluster;

namespace LoopTune.Cli.Commands;

/// <summary>The options of a command that can spread its work over a cluster: <c>--cluster ADDR [--min-workers N]
/// [--workers-timeout T] [--workers N] [--tls-cert FILE --tls-key FILE]</c>.</summary>
sealed class ClusterOptions(bool workersOption = true)
{
    public Option<string?> Cluster { get; } = new("--cluster")
    {
        Description = "Spread the work over a cluster's workers: localhost (a silo in this process, one worker per core of --workers), redis[s]://[:PASSWORD@]HOST:PORT or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE] (silos started with 'looptune silo'; the password may be in $LOOPTUNE_STORE_PASSWORD instead).",
    };

    public Option<int> MinWorkers { get; } = new("--min-workers") { Description = "With --cluster: wait until this many workers are registered before starting.", DefaultValueFactory = _ => 1 };

    public Option<string> Timeout { get; } = new("--workers-timeout") { Description = "With --cluster: how long to wait for a silo and for --min-workers workers before giving up (exit 2).", DefaultValueFactory = _ => "2m" };

    public Option<int?> Workers { get; } = new("--workers") { Description = "With --cluster localhost: workers of the in-process silo, each pinned to its own core (default: every core this process may use)." };

    public ClusterTlsOptions Tls { get; } = new();

    /// <summary>The options to add to a command (without --workers for a command that has its own, such as train).</summary>
    public IEnumerable<Option> All => workersOption ? [Cluster, MinWorkers, Timeout, Workers, .. Tls.All] : [Cluster, MinWorkers, Timeout, .. Tls.All];

    /// <summary>The cluster asked for, or null for none; bad values are errors naming them.</summary>
    public ClusterAddress? Address(ParseResult p)
    {
        var text = p.GetValue(Cluster);
        if (text is null)
        {
            foreach (var o in All.Skip(1))
                if (p.GetResult(o) is { Implicit: false }) throw new ClusterError($"{o.Name} applies only with --cluster");
            return null;
        }
        var address = Tls.Apply(p, ClusterAddress.Parse(text));
        if (workersOption && address.Kind != Membership.Localhost && p.GetValue(Workers) is not null)
            throw new ClusterError("--workers applies to --cluster localhost; the workers of other silos are given to 'looptune silo'");
        return address;
    }

    /// <summary>Opens the cluster session (the in-process silo for localhost, with <paramref name="workers"/> or --workers
    /// workers, the wait for --min-workers).</summary>
    public Task<ClusterSession> OpenAsync(ParseResult p, ClusterAddress address, int? workers = null, CancellationToken cancel = default) =>
        ClusterSession.OpenAsync(address, address.Kind == Membership.Localhost ? WorkerCores.Choose(workers ?? (workersOption ? p.GetValue(Workers) : null), null) : [],
            p.GetValue(MinWorkers), Wait(p), cancel);

    /// <summary>Opens the cluster session (saying on stderr what it waits for and which workers it found), runs
    /// <paramref name="run"/> with it and closes it.</summary>
    public T WithSession<T>(Io io, ParseResult p, ClusterAddress address, Func<ClusterSession, T> run, int? workers = null)
    {
        io.Stderr.WriteLine($"joining the cluster {address} and waiting for its workers...");
        var session = Sync.Wait(() => OpenAsync(p, address, workers));
        try
        {
            io.Stderr.WriteLine($"{session.Workers.Length} worker(s): {string.Join(", ", session.Workers.Select(w => w.Id))}");
            return run(session);
        }
        finally { Sync.Wait(() => session.DisposeAsync().AsTask()); }
    }

    TimeSpan Wait(ParseResult p)
    {
        try { return Duration.Parse(p.GetValue(Timeout), "--workers-timeout"); }
        catch (LoopTuneException e) when (e is not ClusterError) { throw new ClusterError($"--workers-timeout '{p.GetValue(Timeout)}': give a time such as 90s or 2m"); }
    }
}

/// <summary><c>--tls-cert FILE --tls-key FILE</c>: the cluster's certificate and key (PEM), for every command that takes
/// <c>--cluster</c> and for <c>looptune silo</c>; with them the silos and clients require mutual TLS (<see cref="ClusterTls"/>).</summary>
sealed class ClusterTlsOptions
{
    public Option<string?> Cert { get; } = new("--tls-cert")
    {
        Description = "With --cluster: the cluster's certificate (PEM). Silos and clients given it talk only TLS, and only to a side that presents this same certificate; one without it is refused. 'looptune slurm' makes one per job.",
    };

    public Option<string?> Key { get; } = new("--tls-key") { Description = "With --tls-cert: the certificate's private key (PEM; keep it readable by you only)." };

    public IEnumerable<Option> All => [Cert, Key];

    /// <summary><paramref name="address"/> with the certificate of --tls-cert and --tls-key, when given.</summary>
    public ClusterAddress Apply(ParseResult p, ClusterAddress address) =>
        ClusterTls.Load(p.GetValue(Cert), p.GetValue(Key)) is { } tls ? address with { Tls = tls } : address;
}
