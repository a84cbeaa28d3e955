using System.Collections.Immutable;
using System.Diagnostics;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using LoopTune.Search;

namespace LoopTune.Compare;

/// <summary>
/// Runs searches side by side on the same benchmarks and summarises them. Each (benchmark, method) search gets a new
/// evaluator from the factory it is given, so no search profits from another's measurements unless the factory shares a
/// store. After the searches, for a fair and precise comparison, every benchmark's unscheduled nest, every best schedule
/// (verified against the reference) and the peers (OpenBLAS, or those of the <see cref="PeerPreparation"/> given) are timed again, side by side
/// with one sample of each per round (<see cref="Timing.MeasureTogether"/>, with the longer <c>finalTiming</c>, on a pinned core): the searches'
/// own quick measurements are noisy, the fastest of many noisy measurements is biased upwards, and a neighbour that slows the
/// core for a while then slows every method of a benchmark alike. Run on a cluster, each (benchmark, method) pair is one unit of work (<see cref="RunPair"/>): its search and its
/// re-timing (best, unscheduled nest, peers) on one worker's core, so each row is measured on one machine; the rows
/// come together with <see cref="FromRows"/>.
/// </summary>
public sealed class Comparison
{
    /// <summary>The names of the unscheduled nest's, OpenBLAS's and the best library's rows in the summaries.</summary>
    public const string Unscheduled = "unscheduled", OpenBlas = "openblas", BestLibrary = "best library";

    Comparison(ImmutableArray<ComparisonRow> rows, ImmutableArray<string> methods, ImmutableArray<string> benchmarks)
    {
        (Rows, Methods, Benchmarks) = (rows, methods, benchmarks);
        Summaries = [Summarise(Unscheduled, r => r.BaseGflops, null), .. methods.Select(m => Summarise(m, r => r.BestGflops, m)), .. LibrarySummaries()];
    }

    /// <summary>One row per (benchmark, method), benchmarks in order, methods in the order given.</summary>
    public ImmutableArray<ComparisonRow> Rows { get; }
    public ImmutableArray<string> Methods { get; }
    public ImmutableArray<string> Benchmarks { get; }

    /// <summary>The unscheduled nest, each method, each library measured (in the peers' order), then the best library.</summary>
    public ImmutableArray<MethodSummary> Summaries { get; }

    /// <summary>The keys of the libraries measured on some benchmark, in the peers' order.</summary>
    public IReadOnlyList<string> Libraries => [.. Rows.SelectMany(r => r.Peers).Where(p => p.Gflops is > 0).Select(p => p.Key).Distinct()];

    /// <summary>Runs every search of <paramref name="plan"/> on every benchmark (benchmark by benchmark), each with a new
    /// evaluator of <paramref name="newEvaluator"/>, then re-times the results and the peers (<paramref name="peers"/>;
    /// every library, <see cref="LibraryPeers.All"/>, when null). The (benchmark, method) pairs of <paramref name="kept"/>
    /// (rows of an earlier, interrupted run) are not run again; each new row goes to <paramref name="finished"/> as soon
    /// as it is re-timed. <paramref name="stop"/> is looked at before each search and each re-timing: when it is set, the
    /// benchmark under way is abandoned (its rows are not finished) with an <see cref="OperationCanceledException"/>.</summary>
    public static Comparison Run(ComparisonPlan plan, Func<IEvaluator> newEvaluator, Action<ComparisonProgress>? progress = null, PeerPreparation? peers = null,
        IReadOnlyList<ComparisonRow>? kept = null, Action<ComparisonRow>? finished = null, CancellationToken stop = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentOutOfRangeException.ThrowIfZero(plan.Searches.Count);
        peers ??= AllLibraries;
        var rows = new List<ComparisonRow>(kept ?? []);
        var have = rows.Select(r => (r.Benchmark, r.Method)).ToHashSet();
        int total = plan.Benchmarks.Count * (plan.Searches.Count + 1), done = 0;
        foreach (var b in plan.Benchmarks)
        {
            var searches = plan.Searches.Where(s => !have.Contains((b.Name, s.Name))).ToList();
            done += plan.Searches.Count - searches.Count;
            if (searches.Count == 0)
            {
                done++;
                continue;
            }
            var results = new List<SearchResult>();
            foreach (var s in searches)
            {
                stop.ThrowIfCancellationRequested();
                progress?.Invoke(new(done, total, b.Name, s.Name, "searching"));
                results.Add(Search(s, b.Computation, plan.Budget, plan.Seed, newEvaluator, plan.Space));
                done++;
            }
            stop.ThrowIfCancellationRequested();
            progress?.Invoke(new(done, total, b.Name, "", "timing the results and the peers"));
            foreach (var row in Retime(b, results, plan.Timing, peers))
            {
                finished?.Invoke(row);
                rows.Add(row);
            }
            done++;
        }
        progress?.Invoke(new(done, total, "", "", "done"));
        return FromRows(rows, plan.Methods, [.. plan.Benchmarks.Select(b => b.Name)]);
    }

