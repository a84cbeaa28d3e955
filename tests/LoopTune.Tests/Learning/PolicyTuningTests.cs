using LoopTune.Ir;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Learning;

/// <summary><see cref="PolicyTuning.Tune"/> with rivals (a hot record when tuning cold, and always the machine's own tiles,
/// <see cref="CacheBlockedTiles"/>): the answer is the search's best or a rival, timed side by side in the tuning's context,
/// and verified; a rival of another computation is never one.</summary>
public sealed class PolicyTuningTests
{
    static readonly TimingContext ColdRight = TimingContext.ColdOperand(Operand.Right);

    static (LoopTune.Ir.Nest Best, KernelReport Final) Tune(Computation c, params LoopTune.Ir.Nest[] rivals)
    {
        var pol = Policy.Load(Policy.Choose("default", c));
        var search = PolicyTuning.Method(pol, "0", 1, out var limit);
        var (result, final, _, _) = PolicyTuning.Tune(search, pol, c, limit, MeasureOptions.Quick, null, 1, ColdRight, rivals);
        return (result.Best, final);
    }

    /// <summary>The machine's own rivals of <paramref name="c"/>, which every tune times too.</summary>
    static IEnumerable<string> Tiles(Computation c) => CacheBlockedTiles.For(c, Machine.Current).Select(t => t.ScheduleKey);

    [Fact]
    public void The_answer_is_the_searchs_best_or_the_rival_timed_beside_it_and_verified()
    {
        var c = Computation.Matmul(48, 32, 40);
        var rival = LoopTune.Ir.Nest.Parse(c, ">m:48 k:40 n:2 n:16v");
        var (best, final) = Tune(c, rival);
        Assert.Contains(final.Nest.ScheduleKey, Tiles(c).Append(best.ScheduleKey).Append(rival.ScheduleKey));
        Assert.True(final.Verification.Passed, final.Verification.Problem);
    }

    [Fact]
    public void A_rival_of_another_computation_is_ignored()
    {
        var c = Computation.Matmul(48, 32, 40);
        var (best, final) = Tune(c, LoopTune.Ir.Nest.Initial(Computation.Matmul(8, 8, 8)));
        Assert.Contains(final.Nest.ScheduleKey, Tiles(c).Append(best.ScheduleKey));
        Assert.True(final.Verification.Passed, final.Verification.Problem);
    }

    [Fact]
    public void The_machines_cache_blocked_tiles_are_rivals_and_the_answer_verifies()
    {
        // 4 vectors of 16 lanes (or 8 of 8) by 1, 2, 4 or 7 rows: a tile for any number of accumulators the machine's
        // measured FMA latency asks for up to 28 (with 2 vectors by 7 rows, a latency measured at 7.5 cycles or more on a
        // loaded machine left none, and the test failed once in a full run)
        var c = Computation.Parse("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=4 w=28 e=64 c=128 r=3 s=3");
        var tiles = CacheBlockedTiles.For(c, Machine.Current);
        Assert.NotEmpty(tiles);
        var pol = Policy.Load(Policy.Choose("default", c));
        var search = PolicyTuning.Method(pol, "0", 1, out var limit);
        var (result, final, _, _) = PolicyTuning.Tune(search, pol, c, limit, MeasureOptions.Quick, null, 1);
        Assert.Contains(final.Nest.ScheduleKey, Tiles(c).Append(result.Best.ScheduleKey));
        Assert.True(final.Verification.Passed, final.Verification.Problem);
    }

    /// <summary>The first rival (the machine's first tile, or the caller's record) is timed beside the search's best even
    /// when its one evaluation read lowest (a moment when the core ran at half speed): the side-by-side timing decides.</summary>
    [Fact]
    public void The_first_rival_is_timed_side_by_side_even_when_its_evaluation_read_low()
    {
        var c = Computation.Matmul(64, 64, 64);
        LoopTune.Ir.Nest[] rivals = [.. new[] { "m:2 n:64 m:32 k:64", "n:2 m:64 n:32 k:64", "k:2 m:64 n:64 k:32", "m:4 k:64 m:16 n:64" }
            .Select(s => LoopTune.Ir.Nest.Parse(c, ">" + s))];
        int Rival(LoopTune.Ir.Nest n) => Array.FindIndex(rivals, r => r.ScheduleKey == n.ScheduleKey);
        double[] quick = [1, 5, 4, 3];
        var fake = new ConfirmingFakeEvaluator(n => Rival(n) is int i and >= 0 ? quick[i] : 2, n => Rival(n) == 0 ? 10 : 1);
        var (_, best, _, figures, _) = PolicyTuning.WithRivals(new LoopTune.Search.RandomSearch(), c, fake, LoopTune.Search.SearchBudget.Seconds(1, 20), 0,
            LoopTune.Env.ActionSpace.Tile, rivals);
        Assert.Equal(4, figures.Count);
        Assert.Contains(fake.Asked.Single(), n => Rival(n) == 0);
        Assert.Equal(rivals[0].ScheduleKey, best.ScheduleKey);
    }
}
