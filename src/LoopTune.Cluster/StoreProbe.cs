using System.Net;
using System.Net.Sockets;
using Npgsql;
using StackExchange.Redis;

namespace LoopTune.Cluster;

/// <summary>Checks done before Orleans starts, so that their failures are clear and quick: the membership store
/// answers, the ports are free.</summary>
static class StoreProbe
{
    /// <summary>A <see cref="ClusterError"/> naming the store unless it answers within <paramref name="timeout"/>
    /// (Redis: a PING; PostgreSQL: a connection and Orleans' membership table).</summary>
    public static async Task CheckAsync(ClusterAddress a, TimeSpan timeout, CancellationToken cancel)
    {
        try
        {
            if (a.Kind == Membership.Redis) await PingRedis(a, timeout).WaitAsync(timeout * 2, cancel);
            else if (a.Kind == Membership.Postgres) await CheckPostgres(a, timeout, cancel).WaitAsync(timeout * 2, cancel);
        }
        catch (Exception e) when (e is not (LoopTuneException or OperationCanceledException) || e is TaskCanceledException && !cancel.IsCancellationRequested)
        {
            var why = e switch
            {
                TimeoutException or TaskCanceledException => $"no answer within {timeout.TotalSeconds:0} s",
                _ when CertificateRefused(e) => $"the TLS handshake failed (give the certificate the store trusts and accepts: the cluster's --tls-cert and --tls-key): {e.Message}",
                _ when PasswordRefused(e) => $"it refused the password (or wants one: redis://:PASSWORD@HOST:PORT, or ${ClusterAddress.PasswordVariable}): {e.Message}",
                RedisConnectionException r => $"no Redis server answered ({r.FailureType}); is redis-server running there{(a.StoreTls ? ", with TLS (rediss://)" : "")}?",
                _ => e.Message,
            };
            throw new ClusterError($"cannot reach {a.Describe()}: {a.Scrub(why)}", e);
        }
    }

    /// <summary>Whether the TLS handshake with the store failed (its certificate, or this side's).</summary>
    static bool CertificateRefused(Exception e) =>
        e.Message.Contains(nameof(System.Security.Authentication.AuthenticationException), StringComparison.Ordinal) || e.InnerException is System.Security.Authentication.AuthenticationException;

    /// <summary>Whether Redis refused the login: a wrong password, or none where one is required.</summary>
    static bool PasswordRefused(Exception e) => e is RedisConnectionException { FailureType: ConnectionFailureType.AuthenticationFailure }
        || (e is RedisException && (e.Message.Contains("NOAUTH", StringComparison.Ordinal) || e.Message.Contains("WRONGPASS", StringComparison.Ordinal)));

    static async Task PingRedis(ClusterAddress a, TimeSpan timeout)
    {
        var o = ClusterHost.StoreOptions(a);
        (o.ConnectTimeout, o.SyncTimeout, o.AbortOnConnectFail, o.ConnectRetry) = ((int)timeout.TotalMilliseconds, (int)timeout.TotalMilliseconds, true, 1);
        await using var redis = await ConnectionMultiplexer.ConnectAsync(o);
        await redis.GetDatabase().PingAsync();
    }

    static async Task CheckPostgres(ClusterAddress a, TimeSpan timeout, CancellationToken cancel)
    {
        await using var db = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(a.ConnectionString) { Timeout = Math.Max(1, (int)timeout.TotalSeconds) }.ConnectionString);
        await db.OpenAsync(cancel);
        await using var query = new NpgsqlCommand("SELECT to_regclass('orleansmembershiptable') IS NOT NULL", db);
        if (await query.ExecuteScalarAsync(cancel) is not true)
            throw new ClusterError($"{a.Describe()} has no Orleans clustering tables: run Orleans' PostgreSQL-Main.sql and PostgreSQL-Clustering.sql (Microsoft.Orleans.Clustering.AdoNet) into the database first");
    }

    /// <summary>A <see cref="ClusterError"/> naming <paramref name="option"/> and the port when something listens on it.</summary>
    public static void CheckPortFree(string option, int port, IPAddress address)
    {
        if (port is < 1 or > 65535) throw new ClusterError($"{option} {port}: give a port from 1 to 65535");
        try
        {
            using var probe = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(new IPEndPoint(address, port));
            probe.Listen();
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AccessDenied)
        {
            throw new ClusterError($"{option} {port}: the port is already in use on {address} ({e.Message})", e);
        }
    }
}