    /// <summary>Every library (<see cref="LibraryPeers.All"/>): its GEMM for a matrix product, its convolution for a convolution.</summary>
    public static IReadOnlyList<PreparedPeer> AllLibraries(Computation c, int threads) => [.. LibraryPeers.All.Select(l => l.Prepare(c, threads))];

    /// <summary>One (benchmark, method) pair alone, the unit of a comparison spread over workers: the search in
    /// <paramref name="space"/>, then its best schedule, the unscheduled nest and the peers (every library when null)
    /// re-timed with <paramref name="finalTiming"/> on the calling (pinned) thread.</summary>
    public static ComparisonRow RunPair(Benchmark benchmark, ISearch search, SearchBudget budget, int seed, Func<IEvaluator> newEvaluator, MeasureOptions finalTiming,
        PeerPreparation? peers = null, ActionSpace? space = null)
    {
        return Retime(benchmark, [Search(search, benchmark.Computation, budget, seed, newEvaluator, space ?? ActionSpace.Tile)], finalTiming, peers ?? AllLibraries).Single();
    }

    /// <summary>The comparison of rows run elsewhere (<see cref="RunPair"/>), put in <see cref="Run"/>'s order; every
    /// (benchmark, method) pair must have exactly one row.</summary>
    public static Comparison FromRows(IEnumerable<ComparisonRow> rows, IReadOnlyList<string> methods, IReadOnlyList<string> benchmarks)
    {
        var byPair = rows.GroupBy(r => (r.Benchmark, r.Method)).ToDictionary(g => g.Key, g => g.ToList());
        var ordered = new List<ComparisonRow>();
        foreach (var b in benchmarks)
            foreach (var m in methods)
                ordered.Add(byPair.GetValueOrDefault((b, m)) is [var one] ? one
                    : throw new InvalidOperationException($"{byPair.GetValueOrDefault((b, m))?.Count ?? 0} rows for {m} on {b}: a comparison needs exactly one"));
        if (byPair.Count != ordered.Count) throw new InvalidOperationException("rows of a benchmark or method that the comparison does not have");
        return new Comparison([.. ordered], [.. methods], [.. benchmarks]);
    }

    static SearchResult Search(ISearch search, Computation c, SearchBudget budget, int seed, Func<IEvaluator> newEvaluator, ActionSpace space)
    {
        var evaluator = newEvaluator();
        // the buffers are filled before the search's clock starts, as `tune` does (200 MB, half a second, for a 4096^3
        // matmul: a large problem's search would otherwise lose that much of its budget), and the code that compiles
        // and times kernels is compiled (the first search of a process lost 0.1 s to it)
        (evaluator as KernelEvaluator)?.Prepare(c);
        try { return search.Run(Nest.Initial(c), evaluator, budget, seed, space); }
        finally { (evaluator as IDisposable)?.Dispose(); }
    }

    /// <summary>Compiles and verifies the unscheduled nest and every distinct best schedule, then times them and the peers
    /// side by side on the calling thread, pinned (<see cref="KernelReport.TimeSideBySide"/>).</summary>
    static List<ComparisonRow> Retime(Benchmark b, List<SearchResult> results, MeasureOptions timing, PeerPreparation peers)
    {
        var c = b.Computation;
        // at N threads (RunThreads) every schedule is run as the evaluators timed it: with its parallel loop, on N threads
        int threads = RunThreads.Default;
        results = [.. results.Select(r => r with { Best = Transforms.Parallelize(r.Best, threads) })];
        var start = Transforms.Parallelize(Nest.Initial(c), threads);
        var kernels = new Dictionary<string, (Nest Nest, Kernel Kernel, bool Verified)>();
        // a kernel whose run would last longer than a quarter second (a large unscheduled nest) is estimated from a slice
        // apart (KernelTiming.Plan: the median of a few runs of the slice, MeasureOptions.Confirm; one run was seen
        // at 72 GFLOPS for a kernel that ran whole at 186) instead of being timed whole, side by side, for every round; one whose run would
        // pass KernelReport.MaxCheckSeconds is checked on a slice
        var estimates = new Dictionary<string, Measurement>();
        using (var buffers = new KernelTiming.Workspace(c))
        using (ThreadPinning.Pin())
            foreach (var nest in results.Select(r => r.Best).Prepend(start))
            {
                if (kernels.ContainsKey(nest.ScheduleKey)) continue;
                var kernel = Kernel.Compile(nest);
                kernel.Threads = threads;
                var (predicted, slice) = KernelTiming.Plan(nest, buffers, MaxRetimeRunSeconds);
                kernels[nest.ScheduleKey] = (nest, kernel, Verifier.VerifyWithin(nest, kernel, predicted, KernelReport.MaxCheckSeconds).Passed);
                if (slice is not null) estimates[nest.ScheduleKey] = KernelTiming.MeasureSlice(slice, kernel, MeasureOptions.Confirm, buffers);
            }
        var keys = kernels.Keys.Where(k => !estimates.ContainsKey(k)).ToList();
        var (timed, peerResults) = keys.Count > 0
            ? KernelReport.TimeSideBySide([.. keys.Select(k => kernels[k].Kernel)], peers, timing)
            : ([], KernelReport.MeasurePeers(c, timing));
        Measurement Timed(Nest nest) => estimates.TryGetValue(nest.ScheduleKey, out var e) ? e : timed[keys.IndexOf(nest.ScheduleKey)];
        double baseGflops = Timed(start).Gflops;
        bool baseEstimated = estimates.ContainsKey(start.ScheduleKey);
        return [.. results.Select(r => new ComparisonRow(b.Name, r.Method, baseGflops, Timed(r.Best).Gflops, r.BestGflops, r.Evaluations, r.Measured, r.Seconds,
            r.Actions, r.Best.ScheduleKey, [.. peerResults], kernels[r.Best.ScheduleKey].Verified, BestSampleGflops: Timed(r.Best).BestGflops, Space: r.Space)
        {
            BaseEstimated = baseEstimated, BestEstimated = estimates.ContainsKey(r.Best.ScheduleKey),
        })];
    }

