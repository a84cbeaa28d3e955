using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Jit;

/// <summary>Output tiles that start from zero and add the output when stored (<see cref="JitOptions.ZeroTiles"/>): which
/// accumulators do, and kernels that do against the reference, on outputs that start from random values.</summary>
public class ZeroTileTests
{
    static IEnumerable<Accumulator> Accumulators(List<Op> ops) => ops.SelectMany(op => op switch
    {
        TileLoadOp t => [t.Acc],
        LoopOp l => Accumulators(l.Body).Concat(Accumulators(l.After)),
        PackOp p => Accumulators(p.Body),
        _ => [],
    });

    [Theory]
    [InlineData("mm 48 32 256", "n:2 m:8 k:256 m:6u n:16v", true)]           // k's 256 steps run over the tile
    [InlineData("mm 48 32 256", "k:4 m:8 n:2 k:64 m:6u n:16v", true)]         // a block of k runs over it, from zero each time
    [InlineData("mm 48 32 256", "m:8 n:2 k:256 m:6u n:16v", true)]
    [InlineData("mm 48 32 256", "k:256 m:8 n:2 m:6u n:16v", false)]           // no sum's loop inside the tile: loaded, added, stored
    [InlineData("mm 48 32 4", "m:8 n:2 k:4u m:6u n:16v", false)]              // the sum spelled out in the tile: nothing runs over it
    [InlineData("mm 48 32 256", "m:48 n:32 k:256", true)]                     // a scalar hoisted above k
    [InlineData("mm 48 32 256", "n:32 m:6 k:256 m:8v pack=A", true)]           // lanes a row of C apart: gathered, added, scattered
    public void A_tile_starts_from_zero_when_a_loop_of_the_sum_runs_over_it(string spec, string schedule, bool fromZero)
    {
        var nest = Nest.Parse(Computation.Parse(spec), ">" + schedule);
        var on = Accumulators(Lowering.Lower(nest, JitOptions.Default).Program).ToList();
        Assert.NotEmpty(on);
        Assert.All(on, a => Assert.Equal(fromZero, a.FromZero));
        Assert.All(Accumulators(Lowering.Lower(nest, JitOptions.Default with { ZeroTiles = false }).Program), a => Assert.False(a.FromZero));
    }

    /// <summary>A tile with an init tensor (<see cref="Kernel.CompileInitialized"/>) reads its initial values from it.</summary>
    [Fact]
    public void A_tile_with_an_init_tensor_starts_from_it()
    {
        var nest = Nest.Parse(Computation.Parse("mm 48 32 256"), ">m:8 n:2 k:256 m:6u n:16v");
        var accumulators = Accumulators(Lowering.Lower(nest, JitOptions.Default, init: [.. nest.Computation.Output.VarStrides]).Program).ToList();
        Assert.All(accumulators, a => Assert.True(a.Init is not null && !a.FromZero));
    }

    /// <summary>The sum of a vectorized reduction stays as it was: zeroed, its lane sum added to the output.</summary>
    [Fact]
    public void A_tile_that_sums_its_lanes_is_unchanged()
    {
        var nest = Nest.Parse(Computation.Parse("mm 8 8 64"), ">m:8 n:8 k:64v");
        Assert.All(Accumulators(Lowering.Lower(nest, JitOptions.Default).Program), a => Assert.True(a.ReducesLanes && !a.FromZero));
    }

    [Theory]
    [InlineData("mm 47 45 131", "k:4+3 m:7+5 n:2+13 k:8 k:4u m:6u n:16v pack=A,B")] // blocks, tails, masked lanes (13 of 16)
    [InlineData("mm 47 45 131", "m:47 n:45 k:131")]                                    // scalars
    [InlineData("mm 47 45 131", "n:2+13 m:47 k:131 n:16v")]                            // one accumulator a tile, masked in the tail
    [InlineData("conv 8 12 12 16 3 3", "f:2 h:10 c:8 r:3 s:3 f:8u w:10v")]             // a convolution's rows of 10 lanes
    [InlineData("mm 50 40 30", "m:5 n:5 k:3 m:10 k:10 m:1u n:8v")]                    // a tile loaded once per block of k
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=20 h=5 w=13 c=12 r=3 s=2", "f:1+4 h:5 w:2+1 r:3 s:2 c:12 w:6u f:16v pack=W")] // output lanes an image apart
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=32 h=4 w=13 c=8 r=3 s=3", "h:4 w:1+3 r:3 s:3 c:8 w:10u f:32v pack=W")]  // runs of 8 and 2 rows, a tail of 3
    [InlineData("O[f,h,w] += I[c,2*h+r,2*w+s] * W[f,c,r,s] f=16 h=3 w=7 c=4 r=3 s=3", "h:3 w:3+1 r:3 s:3 c:4 w:2u f:16v pack=W")] // stride 2: runs of 2, a tail of 1
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=64 h=2 w=10 c=4 r=3 s=1", "h:2 r:3 s:1 c:4 w:10u f:64v pack=W")]    // 40 accumulators, more than the registers
    public void Kernels_whose_tiles_start_from_zero_match_the_reference(string spec, string schedule)
    {
        var nest = Nest.Parse(Computation.Parse(spec), ">" + schedule);
        Assert.Contains(Accumulators(Lowering.Lower(nest, JitOptions.Default).Program), a => a.FromZero);
        foreach (var options in new[] { JitOptions.Default, JitOptions.Default with { ZeroTiles = false }, JitOptions.Default with { MaxVectorBits = 128 } })
            Assert.Null(KernelCheck.CompileAndVerify(nest, options, new Random(3)));
    }

    /// <summary>A tile whose lanes are apart in the output and whose rows are consecutive elements (a convolution's tile along
    /// its output channels) stores each lane's run of rows at once (<see cref="TileRowsStoreOp"/>, where the machine has
    /// AVX-512): runs of at most 8 rows, whole vectors only, every row of the tile put aside before the first run is added.</summary>
    [Fact]
    public void A_tiles_rows_whose_lanes_are_apart_are_stored_in_runs_of_at_most_eight()
    {
        var nest = Nest.Parse(Computation.Parse("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=36 h=4 w=13 c=8 r=3 s=3"), ">f:1+4 h:4 w:1+3 r:3 s:3 c:8 w:10u f:32v pack=W");
        var program = Lowering.Lower(nest, JitOptions.Default).Program;
        var runs = RowStores(program).ToList();
        if (!TileRows.Supports(16))
        {
            Assert.Empty(runs);
            return;
        }
        // the 10-row block: for each of its 2 vectors a run of 8 and one of 2; the tail block of 3 rows: a run of 3 each; the
        // 4 channels past the vectors are masked lanes, stored one by one (no runs)
        Assert.Equal(["8 8 2 2", "3 3"], runs.Select(op => string.Join(' ', op.Runs.Select(r => r.Length).OrderDescending())));
        Assert.All(runs.SelectMany(op => op.Runs).SelectMany(r => r.Zip(r.Skip(1))), p => Assert.Equal(p.First.Offset + 1, p.Second.Offset));
        Assert.Null(KernelCheck.CompileAndVerify(nest, JitOptions.Default, new Random(5)));
    }

    static IEnumerable<TileRowsStoreOp> RowStores(List<Op> ops) => ops.SelectMany(op => op switch
    {
        TileRowsStoreOp t => [t],
        LoopOp l => RowStores(l.Body).Concat(RowStores(l.After)),
        PackOp p => RowStores(p.Body),
        _ => [],
    });
}
