using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using LoopTune.Models;

namespace LoopTune.Tests.Measure;

/// <summary><see cref="CacheBlockedTiles"/>: the register tile and the cache-blocked reductions a machine gives a
/// contraction, as nests its sizes and caches dictate, legal and computing what the reference computes.</summary>
public sealed class CacheBlockedTilesTests
{
    /// <summary>A Zen 5 as tuning sees it: 16 lanes, 32 registers, 8 accumulators for two pipes of latency 4, L1d 48 KiB,
    /// L2 1 MiB.</summary>
    static MachineInfo Zen5(int? l1 = 48, int? l2 = 1024) =>
        new(CpuInfo.Current, 2, 512, 32, new FmaTiming(512, 3.55, 4, 226.6), new CacheSizes(l1, l2, 32768, "sysfs"), []);

    const string Conv512 = "O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=8 h=7 w=7 e=64 c=512 r=3 s=3";

    [Fact]
    public void The_512_channel_layer_gets_a_lean_5_by_4_tile_then_the_full_7_by_4_each_with_its_channels_blocked_outside_the_rows()
    {
        var tiles = CacheBlockedTiles.For(Computation.Parse(Conv512), Zen5());
        // lean: 4 vectors, at most 6 rows (24 accumulators + 4 vectors + 2 = 30 registers), the 7-pixel rows a block of 5
        // and a tail of 2 (6 would leave a tail of 1 with 4 accumulators, half of the 8 the pipes need); full: 7 by 4 (28 accumulators, the most within 28 registers), its taps in loops (the 6 values they would share
        // do not fit beside 28 + 4). Each: the last blocking found, the
        // unblocked nest, then the others. The loops of the block inward: L1 8 channels (8 x 9 x 64 weights + 8 x 3 x 9 inputs + 7 x
        // 64 outputs = 20,864 bytes <= 24 KiB; 16 would be 41 KiB), L2 128 channels (333,568 bytes <= 512 KiB; 256:
        // 667,136); from the block loop inward, the 7 rows too: L1 4 channels (4 x 9 x 64 + 4 x 9 x 9 + 7 x 7 x 64 floats =
        // 23,056 bytes; 8: 33,568), L2 128 again; last, the block's loops within the whole L1d: 16 channels (16 x 9 x 64 + 16 x
        // 3 x 7 + 5 x 64 floats = 39,488 bytes <= 48 KiB; 32: 77 KiB)
        Assert.Equal([
            ">g:8 c:128 h:7 w:1+2 c:4 r:3u s:3u w:5u e:64v", ">g:8 h:7 w:1+2 c:512 r:3u s:3u w:5u e:64v", ">g:8 c:64 h:7 w:1+2 c:8 r:3u s:3u w:5u e:64v",
            ">g:8 c:4 h:7 w:1+2 c:128 r:3u s:3u w:5u e:64v", ">g:8 c:32 h:7 w:1+2 c:16 r:3u s:3u w:5u e:64v",
            ">g:8 c:128 h:7 c:4 r:3 s:3 w:7u e:64v", ">g:8 h:7 c:512 r:3 s:3 w:7u e:64v", ">g:8 c:64 h:7 c:8 r:3 s:3 w:7u e:64v",
            ">g:8 c:4 h:7 c:128 r:3 s:3 w:7u e:64v", ">g:8 c:32 h:7 c:16 r:3 s:3 w:7u e:64v"], tiles.Select(t => t.Serialize()));
    }

    [Fact]
    public void Each_block_is_the_largest_divisor_whose_loops_fit_half_the_level_or_the_whole_l1d()
    {
        var m = Zen5();
        foreach (var (_, spec) in Blocked())
        {
            var c = Computation.Parse(spec);
            foreach (var tile in CacheBlockedTiles.For(c, m).Where(t => Enumerable.Range(0, t.Count).Any(i => c.IsReduction[t[i].Var] && t.NextOfVar(i) >= 0)))
            {
                int outer = Enumerable.Range(0, tile.Count).First(i => c.IsReduction[tile[i].Var] && tile.NextOfVar(i) >= 0), inner = tile.NextOfVar(outer);
                int k = tile[outer].Var, block = tile[inner].Size;
                // the loops of the block inward, or those from the block loop inward, within half of L1d (24 KiB) or of
                // L2 (512 KiB), where the next larger block's would not be
                int larger = Enumerable.Range(block + 1, c.Sizes[k] - block).First(b => c.Sizes[k] % b == 0);
                var wider = tile.With(tile.Loops.SetItem(outer, tile[outer] with { Size = c.Sizes[k] / larger }).SetItem(inner, tile[inner] with { Size = larger }), 0);
                bool Largest(int from, params long[] capacities) => capacities.Any(capacity =>
                    Footprint.Bytes(tile, from) <= capacity && (larger == c.Sizes[k] || Footprint.Bytes(wider, from) > capacity));
                // (or, the block's loops, the whole L1d: 48 KiB)
                Assert.True(Largest(inner, 24 * 1024, 512 * 1024, 48 * 1024) || Largest(outer + 1, 24 * 1024, 512 * 1024), $"{spec}: {tile.Serialize()} is not the largest block that fits a level either way");
                // the block loop sits above every output loop the streamed weights do not have (the image's rows)
                Assert.All(Enumerable.Range(0, outer), i => Assert.DoesNotContain(c.Vars[tile[i].Var], new[] { "h", "w" }));
                Assert.Equal(c.Sizes[k], tile[outer].Size * block);
            }
        }
    }

