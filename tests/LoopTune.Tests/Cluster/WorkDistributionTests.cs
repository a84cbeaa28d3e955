using LoopTune.Cluster;

namespace LoopTune.Tests.Cluster;

/// <summary>The distribution layer on silos of this process (localhost clustering): work reaches every silo, a lost silo's
/// items are re-queued or given up as asked, per-worker state lives as long as a run, the registry refuses a shared core.</summary>
[Trait("Category", "Integration")]
public sealed class WorkDistributionTests
{
    static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task ItemsAddressedToWorkersOfTwoSilosRunThereWithTheirOwnState()
    {
        await using var silos = new TestSilos(ClusterAddress.Localhost);
        var a = await silos.Start("host-a", [0]);
        var b = await silos.Start("host-b", [1]);
        await using var cluster = await silos.Connect();
        var workers = await cluster.WaitForWorkersAsync(2, Limit);
        Assert.Equal(["host-a/core0", "host-b/core1"], workers.Select(w => w.Id));
        Assert.Equal([a.Address, b.Address], workers.Select(w => w.Silo));
        await using var run = cluster.OpenRun(EchoHandler.Name, LostWork.Requeue);
        var requests = Enumerable.Range(0, 6).Select(i => new WorkRequest(i, workers[i % 2])).ToList();
        var outcomes = await run.RunAsync(requests).WaitAsync(Limit);
        // each worker ran its three items in order, counting them in its state for this run
        Assert.Equal(["host-a/core0:0:1", "host-b/core1:1:1", "host-a/core0:2:2", "host-b/core1:3:2", "host-a/core0:4:3", "host-b/core1:5:3"],
            outcomes.Select(o => o.As<string>()));
        Assert.Equal(requests.Select(r => r.Worker), outcomes.Select(o => o.Worker));
        var again = await run.RunAsync([new WorkRequest(9, workers[0])]).WaitAsync(Limit);
        Assert.Equal("host-a/core0:9:4", again[0].As<string>()); // the state outlives a batch, within the run
    }

