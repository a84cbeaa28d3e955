using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using LoopTune.Cluster;
using LoopTune.Datasets;
using LoopTune.Tests.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Cluster;

/// <summary><c>looptune silo</c> and <c>compare-searches --cluster</c>: bad input, the one-process cluster, and a silo
/// process joined through Redis as the SLURM launcher runs it.</summary>
[Trait("Category", "Integration")]
public sealed class ClusterCliTests : IDisposable
{
    readonly TempFolder temp = new("looptune-cluster-cli");

    public void Dispose() => temp.Dispose();

    [Theory]
    [InlineData("--cluster 'nope' cannot be read", "--cluster", "nope")]
    [InlineData("--cluster 'redis://h:1/x' cannot be read (a redis address is redis://HOST:PORT", "--cluster", "redis://h:1/x")]
    [InlineData("name the database", "--cluster", "postgres://me@h:5432")]
    [InlineData("--min-workers applies only with --cluster", "--min-workers", "2")]
    [InlineData("--workers applies to --cluster localhost", "--cluster", "redis://127.0.0.1:1", "--workers", "1")]
    [InlineData("--min-workers 3: --cluster localhost has 1 worker(s)", "--cluster", "localhost", "--workers", "1", "--min-workers", "3")]
    [InlineData("--workers-timeout 'soon'", "--cluster", "localhost", "--workers-timeout", "soon")]
    public void BadClusterInputToCompareSearchesExitsWithTwo(string message, params string[] args)
    {
        DatasetGenerator.Matmul("16|24,16", "16,16|24").Write(temp["ds"], 0.5, 0);
        var (code, output, err) = TestHome.Run(["compare-searches", "--dataset", temp["ds"], "--split", "train", "--methods", "random", "--out", temp["never"], .. args]);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.Equal("", output);
        Assert.False(Directory.Exists(temp["never"]));
    }

    [Theory]
    [InlineData("redis://127.0.0.1:1", "cannot reach the Redis membership store redis://127.0.0.1:1")]
    [InlineData("postgres://me:secret@127.0.0.1:1/orleans", "cannot reach the PostgreSQL membership store postgres://me:***@127.0.0.1:1/orleans")]
    public void AnUnreachableStoreIsNamedWithinSecondsAndLeavesNothingRunning(string store, string message)
    {
        int siloPort = ClusterHost.FreePort(), gatewayPort = ClusterHost.FreePort();
        var clock = Stopwatch.StartNew();
        var (code, _, err) = TestHome.Run("silo", "--cluster", store, "--workers", "1", "--silo-port", $"{siloPort}", "--gateway-port", $"{gatewayPort}");
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.DoesNotContain("secret", err);
        Assert.InRange(clock.Elapsed.TotalSeconds, 0, 20);
        AssertFree(siloPort);
        AssertFree(gatewayPort);
    }

