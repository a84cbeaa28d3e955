using LoopTune.Cluster;
using LoopTune.Compare;
using LoopTune.Compare.Exporters;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Search;
using LoopTune.Tests.Search;

using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Cluster;

/// <summary>compare-searches' pairs on silos of this process, with the deterministic <see cref="FakeEvaluator"/> and
/// budgets that end by their evaluation limit, so the searches' results are known from a run on one machine.</summary>
[Trait("Category", "Integration")]
public sealed class ClusterComparisonTests
{
    static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);
    static readonly SearchBudget Budget = SearchBudget.Seconds(60, maxEvaluations: 12);
    internal static readonly string[] Methods = ["greedy1", "random", "beam_bfs"];
    internal static readonly Benchmark[] Benchmarks = [new("mm16_24_8", Computation.Matmul(16, 24, 8)), new("mm8_16_16", Computation.Matmul(8, 16, 16)), new("mm24_8_8", Computation.Matmul(24, 8, 8))];

    /// <summary>Pairs with the fake evaluator; <paramref name="blockOn"/> makes every pair of that host wait for <paramref name="gate"/>
    /// after signalling <paramref name="started"/>.</summary>
    internal static ComparisonWork.Handler Handler(SemaphoreSlim? started = null, ManualResetEventSlim? gate = null, TimeSpan? delay = null) => new(_ =>
    {
        started?.Release();
        gate?.Wait();
        if (delay is { } d) Thread.Sleep(d);
        return new FakeEvaluator();
    });

    [Fact]
    public async Task ASiloStoppedMidComparisonLeavesEveryRowOnceWithTheResultsOfALocalRun()
    {
        var started = new SemaphoreSlim(0);
        using var gate = new ManualResetEventSlim(false);
        await using var silos = new TestSilos(ClusterAddress.Localhost);
        // host-a a little slow, so that on a loaded machine it cannot take every pair before host-b's worker asks for one
        await silos.Start("host-a", [0], Handler(delay: TimeSpan.FromMilliseconds(300)));
        var b = await silos.Start("host-b", [1], Handler(started, gate));
        await using var cluster = await silos.Connect();
        await cluster.WaitForWorkersAsync(2, Limit);
        var progress = new List<ComparisonProgress>();
        var plan = Plan();
        var running = ComparisonWork.RunAsync(cluster, plan, p => { lock (progress) progress.Add(p); });
        Assert.True(await started.WaitAsync(Limit), "host-b never took a pair");
        await b.StopAsync(graceful: false); // as if host-b crashed in the middle of its pair
        var distributed = await running.WaitAsync(Limit);
        gate.Set();

        Assert.Equal(Benchmarks.Length * Methods.Length, distributed.Rows.Length);
        Assert.Equal(distributed.Rows.Length, distributed.Rows.Select(r => (r.Benchmark, r.Method)).Distinct().Count());
        Assert.All(distributed.Rows, r => Assert.Equal(("host-a", PeakCache.MachineKey), (r.Host, r.Machine)));
        Assert.All(distributed.Rows, r => Assert.True(r.Verified));
        Assert.Equal(distributed.Rows.Length, progress.Count(p => p.Done > 0));
        var local = Comparison.Run(plan, () => new FakeEvaluator());
        Assert.Equal(local.Rows.Select(Searched), distributed.Rows.Select(Searched));
        Assert.Null(local.Rows[0].Host);
        Assert.EndsWith(",action_space,machine,estimated,host", ComparisonCsv.Write(distributed).Split('\n')[0]);
        Assert.DoesNotContain("host", ComparisonCsv.Write(local).Split('\n')[0]);
    }

    /// <summary>Every method on every benchmark, with budgets that end by their evaluation limit.</summary>
    internal static ComparisonPlan Plan() => new() { Benchmarks = Benchmarks, Searches = [.. Methods.Select(Searches.Get)], Budget = Budget, Seed = 3, Quick = true };

    /// <summary>What the search found (deterministic with the fake evaluator), without the re-timed figures.</summary>
    internal static (string, string, double, int, string, string) Searched(ComparisonRow r) =>
        (r.Benchmark, r.Method, r.SearchGflops, r.Evaluations, r.Schedule, string.Join(",", r.Actions.Select(a => a.Name)));
}
