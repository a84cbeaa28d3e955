using LoopTune.Compare;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Search;

namespace LoopTune.Cluster;

/// <summary>
/// <c>compare-searches</c> spread over a cluster: one item per (benchmark, method) pair, run by <see cref="Comparison.RunPair"/>
/// on a worker (the search, then its re-timing on the same core; the rows travel as <see cref="ComparisonRow"/>s through
/// <see cref="ComparisonRowConverter"/>), the rows put together by <see cref="Comparison.FromRows"/>,
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
    /// <param name="Space">The action space of the search (<see cref="ActionSpace"/>).</param>
    /// <param name="Threads">The threads the kernels run on (<c>--threads</c>): the worker's own count, or it refuses.</param>
    [GenerateSerializer, Immutable, Alias("looptune.ComparisonPair")]
    public sealed record Pair(string Benchmark, string Spec, string Method, string Policy, TimeSpan Budget, int? MaxEvaluations, int Seed, bool QuickTiming, string? Db,
        string Space = "tile", int Threads = 1);

    /// <summary>Runs pairs on a worker. The evaluator of each search is by default a new, empty measurement store in a
    /// temporary folder (or the pair's shared store), as on one machine; tests give a deterministic one instead.</summary>
    public sealed class Handler(Func<Pair, IEvaluator>? evaluators = null) : WorkHandler<Pair, ComparisonRow>
    {
        public override string Kind => ComparisonWork.Kind;

        public override ComparisonRow Run(Pair pair, WorkerContext context)
        {
            context.Worker.UseThreads(pair.Threads);
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
                return Comparison.RunPair(benchmark, search, budget, pair.Seed, Evaluator, timing, space: ActionSpace.Get(pair.Space)) with
                {
                    Host = context.Worker.HostId,
                    Machine = context.Worker.Machine,
                };
            }
            finally { temp?.Delete(recursive: true); }
        }
    }

    /// <summary>Runs <paramref name="plan"/> on the cluster's workers (each method rebuilt there by name, the shared store
    /// opened there); <paramref name="progress"/> hears of each row as it comes.</summary>
    public static async Task<Comparison> RunAsync(ClusterConnection cluster, ComparisonPlan plan, Action<ComparisonProgress>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var pairs = plan.Benchmarks.SelectMany(b => plan.Methods.Select(m => new Pair(b.Name, b.Computation.ToString(), m, plan.Policy, plan.Budget.Time,
            plan.Budget.MaxEvaluations, plan.Seed, plan.Quick, plan.SharedDb, plan.Space.Name, Jit.RunThreads.Default))).ToList();
        await using var run = cluster.OpenRun(Kind, LostWork.Requeue);
        int done = 0;
        progress?.Invoke(new(0, pairs.Count, "", "", "waiting for the workers"));
        run.Progress = o =>
        {
            var row = o.As<ComparisonRow>();
            progress?.Invoke(new(Interlocked.Increment(ref done), pairs.Count, row.Benchmark, row.Method, $"measured on {o.Worker!.HostId} core {o.Worker.Core}"));
        };
        var outcomes = await run.RunAsync([.. pairs.Select(p => new WorkRequest(p))], cancel);
        return Comparison.FromRows(outcomes.Select(o => o.As<ComparisonRow>()), plan.Methods, [.. plan.Benchmarks.Select(b => b.Name)]);
    }
}
