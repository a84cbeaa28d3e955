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
public sealed record ComparisonRow(string Benchmark, string Method, double BaseGflops, double BestGflops, double SearchGflops,
    int Evaluations, int Measured, double Seconds, ImmutableArray<LoopAction> Actions, string Schedule, ImmutableArray<PeerResult> Peers, bool Verified,
    string? Host = null, string? Machine = null, double BestSampleGflops = double.NaN)
{
    /// <summary>Best over base, both re-timed.</summary>
    public double Speedup => BestGflops / BaseGflops;

    /// <summary>OpenBLAS on the same computation; null when it was not measured (missing, no BLAS form, wrong result).</summary>
    public double? OpenBlasGflops => Peer(Comparison.OpenBlas)?.Gflops;

    /// <summary>The peer with this key, or null.</summary>
    public PeerResult? Peer(string key) => Peers.FirstOrDefault(p => p.Key == key);
}

/// <summary>The peer libraries of one computation, each checked and ready to be timed next to the schedules (or why not).
/// The caller disposes them.</summary>
public delegate IReadOnlyList<PreparedPeer> PeerPreparation(Computation computation);

/// <summary>A method's figures over all benchmarks: geometric means of the re-timed GFLOPS, of the speedup over the
/// unscheduled nest and of the ratio to OpenBLAS (null without OpenBLAS), the mean and largest search time, and (for a
/// method) the geometric mean of its best schedules' fastest samples (<see cref="ComparisonRow.BestSampleGflops"/>).</summary>
public sealed record MethodSummary(string Method, double GeomeanGflops, double GeomeanSpeedup, double? GeomeanVsOpenBlas,
    double? MeanSeconds, double? MaxSeconds, double? MeanEvaluations, double? GeomeanBestSampleGflops = null);

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
    /// <summary>The name of the unscheduled nest's row in the summaries.</summary>
    public const string Unscheduled = "unscheduled", OpenBlas = "openblas";

    Comparison(ImmutableArray<ComparisonRow> rows, ImmutableArray<string> methods, ImmutableArray<string> benchmarks)
    {
        (Rows, Methods, Benchmarks) = (rows, methods, benchmarks);
        Summaries = [Summarise(Unscheduled, r => r.BaseGflops, null), .. methods.Select(m => Summarise(m, r => r.BestGflops, m)), .. OpenBlasSummary()];
    }

    /// <summary>One row per (benchmark, method), benchmarks in order, methods in the order given.</summary>
    public ImmutableArray<ComparisonRow> Rows { get; }
    public ImmutableArray<string> Methods { get; }
    public ImmutableArray<string> Benchmarks { get; }

    /// <summary>The unscheduled nest, each method, then OpenBLAS when it was measured.</summary>
    public ImmutableArray<MethodSummary> Summaries { get; }

    /// <summary>Runs every search on every benchmark (benchmark by benchmark), then re-times the results and the peers
    /// (<paramref name="peers"/>; OpenBLAS alone when null).</summary>
    public static Comparison Run(IReadOnlyList<Benchmark> benchmarks, IReadOnlyList<ISearch> searches, SearchBudget budget, int seed,
        Func<IEvaluator> newEvaluator, MeasureOptions finalTiming, Action<ComparisonProgress>? progress = null, PeerPreparation? peers = null)
    {
        ArgumentOutOfRangeException.ThrowIfZero(searches.Count);
        peers ??= OpenBlasOnly;
        Kernel.WarmUp();
        var rows = new List<ComparisonRow>();
        int total = benchmarks.Count * (searches.Count + 1), done = 0;
        foreach (var b in benchmarks)
        {
            var results = new List<SearchResult>();
            foreach (var s in searches)
            {
                progress?.Invoke(new(done, total, b.Name, s.Name, "searching"));
                results.Add(Search(s, b.Computation, budget, seed, newEvaluator));
                done++;
            }
            progress?.Invoke(new(done, total, b.Name, "", "timing the results and the peers"));
            rows.AddRange(Retime(b, results, finalTiming, peers));
            done++;
        }
        progress?.Invoke(new(done, total, "", "", "done"));
        return new Comparison([.. rows], [.. searches.Select(s => s.Name)], [.. benchmarks.Select(b => b.Name)]);
    }

    /// <summary>OpenBLAS alone: compare-searches' peer.</summary>
    static IReadOnlyList<PreparedPeer> OpenBlasOnly(Computation c) =>
        Peers.Get(OpenBlas) is { } blas ? [Evaluation.PreparePeer(blas, c)] : [];

    /// <summary>One (benchmark, method) pair alone, the unit of a comparison spread over workers: the search, then its best
    /// schedule, the unscheduled nest and the peers (OpenBLAS when null) re-timed with <paramref name="finalTiming"/> on the
    /// calling (pinned) thread.</summary>
    public static ComparisonRow RunPair(Benchmark benchmark, ISearch search, SearchBudget budget, int seed, Func<IEvaluator> newEvaluator, MeasureOptions finalTiming,
        PeerPreparation? peers = null)
    {
        Kernel.WarmUp();
        return Retime(benchmark, [Search(search, benchmark.Computation, budget, seed, newEvaluator)], finalTiming, peers ?? OpenBlasOnly).Single();
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

    static SearchResult Search(ISearch search, Computation c, SearchBudget budget, int seed, Func<IEvaluator> newEvaluator)
    {
        var evaluator = newEvaluator();
        try { return search.Run(Nest.Initial(c), evaluator, budget, seed); }
        finally { (evaluator as IDisposable)?.Dispose(); }
    }

    /// <summary>Compiles and verifies the unscheduled nest and every distinct best schedule, then times them and the peers
    /// side by side on the calling thread, pinned (<see cref="Evaluation.TimeSideBySide"/>).</summary>
    static List<ComparisonRow> Retime(Benchmark b, List<SearchResult> results, MeasureOptions timing, PeerPreparation peers)
    {
        var c = b.Computation;
        var kernels = new Dictionary<string, (Kernel Kernel, bool Verified)>();
        foreach (var nest in results.Select(r => r.Best).Prepend(Nest.Initial(c)))
            if (!kernels.ContainsKey(nest.ScheduleKey))
            {
                var kernel = Kernel.Compile(nest);
                kernels[nest.ScheduleKey] = (kernel, Verifier.Verify(kernel).Passed);
            }
        var keys = kernels.Keys.ToList();
        var (timed, peerResults) = Evaluation.TimeSideBySide([.. keys.Select(k => kernels[k].Kernel)], peers.Invoke, timing);
        Measurement Timed(Nest nest) => timed[keys.IndexOf(nest.ScheduleKey)];
        double baseGflops = Timed(Nest.Initial(c)).Gflops;
        return [.. results.Select(r => new ComparisonRow(b.Name, r.Method, baseGflops, Timed(r.Best).Gflops, r.BestGflops, r.Evaluations, r.Measured, r.Seconds,
            r.Actions, r.Best.ScheduleKey, [.. peerResults], kernels[r.Best.ScheduleKey].Verified, BestSampleGflops: Timed(r.Best).BestGflops))];
    }

    MethodSummary Summarise(string method, Func<ComparisonRow, double> gflops, string? searched)
    {
        var rows = PerBenchmark(method == Unscheduled ? Methods.FirstOrDefault() : method).ToList();
        var withBlas = rows.Where(r => r.OpenBlasGflops is > 0).ToList();
        return new MethodSummary(method,
            Geomean(rows.Select(gflops)),
            Geomean(rows.Select(r => gflops(r) / r.BaseGflops)),
            withBlas.Count == 0 ? null : Geomean(withBlas.Select(r => gflops(r) / r.OpenBlasGflops!.Value)),
            searched is null ? null : rows.Average(r => r.Seconds),
            searched is null ? null : rows.Max(r => r.Seconds),
            searched is null ? null : rows.Average(r => r.Evaluations),
            searched is null || rows.Any(r => !double.IsFinite(r.BestSampleGflops)) ? null : Geomean(rows.Select(r => r.BestSampleGflops)));
    }

    IEnumerable<MethodSummary> OpenBlasSummary()
    {
        var rows = PerBenchmark(Methods.FirstOrDefault()).Where(r => r.OpenBlasGflops is > 0).ToList();
        if (rows.Count == 0) yield break;
        yield return new MethodSummary(OpenBlas, Geomean(rows.Select(r => r.OpenBlasGflops!.Value)),
            Geomean(rows.Select(r => r.OpenBlasGflops!.Value / r.BaseGflops)), 1.0, null, null, null);
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

    /// <summary>Whether the rows were measured on a cluster (each names its host).</summary>
    public bool Distributed => Rows.Any(r => r.Host is not null);

    /// <summary>results.csv: one line per (benchmark, method), RFC 4180 quoting, invariant culture; a comparison run on a
    /// cluster adds the host and machine type that measured each row.</summary>
    public string ToCsv()
    {
        var sb = new StringBuilder("benchmark,method,base_gflops,best_gflops,speedup,evaluations,seconds,actions,openblas_gflops,search_gflops,measured,schedule,best_sample_gflops,verified")
            .Append(Distributed ? ",host,machine\n" : "\n");
        foreach (var r in Rows)
        {
            sb.AppendJoin(',', [Csv(r.Benchmark), Csv(r.Method), F(r.BaseGflops), F(r.BestGflops), F(r.Speedup), I(r.Evaluations), F(r.Seconds),
                Csv(string.Join(",", r.Actions.Select(a => a.Name))), r.OpenBlasGflops is double o ? F(o) : "", F(r.SearchGflops), I(r.Measured),
                Csv(r.Schedule), double.IsFinite(r.BestSampleGflops) ? F(r.BestSampleGflops) : "", r.Verified ? "true" : "false"]);
            if (Distributed) sb.Append(',').Append(Csv(r.Host ?? "")).Append(',').Append(Csv(r.Machine ?? ""));
            sb.Append('\n');
        }
        return sb.ToString();
    }

    static string F(double x) => x.ToString("0.####", CultureInfo.InvariantCulture);
    static string I(int x) => x.ToString(CultureInfo.InvariantCulture);
    internal static string Csv(string s) => s.IndexOfAny([',', '"', '\n', '\r']) < 0 ? s : $"\"{s.Replace("\"", "\"\"")}\"";
}
