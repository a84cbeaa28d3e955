using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.Jit;

namespace LoopTune.Tests.Env;

/// <summary>The learned spaces' masks decide the seed's actions, sink and hoist without building the nests they make:
/// the oracle is applying each id (<see cref="ActionSpace.TryApply"/>), which builds every edit.</summary>
[Collection(nameof(AllCores))]
public sealed class MaskTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Every_id_of_the_mask_is_legal_exactly_when_it_applies(int threads)
    {
        if (threads > LoopTune.Affinity.ProcessCores().Count) return; // one core: parallel stays masked, as at one thread
        RunThreads.Use(threads);
        try
        {
            var rng = new Random(11);
            int legal = 0, illegal = 0;
            foreach (var space in new[] { ActionSpace.Loop, ActionSpace.TileFor(new CacheSizes(1, 8, 64, "test")) })
                foreach (var spec in new[] { "mm 96 80 72", "conv 8 18 18 16 3 3", "conv 4 10 10 32 3 3 16", "C[b,m,n] += A[b,m,k] * B[b,k,n] b=3 m=20 n=48 k=24" })
                    for (int walk = 0; walk < 4; walk++)
                    {
                        var nest = Nest.Initial(Computation.Parse(spec));
                        for (int step = 0; step < 8; step++)
                        {
                            var mask = space.Mask(nest);
                            Assert.Equal(space.Count, mask.Length);
                            for (int id = 0; id < space.Count; id++)
                            {
                                bool applies = space.TryApply(nest, id) is not null;
                                Assert.True(applies == mask[id], $"{space.Name} {space.Describe(id)} on {nest.ScheduleKey}: mask {mask[id]}, applies {applies}");
                                if (applies) legal++;
                                else illegal++;
                            }
                            var ids = Enumerable.Range(0, mask.Length).Where(i => mask[i]).ToList();
                            if (ids.Count == 0) break;
                            nest = space.Apply(nest, ids[rng.Next(ids.Count)]).Result;
                        }
                    }
            Assert.True(legal > 1000 && illegal > 1000, $"{legal} legal, {illegal} illegal");
        }
        finally { RunThreads.Use(1); }
    }
}
