using System.Collections.Immutable;
using System.Text.Json.Serialization;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Search;

namespace LoopTune.Compare;

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
/// <param name="Peers">The peer libraries on the same computation (OpenBLAS, BLIS and oneDNN, or the
/// <see cref="PeerPreparation"/> given), timed the same way; the same for every method of a benchmark.</param>
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
    [JsonIgnore]
    public double Speedup => BestGflops / BaseGflops;

    /// <summary>OpenBLAS on the same computation; null when it was not measured (missing, no BLAS form, wrong result).</summary>
    [JsonIgnore]
    public double? OpenBlasGflops => Peer(Comparison.OpenBlas)?.Gflops;

    /// <summary>The fastest library measured on the same computation, timed side by side with the schedules; null when none was.</summary>
    [JsonIgnore]
    public (string Key, double Gflops)? BestLibrary =>
        Peers.Where(p => p.Gflops is > 0).MaxBy(p => p.Gflops) is { } b ? (b.Key, b.Gflops!.Value) : null;

    /// <summary>Whether <see cref="BaseGflops"/> is an estimate from a slice (a run of the unscheduled nest lasts too long).</summary>
    public bool BaseEstimated { get; init; }

    /// <summary>Whether <see cref="BestGflops"/> is an estimate from a slice.</summary>
    public bool BestEstimated { get; init; }

    /// <summary>The best schedule's GFLOPS over the best library's; null without a library figure.</summary>
    [JsonIgnore]
    public double? VsBestLibrary => BestLibrary is { } b ? BestGflops / b.Gflops : null;

    /// <summary>The peer with this key, or null.</summary>
    public PeerResult? Peer(string key) => Peers.FirstOrDefault(p => p.Key == key);
}


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
