using LoopTune.Compare;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Search;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>The comparisons' <c>tune</c> method: the policy-guided search with the machine's own tiles beside it, the
/// answer the fastest of them by the side-by-side timing.</summary>
public sealed class TuneMethodTests
{
    static readonly Computation C = Computation.Matmul(256, 256, 256);

    static ISearch Tune() => ComparisonMethods.Parse("tune", "default").Single();

    [Fact]
    public void The_comparisons_name_it_beside_the_search_alone()
    {
        Assert.Equal(["tune", "policy_search"], ComparisonMethods.Parse("tune,policy_search", "default").Select(s => s.Name));
        Assert.IsType<TuneMethod>(Tune());
    }

    [Fact]
    public void A_tile_that_is_fastest_side_by_side_is_the_answer_without_actions()
    {
        var tile = CacheBlockedTiles.For(C, Machine.Current)[0];
        double Truth(Nest n) => n.ScheduleKey == tile.ScheduleKey ? 1000 : FakeEvaluator.Hashed(n);
        var evaluator = new ConfirmingFakeEvaluator(Truth, Truth);
        var r = Tune().Run(Nest.Initial(C), evaluator, SearchBudget.Seconds(2, 60), 0, ActionSpace.Tile);
        Assert.Equal(("tune", tile.ScheduleKey, 1000.0), (r.Method, r.Best.ScheduleKey, r.BestGflops));
        Assert.Empty(r.Actions);
        Assert.Contains(evaluator.Asked, asked => asked.Any(n => n.ScheduleKey == tile.ScheduleKey)); // timed side by side, not taken on one figure
    }

    [Fact]
    public void The_searchs_best_is_the_answer_when_the_tiles_are_slower()
    {
        var tiles = CacheBlockedTiles.For(C, Machine.Current).Select(t => t.ScheduleKey).ToHashSet();
        double Quick(Nest n) => tiles.Contains(n.ScheduleKey) ? 0.5 : FakeEvaluator.Hashed(n);
        var r = Tune().Run(Nest.Initial(C), new ConfirmingFakeEvaluator(Quick, Quick), SearchBudget.Seconds(2, 60), 0, ActionSpace.Tile);
        Assert.DoesNotContain(r.Best.ScheduleKey, tiles);
        Assert.NotEmpty(r.Actions);
        Assert.Equal(FakeEvaluator.Hashed(r.Best), r.BestGflops);
    }
}
