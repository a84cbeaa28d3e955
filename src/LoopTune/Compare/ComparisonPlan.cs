using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Measure;
using LoopTune.Search;

namespace LoopTune.Compare;

/// <summary>What a comparison runs, on one machine (<see cref="Comparison.Run"/>) or over a cluster's workers (which rebuild
/// each method by name with <see cref="ComparisonMethods.Parse"/>).</summary>
public sealed record ComparisonPlan
{
    /// <summary>The benchmarks, in the report's order.</summary>
    public required IReadOnlyList<Benchmark> Benchmarks { get; init; }

    /// <summary>The methods (<see cref="ComparisonMethods.Parse"/>), in the report's order.</summary>
    public required IReadOnlyList<ISearch> Searches { get; init; }

    /// <summary>Each search's budget.</summary>
    public required SearchBudget Budget { get; init; }

    /// <summary>The seed of every search.</summary>
    public int Seed { get; init; }

    /// <summary>The policy of the policy methods, as <c>--policy</c> names it (a worker loads it again).</summary>
    public string Policy { get; init; } = "default";

    /// <summary>Re-time the results with <see cref="MeasureOptions.Quick"/> instead of <see cref="MeasureOptions.Default"/>.</summary>
    public bool Quick { get; init; }

    /// <summary>A measurement store shared by all searches (a full path), or null for a new, empty store per search.</summary>
    public string? SharedDb { get; init; }

    /// <summary>The action space of the searches.</summary>
    public ActionSpace Space { get; init; } = ActionSpace.Tile;

    /// <summary>The re-timing's options.</summary>
    public MeasureOptions Timing => Quick ? MeasureOptions.Quick : MeasureOptions.Default;

    /// <summary>The methods' names.</summary>
    public IReadOnlyList<string> Methods => [.. Searches.Select(s => s.Name)];
}
