using System.Net;
using Npgsql;

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
/// The value of <c>--cluster</c>: <c>localhost</c>, <c>redis://[[USER]:PASSWORD@]HOST[:PORT]</c> (port 6379 when left out;
/// <c>rediss://</c> for TLS to the store) or <c>postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE[&amp;sslrootcert=FILE]]</c>
/// (port 5432; the database must hold Orleans' clustering tables; MODE as libpq's: disable, allow, prefer, require,
/// verify-ca, verify-full). A store's password may come from <see cref="PasswordVariable"/> instead, so that it is not on
/// a command line other users of the machine can read. Every silo and client of one cluster is given the same address;
/// the membership store is what they share, and <see cref="Tls"/> the certificate they must all hold when the cluster
/// requires TLS. The password is never printed: <see cref="Text"/>, <see cref="ToString"/> and every message show
/// <c>***</c> instead, and <see cref="Scrub"/> takes it out of a message from a store's client library.
/// </summary>
/// <param name="Kind">The membership store.</param>
/// <param name="Text">The value as given, with the password masked (shown in messages, logs and --json).</param>
/// <param name="Host">The store's host (empty for localhost).</param>
/// <param name="Port">The store's port (0 for localhost).</param>
/// <param name="ConnectionString">What the store's client library is given (StackExchange.Redis: HOST:PORT, the
/// credentials apart; Npgsql: the whole connection string, password included).</param>
public sealed record ClusterAddress(Membership Kind, string Text, string Host, int Port, string ConnectionString)
{
    /// <summary>The environment variable that holds the store's password when the address gives none.</summary>
    public const string PasswordVariable = "LOOPTUNE_STORE_PASSWORD";

    /// <summary>The one-process cluster.</summary>
    public static ClusterAddress Localhost { get; } = new(Membership.Localhost, "localhost", "", 0, "");

    /// <summary>Redis: the user of an ACL login (null: the default user).</summary>
    public string? User { get; init; }

    /// <summary>The store's password (null: none); never printed.</summary>
    public string? Password { get; init; }

    /// <summary>Redis: the store is reached over TLS (<c>rediss://</c>). PostgreSQL says it with sslmode.</summary>
    public bool StoreTls { get; init; }

    /// <summary>The cluster's certificate when its silos and clients require TLS (<c>--tls-cert</c>, <c>--tls-key</c>).</summary>
    public ClusterTls? Tls { get; init; }

    /// <summary>Reads a <c>--cluster</c> value; a <see cref="ClusterError"/> naming the value (its password masked) and the
    /// accepted forms otherwise.</summary>
    public static ClusterAddress Parse(string? text) => Parse(text, Environment.GetEnvironmentVariable);

    /// <summary><see cref="Parse(string?)"/> with the environment variables of <paramref name="environment"/>.</summary>
    internal static ClusterAddress Parse(string? text, Func<string, string?> environment)
    {
        var t = text?.Trim() ?? "";
        if (t == "localhost") return Localhost;
        var shown = Masked(t);
        if (!Uri.TryCreate(t, UriKind.Absolute, out var uri) || uri.Host.Length == 0 || uri.Scheme is not ("redis" or "rediss" or "postgres" or "postgresql"))
            throw Bad(shown, "");
        bool redis = uri.Scheme is "redis" or "rediss";
        int port = uri.IsDefaultPort || uri.Port < 0 ? (redis ? 6379 : 5432) : uri.Port;
        if (port is < 1 or > 65535) throw Bad(shown, $" (port {port})");
        var host = uri.IdnHost;
        var userInfo = uri.UserInfo.Split(':', 2);
        string user = Uri.UnescapeDataString(userInfo[0]);
        string? password = userInfo.Length == 2 ? Uri.UnescapeDataString(userInfo[1]) : null;
        password ??= environment(PasswordVariable) is { Length: > 0 } p ? p : null;
        if (redis)
        {
            if (uri.AbsolutePath is not ("" or "/") || uri.Query.Length > 0 || uri.Fragment.Length > 0) throw Bad(shown, " (a redis address is redis[s]://[:PASSWORD@]HOST:PORT, nothing more)");
            if (uri.UserInfo.Length > 0 && userInfo.Length == 1) throw Bad(shown, " (give the password after a colon: redis://:PASSWORD@HOST:PORT)");
            return new ClusterAddress(Membership.Redis, shown, host, port, $"{EndpointHost(host)}:{port}")
            {
                User = user.Length > 0 ? user : null, Password = password, StoreTls = uri.Scheme == "rediss",
            };
        }
        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length == 0 || database.Contains('/')) throw Bad(shown, " (name the database: postgres://USER@HOST:PORT/DATABASE)");
        if (user.Length == 0) throw Bad(shown, " (name the user: postgres://USER@HOST:PORT/DATABASE)");
        var cs = new NpgsqlConnectionStringBuilder { Host = host, Port = port, Database = database, Username = user, Password = password };
        foreach (var (key, value) in Query(uri, shown))
        {
            if (key == "sslmode") cs.SslMode = SslModes.TryGetValue(value, out var mode) ? mode : throw Bad(shown, $" (sslmode '{value}': one of {string.Join(", ", SslModes.Keys)})");
            else if (key == "sslrootcert") cs.RootCertificate = value;
            else throw Bad(shown, $" ('{key}': a postgres address takes sslmode and sslrootcert only)");
        }
        return new ClusterAddress(Membership.Postgres, shown, host, port, cs.ConnectionString)
        {
            User = user, Password = password, StoreTls = cs.SslMode is not (SslMode.Disable or SslMode.Allow or SslMode.Prefer),
        };
    }

    /// <summary>libpq's sslmode values, as Npgsql's.</summary>
    static readonly Dictionary<string, SslMode> SslModes = new()
    {
        ["disable"] = SslMode.Disable, ["allow"] = SslMode.Allow, ["prefer"] = SslMode.Prefer, ["require"] = SslMode.Require,
        ["verify-ca"] = SslMode.VerifyCA, ["verify-full"] = SslMode.VerifyFull,
    };

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

    /// <summary><paramref name="message"/> (from a store's client library, which may quote its configuration) with the
    /// password replaced by <c>***</c>.</summary>
    public string Scrub(string message) => Password is { Length: > 0 } p ? message.Replace(p, "***", StringComparison.Ordinal) : message;

    public override string ToString() => Text;

    /// <summary><paramref name="text"/> with the password of its user information, if any, replaced by <c>***</c>.</summary>
    static string Masked(string text)
    {
        int scheme = text.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0) return text;
        int start = scheme + 3, end = text.IndexOfAny(['/', '?', '#'], start);
        if (end < 0) end = text.Length;
        int at = text.LastIndexOf('@', end - 1, end - start), colon = at < 0 ? -1 : text.IndexOf(':', start, at - start);
        return colon < 0 ? text : string.Concat(text.AsSpan(0, colon + 1), "***", text.AsSpan(at));
    }

    static IEnumerable<(string Key, string Value)> Query(Uri uri, string shown) =>
        uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries).Select(pair =>
        {
            var kv = pair.Split('=', 2);
            if (kv.Length != 2) throw Bad(shown, $" ('{pair}': give KEY=VALUE)");
            return (Uri.UnescapeDataString(kv[0]), Uri.UnescapeDataString(kv[1]));
        });

    static string EndpointHost(string host) => IPAddress.TryParse(host, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{host}]" : host;

    static ClusterError Bad(string shown, string why) =>
        new($"--cluster '{shown}' cannot be read{why}: give localhost, redis[s]://[:PASSWORD@]HOST:PORT or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE]");
}
