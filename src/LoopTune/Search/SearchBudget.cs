using System.Globalization;

namespace LoopTune.Search;

/// <summary>How much a search may spend: wall-clock time, and optionally a number of evaluations (calls to the
/// evaluator; see <see cref="SearchResult.Evaluations"/>). The search stops before the first evaluation that would
/// pass either limit, so it overruns the clock by at most one evaluation.</summary>
/// <param name="Time">The wall-clock limit; must be positive.</param>
/// <param name="MaxEvaluations">The most evaluations, or null for no limit; must be at least 1.</param>
public sealed record SearchBudget(TimeSpan Time, int? MaxEvaluations = null)
{
    /// <summary>A budget of <paramref name="seconds"/> seconds.</summary>
    public static SearchBudget Seconds(double seconds, int? maxEvaluations = null) => new(TimeSpan.FromSeconds(seconds), maxEvaluations);

    /// <summary>Throws <see cref="SearchError"/> unless the limits make sense.</summary>
    public SearchBudget Validate()
    {
        if (Time <= TimeSpan.Zero) throw new SearchError($"the time budget must be positive, not {Time.TotalSeconds} s");
        if (MaxEvaluations is < 1) throw new SearchError($"the evaluation budget must be at least 1, not {MaxEvaluations}");
        return this;
    }

    /// <summary>
    /// Reads a search's time budget (<see cref="Duration.Parse"/>: <c>500ms</c>, <c>10s</c>, <c>1.5s</c>, <c>2m</c>, <c>1h</c>).
    /// Anything else is a <see cref="SearchError"/> that shows the accepted forms.
    /// </summary>
    public static SearchBudget Parse(string? text, int? maxEvaluations = null)
    {
        TimeSpan time;
        try { time = Duration.Parse(text, "budget"); }
        catch (LoopTuneException e) { throw new SearchError(e.Message); }
        return new SearchBudget(time, maxEvaluations).Validate();
    }

    /// <summary>The budget as <c>Parse</c> reads it, plus the evaluation limit if any.</summary>
    public override string ToString() =>
        (Time.TotalSeconds < 1 ? $"{Time.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture)}ms"
                               : $"{Time.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)}s")
        + (MaxEvaluations is int n ? $", at most {n} evaluations" : "");
}

/// <summary>Bad input to a search: an unknown method, a budget that cannot be read, a bad hyperparameter.</summary>
public sealed class SearchError(string message) : LoopTuneException(message);
