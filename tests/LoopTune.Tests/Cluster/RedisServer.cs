using System.Diagnostics;
using System.Net.Sockets;
using LoopTune.Cluster;

namespace LoopTune.Tests.Cluster;

/// <summary>A redis-server of the test's own on 127.0.0.1 and a free port, without persistence; killed on dispose.</summary>
sealed class RedisServer : IDisposable
{
    readonly Process process;

    /// <summary>redis-server on the PATH, or null.</summary>
    public static string? Binary { get; } = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/bin").Append("/usr/sbin")
        .Select(d => Path.Combine(d, "redis-server")).FirstOrDefault(File.Exists);

    public RedisServer()
    {
        Port = ClusterHost.FreePort();
        var start = new ProcessStartInfo(Binary ?? throw new InvalidOperationException("redis-server is not installed"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no" })
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
            return s.Read(buffer) > 0 && buffer[0] == (byte)'+';
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
