using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;

namespace LoopTune.Search;

/// <summary>One search on one benchmark, as <c>compare-searches</c> reports it.</summary>
/// <param name="Benchmark">The benchmark's name.</param>
/// <param name="Method">The search's name.</param>
/// <param name="BaseGflops">The unscheduled nest, re-timed after the searches (see <see cref="Comparison"/>).</param>
/// <param name="BestGflops">The search's best schedule, re-timed the same way.</param>
/// <param name="SearchGflops">What the search's evaluator reported for that schedule during the search.</param>
/// <param name="Evaluations">The search's evaluator calls (<see cref="SearchResult.Evaluations"/>).</param>
/// <param name="Measured">Of those, the ones timed during the search.</param>
/// <param name="Seconds">Wall-clock seconds of the search.</param>
/// <param name="Actions">The actions from the unscheduled nest to the best schedule.</param>
/// <param name="Schedule">The best schedule (<see cref="Nest.ScheduleKey"/>).</param>
/// <param name="Peers">The peer libraries on the same computation, timed the same way (OpenBLAS alone for
/// <c>compare-searches</c>; OpenBLAS, BLIS and oneDNN for <c>compare-libraries</c>); the same for every method of a benchmark.</param>
/// <param name="Verified">Whether the best schedule's kernel matched the reference.</param>
/// <param name="Host">The machine that measured the row (search and re-timing) when the comparison ran on a cluster;
/// null on one machine.</param>
/// <param name="Machine">That machine's type (<see cref="PeakCache.MachineKey"/>) when <paramref name="Host"/> is given.</param>
/// <param name="BestSampleGflops">The best schedule's fastest sample in the re-timing (<see cref="Measurement.BestGflops"/>):
/// what it does when nothing slows the core, where <paramref name="BestGflops"/> (the median) is what it typically does on
/// this machine.</param>
/// <param name="Space">The action space the method searched in (<see cref="ActionSpace"/>).</param>
public sealed record ComparisonRow(string Benchmark, string Method, double BaseGflops, double BestGflops, double SearchGflops,
    int Evaluations, int Measured, double Seconds, ImmutableArray<LoopAction> Actions, string Schedule, ImmutableArray<PeerResult> Peers, bool Verified,
    string? Host = null, string? Machine = null, double BestSampleGflops = double.NaN, string Space = "tile")
{
    /// <summary>Best over base, both re-timed.</summary>
    public double Speedup => BestGflops / BaseGflops;

    /// <summary>OpenBLAS on the same computation; null when it was not measured (missing, no BLAS form, wrong result).</summary>
    public double? OpenBlasGflops => Peer(Comparison.OpenBlas)?.Gflops;

    /// <summary>The fastest library measured on the same computation, timed side by side with the schedules; null when none was.</summary>
    public (string Key, double Gflops)? BestLibrary =>
        Peers.Where(p => p.Gflops is > 0).MaxBy(p => p.Gflops) is { } b ? (b.Key, b.Gflops!.Value) : null;

    /// <summary>Whether <see cref="BaseGflops"/> is an estimate from a slice (a run of the unscheduled nest lasts too long).</summary>
    public bool BaseEstimated { get; init; }

    /// <summary>Whether <see cref="BestGflops"/> is an estimate from a slice.</summary>
    public bool BestEstimated { get; init; }

    /// <summary>The best schedule's GFLOPS over the best library's; null without a library figure.</summary>
    public double? VsBestLibrary => BestLibrary is { } b ? BestGflops / b.Gflops : null;

    /// <summary>The peer with this key, or null.</summary>
    public PeerResult? Peer(string key) => Peers.FirstOrDefault(p => p.Key == key);
}

/// <summary>The peer libraries of one computation, each checked and ready to be timed next to the schedules (or why not).
/// The caller disposes them.</summary>
public delegate IReadOnlyList<PreparedPeer> PeerPreparation(Computation computation);

/// <summary>A method's (or a library's) figures over the benchmarks: geometric means of the re-timed GFLOPS, of the speedup
/// over the unscheduled nest, of the ratio to OpenBLAS (null without OpenBLAS) and of the ratio to the best library of each
/// benchmark (the headline; null without libraries), the mean and largest search time, and (for a method) the geometric
/// mean of its best schedules' fastest samples (<see cref="ComparisonRow.BestSampleGflops"/>). A method's figures count only
/// its verified schedules: <paramref name="Counted"/> of the benchmarks.</summary>
public sealed record MethodSummary(string Method, double GeomeanGflops, double GeomeanSpeedup, double? GeomeanVsOpenBlas,
    double? MeanSeconds, double? MaxSeconds, double? MeanEvaluations, double? GeomeanBestSampleGflops = null, double? GeomeanVsBestLibrary = null,
    int Counted = 0);