    [Fact]
    public void Every_resnet18_blocked_lowering_has_tiles_and_they_compute_what_the_reference_does()
    {
        var m = Machine.Current;
        foreach (var (name, spec) in Blocked())
        {
            var tiles = CacheBlockedTiles.For(Computation.Parse(spec), m);
            Assert.True(tiles.Count >= 1, name);
            foreach (var tile in tiles)
            {
                Assert.EndsWith("v", tile.Serialize());
                // a slice of the outer loop's first iteration (the whole layer's reference is slow)
                var check = Verifier.VerifySlice(tile, 1) ?? Verifier.Verify(Kernel.Compile(tile));
                Assert.True(check.Passed, $"{name} {tile.Serialize()}: {check.Problem}");
            }
        }
    }

    [Theory]
    [InlineData("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=7 w=7 e=8 c=64 r=3 s=3", "r s")]     // a 3x3 window: 9 steps
    [InlineData("O[g,h,w,e] += I[c,2*h+r,2*w+s] * W[g,c,r,s,e] g=2 h=8 w=8 e=8 c=3 r=7 s=7", "")]    // 7x7: 49 steps, r the largest; s's 7 taps would share 14 values beside 8 + 1 of the 16 registers
    [InlineData("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=7 w=7 e=8 c=64 r=2 s=5", "s")]      // 10 steps: the innermost alone
    [InlineData("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=7 w=7 e=8 c=64 r=1 s=3", "s")]      // a loop of one step is not unrolled
    [InlineData("C[m,n] += A[m,k] * B[k,n] m=64 n=64 k=64", "")]                                     // a product's one sum is the blocked one
    public void A_tiles_short_innermost_sums_are_unrolled_up_to_nine_steps_never_the_largest(string spec, string unrolled)
    {
        var c = Computation.Parse(spec);
        var tiles = CacheBlockedTiles.For(c, Zen3());
        Assert.NotEmpty(tiles);
        foreach (var tile in tiles)
            Assert.Equal(unrolled, string.Join(' ', tile.Loops.Where(l => c.IsReduction[l.Var] && l.Annotation == Annotation.Unroll).Select(l => c.Vars[l.Var])));
        // and they compute what the reference does
        Assert.All(tiles, t => Assert.True(Verifier.Verify(Kernel.Compile(t)).Passed, t.Serialize()));
    }

    [Theory]
    [InlineData("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=7 w=7 e=8 c=64 r=3 s=3", 7, "r s", 6)]   // taps along w: row j at s+1 reads row j+1's value at s
    [InlineData("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=7 w=7 e=8 c=64 r=3 s=3", 7, "s", 6)]     // r's rows apart: never shared
    [InlineData("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=7 w=7 e=8 c=64 r=3 s=3", 7, "r", 0)]     // only r: each step its own row
    [InlineData("O[g,h,w,e] += I[c,2*h+r,2*w+s] * W[g,c,r,s,e] g=2 h=8 w=8 e=8 c=3 r=7 s=7", 6, "s", 10)] // stride 2: j at s+2 reads j+1's at s
    [InlineData("O[g,h,w,e] += I[c,2*h+r,2*w+s] * W[g,c,r,s,e] g=2 h=8 w=8 e=8 c=3 r=7 s=7", 4, "s", 6)]
    [InlineData("C[m,n] += A[m,k] * B[k,n] m=64 n=64 k=64", 6, "k", 0)]                                    // a product's k: a new value each step
    public void The_broadcast_values_an_unrolled_block_shares_are_counted_while_they_are_live(string spec, int rows, string unrolled, int live)
    {
        var c = Computation.Parse(spec);
        var broadcast = c.Right.Index[^1].Length == 1 ? c.Left : c.Right;
        if (c.Left.Name == "A") broadcast = c.Left;
        int u = c.Vars.IndexOf(c.Left.Name == "A" ? "m" : "w");
        Assert.Equal(live, CacheBlockedTiles.SharedLive(c, broadcast, u, rows, [.. unrolled.Split(' ').Select(x => c.Vars.IndexOf(x))]));
    }

