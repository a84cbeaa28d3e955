using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Tests.Ir;

/// <summary><see cref="Footprint"/>: the box a nest's inner loops touch, and the same box for a split not yet made.</summary>
public sealed class FootprintTests
{
    [Fact]
    public void The_documented_example_touches_a_panel_of_A_a_panel_of_B_and_a_tile_of_C()
    {
        var nest = Nest.Parse(Computation.Parse("mm 1024 1024 1024"), ">n:32 m:128 k:1024 m:8u n:2u n:16v");
        Assert.Equal((8 * 1024 + 1024 * 32 + 8 * 32) * 4L, Footprint.Bytes(nest, 2));
    }

    [Fact]
    public void A_split_not_yet_made_touches_what_the_split_nest_touches()
    {
        // the oracle: the split made, its inner loop's footprint measured
        var rng = new Random(17);
        int checkedSplits = 0;
        foreach (var spec in new[] { "mm 96 80 72", "conv 8 18 18 16 3 3", "conv 4 10 10 32 3 3 16", "O[f,h] += I[c,2*h+r] * W[f,c,r] f=12 h=40 c=6 r=3" })
        {
            var nest = Nest.Initial(Computation.Parse(spec));
            for (int step = 0; step < 12; step++)
            {
                for (int loop = 0; loop < nest.Count; loop++)
                {
                    var at = Moves.AtLoop(nest, loop);
                    foreach (int b in new[] { 2, 3, 4, 8, 16, 32 })
                    {
                        if (!Actions.All.Any(a => a.Name == $"split_{b}")) continue;
                        var split = Actions.Get($"split_{b}");
                        if (b >= at[loop].Size || !Transforms.IsLegal(at, split)) continue;
                        var made = Transforms.Apply(at, split);
                        Assert.Equal(Footprint.Bytes(made, loop + 1), Footprint.Bytes(at, loop, at[loop].Var, (long)b * at.InnerStep(loop)));
                        checkedSplits++;
                    }
                }
                var moves = Moves.All(nest);
                if (moves.Count == 0) break;
                nest = moves[rng.Next(moves.Count)].Result;
            }
        }
        Assert.True(checkedSplits > 100, $"{checkedSplits} splits checked");
    }
}
