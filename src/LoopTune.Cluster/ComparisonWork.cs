using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Search;

namespace LoopTune.Cluster;

/// <summary>
/// <c>compare-searches</c> spread over a cluster: one item per (benchmark, method) pair, run by <see cref="Comparison.RunPair"/>
/// on a worker (the search, then its re-timing on the same core), the rows put together by <see cref="Comparison.FromRows"/>,
/// so the comparison logic is the one of a run on one machine. Items of a lost silo are re-queued: every row is there once.
/// </summary>
public static class ComparisonWork
{
    public const string Kind = "compare-searches/pair";

    /// <summary>One pair to compare.</summary>
    /// <param name="Benchmark">The benchmark's name.</param>
    /// <param name="Spec">Its computation, as <see cref="Computation.Parse"/> reads it.</param>
    /// <param name="Method">A method of <see cref="ComparisonMethods.Parse"/>.</param>
    /// <param name="Policy">The policy of the policy methods (a path on the worker's machine, or "default").</param>
    /// <param name="Budget">The search's time budget.</param>
    /// <param name="MaxEvaluations">The search's evaluation budget, if any.</param>
    /// <param name="Seed">The search's seed.</param>
    /// <param name="QuickTiming">Re-time with <see cref="MeasureOptions.Quick"/> instead of <see cref="MeasureOptions.Default"/>.</param>
    /// <param name="Db">A measurement store shared by the searches (a path on the worker's machine), or null for a new,
    /// empty store per search.</param>
    [GenerateSerializer, Immutable, Alias("looptune.ComparisonPair")]
    /// <param name="Space">The action space of the search (<see cref="ActionSpace"/>).</param>
    public sealed record Pair(string Benchmark, string Spec, string Method, string Policy, TimeSpan Budget, int? MaxEvaluations, int Seed, bool QuickTiming, string? Db,
        string Space = "tile");

    /// <summary>A <see cref="PeerResult"/> on the wire.</summary>
    [GenerateSerializer, Immutable, Alias("looptune.ComparisonPeer")]
    public sealed record Peer(string Key, double? Gflops, string? Problem, PeerStatus Status, string? Via)
    {
        public static Peer From(PeerResult p) => new(p.Key, p.Gflops, p.Problem, p.Status, p.Via);

        public PeerResult ToResult() => new(Key, Gflops, Problem, Status, Via);
    }

    /// <summary>A <see cref="ComparisonRow"/> on the wire (actions by name), with the host and machine that measured it.</summary>
    [GenerateSerializer, Immutable, Alias("looptune.ComparisonPairRow")]
    public sealed record Row(string Benchmark, string Method, double BaseGflops, double BestGflops, double SearchGflops, int Evaluations,
        int Measured, double Seconds, string[] Actions, string Schedule, Peer[] Peers, bool Verified, string Host, string Machine,
        double BestSampleGflops, string Space, bool BaseEstimated = false, bool BestEstimated = false)
    {
        public static Row From(ComparisonRow r, WorkerInfo worker) => new(r.Benchmark, r.Method, r.BaseGflops, r.BestGflops, r.SearchGflops,
            r.Evaluations, r.Measured, r.Seconds, [.. r.Actions.Select(a => a.Name)], r.Schedule, [.. r.Peers.Select(Peer.From)], r.Verified, worker.HostId, worker.Machine,
            r.BestSampleGflops, r.Space, r.BaseEstimated, r.BestEstimated);

        public ComparisonRow ToRow() => new(Benchmark, Method, BaseGflops, BestGflops, SearchGflops, Evaluations, Measured, Seconds,
            [.. Actions.Select(LoopTune.Ir.Actions.Get)], Schedule, [.. Peers.Select(p => p.ToResult())], Verified, Host, Machine, BestSampleGflops, Space)
        {
            BaseEstimated = BaseEstimated, BestEstimated = BestEstimated,
        };
    }

    /// <summary>Runs pairs on a worker. The evaluator of each search is by default a new, empty measurement store in a
    /// temporary folder (or the pair's shared store), as on one machine; tests give a deterministic one instead.</summary>
    public sealed class Handler(Func<Pair, IEvaluator>? evaluators = null) : WorkHandler<Pair, Row>
    {
        public override string Kind => ComparisonWork.Kind;

        public override Row Run(Pair pair, WorkerContext context)
        {
            var methods = context.State.Get("methods", () => new Dictionary<string, ISearch>());
            if (!methods.TryGetValue(pair.Method, out var search))
                methods[pair.Method] = search = ComparisonMethods.Parse(pair.Method, pair.Policy).Single();
            var benchmark = new Benchmark(pair.Benchmark, Computation.Parse(pair.Spec));
            var budget = new SearchBudget(pair.Budget, pair.MaxEvaluations).Validate();
            var timing = pair.QuickTiming ? MeasureOptions.Quick : MeasureOptions.Default;
            DirectoryInfo? temp = evaluators is null && pair.Db is null ? Directory.CreateTempSubdirectory("looptune-pair-") : null;
            try
            {
                IEvaluator Evaluator() => evaluators?.Invoke(pair) ?? Evaluators.Default(pair.Db ?? Path.Combine(temp!.FullName, "store.db"));
                return Row.From(Comparison.RunPair(benchmark, search, budget, pair.Seed, Evaluator, timing, space: ActionSpace.Get(pair.Space)), context.Worker);
            }
            finally { temp?.Delete(recursive: true); }
        }
    }

    /// <summary>Compares <paramref name="methods"/> on <paramref name="benchmarks"/> on the cluster's workers (the same
    /// arguments as <see cref="Comparison.Run"/>); <paramref name="progress"/> hears of each row as it comes.</summary>
    public static async Task<Comparison> RunAsync(ClusterConnection cluster, IReadOnlyList<Benchmark> benchmarks, IReadOnlyList<string> methods,
        string policy, SearchBudget budget, int seed, bool quickTiming, string? db, Action<ComparisonProgress>? progress = null, string space = "tile", CancellationToken cancel = default)
    {
        var pairs = benchmarks.SelectMany(b => methods.Select(m => new Pair(b.Name, b.Computation.ToString(), m, policy, budget.Time, budget.MaxEvaluations, seed, quickTiming, db, space))).ToList();
        await using var run = cluster.OpenRun(Kind, LostWork.Requeue);
        int done = 0;
        progress?.Invoke(new(0, pairs.Count, "", "", "waiting for the workers"));
        run.Progress = o =>
        {
            var row = o.As<Row>();
            progress?.Invoke(new(Interlocked.Increment(ref done), pairs.Count, row.Benchmark, row.Method, $"measured on {o.Worker!.HostId} core {o.Worker.Core}"));
        };
        var outcomes = await run.RunAsync([.. pairs.Select(p => new WorkRequest(p))], cancel);
        return Comparison.FromRows(outcomes.Select(o => o.As<Row>().ToRow()), methods, [.. benchmarks.Select(b => b.Name)]);
    }
}
