using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace LoopTune.Compare.Exporters;

/// <summary><c>compare-searches --json</c>: where the report is, what the searches were, each method's summary.</summary>
/// <param name="Files">The report's files, in the folder <paramref name="Out"/>.</param>
/// <param name="Machine">The machine's description (<see cref="Measure.MachineInfo.ToJson"/>); null on a cluster.</param>
public sealed record SearchComparisonJson(string Out, IReadOnlyList<string> Files, string ActionSpace, IReadOnlyList<string> Benchmarks,
    IReadOnlyList<MethodJson> Methods, string BestMethod, bool Verified, JsonObject? Machine)
{
    /// <summary>On a cluster: which machine measured how many rows (absent on one machine).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<MachineRowsJson>? Machines { get; init; }

    /// <summary>The threads every schedule and library ran on (<c>--threads</c>).</summary>
    public int Threads { get; init; } = 1;
}

/// <summary>A <see cref="MethodSummary"/>.</summary>
public sealed record MethodJson(string Method, double? GeomeanVsBestLibrary, double GeomeanGflops, double GeomeanSpeedup,
    [property: JsonPropertyName("geomean_vs_openblas")] double? GeomeanVsOpenBlas, double? MeanSeconds, double? MaxSeconds, double? MeanEvaluations,
    double? GeomeanBestSampleGflops, int BenchmarksCounted);

/// <summary>The rows one machine of a cluster measured.</summary>
public sealed record MachineRowsJson(string? Host, string? Machine, int Rows);

/// <summary><c>compare-libraries --json</c>: where the report is, the libraries, each entry's summary, the flagged libraries.</summary>
public sealed record LibraryComparisonJson(JsonObject? Machine, string ActionSpace, string Out, IReadOnlyList<string> Files, IReadOnlyList<string> Benchmarks,
    IReadOnlyList<string> Libraries, IReadOnlyList<EntryJson> Entries, IReadOnlyList<FlaggedJson> Flagged, bool Verified, string Tvm)
{
    /// <summary>The threads every schedule and library ran on (<c>--threads</c>).</summary>
    public int Threads { get; init; } = 1;
}

/// <summary>An <see cref="EntrySummary"/>; <paramref name="Kind"/> as <see cref="LibraryComparison.KindName"/> spells it.</summary>
public sealed record EntryJson(string Name, string Kind, double? GeomeanGflops, double? GeomeanVsBestLibrary, int Measured, double? MeanSeconds);

/// <summary>A library with no figure on a benchmark, and why.</summary>
public sealed record FlaggedJson(string Benchmark, string Library, string Status, string Problem);

/// <summary>The comparisons' JSON: typed records (above) built from the typed summaries, serialised with source-generated
/// metadata, snake_case names, indented.</summary>
public static class ComparisonJson
{
    /// <summary>What the JSON says of TVM, which cannot run here.</summary>
    public const string Tvm = "not measured: no TVM on these machines; summary.md cites the original paper's ratios";

    static readonly ComparisonJsonContext Context = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    /// <summary>compare-searches' record of <paramref name="c"/>, reported in <paramref name="folder"/> as <paramref name="files"/>.</summary>
    public static SearchComparisonJson Of(Comparison c, string folder, IReadOnlyList<string> files, ComparisonSetup setup)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(setup);
        return new(folder, files, setup.Space, c.Benchmarks,
            [.. c.Summaries.Select(s => new MethodJson(s.Method, s.GeomeanVsBestLibrary, s.GeomeanGflops, s.GeomeanSpeedup, s.GeomeanVsOpenBlas, s.MeanSeconds,
                s.MaxSeconds, s.MeanEvaluations, s.GeomeanBestSampleGflops, s.Counted))],
            c.BestMethod.Method, c.Rows.All(r => r.Verified), setup.Info?.ToJson())
        {
            Machines = c.Distributed ? [.. c.Rows.GroupBy(r => (r.Host, r.Machine)).Select(g => new MachineRowsJson(g.Key.Host, g.Key.Machine, g.Count()))] : null,
            Threads = setup.Threads,
        };
    }

    /// <summary>compare-libraries' record of <paramref name="lc"/>; <paramref name="libraries"/> one line per library.</summary>
    public static LibraryComparisonJson Of(LibraryComparison lc, string folder, IReadOnlyList<string> files, IReadOnlyList<string> libraries, ComparisonSetup setup)
    {
        ArgumentNullException.ThrowIfNull(lc);
        ArgumentNullException.ThrowIfNull(setup);
        return new(setup.Info?.ToJson(), setup.Space, folder, files, lc.Comparison.Benchmarks, libraries,
            [.. lc.Summaries.Select(s => new EntryJson(s.Name, LibraryComparison.KindName(s.Kind), s.GeomeanGflops, s.GeomeanVsBestLibrary, s.Measured, s.MeanSeconds))],
            [.. lc.Entries.Where(e => e.Kind == EntryKind.Library && e.Gflops is null).Select(e => new FlaggedJson(e.Benchmark, e.Name, e.Status, e.Note))],
            lc.Comparison.Rows.All(r => r.Verified), Tvm)
        { Threads = setup.Threads };
    }

    public static string Serialize(SearchComparisonJson report) => JsonSerializer.Serialize(report, Context.SearchComparisonJson);

    public static string Serialize(LibraryComparisonJson report) => JsonSerializer.Serialize(report, Context.LibraryComparisonJson);
}

[JsonSerializable(typeof(SearchComparisonJson))]
[JsonSerializable(typeof(LibraryComparisonJson))]
sealed partial class ComparisonJsonContext : JsonSerializerContext;