    [Fact]
    public void A_tile_unrolls_its_taps_only_where_the_values_they_share_fit_the_registers_beside_it()
    {
        // the stem's blocked 7x7 stride-2 convolution on the Zen 5: the lean tile 6 rows by 4 vectors (24 accumulators,
        // 4 vectors of weights) leaves 4 registers, and s:7u would share 10 values: s stays a loop; a 3-vector block's
        // 7-row tile (21 + 3) leaves 8, and the 3x3 window's taps share 6 (unrolled)
        var stem = Computation.Parse("O[h,w,e] += I[c,2*h+r,2*w+s] * W[c,r,s,e] h=112 w=112 e=64 c=3 r=7 s=7");
        Assert.All(CacheBlockedTiles.For(stem, Zen5()), t => Assert.DoesNotContain(t.Loops, l => stem.IsReduction[l.Var] && l.Annotation == Annotation.Unroll));
        var window = Computation.Parse("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=7 w=7 e=48 c=64 r=3 s=3");
        Assert.Contains(CacheBlockedTiles.For(window, Zen5()), t => t.Serialize().Contains("r:3u s:3u w:7u e:48v", StringComparison.Ordinal));
        foreach (var tile in CacheBlockedTiles.For(window, Zen5()).Concat(CacheBlockedTiles.For(stem, Zen5())))
        {
            var c = tile.Computation;
            int vectors = tile[^1].Size / 16, rows = tile[^2].Size;
            var sums = tile.Loops.Where(l => c.IsReduction[l.Var] && l.Annotation == Annotation.Unroll).Select(l => l.Var).ToList();
            var broadcast = c.Left.Name == "I" ? c.Left : c.Right;
            if (sums.Count > 0) Assert.True(rows * vectors + vectors + CacheBlockedTiles.SharedLive(c, broadcast, tile[^2].Var, rows, sums) <= 32, tile.Serialize());
        }
    }

    [Fact]
    public void Small_blocked_tiles_verify_whole()
    {
        // 64 channels x 9 taps x 32 lanes of weights exceed half of any L1d: the reduction is blocked
        var c = Computation.Parse("O[g,h,w,e] += I[c,2*h+r,2*w+s] * W[g,c,r,s,e] g=2 h=3 w=14 e=32 c=64 r=3 s=3");
        var tiles = CacheBlockedTiles.For(c, Zen5(l1: 16, l2: 64));
        Assert.True(tiles.Count >= 3, string.Join(", ", tiles.Select(t => t.Serialize())));
        foreach (var tile in tiles)
            Assert.True(Verifier.Verify(Kernel.Compile(tile)).Passed, tile.Serialize());
    }

    [Theory]
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=64 h=54 w=54 c=64 r=3 s=3")]
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=20 h=5 w=13 c=12 r=3 s=2")]
    public void A_plain_convolution_gets_vectors_along_its_rows_and_output_channels_as_rows_their_blocks_outermost_second(string spec)
    {
        // I[c,h+r,w+s] is read in vectors along w (its offsets s are the sum's), W[f,c,r,s] broadcast: rows of f
        var c = Computation.Parse(spec);
        // (a long sum's tile along the output channels comes first: below)
        var tiles = CacheBlockedTiles.For(c, Zen3()).Where(t => t[^1].Var != c.Vars.IndexOf("f")).ToList();
        Assert.True(tiles.Count >= 2, string.Join(", ", tiles.Select(t => t.Serialize())));
        Assert.All(tiles, t => Assert.Equal((Var: c.Vars.IndexOf("w"), Annotation.Vectorize), (t[^1].Var, t[^1].Annotation)));
        Assert.All(tiles, t => Assert.Equal(c.Vars.IndexOf("f"), t[^2].Var));
        // the second: f's blocks outermost, a block of weights read from the L1 over the whole image
        Assert.Equal(c.Vars.IndexOf("f"), tiles[1][0].Var);
        if (c.Flops < 1e7)
            foreach (var tile in tiles)
                Assert.True(Verifier.Verify(Kernel.Compile(tile)).Passed, tile.Serialize());
    }

