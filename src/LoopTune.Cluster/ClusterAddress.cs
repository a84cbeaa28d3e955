using System.Net;

namespace LoopTune.Cluster;

/// <summary>Bad cluster input or a cluster that cannot be reached: an address that cannot be read, an unreachable
/// membership store, a port in use, a core already held by another worker. The CLI maps it to exit code 2.</summary>
public sealed class ClusterError(string message, Exception? inner = null) : LoopTuneException(message, inner);

/// <summary>How the silos of a cluster find each other.</summary>
public enum Membership
{
    /// <summary>One process: an in-process silo with Orleans' localhost (development) clustering.</summary>
    Localhost,

    /// <summary>A Redis server holds the membership table.</summary>
    Redis,

    /// <summary>A PostgreSQL database (Orleans' ADO.NET clustering) holds the membership table.</summary>
    Postgres,
}

/// <summary>
/// The value of <c>--cluster</c>: <c>localhost</c>, <c>redis://HOST:PORT</c> (port 6379 when left out) or
/// <c>postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE</c> (port 5432; the database must hold Orleans' clustering tables).
/// Every silo and client of one cluster is given the same address; the membership store is what they share.
/// </summary>
/// <param name="Kind">The membership store.</param>
/// <param name="Text">The value as given (shown in messages; a password is masked).</param>
/// <param name="Host">The store's host (empty for localhost).</param>
/// <param name="Port">The store's port (0 for localhost).</param>
/// <param name="ConnectionString">What the store's client library is given (StackExchange.Redis or Npgsql syntax).</param>
public sealed record ClusterAddress(Membership Kind, string Text, string Host, int Port, string ConnectionString)
{
    /// <summary>The one-process cluster.</summary>
    public static ClusterAddress Localhost { get; } = new(Membership.Localhost, "localhost", "", 0, "");

    /// <summary>Reads a <c>--cluster</c> value; a <see cref="ClusterError"/> naming the value and the accepted forms otherwise.</summary>
    public static ClusterAddress Parse(string? text)
    {
        var t = text?.Trim() ?? "";
        if (t == "localhost") return Localhost;
        if (!Uri.TryCreate(t, UriKind.Absolute, out var uri) || uri.Host.Length == 0 || uri.Scheme is not ("redis" or "postgres" or "postgresql"))
            throw Bad(text, "");
        int port = uri.IsDefaultPort || uri.Port < 0 ? (uri.Scheme == "redis" ? 6379 : 5432) : uri.Port;
        if (port is < 1 or > 65535) throw Bad(text, $" (port {port})");
        var host = uri.IdnHost;
        if (uri.Scheme == "redis")
        {
            if (uri.AbsolutePath is not ("" or "/") || uri.UserInfo.Length > 0 || uri.Query.Length > 0) throw Bad(text, " (a redis address is redis://HOST:PORT, nothing more)");
            return new ClusterAddress(Membership.Redis, t, host, port, $"{EndpointHost(host)}:{port}");
        }
        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length == 0 || database.Contains('/')) throw Bad(text, " (name the database: postgres://USER@HOST:PORT/DATABASE)");
        var user = uri.UserInfo.Split(':', 2);
        if (user[0].Length == 0) throw Bad(text, " (name the user: postgres://USER@HOST:PORT/DATABASE)");
        var masked = user.Length == 2 ? t.Replace(":" + user[1] + "@", ":***@", StringComparison.Ordinal) : t;
        var cs = $"Host={host};Port={port};Database={database};Username={Uri.UnescapeDataString(user[0])}"
            + (user.Length == 2 ? $";Password={Uri.UnescapeDataString(user[1])}" : "");
        return new ClusterAddress(Membership.Postgres, masked, host, port, cs);
    }

    /// <summary>Whether the store is on this machine's loopback interface (then the silos advertise 127.0.0.1: the
    /// whole cluster is on this machine).</summary>
    public bool IsLoopback => Kind == Membership.Localhost || Host == "localhost" || (IPAddress.TryParse(Host, out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>A short description of the store for messages, such as "the Redis membership store redis://h:6379".</summary>
    public string Describe() => Kind switch
    {
        Membership.Redis => $"the Redis membership store {Text}",
        Membership.Postgres => $"the PostgreSQL membership store {Text}",
        _ => "the in-process localhost cluster",
    };

    public override string ToString() => Text;

    static string EndpointHost(string host) => IPAddress.TryParse(host, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{host}]" : host;

    static ClusterError Bad(string? text, string why) =>
        new($"--cluster '{text}' cannot be read{why}: give localhost, redis://HOST:PORT or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE");
}
