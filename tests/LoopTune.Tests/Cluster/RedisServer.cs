using System.Diagnostics;
using System.Net.Sockets;
using LoopTune.Cluster;

namespace LoopTune.Tests.Cluster;

/// <summary>A redis-server of the test's own on 127.0.0.1 and a free port, without persistence; killed on dispose.
/// <paramref name="options"/> are more of redis-server's options (<c>--requirepass</c>, <c>--tls-port</c>, ...).</summary>
sealed class RedisServer : IDisposable
{
    readonly Process process;

    /// <summary>redis-server on the PATH, or null.</summary>
    public static string? Binary { get; } = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/bin").Append("/usr/sbin")
        .Select(d => Path.Combine(d, "redis-server")).FirstOrDefault(File.Exists);

    public RedisServer(params string[] options) : this(ClusterHost.FreePort(), null, options) { }

    /// <summary>A server on <paramref name="port"/> (a restarted store on the port of the one before), reading the
    /// configuration file <paramref name="config"/> first when one is given.</summary>
    public RedisServer(int port, string? config, params string[] options)
    {
        Port = port;
        var start = new ProcessStartInfo(Binary ?? throw new InvalidOperationException("redis-server is not installed"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        if (config is not null) start.ArgumentList.Add(config);
        foreach (var a in (string[])["--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", .. options])
            start.ArgumentList.Add(a);
        process = Process.Start(start) ?? throw new InvalidOperationException("could not start redis-server");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!Answers())
        {
            if (process.HasExited || DateTime.UtcNow > deadline) throw new InvalidOperationException($"redis-server did not start on port {Port}");
            Thread.Sleep(50);
        }
    }

    public int Port { get; }
    public ClusterAddress Address => ClusterAddress.Parse($"redis://127.0.0.1:{Port}");

    bool Answers()
    {
        try
        {
            using var c = new TcpClient("127.0.0.1", Port);
            using var s = c.GetStream();
            s.Write("PING\r\n"u8);
            var buffer = new byte[16];
            return s.Read(buffer) > 0 && buffer[0] is (byte)'+' or (byte)'-'; // PONG, or NOAUTH from a server with a password
        }
        catch (SocketException) { return false; }
        catch (IOException) { return false; }
    }

    public void Dispose()
    {
        try { process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }
        process.WaitForExit(10_000);
        process.Dispose();
    }
}

/// <summary>A fact that needs redis-server: skipped, saying so, where it is not installed (scripts/setup.sh installs it).</summary>
sealed class RedisFactAttribute : FactAttribute
{
    public RedisFactAttribute()
    {
        if (RedisServer.Binary is null) Skip = "redis-server is not installed (scripts/setup.sh installs it with apt)";
    }
}