    [Fact]
    public void ASiloPortInUseIsNamedAndLeavesNothingRunning()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port, gatewayPort = ClusterHost.FreePort();
        var (code, _, err) = TestHome.Run("silo", "--cluster", "localhost", "--workers", "1", "--silo-port", $"{port}", "--gateway-port", $"{gatewayPort}");
        Assert.Equal(2, code);
        Assert.Contains($"--silo-port {port}: the port is already in use", err);
        AssertFree(gatewayPort);
    }

    [Fact]
    public void CompareSearchesOnALocalhostClusterWritesTheReportWithTheMachineOfEachRow()
    {
        DatasetGenerator.Matmul("16|24,16", "16,16|24").Write(temp["ds"], 0.5, 0);
        var report = temp["report"];
        var (code, output, err) = TestHome.Run("compare-searches", "--dataset", temp["ds"], "--split", "train", "--count", "2", "--methods", "greedy1,random",
            "--budget", "2s", "--max-evaluations", "6", "--quick", "--cluster", "localhost", "--workers", "1", "--out", report, "--json");
        Assert.True(code == 0, err);
        var csv = File.ReadAllLines(Path.Combine(report, "results.csv"));
        Assert.EndsWith(",verified,best_library,best_library_gflops,ratio_to_best_library,action_space,machine,estimated,host", csv[0]);
        Assert.Equal(1 + 2 * 2, csv.Length);
        Assert.All(csv.Skip(1), line => Assert.Contains(",true,", line));
        Assert.All(csv.Skip(1), line => Assert.EndsWith($",{SiloSettings.DefaultHostId}", line));
        var machines = JsonNode.Parse(output)!["machines"]!.AsArray().Single()!;
        Assert.Equal((SiloSettings.DefaultHostId, 4), (machines["host"]!.GetValue<string>(), machines["rows"]!.GetValue<int>()));
        var md = File.ReadAllText(Path.Combine(report, "summary.md"));
        Assert.Contains($"- Machines: a cluster; each row", md);
        Assert.Contains("## Who measured what", md);
        Assert.Contains("1 worker(s)", err);
    }

    [RedisFact]
    public async Task ASiloProcessJoinedThroughRedisMeasuresACommandsRowsAndStopsOnSigterm()
    {
        using var redis = new RedisServer();
        DatasetGenerator.Matmul("16|24,16", "16,16|24").Write(temp["ds"], 0.5, 0);
        int siloPort = ClusterHost.FreePort(), gatewayPort = ClusterHost.FreePort();
        using var silo = LooptuneProcess.Start("silo", "--cluster", redis.Address.Text, "--workers", "1", "--host-id", "node-7",
            "--silo-port", $"{siloPort}", "--gateway-port", $"{gatewayPort}", "--json");
        try
        {
            var ready = await silo.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            if (ready is null) Assert.Fail($"the silo stopped before it was ready: {await silo.StandardError.ReadToEndAsync()}");
            var line = JsonNode.Parse(ready)!;
            Assert.Equal("node-7", line["host_id"]!.GetValue<string>());
            Assert.Equal(["node-7/core0"], line["workers"]!.AsArray().Select(w => w!.GetValue<string>()));
            Assert.Equal(redis.Address.Text, line["cluster"]!.GetValue<string>());

            var report = temp["report"];
            var (code, _, err) = TestHome.Run("compare-searches", "--dataset", temp["ds"], "--split", "train", "--count", "2", "--methods", "random",
                "--budget", "2s", "--max-evaluations", "4", "--quick", "--cluster", redis.Address.Text, "--min-workers", "1", "--out", report);
            Assert.True(code == 0, err);
            var csv = File.ReadAllLines(Path.Combine(report, "results.csv"));
            Assert.Equal(3, csv.Length);
            Assert.All(csv.Skip(1), row => Assert.Contains(",true,", row));
            Assert.All(csv.Skip(1), row => Assert.EndsWith(",node-7", row)); // the host, last

            Process.Start("kill", ["-TERM", $"{silo.Id}"])!.WaitForExit();
            Assert.True(silo.WaitForExit(20_000), "the silo did not stop on SIGTERM");
            Assert.Equal(0, silo.ExitCode);
            AssertFree(siloPort);
        }
        finally
        {
            if (!silo.HasExited) silo.Kill(entireProcessTree: true);
        }
    }

    [RedisFact]
    public async Task ASiloAtOneThreadRefusesARunAtTwoNamingTheSiloOption()
    {
        if (LoopTune.Jit.ThreadCountError.Max < 2) return;
        using var redis = new RedisServer();
        DatasetGenerator.Matmul("16|24,16", "16,16|24").Write(temp["ds"], 0.5, 0);
        int siloPort = ClusterHost.FreePort(), gatewayPort = ClusterHost.FreePort();
        using var silo = LooptuneProcess.Start("silo", "--cluster", redis.Address.Text, "--workers", "1", "--silo-port", $"{siloPort}", "--gateway-port", $"{gatewayPort}", "--json");
        try
        {
            var ready = await silo.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            if (ready is null) Assert.Fail($"the silo stopped before it was ready: {await silo.StandardError.ReadToEndAsync()}");
            Assert.Equal(1, JsonNode.Parse(ready)!["threads"]!.GetValue<int>());
            var (code, _, err) = TestHome.Run("compare-searches", "--dataset", temp["ds"], "--split", "train", "--count", "1", "--methods", "random",
                "--budget", "1s", "--max-evaluations", "2", "--quick", "--cluster", redis.Address.Text, "--threads", "2", "--out", temp["report"]);
            Assert.Equal(2, code);
            Assert.Contains("runs kernels on 1 thread(s) and this run asks for 2: start its silo with 'looptune silo --threads 2'", err);
            Assert.False(Directory.Exists(temp["report"]));
        }
        finally
        {
            if (!silo.HasExited) silo.Kill(entireProcessTree: true);
        }
    }

    /// <summary>Nothing listens on <paramref name="port"/> (of the loopback interface).</summary>
    static void AssertFree(int port)
    {
        using var probe = new TcpListener(IPAddress.Loopback, port);
        probe.Start(); // throws when the port is still taken
    }
}