/// <summary>What one step of a comparison reports, for a progress bar.</summary>
public sealed record ComparisonProgress(int Done, int Total, string Benchmark, string Method, string What);

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

    /// <summary>Runs every search on every benchmark (benchmark by benchmark) in <paramref name="space"/> (default: the
    /// tile space), then re-times the results and the peers (<paramref name="peers"/>; every library, <see cref="Library.All"/>,
    /// when null).</summary>
    public static Comparison Run(IReadOnlyList<Benchmark> benchmarks, IReadOnlyList<ISearch> searches, SearchBudget budget, int seed,
        Func<IEvaluator> newEvaluator, MeasureOptions finalTiming, Action<ComparisonProgress>? progress = null, PeerPreparation? peers = null,
        ActionSpace? space = null)
    {
        ArgumentOutOfRangeException.ThrowIfZero(searches.Count);
        peers ??= AllLibraries;
        space ??= ActionSpace.Tile;
        var rows = new List<ComparisonRow>();
        int total = benchmarks.Count * (searches.Count + 1), done = 0;
        foreach (var b in benchmarks)
        {
            var results = new List<SearchResult>();
            foreach (var s in searches)
            {
                progress?.Invoke(new(done, total, b.Name, s.Name, "searching"));
                results.Add(Search(s, b.Computation, budget, seed, newEvaluator, space));
                done++;
            }
            progress?.Invoke(new(done, total, b.Name, "", "timing the results and the peers"));
            rows.AddRange(Retime(b, results, finalTiming, peers));
            done++;
        }
        progress?.Invoke(new(done, total, "", "", "done"));
        return new Comparison([.. rows], [.. searches.Select(s => s.Name)], [.. benchmarks.Select(b => b.Name)]);
    }

    /// <summary>Every library (<see cref="Library.All"/>): its GEMM for a matrix product, its convolution for a convolution.</summary>
    public static IReadOnlyList<PreparedPeer> AllLibraries(Computation c) => [.. Library.All.Select(l => l.Prepare(c))];

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
        try { return search.Run(Nest.Initial(c), evaluator, budget, seed, space); }
        finally { (evaluator as IDisposable)?.Dispose(); }
    }

    /// <summary>Compiles and verifies the unscheduled nest and every distinct best schedule, then times them and the peers
    /// side by side on the calling thread, pinned (<see cref="Evaluation.TimeSideBySide"/>).</summary>
    static List<ComparisonRow> Retime(Benchmark b, List<SearchResult> results, MeasureOptions timing, PeerPreparation peers)
    {
        var c = b.Computation;
        var kernels = new Dictionary<string, (Nest Nest, Kernel Kernel, bool Verified)>();
        // a kernel whose run would last longer than a quarter second (a large unscheduled nest) is estimated from a slice
        // apart (KernelTiming.Plan) instead of being timed whole, side by side, for every round; one whose run would
        // pass Evaluation.MaxCheckSeconds is checked on a slice
        var estimates = new Dictionary<string, Measurement>();
        using (var buffers = new KernelTiming.Workspace(c))
        using (ThreadPinning.Pin())
            foreach (var nest in results.Select(r => r.Best).Prepend(Nest.Initial(c)))
            {
                if (kernels.ContainsKey(nest.ScheduleKey)) continue;
                var kernel = Kernel.Compile(nest);
                var (predicted, slice) = KernelTiming.Plan(nest, buffers, MaxRetimeRunSeconds);
                kernels[nest.ScheduleKey] = (nest, kernel, Verifier.VerifyWithin(nest, kernel, predicted, Evaluation.MaxCheckSeconds).Passed);
                if (slice is not null) estimates[nest.ScheduleKey] = KernelTiming.MeasureSlice(slice, kernel, MeasureOptions.Env, buffers);
            }
        var keys = kernels.Keys.Where(k => !estimates.ContainsKey(k)).ToList();
        var (timed, peerResults) = keys.Count > 0
            ? Evaluation.TimeSideBySide([.. keys.Select(k => kernels[k].Kernel)], peers.Invoke, timing)
            : ([], Evaluation.MeasurePeers(c, timing));
        Measurement Timed(Nest nest) => estimates.TryGetValue(nest.ScheduleKey, out var e) ? e : timed[keys.IndexOf(nest.ScheduleKey)];
        double baseGflops = Timed(Nest.Initial(c)).Gflops;
        bool baseEstimated = estimates.ContainsKey(Nest.Initial(c).ScheduleKey);
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

    /// <summary>results.csv: one line per (benchmark, method), RFC 4180 quoting, invariant culture: the method's schedule and
    /// figures, OpenBLAS (numpy's BLAS), the best library of the benchmark and its GFLOPS (timed side by side), the action
    /// space, and the machine that measured the row (<paramref name="machine"/> when the row does not name one); a comparison
    /// run on a cluster adds the host.</summary>
    public string ToCsv(string? machine = null)
    {
        var sb = new StringBuilder("benchmark,method,base_gflops,best_gflops,speedup,evaluations,seconds,actions,openblas_gflops,search_gflops,measured,schedule,best_sample_gflops,verified,best_library,best_library_gflops,ratio_to_best_library,action_space,machine,estimated")
            .Append(Distributed ? ",host\n" : "\n");
        foreach (var r in Rows)
        {
            sb.AppendJoin(',', [Csv(r.Benchmark), Csv(r.Method), F(r.BaseGflops), F(r.BestGflops), F(r.Speedup), I(r.Evaluations), F(r.Seconds),
                Csv(string.Join(",", r.Actions.Select(a => a.Name))), r.OpenBlasGflops is double o ? F(o) : "", F(r.SearchGflops), I(r.Measured),
                Csv(r.Schedule), double.IsFinite(r.BestSampleGflops) ? F(r.BestSampleGflops) : "", r.Verified ? "true" : "false",
                r.BestLibrary?.Key ?? "", r.BestLibrary is { } b ? F(b.Gflops) : "", r.VsBestLibrary is double v ? F(v) : "", r.Space, Csv(r.Machine ?? machine ?? ""),
                Csv(string.Join(",", new[] { r.BaseEstimated ? "base" : "", r.BestEstimated ? "best" : "" }.Where(x => x.Length > 0)))]);
            if (Distributed) sb.Append(',').Append(Csv(r.Host ?? ""));
            sb.Append('\n');
        }
        return sb.ToString();
    }

    static string F(double x) => x.ToString("0.####", CultureInfo.InvariantCulture);
    static string I(int x) => x.ToString(CultureInfo.InvariantCulture);
    internal static string Csv(string s) => s.IndexOfAny([',', '"', '\n', '\r']) < 0 ? s : $"\"{s.Replace("\"", "\"\"")}\"";
}