    [Theory]
    [InlineData("conv 256 14 14 256 3 3", ">f:16 h:12 w:2 r:3 s:3 c:64 c:4u w:6u f:16v pack=W")]          // 2 vectors by 6 pixels
    [InlineData("conv 128 28 28 128 3 3", ">f:8 h:26 w:4+2 r:3 s:3 c:32 c:4u w:6u f:16v pack=W")]        // 26 pixels: 6-pixel rows and a tail of 2
    [InlineData("O[f,h,w] += I[c,2*h+r,2*w+s] * W[f,c,r,s] f=128 h=14 w=14 c=128 r=3 s=3", ">f:8 h:14 w:2+2 r:3 s:3 c:32 c:4u w:6u f:16v pack=W")] // stride 2
    [InlineData("conv 3 230 230 64 7 7", null)]    // 147 steps of the sum: the gathers and scatters of the output would cost more
    [InlineData("conv 64 56 56 256 1 1", null)]    // 64 steps
    [InlineData("conv 512 9 9 512 3 3", null)]     // 49 pixels: each weight copied for 49 uses
    [InlineData("mm 256 256 2304", null)]          // a product: its columns are vectors already
    public void A_convolution_with_a_long_sum_gets_a_tile_along_its_output_channels_first(string spec, string? expected)
    {
        var c = Computation.Parse(spec);
        var tiles = CacheBlockedTiles.For(c, Zen3());
        if (expected is null) Assert.DoesNotContain(tiles, t => t.Packed != 0 && t[^1].Var != c.Output.Index[^1][0].Var);
        else Assert.Equal(expected, tiles[0].Serialize());
    }

    [Theory]
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=24 h=10 w=13 c=64 r=3 s=3", ">h:10 w:4+1 r:3 s:3 c:16 c:4u w:3u f:24v pack=W")]       // 3 vectors by 3 pixels, a tail of 1
    [InlineData("O[f,h,w] += I[c,2*h+r,2*w+s] * W[f,c,r,s] f=20 h=10 w=13 c=64 r=3 s=3", ">f:1+4 h:10 w:2+1 r:3 s:3 c:16 c:4u w:6u f:16v pack=W")] // stride 2, a tail of 4 channels
    public void A_tile_along_the_output_channels_computes_what_the_reference_does(string spec, string expected)
    {
        var tile = CacheBlockedTiles.For(Computation.Parse(spec), Zen3())[0];
        Assert.Equal(expected, tile.Serialize());
        Assert.True(Verifier.Verify(Kernel.Compile(tile)).Passed, tile.Serialize());
    }

    /// <summary>A pointwise convolution (<c>O[f,p] += I[c,p] * W[f,c]</c>) has, as a plain convolution's image rows do, a
    /// tile with its channels' blocks outermost, each block of weights read from the L1 over every pixel; the same
    /// contraction as a product (parsed from its text) has none: its tiles start with the columns' blocks or the sum's.</summary>
    [Fact]
    public void A_pointwise_convolution_also_gets_its_channels_blocks_outermost_and_a_product_does_not()
    {
        var conv = Computation.Parse("conv 64 32 32 64 1 1");
        var tiles = CacheBlockedTiles.For(conv, Zen5()).Select(t => t.Serialize()).ToList();
        Assert.Contains(">f:10+4 p:16 c:64 f:6u p:64v", tiles);
        Assert.Equal(tiles.Count - 2, tiles.Count(t => t.StartsWith(">p:", StringComparison.Ordinal)));
        var product = CacheBlockedTiles.For(Computation.Parse(conv.Text), Zen5()).Select(t => t.Serialize()).ToList();
        Assert.Equal(tiles.Where(t => t.StartsWith(">p:", StringComparison.Ordinal)), product);
        foreach (var tile in CacheBlockedTiles.For(Computation.Parse("conv 5 9 7 24 1 1"), Zen5()))
            Assert.True(Verifier.Verify(Kernel.Compile(tile)).Passed, tile.Serialize());
    }

    [Theory]
    [InlineData("C[m,n] += A[m,k] * B[k,n] m=256 n=12 k=2304")]                           // 12 columns: not one vector of 16
    [InlineData("C[m,n] += A[m,k] * B[m,n] m=64 n=64 k=8")]                               // n is in both inputs: nothing to broadcast
    public void A_contraction_without_the_form_gets_none(string spec) =>
        Assert.Empty(CacheBlockedTiles.For(Computation.Parse(spec), Zen5()));

