using System.Collections.Immutable;
using LoopTune.Datasets;
using LoopTune.Measure;

namespace LoopTune.Compare;

/// <summary>What a column of <c>compare-libraries</c> is.</summary>
public enum EntryKind
{
    /// <summary>The unscheduled nest.</summary>
    Unscheduled,
    /// <summary>A search's or policy's best schedule.</summary>
    Method,
    /// <summary>A peer library (OpenBLAS, BLIS, oneDNN).</summary>
    Library,
    /// <summary>On each benchmark, the fastest library measured there.</summary>
    BestLibrary,
}

/// <summary>One entry on one benchmark: its re-timed GFLOPS, or null with the reason in <paramref name="Note"/>.</summary>
/// <param name="Status">"ok"; for a library "missing", "wrong result" (never timed), "no peer" or "failed"; for a method
/// "failed verification" (its GFLOPS are still given).</param>
/// <param name="VsBestLibrary">GFLOPS over the best library's on this benchmark; null without either.</param>
/// <param name="Note">A method's schedule; a library's call (<see cref="PeerResult.Via"/>) or problem.</param>
/// <param name="Seconds">A method's search time.</param>
/// <param name="Evaluations">A method's evaluator calls.</param>
/// <param name="Space">A method's action space.</param>
public sealed record LibraryEntry(string Benchmark, string Spec, EntryKind Kind, string Name, double? Gflops, double? VsBestLibrary,
    string Status, string Note, double? Seconds, int? Evaluations, string? Space = null);

/// <summary>An entry over all benchmarks: the geometric mean of its GFLOPS over the <paramref name="Measured"/> benchmarks
/// where it has a figure, and of its ratio to the best library over those where both have one.</summary>
public sealed record EntrySummary(string Name, EntryKind Kind, double? GeomeanGflops, double? GeomeanVsBestLibrary, int Measured, double? MeanSeconds);

/// <summary>
/// <c>compare-libraries</c>' figures, built from a <see cref="Comparison"/> whose peers are the <see cref="LibraryPeers"/> columns:
/// per benchmark the unscheduled nest, each method and each library, the best library (the fastest one measured there)
/// and everyone's ratio to it; summaries over the benchmarks; results.csv.
/// </summary>
public sealed class LibraryComparison
{
    /// <summary>The name of the best-library entry.</summary>
    public const string BestLibrary = "best library";

    /// <summary>Builds the entries of <paramref name="comparison"/>, run on <paramref name="benchmarks"/> (in its order) with
    /// the peers <paramref name="libraries"/> (their keys, in column order).</summary>
    public LibraryComparison(Comparison comparison, IReadOnlyList<Benchmark> benchmarks, IReadOnlyList<string> libraries)
    {
        ArgumentNullException.ThrowIfNull(comparison);
        ArgumentNullException.ThrowIfNull(benchmarks);
        Comparison = comparison;
        Libraries = [.. libraries];
        var specs = benchmarks.ToDictionary(b => b.Name, b => b.Computation.ToString());
        Entries = [.. comparison.Benchmarks.SelectMany(b => Build(b, specs[b]))];
        Summaries = [.. Names.Select(Summarise)];
    }

    public Comparison Comparison { get; }

    /// <summary>The library columns, in order.</summary>
    public ImmutableArray<string> Libraries { get; }

    /// <summary>Per benchmark (in order): the unscheduled nest, each method, each library, then the best library.</summary>
    public ImmutableArray<LibraryEntry> Entries { get; }

    /// <summary>One per entry name, in the order of <see cref="Entries"/>.</summary>
    public ImmutableArray<EntrySummary> Summaries { get; }

    /// <summary>The unscheduled nest, the methods, the libraries and the best library, in column order.</summary>
    public IEnumerable<(string Name, EntryKind Kind)> Names =>
    [
        (Comparison.Unscheduled, EntryKind.Unscheduled), .. Comparison.Methods.Select(m => (m, EntryKind.Method)),
        .. Libraries.Select(l => (l, EntryKind.Library)), (BestLibrary, EntryKind.BestLibrary),
    ];

