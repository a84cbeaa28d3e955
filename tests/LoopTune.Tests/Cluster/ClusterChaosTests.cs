using LoopTune.Cluster;
using LoopTune.Compare;
using LoopTune.Measure;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Cluster;

/// <summary>Chaos, bounded in time: compare-searches' pairs on two silos of this process joined through a Redis store
/// (with a password and an append-only file, as a store that can restart keeps its table), one silo killed in the
/// middle of a pair, then the store killed and restarted on its port while the run goes on. The client rides out the
/// store's absence and the lost silo: every row arrives once, with what a run on one machine finds, and the same
/// connection still serves a run afterwards.</summary>
[Trait("Category", "Integration")]
public sealed class ClusterChaosTests : IDisposable
{
    static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);
    readonly TempFolder temp = new("looptune-chaos");

    public void Dispose() => temp.Dispose();

    [RedisFact]
    public async Task ASiloKilledAndTheStoreRestartedMidRunLoseNoRowAndRecordNoneTwice()
    {
        const string password = "pw-chaos-5b2d";
        string[] store = ["--requirepass", password, "--appendonly", "yes", "--appendfsync", "always", "--dir", temp.Path];
        var redis = new RedisServer(ClusterHost.FreePort(), null, store);
        try
        {
            var started = new SemaphoreSlim(0);
            using var gate = new ManualResetEventSlim(false);
            await using var silos = new TestSilos(ClusterAddress.Parse($"redis://:{password}@127.0.0.1:{redis.Port}"));
            await silos.Start("host-a", [0], ClusterComparisonTests.Handler(delay: TimeSpan.FromMilliseconds(300)));
            var b = await silos.Start("host-b", [1], ClusterComparisonTests.Handler(started, gate));
            await using var cluster = await silos.Connect();
            await cluster.WaitForWorkersAsync(2, Limit);
            var plan = ClusterComparisonTests.Plan();
            var running = ComparisonWork.RunAsync(cluster, plan);
            Assert.True(await started.WaitAsync(Limit), "host-b never took a pair");
            await b.StopAsync(graceful: false); // host-b crashes in the middle of its pair
            redis.Dispose(); // then the store goes down, and comes back on its port with its table
            await Task.Delay(TimeSpan.FromSeconds(1));
            redis = new RedisServer(redis.Port, null, store);
            var distributed = await running.WaitAsync(Limit);
            gate.Set();

            Assert.Equal(plan.Benchmarks.Count * plan.Searches.Count, distributed.Rows.Length);
            Assert.Equal(distributed.Rows.Length, distributed.Rows.Select(r => (r.Benchmark, r.Method)).Distinct().Count());
            Assert.All(distributed.Rows, r => Assert.Equal(("host-a", PeakCache.MachineKey), (r.Host, r.Machine)));
            var local = Comparison.Run(plan, () => new FakeEvaluator());
            Assert.Equal(local.Rows.Select(ClusterComparisonTests.Searched), distributed.Rows.Select(ClusterComparisonTests.Searched));

            await WorkDistributionTests.Eventually(() => cluster.Workers().Result.Select(w => w.Id).SequenceEqual(["host-a/core0"]));
            var again = await ComparisonWork.RunAsync(cluster, plan with { Benchmarks = [plan.Benchmarks[0]] }).WaitAsync(Limit);
            Assert.Equal(plan.Searches.Count, again.Rows.Length);
        }
        finally { redis.Dispose(); }
    }
}