    [Fact]
    public void Without_cache_sizes_only_the_register_tiles_are_offered()
    {
        var tiles = CacheBlockedTiles.For(Computation.Parse(Conv512), Zen5(null, null));
        Assert.Equal([">g:8 h:7 w:1+2 c:512 r:3u s:3u w:5u e:64v", ">g:8 h:7 c:512 r:3 s:3 w:7u e:64v"], tiles.Select(t => t.Serialize()));
    }

    [Fact]
    public void A_matrix_product_gets_a_lean_tile_with_a_tail_and_a_square_one_and_k_blocked_above_its_rows()
    {
        var tiles = CacheBlockedTiles.For(Computation.Matmul(1024, 1024, 1024), Zen5());
        // lean: 6 rows by 4 vectors, 1024 rows as 170 blocks of 6 and a tail of 4; full: 16 accumulators at most among
        // divisors of 1024 (28 registers), 4 x 4 vectors loads the fewest. Each: k blocked for L2 with the rows over which
        // B's block is reused (the last found; full: 1024 x 32 of A, 32 x 64 of B, 1024 x 64 of C, 401,408 bytes; 64 would
        // be 671,744), unblocked, those two with B packed (its rows 4 KiB apart), then k blocked for L1 by the block's loops (64);
        // first of all, the product blocked as BLIS blocks it (k by 64: a 64 x 64 panel of B, 16 KiB of L1d's 24; A's 1024
        // rows by 64, 256 KiB, fit half the L2 whole); last in each, k by 128, the block's loops within the whole L1d
        // (6 x 128 + 128 x 64 + 6 x 64 floats, 37,376 bytes; 256: 74 KiB)
        Assert.Equal([">k:16 n:16 m:170+4 k:16 k:4u m:6u n:64v pack=A,B", ">n:16 k:32 m:170+4 k:32 m:6u n:64v", ">n:16 m:170+4 k:1024 m:6u n:64v", ">n:16 m:170+4 k:1024 m:6u n:64v pack=B",
            ">n:16 k:32 m:170+4 k:32 m:6u n:64v pack=B", ">n:16 k:16 m:170+4 k:64 m:6u n:64v", ">n:16 k:8 m:170+4 k:128 m:6u n:64v",
            ">n:16 k:32 m:256 k:32 m:4u n:64v", ">n:16 m:256 k:1024 m:4u n:64v", ">n:16 m:256 k:1024 m:4u n:64v pack=B",
            ">n:16 k:32 m:256 k:32 m:4u n:64v pack=B", ">n:16 k:16 m:256 k:64 m:4u n:64v", ">n:16 k:8 m:256 k:128 m:4u n:64v"], tiles.Select(t => t.Serialize()));
    }

    /// <summary>A Zen 3 as tuning sees it: 8 lanes, 16 registers, 8 accumulators, L1d 32 KiB, L2 512 KiB.</summary>
    static MachineInfo Zen3() =>
        new(CpuInfo.Current, 2, 256, 16, new FmaTiming(256, 3.23, 4, 103.4), new CacheSizes(32, 512, 32768, "sysfs"), []);

    [Theory]
    // k by 256 (a 256 x 16 panel of B, 16 KiB: half the L1d), m by 256 (A's 256 x 256 block, 256 KiB: half the L2)
    [InlineData(3072, 1024, 1536, ">k:6 m:12 n:64 m:42+4 k:64 k:4u m:6u n:16v pack=A,B")]
    [InlineData(384, 64, 512, ">k:2 m:2 n:4 m:32 k:64 k:4u m:6u n:16v pack=A,B")] // 384 rows: blocks of 192, the largest divisor within 256
    [InlineData(1024, 1024, 40, ">n:64 m:170+4 k:10 k:4u m:6u n:16v pack=A,B")]  // k whole (40), A's 1024 x 40 within half the L2: no block loops
    public void A_large_product_is_first_offered_blocked_as_blis_blocks_it_with_both_operands_packed(int m, int n, int k, string expected)
    {
        var c = Computation.Matmul(m, n, k);
        var tiles = CacheBlockedTiles.For(c, Zen3());
        Assert.Equal(expected, tiles[0].Serialize());
        if (m * k < 1 << 20) Assert.True(Verifier.Verify(Kernel.Compile(tiles[0])).Passed, expected);
        // with the whole reduction one block, the same with A's rows as given (read from the L2 by every column of tiles)
        Assert.Equal(tiles[0].Loops.Count(l => l.Var == 2) == 2, tiles[1].Serialize() == expected.Replace("pack=A,B", "pack=B", StringComparison.Ordinal));
        // operands within half the L2 are not copied for it
        Assert.DoesNotContain(CacheBlockedTiles.For(Computation.Matmul(64, 64, 64), Zen3()), t => t.Packed == 0b110);
    }

