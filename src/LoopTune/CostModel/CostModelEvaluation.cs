using System.Diagnostics;

namespace LoopTune.CostModel;

/// <summary>How a held-out evaluation splits the measurements.</summary>
public enum HoldOut
{
    /// <summary>By computation: every measurement of a held-out problem is held out, so the model ranks schedules of
    /// problems it never saw (the goal's figure).</summary>
    Computations,

    /// <summary>By row: held-out schedules of problems the model saw other schedules of.</summary>
    Rows,
}

/// <summary>What a held-out evaluation found.</summary>
/// <param name="Split">"computations" or "rows".</param>
/// <param name="TrainRows">Rows the model was fitted on (after any cap).</param>
/// <param name="TestRows">Rows held out.</param>
/// <param name="TrainComputations">Distinct computations fitted on.</param>
/// <param name="TestComputations">Distinct computations held out rows are of.</param>
/// <param name="Spearman">Spearman's rank correlation of predicted and measured GFLOPS over all held-out rows.</param>
/// <param name="PerComputation">The mean, over held-out computations with at least <see cref="CostModelEvaluation.MinRanked"/>
/// rows, of the rank correlation among that computation's schedules (what a search's ranking needs).</param>
/// <param name="ComputationsRanked">How many computations that mean is over.</param>
/// <param name="TrainSeconds">Seconds the fit took.</param>
public sealed record HeldOutResult(string Split, int TrainRows, int TestRows, int TrainComputations, int TestComputations, double Spearman,
    double PerComputation, int ComputationsRanked, double TrainSeconds);

/// <summary>Held-out evaluations of a cost model, and Spearman's rank correlation.</summary>
public static class CostModelEvaluation
{
    /// <summary>Fewest held-out rows of a computation for its own rank correlation to count.</summary>
    public const int MinRanked = 10;

    /// <summary>Fits a model on the samples outside a held-out share <paramref name="fraction"/> (chosen by a seeded hash of
    /// the computation, or of the row) and ranks the held-out ones. <paramref name="maxTrainRows"/> caps the rows fitted on
    /// (a seeded sample: what a model of a new machine with that many measurements would know).</summary>
    public static HeldOutResult Evaluate(IReadOnlyList<CostSample> samples, HoldOut split, int lanes, double fraction = 0.2, int seed = 0,
        int? maxTrainRows = null, BoostingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (fraction is <= 0 or >= 1) throw new CostModelError($"the held-out share must be between 0 and 1, not {fraction}");
        if (maxTrainRows is < 1) throw new CostModelError($"the training rows must be at least 1, not {maxTrainRows}");
        var train = new List<CostSample>();
        var test = new List<CostSample>();
        foreach (var s in samples)
        {
            string key = split == HoldOut.Computations ? s.Nest.Computation.Text : s.Nest.Computation.Text + "\n" + s.Nest.ScheduleKey;
            (Share(key, seed) < fraction ? test : train).Add(s);
        }
        if (maxTrainRows is int cap && train.Count > cap) train = ScheduleCostModel.Shuffled(train, seed).Take(cap).ToList();
        if (test.Count < 2) throw new CostModelError($"a held-out share of {fraction} leaves {test.Count} row(s) to rank; the store needs more computations");
        var clock = Stopwatch.StartNew();
        var fitted = BoostedTrees.Fit(ScheduleCostModel.FeatureRows([.. train.Select(s => s.Nest)], lanes), ScheduleFeatures.Count,
            [.. train.Select(s => ScheduleCostModel.Target(s.Gflops))], OptionsFor(train.Count, options));
        double seconds = clock.Elapsed.TotalSeconds;
        var x = ScheduleCostModel.FeatureRows([.. test.Select(s => s.Nest)], lanes);
        var predicted = new double[test.Count];
        for (int i = 0; i < test.Count; i++) predicted[i] = fitted.Predict(x.AsSpan(i * ScheduleFeatures.Count, ScheduleFeatures.Count));
        var measured = test.Select(s => s.Gflops).ToArray();
        var groups = test.Select((s, i) => (s.Nest.Computation.Text, i)).GroupBy(p => p.Text).Where(g => g.Count() >= MinRanked).ToList();
        var per = groups.Select(g => Spearman([.. g.Select(p => predicted[p.i])], [.. g.Select(p => measured[p.i])])).Where(double.IsFinite).ToList();
        return new HeldOutResult(split == HoldOut.Computations ? "computations" : "rows", train.Count, test.Count,
            train.Select(s => s.Nest.Computation.Text).Distinct().Count(), test.Select(s => s.Nest.Computation.Text).Distinct().Count(),
            Spearman(predicted, measured), per.Count > 0 ? per.Average() : double.NaN, per.Count, seconds);
    }

    /// <summary>The default options with leaves no larger than a small training set allows (a few hundred rows split into
    /// leaves of 20 would leave a tree a handful of leaves).</summary>
    public static BoostingOptions OptionsFor(int rows, BoostingOptions? options) =>
        options ?? (rows < 5_000 ? new BoostingOptions(MinLeaf: Math.Max(2, rows / 250), Subsample: 0.8) : new BoostingOptions());

    /// <summary>A seeded hash of <paramref name="key"/> as a number in [0, 1) (FNV-1a, then a SplitMix64 finish).</summary>
    public static double Share(string key, int seed)
    {
        ArgumentNullException.ThrowIfNull(key);
        ulong h = 14695981039346656037UL ^ (ulong)seed;
        foreach (char ch in key) h = (h ^ ch) * 1099511628211UL;
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9UL;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebUL;
        h ^= h >> 31;
        return (h >> 11) * (1.0 / (1UL << 53));
    }

    /// <summary>Spearman's rank correlation of <paramref name="a"/> and <paramref name="b"/> (ties get their mean rank); NaN
    /// when either is constant or they have fewer than two values.</summary>
    public static double Spearman(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Count != b.Count) throw new ArgumentException($"{a.Count} values against {b.Count}");
        if (a.Count < 2) return double.NaN;
        return Pearson(Ranks(a), Ranks(b));
    }

    static double[] Ranks(IReadOnlyList<double> v)
    {
        var order = Enumerable.Range(0, v.Count).OrderBy(i => v[i]).ToArray();
        var ranks = new double[v.Count];
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j + 1 < order.Length && v[order[j + 1]] == v[order[i]]) j++;
            for (int k = i; k <= j; k++) ranks[order[k]] = (i + j) / 2.0;
            i = j + 1;
        }
        return ranks;
    }

    static double Pearson(double[] a, double[] b)
    {
        double ma = a.Average(), mb = b.Average(), sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            (double da, double db) = (a[i] - ma, b[i] - mb);
            (sab, saa, sbb) = (sab + da * db, saa + da * da, sbb + db * db);
        }
        return saa == 0 || sbb == 0 ? double.NaN : sab / Math.Sqrt(saa * sbb);
    }
}
