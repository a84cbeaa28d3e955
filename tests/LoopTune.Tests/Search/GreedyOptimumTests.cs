using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Search;

using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Search;

/// <summary>On a space small enough to enumerate, greedy1 climbs to the optimum that exhaustive enumeration finds.</summary>
public sealed class GreedyOptimumTests
{
    /// <summary>Rewards more loops (2 per split), a vectorized innermost loop (1.5) and unrolled loops (1 each). Each can be
    /// had one move at a time, and the larger rewards come first, so no greedy step blocks a later one (an annotated loop
    /// cannot be split): the landscape has one peak, which greedy must reach.</summary>
    static double Score(Nest n) =>
        1 + 2 * n.Count + n.Loops.Count(l => l.IsUnrolled) + (n.Loops[^1].IsVectorized ? 1.5 : 0);

    /// <summary>Every schedule reachable from <paramref name="start"/> by moves.</summary>
    static Dictionary<string, Nest> Enumerate(Nest start)
    {
        var seen = new Dictionary<string, Nest> { [start.ScheduleKey] = start };
        var queue = new Queue<Nest>([start]);
        while (queue.TryDequeue(out var nest))
            foreach (var m in ActionSpace.Loop.Expand(nest))
                if (seen.TryAdd(m.Result.ScheduleKey, m.Result)) queue.Enqueue(m.Result);
        return seen;
    }

    [Theory]
    [InlineData("mm 4 2 2")]
    [InlineData("mm 4 4 2")]
    [InlineData("O[i] += A[i,k] * B[k] i=4 k=4")]
    public void Greedy1FindsTheExhaustiveOptimum(string spec)
    {
        var start = Nest.Initial(Computation.Parse(spec));
        var all = Enumerate(start);
        Assert.InRange(all.Count, 10, 20000);
        double optimum = all.Values.Max(Score);
        var r = Searches.Get("greedy1").Run(start, new FakeEvaluator(Score), SearchBudget.Seconds(60), 0, ActionSpace.Loop);
        Assert.Equal(optimum, r.BestGflops);
        Assert.Equal(optimum, Score(Transforms.ApplyAll(start, r.Actions)));
        Assert.True(r.Evaluations < all.Count, $"greedy evaluated {r.Evaluations} of {all.Count} schedules");
    }

    [Fact]
    public void BeamBfsRanksByGflopsNotByName()
    {
        // the fastest single move is "vectorize" on k (last in the action table, last by name among the useful ones)
        var start = Nest.Initial(Computation.Matmul(8, 8, 8));
        double Score(Nest n) => n.Loops[^1].IsVectorized ? 50 : 1 + n.Count;
        var r = Searches.Get("beam_bfs").Run(start, new FakeEvaluator(Score), SearchBudget.Seconds(60, 40), seed: 0);
        Assert.Equal(50, r.BestGflops);
    }
}