    [Fact]
    public async Task AWorkerStateIsDisposedWhenItsRunCloses()
    {
        var handler = new EchoHandler();
        await using var silos = new TestSilos(ClusterAddress.Localhost);
        await silos.Start("host-a", [0], handler);
        await using var cluster = await silos.Connect();
        await cluster.WaitForWorkersAsync(1, Limit);
        await using (var run = cluster.OpenRun(EchoHandler.Name, LostWork.Requeue))
        {
            var first = await run.RunAsync([new WorkRequest(1), new WorkRequest(2)]).WaitAsync(Limit);
            Assert.Equal(["host-a/core0:1:1", "host-a/core0:2:2"], first.Select(o => o.As<string>()));
            Assert.Equal(0, handler.Disposed);
        }
        await Eventually(() => handler.Disposed == 1);
        await using var next = cluster.OpenRun(EchoHandler.Name, LostWork.Requeue);
        Assert.Equal("host-a/core0:3:1", (await next.RunAsync([new WorkRequest(3)]).WaitAsync(Limit))[0].As<string>());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ASiloStoppedMidRunHasItsItemsRequeuedAndEveryResultArrivesOnce(bool graceful)
    {
        // item 0 goes to host-b, which blocks on it; the others go to anyone
        var (outcomes, run, cluster) = await StopHostBMidRun(LostWork.Requeue, graceful, workers => [.. Enumerable.Range(0, 8).Select(i => new WorkRequest(i, i == 0 ? workers[1] : null))]);
        await using var _ = cluster;
        Assert.Equal(Enumerable.Range(0, 8), outcomes.Select(o => int.Parse(o.As<string>().Split(':')[1])));
        Assert.All(outcomes, o => Assert.Equal("host-a/core0", o.Worker!.Id));
        Assert.True(run.LostLeases >= 1);
        Assert.DoesNotContain(await cluster.Workers(), w => w.HostId == "host-b");
    }

    [Fact]
    public async Task GivingUpLosesOnlyTheLostSilosItems()
    {
        var (outcomes, _, cluster) = await StopHostBMidRun(LostWork.GiveUp, graceful: false, workers => [.. Enumerable.Range(0, 4).Select(i => new WorkRequest(i, workers[i % 2]))]);
        await using var _ = cluster;
        Assert.Equal([false, true, false, true], outcomes.Select(o => o.Lost));
        Assert.Equal(["host-a/core0:0:1", "host-a/core0:2:2"], outcomes.Where(o => !o.Lost).Select(o => o.As<string>()));
    }

    /// <summary>Runs the items of <paramref name="items"/> on host-a (core 0) and host-b (core 1), stops host-b once it is
    /// in the middle of an item (it blocks on every item), and returns the outcomes, the run and a connection that still
    /// sees the cluster (host-a stays up until it is disposed).</summary>
    static async Task<(WorkOutcome[] Outcomes, WorkRun Run, ClusterView Cluster)> StopHostBMidRun(LostWork onLost, bool graceful, Func<WorkerInfo[], WorkRequest[]> items)
    {
        var stuck = new EchoHandler(blocking: true);
        var silos = new TestSilos(ClusterAddress.Localhost);
        await silos.Start("host-a", [0]);
        var b = await silos.Start("host-b", [1], stuck);
        var cluster = await silos.Connect();
        var workers = await cluster.WaitForWorkersAsync(2, Limit);
        await using var run = cluster.OpenRun(EchoHandler.Name, onLost);
        var running = run.RunAsync(items(workers));
        Assert.True(await stuck.Started.WaitAsync(Limit), "host-b never started an item");
        await b.StopAsync(graceful);
        var outcomes = await running.WaitAsync(Limit);
        stuck.Gate.Set();
        return (outcomes, run, new ClusterView(silos, cluster));
    }

    /// <summary>A connection and its silos, disposed together.</summary>
    sealed class ClusterView(TestSilos silos, ClusterConnection connection) : IAsyncDisposable
    {
        public Task<WorkerInfo[]> Workers() => connection.Workers();

        public async ValueTask DisposeAsync()
        {
            await connection.DisposeAsync();
            await silos.DisposeAsync();
        }
    }

    [Fact]
    public async Task TheRegistryRefusesASecondWorkerOnTheSameCoreOfAHost()
    {
        await using var silos = new TestSilos(ClusterAddress.Localhost);
        var a = await silos.Start("host-a", [0]);
        var refused = await Assert.ThrowsAsync<ClusterError>(() => ClusterHost.StartSiloAsync(silos.Settings("host-a", [1, 0])));
        Assert.Contains("core 0 of host host-a is already held by worker host-a/core0", refused.Message);
        await silos.Start("host-b", [0]); // the same core number on another host is another core
        await using var cluster = await silos.Connect();
        var workers = await cluster.WaitForWorkersAsync(2, Limit);
        Assert.Equal([("host-a", 0), ("host-b", 0)], workers.Select(w => (w.HostId, w.Core)));
        Assert.Equal(workers.Length, workers.Select(w => (w.HostId, w.Core)).Distinct().Count());
    }

    [Fact]
    public async Task AHandlersBadInputFailsTheRunNamingTheWorker()
    {
        await using var silos = new TestSilos(ClusterAddress.Localhost);
        await silos.Start("host-a", [0], new Refuser());
        await using var cluster = await silos.Connect();
        await cluster.WaitForWorkersAsync(1, Limit);
        await using var run = cluster.OpenRun(Refuser.Name, LostWork.Requeue);
        var e = await Assert.ThrowsAsync<ClusterError>(() => run.RunAsync([new WorkRequest(7)]).WaitAsync(Limit));
        Assert.Contains("worker host-a/core0", e.Message);
        Assert.Contains("no such thing as 7", e.Message);
    }

    sealed class Refuser : WorkHandler<int, int>
    {
        public const string Name = "test/refuse";
        public override string Kind => Name;
        public override int Run(int request, WorkerContext context) => throw new LoopTuneException($"no such thing as {request}");
    }

    internal static async Task Eventually(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Limit;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition never held");
            await Task.Delay(50);
        }
    }
}

/// <summary>A run's bookkeeping driven by hand (its kind is one no silo runs, so the test plays the workers): an item
/// whose silo is lost goes back to the queue, and when the lost worker's result arrives after all, the first result is
/// the one recorded.</summary>
[Trait("Category", "Integration")]
public sealed class WorkRunBookkeepingTests
{
    [Fact]
    public async Task ALateResultOfAnItemThatRanTwiceIsCountedNotRecorded()
    {
        await using var silos = new TestSilos(ClusterAddress.Localhost);
        var silo = await silos.Start("host-a", [0]);
        await using var cluster = await silos.Connect();
        await using var run = cluster.OpenRun("test/nobody-runs-this", LostWork.Requeue);
        var lost = new WorkerInfo("gone/core0", "gone", 0, Orleans.Runtime.SiloAddress.New(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 1), 1), "m", true);
        var other = lost with { Id = "other/core0", HostId = "other", Silo = silo.Address };
        var running = run.RunAsync([new WorkRequest("x")]);
        var first = await run.Lease(lost);
        Assert.Equal("x", first!.Payload);
        Assert.Null(await run.Lease(other)); // leased: nothing left
        run.SilosGone(new HashSet<Orleans.Runtime.SiloAddress> { lost.Silo });
        var second = await run.Lease(other); // re-queued for anyone
        Assert.Equal("x", second!.Payload);
        Assert.NotEqual(first.Id, second.Id);
        Assert.Null(await run.Complete(second.Id, "from other", other));
        Assert.Null(await run.Complete(first.Id, "from the lost one", lost)); // it ran after all
        var outcome = (await running.WaitAsync(TimeSpan.FromSeconds(30))).Single();
        Assert.Equal(("from other", "other/core0"), (outcome.As<string>(), outcome.Worker!.Id));
        Assert.Equal((1, 1), (run.Duplicates, run.LostLeases));
    }
}