    /// <summary>The entry called <paramref name="name"/> on <paramref name="benchmark"/>.</summary>
    public LibraryEntry Entry(string benchmark, string name) => Entries.First(e => e.Benchmark == benchmark && e.Name == name);

    /// <summary>The summary of <paramref name="name"/>.</summary>
    public EntrySummary Summary(string name) => Summaries.First(s => s.Name == name);

    /// <summary>The fastest library on <paramref name="benchmark"/> and its GFLOPS; null when no library was measured there.</summary>
    public (string Key, double Gflops)? Best(string benchmark) => Best(Comparison.Rows.First(r => r.Benchmark == benchmark));

    (string Key, double Gflops)? Best(ComparisonRow row) =>
        Libraries.Select(l => row.Peer(l)).Where(p => p?.Gflops is not null).MaxBy(p => p!.Gflops) is { } best ? (best.Key, best.Gflops!.Value) : null;

    IEnumerable<LibraryEntry> Build(string benchmark, string spec)
    {
        var rows = Comparison.Rows.Where(r => r.Benchmark == benchmark).ToList();
        var best = Best(rows[0]);
        double? Vs(double? g) => g is double x && best is { } b ? x / b.Gflops : null;
        LibraryEntry Entry(EntryKind kind, string name, double? gflops, string status, string note, double? seconds = null, int? evaluations = null, string? space = null) =>
            new(benchmark, spec, kind, name, gflops, Vs(gflops), status, note, seconds, evaluations, space);

        yield return Entry(EntryKind.Unscheduled, Comparison.Unscheduled, rows[0].BaseGflops, "ok", "");
        foreach (var r in rows)
            yield return Entry(EntryKind.Method, r.Method, r.BestGflops, r.Verified ? "ok" : "failed verification", r.Schedule, r.Seconds, r.Evaluations, r.Space);
        foreach (var key in Libraries)
        {
            var p = rows[0].Peer(key) ?? new PeerResult(key, null, "not measured", PeerStatus.NotMeasured);
            yield return Entry(EntryKind.Library, key, p.Gflops, Status(p.Status), p.Gflops is null ? p.Problem ?? "" : p.Via ?? "");
        }
        yield return Entry(EntryKind.BestLibrary, BestLibrary, best?.Gflops, best is null ? "none measured" : "ok", best?.Key ?? "");
    }

    /// <summary>A peer's status as the CSV and the summary write it.</summary>
    public static string Status(PeerStatus s) => s switch
    {
        PeerStatus.Measured => "ok",
        PeerStatus.Missing => "missing",
        PeerStatus.WrongResult => "wrong result",
        PeerStatus.NoPeer => "no peer",
        PeerStatus.Failed => "failed",
        _ => "not measured",
    };

    EntrySummary Summarise((string Name, EntryKind Kind) e)
    {
        // a method's figures count its verified schedules only
        var mine = Entries.Where(x => x.Name == e.Name && x.Status != "failed verification").ToList();
        var measured = mine.Where(x => x.Gflops is not null).ToList();
        var ratios = mine.Where(x => x.VsBestLibrary is not null).ToList();
        return new EntrySummary(e.Name, e.Kind, measured.Count == 0 ? null : Comparison.Geomean(measured.Select(x => x.Gflops!.Value)),
            ratios.Count == 0 ? null : Comparison.Geomean(ratios.Select(x => x.VsBestLibrary!.Value)), measured.Count,
            e.Kind == EntryKind.Method && mine.Count > 0 ? mine.Average(x => x.Seconds) : null);
    }

    /// <summary>The CSV's name of a kind: unscheduled, method, library, best_library.</summary>
    public static string KindName(EntryKind k) => k switch
    {
        EntryKind.Unscheduled => "unscheduled",
        EntryKind.Method => "method",
        EntryKind.Library => "library",
        _ => "best_library",
    };
}
