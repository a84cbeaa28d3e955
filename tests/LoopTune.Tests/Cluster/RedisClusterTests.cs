using LoopTune.Cluster;

namespace LoopTune.Tests.Cluster;

/// <summary>Silos that find each other through a real Redis server started by the test on 127.0.0.1.</summary>
[Trait("Category", "Integration")]
public sealed class RedisClusterTests
{
    static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    [RedisFact]
    public async Task TwoSilosJoinThroughRedisAndBothRunWork()
    {
        using var redis = new RedisServer();
        await using var silos = new TestSilos(redis.Address);
        await silos.Start("node-1", [0]);
        var two = await silos.Start("node-2", [1]);
        await using var cluster = await silos.Connect();
        var workers = await cluster.WaitForWorkersAsync(2, Limit);
        Assert.Equal(["node-1/core0", "node-2/core1"], workers.Select(w => w.Id));
        await using (var run = cluster.OpenRun(EchoHandler.Name, LostWork.Requeue))
        {
            var outcomes = await run.RunAsync([.. Enumerable.Range(0, 4).Select(i => new WorkRequest(i, workers[i % 2]))]).WaitAsync(Limit);
            Assert.Equal(["node-1/core0:0:1", "node-2/core1:1:1", "node-1/core0:2:2", "node-2/core1:3:2"], outcomes.Select(o => o.As<string>()));
        }
        await two.StopAsync();
        await WorkDistributionTests.Eventually(() => cluster.Workers().Result.Length == 1);
        Assert.Equal("node-1/core0", (await cluster.Workers()).Single().Id);
    }

    [RedisFact]
    public async Task TooFewWorkersIsAnErrorNamingTheStore()
    {
        using var redis = new RedisServer();
        await using var silos = new TestSilos(redis.Address);
        await silos.Start("node-1", [0]);
        await using var cluster = await silos.Connect();
        var e = await Assert.ThrowsAsync<ClusterError>(() => cluster.WaitForWorkersAsync(2, TimeSpan.FromSeconds(1)));
        Assert.Equal($"only 1 of the 2 workers asked for (--min-workers) registered with the Redis membership store redis://127.0.0.1:{redis.Port} within 1 s", e.Message);
    }
}
