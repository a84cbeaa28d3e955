using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Tests.Env;

/// <summary>The synthetic evaluator the simulated workers use: a fixed function of the schedule, within the peak, higher
/// for a vectorized innermost loop over the output's contiguous variable and for a register tile, as its formula says.</summary>
public sealed class SyntheticEvaluatorTests
{
    static readonly Computation Mm = Computation.Parse("mm 64 64 64");

    [Fact]
    public void Scores_follow_the_formula_and_stay_within_the_peak()
    {
        var e = new SyntheticEvaluator(100);
        var plain = Nest.Parse(Mm, ">m:64 n:64 k:64");
        var vectorized = Nest.Parse(Mm, ">m:64 k:64 n:4 n:16v");
        var tiled = Nest.Parse(Mm, ">m:16 k:64 n:4 m:4u n:16v");
        double p = e.Evaluate(plain).Gflops, v = e.Evaluate(vectorized).Gflops, t = e.Evaluate(tiled).Gflops;
        Assert.True(p < v && v < t, $"plain {p}, vectorized {v}, tiled {t}");
        Assert.All(new[] { p, v, t }, g => Assert.InRange(g, 0.1, 100));
        Assert.Equal(e.Evaluate(tiled), new SyntheticEvaluator(100).Evaluate(tiled));   // no state
        Assert.Equal(Mm.Flops / (t * 1e9), e.Evaluate(tiled).Seconds, 12);
    }
}