    /// <summary>Columns that are not whole vectors end in a tail: every tile covers them and computes what the reference
    /// does.</summary>
    [Theory]
    [InlineData(512, 49, 256)]   // ResNet-18's 7x7 1x1 layer as a product: 3 panels of 16 and 1 column
    [InlineData(40, 196, 300)]   // a 14x14 image's pixels: 12 panels and 4 columns
    public void Columns_that_are_not_whole_vectors_end_in_a_tail(int m, int n, int k)
    {
        var c = Computation.Matmul(m, n, k);
        foreach (var machine in new[] { Zen3(), Zen5() })
        {
            var tiles = CacheBlockedTiles.For(c, machine);
            Assert.NotEmpty(tiles);
            Assert.All(tiles, t => Assert.Contains($"n:{n / t[^1].Size}+{n % t[^1].Size} ", t.Serialize()));
            if (machine.VectorBits == JitOptions.Default.VectorBits)
                foreach (var tile in tiles.Take(4))
                    Assert.True(Verifier.Verify(Kernel.Compile(tile)).Passed, tile.Serialize());
        }
    }

    /// <summary>Only a matrix product's plain operand is offered packed: a blocked convolution's weights are laid out once,
    /// at load, by the model.</summary>
    [Fact]
    public void Only_a_matrix_products_streamed_operand_is_offered_packed()
    {
        Assert.Contains(CacheBlockedTiles.For(Computation.Matmul(128, 768, 768), Zen5()), t => t.Packed != 0);
        Assert.All(CacheBlockedTiles.For(Computation.Parse(Conv512), Zen5()), t => Assert.Equal(0, t.Packed));
    }

    [Theory]
    [InlineData(4, 56, 8, 32, 4, 6)]  // Zen 5, a 64-channel block of 56-pixel rows: 6 x 4 (30 registers), a 2-row tail
    [InlineData(4, 7, 8, 32, 4, 5)]   // 7-pixel rows: not 6 and a 1-row tail (4 idle slots of 28), 5 and a 2-row tail
    [InlineData(192, 128, 8, 32, 4, 6)] // mm 128 3072 768: 4 and 6 vectors tie (1/6 + 1/4 of a load per FMA), the fewer kept
    [InlineData(2, 56, 8, 16, 2, 6)]  // AVX2 (16 registers of 8 lanes): 6 x 16 lanes, 12 accumulators
    [InlineData(1, 3, 8, 32, 0, 0)]   // 3 accumulators at most: none keeps the pipes busy
    public void The_lean_tile_loads_the_least_per_FMA_within_the_registers(int vectorsOfV, int sizeOfU, int need, int registers, int vectors, int rows) =>
        Assert.Equal(vectors == 0 ? ((int, int)?)null : (vectors, rows), CacheBlockedTiles.Lean(vectorsOfV, sizeOfU, need, registers));

    [Theory]
    [InlineData(4, 7, 8, 28, 4, 7)]   // Zen 5, a 64-channel block of 7-pixel rows
    [InlineData(8, 56, 8, 28, 4, 7)]
    [InlineData(8, 7, 8, 12, 8, 1)]   // 16 registers of 8 lanes: 8 vectors, 1 row
    [InlineData(1, 5, 8, 28, 0, 0)]   // 5 accumulators at most: none keeps the pipes busy
    public void The_tile_is_the_most_accumulators_then_the_fewest_loads(int vectorsOfV, int sizeOfU, int need, int budget, int vectors, int rows) =>
        Assert.Equal(vectors == 0 ? ((int, int)?)null : (vectors, rows), CacheBlockedTiles.Tile(vectorsOfV, sizeOfU, need, budget));

    /// <summary>The blocked lowerings of ResNet-18's convolutions on this machine.</summary>
    static IEnumerable<(string Name, string Spec)> Blocked() =>
        LoopTune.Datasets.ModelShapes.ResNet18Layers.SelectMany(l => l.Lowerings().Where(op => op.Lowering == ConvLowering.Blocked)
            .Select(op => (Name: l.ToString(), Spec: op.Contraction.Text))).DistinctBy(x => x.Spec);
}
