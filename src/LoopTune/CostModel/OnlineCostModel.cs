using LoopTune.Ir;

namespace LoopTune.CostModel;

/// <summary>
/// The cost model a search scores candidates with and updates with each measurement, as MetaSchedule updates its
/// XGBoost model between rounds: the machine's <see cref="ScheduleCostModel"/> when there is one (else none: the search's
/// own measurements alone), plus a small ensemble (<see cref="BoostingOptions.Online"/>) refitted after every round to
/// what that model got wrong about the schedules measured in this search. Refitting costs milliseconds: tens of rows,
/// thirty trees of depth 3.
/// </summary>
public sealed class OnlineCostModel(ScheduleCostModel? prior, int lanes)
{
    /// <summary>Fewest measurements before the correction is fitted (below, scores are the prior's, or 0 without one).</summary>
    public const int MinMeasured = 4;

    readonly List<float> x = [], y = [], offsets = [];
    BoostedTrees? correction;

    /// <summary>The machine's model this one starts from, or null.</summary>
    public ScheduleCostModel? Prior => prior;

    /// <summary>Floats per vector the features count with (the prior's when there is one).</summary>
    public int Lanes { get; } = prior?.Lanes ?? lanes;

    /// <summary>Measurements added so far.</summary>
    public int Measured => y.Count;

    /// <summary>Adds a measured schedule (its GFLOPS, above 0) to the rows the next <see cref="Refit"/> learns from.</summary>
    public void Add(Nest nest, double gflops)
    {
        ArgumentNullException.ThrowIfNull(nest);
        if (!(gflops > 0) || !double.IsFinite(gflops)) return;
        var f = ScheduleFeatures.Of(nest, Lanes);
        x.AddRange(f);
        y.Add(ScheduleCostModel.Target(gflops));
        offsets.Add(prior is null ? 0 : prior.Trees.Predict(f));
    }

    /// <summary>Fits the correction again to every measurement added (none below <see cref="MinMeasured"/>).</summary>
    public void Refit()
    {
        if (y.Count < MinMeasured) return;
        correction = BoostedTrees.Fit([.. x], ScheduleFeatures.Count, [.. y], BoostingOptions.Online, [.. offsets]);
    }

    /// <summary>The predicted log2 GFLOPS of each candidate: the prior's prediction plus the correction's.</summary>
    public double[] Score(IReadOnlyList<Nest> candidates) =>
        ScheduleFeatures.Each(candidates, Lanes, f => (prior?.Trees.Predict(f) ?? 0) + (correction?.Predict(f) ?? 0));
}