    /// <summary>Seconds a whole run of a schedule may last in the re-timing before it is estimated from a slice instead.</summary>
    public const double MaxRetimeRunSeconds = 0.25;

    MethodSummary Summarise(string method, Func<ComparisonRow, double> gflops, string? searched)
    {
        // a method's figures count its verified schedules only; the unscheduled nest is the same kernel on every row
        var rows = PerBenchmark(method == Unscheduled ? Methods.FirstOrDefault() : method).Where(r => searched is null || r.Verified).ToList();
        var withBlas = rows.Where(r => r.OpenBlasGflops is > 0).ToList();
        var withLibrary = rows.Where(r => r.BestLibrary is not null).ToList();
        return new MethodSummary(method,
            Geomean(rows.Select(gflops)),
            Geomean(rows.Select(r => gflops(r) / r.BaseGflops)),
            withBlas.Count == 0 ? null : Geomean(withBlas.Select(r => gflops(r) / r.OpenBlasGflops!.Value)),
            searched is null || rows.Count == 0 ? null : rows.Average(r => r.Seconds),
            searched is null || rows.Count == 0 ? null : rows.Max(r => r.Seconds),
            searched is null || rows.Count == 0 ? null : rows.Average(r => r.Evaluations),
            searched is null || rows.Count == 0 || rows.Any(r => !double.IsFinite(r.BestSampleGflops)) ? null : Geomean(rows.Select(r => r.BestSampleGflops)),
            withLibrary.Count == 0 ? null : Geomean(withLibrary.Select(r => gflops(r) / r.BestLibrary!.Value.Gflops)),
            rows.Count);
    }

    /// <summary>Each library measured, then the best library of each benchmark, over the benchmarks where each has a figure.</summary>
    IEnumerable<MethodSummary> LibrarySummaries()
    {
        var first = PerBenchmark(Methods.FirstOrDefault()).ToList();
        foreach (var key in Libraries)
            if (Of(key == BestLibrary ? null : key) is { } s) yield return s;
        if (Of(null) is { } best) yield return best;

        MethodSummary? Of(string? key)
        {
            var rows = first.Select(r => (Row: r, G: key is null ? r.BestLibrary?.Gflops : r.Peer(key)?.Gflops)).Where(x => x.G is > 0).ToList();
            if (rows.Count == 0) return null;
            var blas = rows.Where(x => x.Row.OpenBlasGflops is > 0).ToList();
            return new MethodSummary(key ?? BestLibrary, Geomean(rows.Select(x => x.G!.Value)), Geomean(rows.Select(x => x.G!.Value / x.Row.BaseGflops)),
                blas.Count == 0 ? null : Geomean(blas.Select(x => x.G!.Value / x.Row.OpenBlasGflops!.Value)), null, null, null, null,
                Geomean(rows.Select(x => x.G!.Value / x.Row.BestLibrary!.Value.Gflops)), rows.Count);
        }
    }

    IEnumerable<ComparisonRow> PerBenchmark(string? method) => Rows.Where(r => r.Method == method);

    /// <summary>The geometric mean (NaN for no values).</summary>
    public static double Geomean(IEnumerable<double> values)
    {
        var list = values.ToList();
        return list.Count == 0 ? double.NaN : Math.Exp(list.Average(Math.Log));
    }

    /// <summary>The summary of <paramref name="method"/>.</summary>
    public MethodSummary Summary(string method) => Summaries.First(s => s.Method == method);

    /// <summary>The method with the highest geometric-mean GFLOPS.</summary>
    public MethodSummary BestMethod => Summaries.Where(s => Methods.Contains(s.Method)).MaxBy(s => s.GeomeanGflops)!;

    /// <summary>The summary of the best library of each benchmark, or null when no library was measured.</summary>
    public MethodSummary? BestLibrarySummary => Summaries.FirstOrDefault(s => s.Method == BestLibrary);

    /// <summary>Whether the rows were measured on a cluster (each names its host).</summary>
    public bool Distributed => Rows.Any(r => r.Host is not null);
}
