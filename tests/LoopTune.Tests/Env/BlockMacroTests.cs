using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using Xunit;

namespace LoopTune.Tests.Env;

public class BlockMacroTests
{
    static readonly CacheSizes Zen5 = new(48, 1024, 32768, "test");

    static Nest Parse(string spec, string schedule) => Nest.Parse(Computation.Parse(spec), schedule.Contains('>') ? schedule : ">" + schedule);

    static int Id(ActionSpace space, string text) => space.Parse(text);

    [Fact]
    public void Footprint_counts_each_tensors_box_of_the_inner_loops()
    {
        var nest = Parse("mm 1024 1024 1024", "n:32 m:128 k:1024 m:8u n:2u n:16v");
        Assert.Equal(4L * (8 * 1024 + 1024 * 32 + 8 * 32), Footprint.Bytes(nest, 2));
        Assert.Equal(4L * 3 * 1024 * 1024, Footprint.Bytes(nest, 0));
        Assert.Equal(4L * (1 + 2 * 16 + 2 * 16), Footprint.Bytes(nest, 4)); // n:2u n:16v: A 1, B 32, C 32
        // an affine index: the image rows h+r span extent(h) + extent(r) - 1
        var conv = Nest.Initial(Computation.Parse("conv 4 10 10 8 3 3"));
        Assert.Equal(4L * (4 * 10 * 10 + 8 * 4 * 3 * 3 + 8 * 8 * 8), Footprint.Bytes(conv, 0));
        var rows = Parse("conv 4 10 10 8 3 3", "f:8 h:2 c:4 r:3 s:3 h:4 w:8"); // from c: h 4, w 8, r 3, s 3, f 1
        Assert.Equal(4L * (4 * 6 * 10 + 4 * 3 * 3 + 4 * 8), Footprint.Bytes(rows, 2));
    }

    [Fact]
    public void Block_l1_splits_by_the_largest_power_of_two_that_fits_half_the_cache_and_hoists_the_outer_loop()
    {
        var space = ActionSpace.TileFor(Zen5);
        var nest = Parse("mm 1024 1024 1024", "n:32 m:128 >k:1024 m:8u n:2u n:16v");
        var (actions, result) = space.Apply(nest, Id(space, "block_l1@2"));
        Assert.Equal("k:8 n:32 m:128 k:128 m:8u n:2u n:16v", result.ScheduleKey);
        Assert.Equal("split_128,swap_up,swap_up", string.Join(",", actions.Select(a => a.Name)));
        Assert.Equal(result.ScheduleKey, Transforms.ApplyAll(nest, actions).ScheduleKey);
        Assert.True(Footprint.Bytes(result, 3) <= 24 * 1024 && Footprint.Bytes(Transforms.Apply(nest, Actions.Get("split_256")), 3) > 24 * 1024);
        // block_l2 of m below the k block: m's block of 8 x B rows of A stays in L2 while n walks
        var (_, l2) = space.Apply(result, Id(space, "block_l2@2"));
        Assert.Equal("m:2 k:8 n:32 m:64 k:128 m:8u n:2u n:16v", l2.ScheduleKey);
    }

    [Fact]
    public void Blocks_are_illegal_when_the_loop_already_fits_is_annotated_or_the_level_is_unknown()
    {
        var space = ActionSpace.TileFor(Zen5);
        var small = Nest.Initial(Computation.Parse("mm 64 64 64")); // 48 KiB in all: fits half of L2
        Assert.False(space.Mask(small)[Id(space, "block_l2@0")]);
        Assert.True(space.Mask(small)[Id(space, "block_l1@0")]);
        var tiled = Parse("mm 1024 1024 1024", "n:32 m:128 k:1024 m:8u n:2u n:16v");
        Assert.False(space.Mask(tiled)[Id(space, "block_l1@3")]); // unrolled
        Assert.False(space.Mask(tiled)[Id(space, "block_l1@5")]); // vectorized
        var unknown = ActionSpace.TileFor(new CacheSizes(48, null, null, "test"));
        Assert.False(unknown.Mask(tiled)[Id(unknown, "block_l2@2")]);
        Assert.True(unknown.Mask(tiled)[Id(unknown, "block_l1@2")]);
    }

    [Fact]
    public void Every_legal_block_replays_as_seed_actions_and_its_block_fits()
    {
        var caches = new CacheSizes(1, 8, 64, "test"); // small, so that small problems need blocks
        var space = ActionSpace.TileFor(caches);
        var rng = new Random(3);
        int blocks = 0;
        foreach (var spec in new[] { "mm 96 80 72", "conv 8 18 18 16 3 3" })
        {
            var nest = Nest.Initial(Computation.Parse(spec));
            for (int step = 0; step < 8; step++)
            {
                var mask = space.Mask(nest);
                for (int id = 0; id < space.Count; id++)
                {
                    string name = space.Describe(id);
                    if (!name.StartsWith("block_l", StringComparison.Ordinal) || !mask[id]) continue;
                    var (actions, result) = space.Apply(nest, id);
                    Assert.Equal(result.ScheduleKey, Transforms.ApplyAll(nest, actions).ScheduleKey);
                    Assert.Equal(nest.Count + 1, result.Count);
                    int kib = name[7] switch { '1' => 1, '2' => 8, _ => 64 };
                    // the inner block is the loop right after where the split's outer loop started
                    int loop = space.LoopOf(id)!.Value;
                    Assert.True(Footprint.Bytes(result, loop + 1) <= kib * 512, $"{name} on {nest.ScheduleKey}: {result.ScheduleKey}");
                    blocks++;
                }
                var legal = Enumerable.Range(0, mask.Length).Where(i => mask[i]).ToList();
                nest = space.Apply(nest, legal[rng.Next(legal.Count)]).Result;
            }
        }
        Assert.True(blocks > 20, $"{blocks} legal blocks seen");
    }
}
