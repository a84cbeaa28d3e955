using System.Diagnostics;
using LoopTune.Cluster;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Cluster;

/// <summary>A cluster on a network others share, on 127.0.0.1: a Redis store with a password refuses a silo or client
/// without it; silos that require TLS run the work of a client holding the cluster's certificate and refuse, within the
/// wait they were given, a client without it or with another; a <c>rediss://</c> store accepts only the cluster's
/// certificate. No message holds the password.</summary>
[Trait("Category", "Integration")]
public sealed class ClusterSecurityTests : IDisposable
{
    const string Password = "pw-7f3a9c1e";
    static readonly TimeSpan Limit = TimeSpan.FromSeconds(60), Refusal = TimeSpan.FromSeconds(3);
    readonly TempFolder temp = new("looptune-cluster-tls");

    public void Dispose() => temp.Dispose();

    /// <summary>A new self-signed cluster certificate in the test's folder.</summary>
    ClusterTls Certificate(string name)
    {
        string cert = temp[$"{name}.crt"], key = temp[$"{name}.key"];
        ClusterTls.Create(cert, key, "looptune-cluster", TimeSpan.FromDays(1));
        return ClusterTls.Load(cert, key)!;
    }

    static ClusterAddress WithPassword(RedisServer redis, string password) => ClusterAddress.Parse($"redis://:{password}@127.0.0.1:{redis.Port}");

    [RedisFact]
    public async Task AStoreWithAPasswordRefusesASiloWithoutItAndAcceptsOneWithIt()
    {
        using var redis = new RedisServer("--requirepass", Password);
        foreach (var (address, given) in new[] { (redis.Address, "none"), (WithPassword(redis, "wrong-one"), "a wrong one") })
        {
            var clock = Stopwatch.StartNew();
            var e = await Assert.ThrowsAsync<ClusterError>(() => new TestSilos(address).Start("node-1", [0]));
            Assert.True(e.Message.Contains("it refused the password", StringComparison.Ordinal), $"{given}: {e.Message}");
            Assert.DoesNotContain(Password, e.Message);
            Assert.DoesNotContain("wrong-one", e.Message);
            Assert.InRange(clock.Elapsed.TotalSeconds, 0, 15);
        }
        await using var silos = new TestSilos(WithPassword(redis, Password));
        await silos.Start("node-1", [0]);
        await using var cluster = await silos.Connect();
        Assert.Equal("node-1/core0", (await cluster.WaitForWorkersAsync(1, Limit)).Single().Id);
        Assert.Equal($"redis://:***@127.0.0.1:{redis.Port}", cluster.Address.Text);
    }

    [RedisFact]
    public async Task SilosThatRequireTlsServeAClientWithTheCertificateAndRefuseOneWithoutIt()
    {
        using var redis = new RedisServer("--requirepass", Password);
        var tls = Certificate("cluster");
        var address = WithPassword(redis, Password) with { Tls = tls };
        await using var silos = new TestSilos(address);
        await silos.Start("node-1", [0]);
        await silos.Start("node-2", [1]);
        await using (var cluster = await silos.Connect())
        {
            var workers = await cluster.WaitForWorkersAsync(2, Limit);
            Assert.Equal(["node-1/core0", "node-2/core1"], workers.Select(w => w.Id));
            await using var run = cluster.OpenRun(EchoHandler.Name, LostWork.Requeue);
            var outcomes = await run.RunAsync([.. Enumerable.Range(0, 4).Select(i => new WorkRequest(i, workers[i % 2]))]).WaitAsync(Limit);
            Assert.Equal(["node-1/core0:0:1", "node-2/core1:1:1", "node-1/core0:2:2", "node-2/core1:3:2"], outcomes.Select(o => o.As<string>()));
        }
        foreach (var (stranger, hint) in new[]
        {
            (address with { Tls = null }, "give --tls-cert and --tls-key"),
            (address with { Tls = Certificate("other") }, "a silo without that very certificate is refused"),
        })
        {
            var clock = Stopwatch.StartNew();
            var e = await Assert.ThrowsAsync<ClusterError>(() => ClusterHost.ConnectAsync(stranger, Refusal));
            Assert.Contains($"cannot join the cluster of the Redis membership store redis://:***@127.0.0.1:{redis.Port} (no silo found within 3 s", e.Message);
            Assert.Contains(hint, e.Message);
            Assert.DoesNotContain(Password, e.Message);
            Assert.InRange(clock.Elapsed.TotalSeconds, 0, 20); // refused within the wait it was given, not a hang
        }
    }

    [RedisFact]
    public async Task ATlsStoreAcceptsOnlyTheClusterCertificate()
    {
        var tls = Certificate("store");
        int tlsPort = ClusterHost.FreePort();
        using var redis = new RedisServer("--requirepass", Password, "--tls-port", $"{tlsPort}", "--tls-cert-file", tls.CertFile,
            "--tls-key-file", temp["store.key"], "--tls-ca-cert-file", tls.CertFile, "--tls-auth-clients", "yes");
        var address = ClusterAddress.Parse($"rediss://:{Password}@127.0.0.1:{tlsPort}");
        foreach (var (stranger, why) in new[] { (address, "the TLS handshake failed"), (address with { Tls = Certificate("other") }, "the TLS handshake failed") })
        {
            var e = await Assert.ThrowsAsync<ClusterError>(() => new TestSilos(stranger).Start("node-1", [0]));
            Assert.Contains($"cannot reach the Redis membership store rediss://:***@127.0.0.1:{tlsPort}: {why}", e.Message);
            Assert.DoesNotContain(Password, e.Message);
        }
        await using var silos = new TestSilos(address with { Tls = tls });
        await silos.Start("node-1", [0]);
        await using var cluster = await silos.Connect();
        Assert.Equal("node-1/core0", (await cluster.WaitForWorkersAsync(1, Limit)).Single().Id);
    }

    [Fact]
    public void ACertificateWithoutItsKeyOrAMissingFileIsNamed()
    {
        Certificate("a");
        Certificate("b");
        Assert.Null(ClusterTls.Load(null, null));
        Assert.Contains("--tls-cert and --tls-key go together", Assert.Throws<ClusterError>(() => ClusterTls.Load(temp["a.crt"], null)).Message);
        Assert.Contains($"--tls-key {temp["none.key"]}: no such file", Assert.Throws<ClusterError>(() => ClusterTls.Load(temp["a.crt"], temp["none.key"])).Message);
        Assert.Contains("not a PEM certificate and its private key", Assert.Throws<ClusterError>(() => ClusterTls.Load(temp["a.crt"], temp["b.key"])).Message);
        var a = ClusterTls.Load(temp["a.crt"], temp["a.key"])!;
        Assert.True(a.Accepts(ClusterTls.Load(temp["a.crt"], temp["a.key"])!.Certificate));
        Assert.False(a.Accepts(ClusterTls.Load(temp["b.crt"], temp["b.key"])!.Certificate));
        Assert.False(a.Accepts(null));
        foreach (var file in new[] { "a.crt", "a.key" })
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, TempFolder.Mode(temp[file]));
    }
}
