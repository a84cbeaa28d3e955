using System.Globalization;
using System.Text;
using LoopTune.Ir;

namespace LoopTune.Measure;

/// <summary>
/// Schedules built from a computation's sizes and the machine alone (its register file, FMA pipes and caches), no search:
/// a register tile over the output, the reduction around it, and that reduction blocked for each cache level, the block
/// loop outside the loops that reuse the streamed operand's block. The default tuner times them beside its search's best
/// (<see cref="Learning.PolicyTuning.Tune"/>'s rivals), so a cache-blocked schedule the search does not reach within its
/// budget is not lost; they apply to a contraction whose output's innermost variable <c>v</c> is the plain innermost index
/// of one input (the <b>streamed</b> operand, read in vectors along <c>v</c>, plus a sum's offsets if any) and no index of
/// the other (the <b>broadcast</b> one): a matrix product <c>C[m,n] += A[m,k] * B[k,n]</c>, a convolution blocked along
/// its output channels (<c>O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e]</c>, the <c>blocked</c> lowering of <c>model</c>),
/// or a plain one (<c>O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s]</c>: vectors along w, rows of output channels f). A plain
/// convolution, strided too, also has a tile the other way round, first (<see cref="AlongChannels"/>): vectors of output
/// channels, rows of pixels, the weights packed.
/// <code>
/// loops, outermost first                                      O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=8 h=7 w=7 e=64 c=512 r=3 s=3 (full tile)
/// 1 output variables the streamed operand has (and v's blocks)  g:8
/// 2 the block loop of the reduction (blocked tiles only)       c:64        (L1 of 48 KiB: a block of 8 channels)
/// 3 the other output variables (and u's blocks)                h:7
/// 4 the reduction, in the computation's order, the window's      c:8 r:3 s:3   (7 x 4 vectors: no registers left
///   taps unrolled where registers allow (UnrolledSteps)                        for the taps' shared inputs)
/// 5 u: rows of the tile, unrolled                              w:7u
/// 6 v: vectors of the tile, vectorized                         e:64v
/// </code>
/// <para><b>The register tiles</b>: u is the innermost output variable the broadcast operand has and the streamed one has
/// not (a convolution's w, a matrix product's m). A tile is R rows (of u) by V vectors (of v, V a divisor of its vectors),
/// with at least the accumulators that keep every FMA pipe busy (<see cref="FmaTiming.Accumulators"/>). Two are offered,
/// each with its blockings: the <b>lean</b> tile (<see cref="Lean"/>), the fewest loads per FMA with every value of a step
/// in registers (the accumulators, V vectors of the streamed operand, a broadcast and a spare), its rows with a tail where
/// they do not divide u's size; then the <b>full</b> one (<see cref="Tile"/>), R dividing u's size, the most accumulators
/// within the registers less those <see cref="RegisterTile"/> keeps for the streamed operand, the broadcast and a spare.
/// On the Zen 5 (8 accumulators needed, 32 registers) a 64-channel block's lean tile is 6 rows by 4 vectors (10 loads for
/// 24 FMAs; 5 on 7-pixel rows, with a 2-row tail), its full one 7 by 4 (11 loads for 28 FMAs, one more live vector than
/// the registers: on the 14 to 56-pixel layers 194-212 GFLOPS against the lean tile's 206-218; on the 7x7 ones level
/// with the lean 5 by 4, 1.12 against 1.09-1.11 ms).</para>
/// <para><b>Blocking</b>: the reduction variable both inputs have that is largest (a convolution's input channels, a
/// matrix product's k) is split, for each cache level the machine reports (L1d, L2): its block B is the largest divisor
/// of its size below it for which the loops from the block inward touch at most half the level
/// (<see cref="Footprint.Bytes"/>, as the tile space's <c>block_l1/l2</c>), and its block loop goes above the output
/// variables the streamed operand does not have: a block of weights is read once from memory and then from the cache for
/// every row of the image (issue 19: a hand-written <c>g:8 c:16 h:7 c:32 r:3 s:3 w:7u e:64v</c> ran 204 GFLOPS hot where
/// the search's best ran 190). Each level is sized two ways: the loops of the block inward fit, or the loops from the
/// block loop inward (the image's rows too, over which the block is reused) fit. A level whose block would be the whole
/// reduction (it fits already) adds nothing.</para>
/// </summary>
public static class CacheBlockedTiles
{
    /// <summary>The tiles of <paramref name="c"/> on <paramref name="machine"/>: a convolution's tile along its output channels
    /// first (<see cref="AlongChannels"/>), then for the lean register tile, then the full one
    /// (when they differ), the last blocking found, the unblocked nest, those two with a matrix product's streamed operand
    /// packed (<see cref="Packed"/>), then the other blockings for the cache levels (distinct); where no tile has the
    /// accumulators every pipe needs, the lean one with the most, down to half of them; none when the computation has no
    /// such form or no register tile fits its sizes. A tune evaluates them in this order
    /// while its share of the budget lasts.</summary>
    public static IReadOnlyList<Nest> For(Computation c, MachineInfo machine)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(machine);
        var channels = Channels(c, machine);
        if (Form(c) is not var (v, streamed, broadcast, u)) return channels is null ? [] : [channels];
        int lanes = machine.Fma.Lanes, need = machine.Fma.Accumulators, registers = machine.VectorRegisters;
        // columns that are not whole vectors end in a tail (the kernel masks it): mm 512 49 256 (ResNet-18's last 1x1
        // layer as a product) ran 75.5 GFLOPS with n:3+1 ... m:6u n:16v pack=B on the Zen 3, OpenBLAS 75.9, the search's 64.2
        if (c.Sizes[v] < lanes) return [];
        // the blocked reduction: the largest variable both inputs have (the first on a tie)
        int k = Enumerable.Range(0, c.Vars.Length).Where(x => c.IsReduction[x] && streamed.VarStrides[x] != 0 && broadcast.VarStrides[x] != 0 && c.Sizes[x] > 1)
            .OrderByDescending(x => c.Sizes[x]).DefaultIfEmpty(-1).First();
        List<Nest> tiles = channels is null ? [] : [channels];
        var full = Tile(c.Sizes[v] / lanes, c.Sizes[u], need, registers - RegisterTile.VectorsPerRow - RegisterTile.Spare);
        var lean = full is null ? Leanest(c.Sizes[v] / lanes, c.Sizes[u], need, registers) : Lean(c.Sizes[v] / lanes, c.Sizes[u], need, registers);
        if ((lean ?? full) is var (gv, gr) && Goto(c, machine, v, gv * lanes, u, gr, k, streamed, broadcast) is { } blis)
        {
            tiles.Add(blis);
            // where the whole reduction is one block, A's rows as given, read from the L2 by every column of tiles, can
            // cost less than their copy: on the Zen 3, hot, mm 3072 256 256 ran 93.2 GFLOPS so (89.7 with A packed), mm
            // 1536 512 256 94.9 (92.7), OpenBLAS 93.2 and 95.0; with k blocked, A packed won on six other products
            if (blis.Loops.Count(l => l.Var == k) == 2) tiles.Add(blis.WithPacked(1 << c.Tensors.IndexOf(streamed)));
        }
        // an image's tile with its rows' blocks outermost, each block of the broadcast operand read from the L1 over the
        // whole image: a plain convolution's 6 output channels (13.8 KB of weights) ran conv 64 56 56 64 3 3 at 0.87x
        // oneDNN on the Zen 3 (twice), the rows of the image outermost 0.65-0.81x; a pointwise one's image is its one
        // variable of pixels (v): on the Zen 5, conv 64 32 32 64 1 1 (planes 4 KiB apart) ran f:4+8 p:32 c:64 f:14u p:32v
        // at 0.97-0.98x oneDNN, the pixels' blocks outermost 0.81x
        var image = c.Output.Index.Select(d => d[0].Var).Where(x => x != u && x != v).ToList();
        bool imageRowsFirst = (image.Count > 0 || c.AsConv() is not null) && image.All(x => broadcast.VarStrides[x] == 0);
        foreach (var tile in new[] { lean, full }.Distinct())
            if (tile is var (vectors, rows))
            {
                // the last blocking found (the L2 block sized with the rows' reuse, where there is one: the lean tile's
                // fastest or within 1 % of it on 7 of BERT's 8 large products), then the unblocked nest (the fastest on
                // ResNet-18's 28- and 56-pixel layers, but 0.64x oneDNN on mm 1536 1536 3072, its k unblocked), then the others
                var nests = Blockings(c, machine, v, vectors * lanes, u, rows, k, streamed, broadcast);
                List<Nest> ordered = nests.Count > 1 ? [nests[^1], nests[0], .. Packed(c, streamed, nests[0], nests[^1]), .. nests[1..^1]] : [.. nests, .. Packed(c, streamed, [.. nests])];
                if (imageRowsFirst && Build(c, machine, v, vectors * lanes, u, rows, k, null, streamed, broadcast, rowsFirst: true) is { } rowsFirst)
                    ordered.Insert(Math.Min(1, ordered.Count), rowsFirst);
                foreach (var nest in ordered)
                    if (tiles.All(t => t.ScheduleKey != nest.ScheduleKey)) tiles.Add(nest);
            }
        return tiles;
    }

    /// <summary>The fewest steps of the sum (the product of its sizes) <see cref="Channels"/> wants: its tile's gathers and
    /// scatters of the output, about two per element, are paid once a sum. With 64 (a 1x1 convolution of 64 input channels,
    /// conv 64 56 56 256 1 1) the tile ran 0.63x oneDNN on the Zen 3, the tile along w 0.83x; with 147 (the 7x7 stem of 3
    /// channels) 0.51x against 0.71x; with 576 (conv 64 56 56 64 3 3) 0.92x against 0.86x.</summary>
    public const int MinChannelSteps = 512;

    /// <summary>The fewest output elements a channel has (pixels, batch) for <see cref="Channels"/>: its weights are copied in
    /// every run, each used once a pixel, and the copy reads memory (about 0.3 ns a float here against 2 x pixels FLOPs of
    /// use). With 49 (conv 512 9 9 512 3 3, 7 x 7 pixels, 9.4 MB of weights a run) the tile ran 0.47-0.60x ONNX Runtime on the
    /// Zen 3, its channels blocked for the L2 or not, the tile along w 0.87x; with 144 (conv 256 14 14 256 3 3) 0.85x against 0.63x.</summary>
    public const int MinChannelPixels = 128;

    /// <summary>
    /// A convolution's tile along its output channels: vectors of the channels f, rows of the output's innermost variable w
    /// (pixels), each pixel's input broadcast; the weights packed (<c>pack=W</c>, each block of channels laid out as the
    /// loops read it, the channels contiguous), the reduction innermost with its largest variable (the input channels)
    /// last; the tile starts from zero (<see cref="Jit.JitOptions.ZeroTiles"/>) and its output lanes, an image apart, are
    /// gathered, added and scattered after the sum (a few loads and stores per output element, against thousands of
    /// multiply-adds). Rows of 12 to 54 pixels fill vectors of w badly
    /// (a 12-pixel row is a vector and a half on AVX2); this tile's vectors are always full. For a contraction whose output's
    /// innermost variable w is in the last index of one input (the image: <c>w+s</c>, <c>2*w+s</c>) and not the other (the
    /// weights, packable), and an output variable f the weights have and the image has not, with at least a vector of it;
    /// null otherwise (a matrix product: its columns are already vectors), or for a sum shorter than
    /// <see cref="MinChannelSteps"/> or fewer pixels than <see cref="MinChannelPixels"/>. The tile is
    /// <see cref="Leanest"/>'s, its rows not cut down for the tail's sake.
    /// <code>
    /// conv 256 14 14 256 3 3 on the Zen 3 (2 vectors of 8 by 6 pixels):   f:16 h:12 w:2 r:3 s:3 c:64 c:4u w:6u f:16v pack=W
    /// </code>
    /// There, <c>run -s</c>: 75.1 GFLOPS, 0.85x ONNX Runtime, where the fastest tile along w ran 0.63x; conv 128 28 28 128 3 3
    /// 0.92x against 0.65x; conv 64 56 56 64 3 3 0.95x against 0.86x.
    /// </summary>
    public static Nest? AlongChannels(Computation c, MachineInfo machine)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(machine);
        return Channels(c, machine);
    }

    static Nest? Channels(Computation c, MachineInfo machine)
    {
        var o = c.Output.Index;
        if (o.Any(d => d.Length != 1)) return null;
        int w = o[^1][0].Var, lanes = machine.Fma.Lanes;
        // the sums by size, the largest (the input channels) last
        var sums = Enumerable.Range(0, c.Vars.Length).Where(x => c.IsReduction[x]).OrderBy(x => c.Sizes[x]).ThenBy(x => x).ToList();
        long steps = sums.Aggregate(1L, (n, x) => n * c.Sizes[x]);
        if (sums.Count == 0 || steps < MinChannelSteps) return null;
        foreach (var (image, weights) in new[] { (c.Left, c.Right), (c.Right, c.Left) })
        {
            var last = image.Index[^1];
            if (!last.Any(t => t.Var == w) || last.Length == 1 || weights.VarStrides[w] != 0 || !Nest.IsPackable(weights)) continue;
            int f = o.Select(d => d[0].Var).LastOrDefault(x => weights.VarStrides[x] != 0 && image.VarStrides[x] == 0, -1);
            long pixels = o.Select(d => d[0].Var).Where(x => x != f).Aggregate(1L, (n, x) => n * c.Sizes[x]);
            if (f < 0 || c.Sizes[f] < lanes || pixels < MinChannelPixels) continue;
            // rows with a tail as they come: 26 pixels in 6-pixel rows and a tail of 2 (conv 128 28 28 128 3 3: 0.88-0.91x
            // ONNX Runtime and oneDNN on the Zen 3), where fewer rows for the tail's sake left 2 pixels by 4 vectors (0.59-0.77x)
            if (Leanest(c.Sizes[f] / lanes, c.Sizes[w], machine.Fma.Accumulators, machine.VectorRegisters, fewerForTail: false) is not var (vectors, rows)) return null;
            int width = vectors * lanes;
            var loops = new List<string>();
            if (c.Sizes[f] > width) loops.Add(Loop(c, f, c.Sizes[f] / width, c.Sizes[f] % width));
            foreach (int x in o.Select(d => d[0].Var).Where(x => x != f && x != w)) loops.Add(Loop(c, x, c.Sizes[x]));
            if (c.Sizes[w] > rows) loops.Add(Loop(c, w, c.Sizes[w] / rows, c.Sizes[w] % rows));
            // the largest sum innermost, unrolled by 4 where it divides (conv 64 56 56 64 3 3 on the Zen 3: 0.95-0.96x oneDNN
            // against 0.92x, conv 128 28 28 128 3 3 0.92x against 0.87-0.88x), the others in the computation's order
            loops.AddRange(sums.Take(sums.Count - 1).Order().Select(x => Loop(c, x, c.Sizes[x])));
            int k = sums[^1];
            loops.AddRange(c.Sizes[k] % 4 == 0 && c.Sizes[k] >= 8 ? [Loop(c, k, c.Sizes[k] / 4), Loop(c, k, 4, annotation: 'u')] : [Loop(c, k, c.Sizes[k])]);
            loops.Add(Loop(c, w, rows, annotation: rows > 1 ? 'u' : ' '));
            loops.Add(Loop(c, f, width, annotation: 'v'));
            return loops.Count > Nest.MaxLoops ? null : Nest.Parse(c, $">{string.Join(' ', loops)} pack={weights.Name}");
        }
        return null;
    }

    /// <summary>The nests with the streamed operand packed (<c>pack=B</c>: each panel of it one run of consecutive lines), for
    /// a matrix product's plain 2-d operand only (a model's blocked weights are laid out once, at load). Its rows read a row
    /// of the matrix apart alias in the caches where that row is a multiple of 4 KiB: on mm 3072 1024 1536 the unblocked
    /// lean tile ran 0.79x the best library as given, 0.995x packed (the copy, 6 MB a run, timed with it); on mm 128 3072
    /// 768, whose 128 rows do not repay the copy, 0.80x as given, 0.77x packed. Measured beside the others, so the faster
    /// one is kept.</summary>
    static IEnumerable<Nest> Packed(Computation c, Tensor streamed, params Nest[] nests)
    {
        if (streamed.Index.Length != 2 || !Nest.IsPackable(streamed)) yield break;
        int bit = 1 << c.Tensors.IndexOf(streamed);
        foreach (var nest in nests) yield return nest.WithPacked(nest.Packed | bit);
    }

    /// <summary>A matrix product blocked as GotoBLAS and BLIS block it, both operands packed: k in blocks of kc whose panel of
    /// B (kc x the tile's width) fits half the L1d, m in blocks of mc whose panel of A (mc x kc) fits half the L2; inside
    /// them the tile's columns, then its rows, then the block's reduction unrolled by 4. Each panel of B is read from the
    /// L1d by every row tile of A's block, each block of A from the L2 by every column of tiles; the copies lay each out as
    /// the loops read it (<see cref="Nest.Packed"/>). Null for anything but a plain 2-d product, one whose operands fit
    /// half the L2 already, or where the caches are unknown or no block of 16 or more fits.
    /// <code>
    /// mm 3072 1024 1536 on the Zen 3 (6 x 16 tile; L1d 32 KiB, L2 512 KiB):   k:6 m:16 n:64 m:32 k:64 k:4u m:6u n:16v pack=A,B
    /// </code>
    /// There it ran 78-83 GFLOPS against OpenBLAS's 81-86 side by side, where the unblocked tile with B packed ran 64 and
    /// the machine's other tiles 39-75 (hot, medians); on mm 512 512 512 78.0 (OpenBLAS 80.4), on mm 512 2304 768 72.5
    /// (BLIS 78.4) against 61-65 for the unblocked tile.</summary>
    static Nest? Goto(Computation c, MachineInfo machine, int v, int width, int u, int rows, int k, Tensor streamed, Tensor broadcast)
    {
        if (c.Vars.Length != 3 || k < 0 || streamed.Index.Length != 2 || broadcast.Index.Length != 2 || !Nest.IsPackable(streamed) || !Nest.IsPackable(broadcast)
            || machine.Caches.L1dKib is not int l1 || machine.Caches.L2Kib is not int l2)
            return null;
        int sizeK = c.Sizes[k], sizeM = c.Sizes[u], sizeN = c.Sizes[v];
        if (((long)sizeM + sizeN) * sizeK * sizeof(float) <= l2 * 512L) return null; // in the L2 already: the copies would only cost
        int kc = Enumerable.Range(1, sizeK).Where(b => sizeK % b == 0 && (long)b * width * sizeof(float) <= l1 * 512L).DefaultIfEmpty(0).Max();
        if (kc < 16) return null;
        int mc = Enumerable.Range(rows, Math.Max(0, sizeM - rows + 1)).Where(b => sizeM % b == 0 && (long)b * kc * sizeof(float) <= l2 * 512L).DefaultIfEmpty(sizeM).Max();
        var loops = new List<string>();
        if (sizeK > kc) loops.Add(Loop(c, k, sizeK / kc));
        if (sizeM > mc) loops.Add(Loop(c, u, sizeM / mc));
        if (sizeN > width) loops.Add(Loop(c, v, sizeN / width, sizeN % width));
        if (mc > rows) loops.Add(Loop(c, u, mc / rows, mc % rows));
        if (kc % 4 == 0) loops.AddRange([Loop(c, k, kc / 4), Loop(c, k, 4, annotation: 'u')]);
        else loops.Add(Loop(c, k, kc));
        loops.Add(Loop(c, u, rows, annotation: rows > 1 ? 'u' : ' '));
        loops.Add(Loop(c, v, width, annotation: 'v'));
        if (loops.Count > Nest.MaxLoops) return null;
        return Nest.Parse(c, $">{string.Join(' ', loops)} pack={broadcast.Name},{streamed.Name}");
    }

    /// <summary>One loop of a schedule's compact form (<see cref="Nest.Serialize"/>): <c>var:size[+tail][u|v]</c>.</summary>
    static string Loop(Computation c, int var, int size, int tail = 0, char annotation = ' ') =>
        string.Create(CultureInfo.InvariantCulture, $"{c.Vars[var]}:{size}{(tail > 0 ? $"+{tail}" : "")}{(annotation == ' ' ? "" : annotation)}");

    /// <summary>The register tile of <paramref name="rows"/> by <paramref name="width"/> lanes with the whole reduction
    /// around it, then that reduction's variable <paramref name="k"/> blocked for each cache level (when it blocks).</summary>
    static List<Nest> Blockings(Computation c, MachineInfo machine, int v, int width, int u, int rows, int k, Tensor streamed, Tensor broadcast)
    {
        var plain = Build(c, machine, v, width, u, rows, k, null, streamed, broadcast);
        if (plain is null) return [];
        var tiles = new List<Nest> { plain };
        if (k < 0) return tiles;
        // two ways to size a level's block: the loops of the block inward fit (the reduction's own reuse), or the loops
        // from the block loop inward fit, the rows of the image or u's blocks among them (the streamed operand's block
        // reused from the cache by every row: on mm 128 3072 768, k blocked by 256 above m ran 157 GFLOPS where the
        // first way's k:48 ran 130 and the unblocked tile 145, oneDNN 170)
        int rowsStart = Enumerable.Range(0, plain.Count).First(i => c.IsReduction[plain[i].Var] || streamed.VarStrides[plain[i].Var] == 0);
        // the largest block below the whole reduction whose loops fit the capacity (the footprint grows with the block);
        // null when the whole reduction fits already or no block does
        Nest? Largest(bool reuse, long capacity)
        {
            long whole = reuse ? Footprint.Bytes(plain, rowsStart) : Footprint.Bytes(plain, First(plain, k));
            if (capacity <= 0 || whole <= capacity) return null;
            for (int b = c.Sizes[k] / 2; b >= 1; b--)
            {
                if (c.Sizes[k] % b != 0) continue;
                if (Build(c, machine, v, width, u, rows, k, b, streamed, broadcast) is not { } blocked) return null;
                int from = reuse ? First(blocked, k) + 1 : blocked.NextOfVar(First(blocked, k));
                if (Footprint.Bytes(blocked, from) <= capacity) return blocked;
            }
            return null;
        }
        foreach (bool reuse in new[] { false, true })
            foreach (int? kib in new[] { machine.Caches.L1dKib, machine.Caches.L2Kib })
                if (Largest(reuse, kib.GetValueOrDefault() * 1024L / 2) is { } blocked && tiles.All(t => t.ScheduleKey != blocked.ScheduleKey))
                    tiles.Add(blocked);
        // and the block whose loops fill the whole L1d, before the last found (so last in For's order): on mm 128 3072 768
        // on the Zen 5, k by 128 (a 32 KiB block of B, 37 KiB in all) ran 159.0 GFLOPS, 1.00x oneDNN, where half the L1d's
        // k by 64 ran 145.5 and the unblocked tile 136.1
        if (Largest(false, machine.Caches.L1dKib.GetValueOrDefault() * 1024L) is { } filling && tiles.All(t => t.ScheduleKey != filling.ScheduleKey))
            tiles.Insert(Math.Max(1, tiles.Count - 1), filling);
        return tiles;
    }

    /// <summary>The outermost loop of variable <paramref name="var"/> in <paramref name="nest"/>.</summary>
    static int First(Nest nest, int var) => Enumerable.Range(0, nest.Count).First(i => nest[i].Var == var);

    /// <summary>The output's innermost variable v, the input streamed along it and the other, and the tile's rows u; null
    /// when the computation has no such form.</summary>
    static (int V, Tensor Streamed, Tensor Broadcast, int U)? Form(Computation c)
    {
        var o = c.Output.Index;
        int v = o[^1][0].Var;
        foreach (var (streamed, broadcast) in new[] { (c.Left, c.Right), (c.Right, c.Left) })
        {
            // v alone, or v plus a sum's offsets (a convolution's row I[c,h+r,w+s]): contiguous along v either way
            var last = streamed.Index[^1];
            if (!last.Contains(new Term(v, 1)) || last.Any(t => t.Var != v && (t.Coefficient != 1 || !c.IsReduction[t.Var])) || broadcast.VarStrides[v] != 0) continue;
            // rows: the innermost output variable of the broadcast operand alone
            for (int d = o.Length - 2; d >= 0; d--)
            {
                int u = o[d][0].Var;
                if (broadcast.VarStrides[u] != 0 && streamed.VarStrides[u] == 0) return (v, streamed, broadcast, u);
            }
        }
        return null;
    }

    /// <summary>The tile (vectors of v, rows of u): divisors of <paramref name="vectorsOfV"/> and <paramref name="sizeOfU"/>,
    /// at least <paramref name="need"/> and at most <paramref name="budget"/> accumulators, the most of them, then the fewest
    /// loads per step of the reduction (a vector of the streamed operand per vector, a broadcast per row), then the most
    /// vectors; null when none fits.</summary>
    internal static (int Vectors, int Rows)? Tile(int vectorsOfV, int sizeOfU, int need, int budget)
    {
        (int, int)? best = null;
        for (int vec = 1; vec <= Math.Min(vectorsOfV, budget); vec++)
        {
            if (vectorsOfV % vec != 0) continue;
            for (int rows = Math.Min(sizeOfU, budget / vec); rows >= 1; rows--)
            {
                if (sizeOfU % rows != 0) continue;
                int acc = vec * rows;
                if (acc >= need && (best is not var (bv, br) || acc > bv * br || acc == bv * br && (vec + rows < bv + br || vec + rows == bv + br && vec > bv)))
                    best = (vec, rows);
                break;
            }
        }
        return best;
    }

    /// <summary><see cref="Lean"/>'s tile, or where none keeps every pipe busy, the lean one with the most accumulators down
    /// to half of them: 7-pixel rows of a 32-lane block on an AVX2 machine (16 registers, 8 accumulators needed) have a
    /// 7 x 1 tile and no other.</summary>
    static (int Vectors, int Rows)? Leanest(int vectorsOfV, int sizeOfU, int need, int registers, bool fewerForTail = true)
    {
        var tile = Lean(vectorsOfV, sizeOfU, need, registers, fewerForTail);
        for (int fewer = need - 1; tile is null && fewer >= (need + 1) / 2; fewer--) tile = Lean(vectorsOfV, sizeOfU, fewer, registers, fewerForTail);
        return tile;
    }

    /// <summary>The tile (vectors of v, rows of u) that loads the least per FMA, <c>1/rows + 1/vectors</c> of a load each,
    /// with at least <paramref name="need"/> accumulators and every value of a step of the reduction in the
    /// <paramref name="registers"/> (the accumulators, a vector of the streamed operand per vector, a broadcast and a
    /// spare); the rows need not divide u's size (the last block of rows is a tail, fewer rows taken where its idle FMA
    /// slots would be more than a sixteenth, unless <paramref name="fewerForTail"/> is false), the vectors divide
    /// <paramref name="vectorsOfV"/>; on a tie the fewer vectors. Null when none fits. On the Zen 5, 6 rows by 4 vectors
    /// (30 registers) where <see cref="Tile"/>'s 7 by 4 (33, one accumulator spilled) ran mm 128 3072 768 at 156 GFLOPS
    /// and the 28x28 128-channel layer at 206, this one 172-179 and 218 (oneDNN 170-180).</summary>
    internal static (int Vectors, int Rows)? Lean(int vectorsOfV, int sizeOfU, int need, int registers, bool fewerForTail = true)
    {
        (int Vectors, int Rows)? best = null;
        for (int vec = 1; vec <= vectorsOfV; vec++)
        {
            if (vectorsOfV % vec != 0) continue;
            int rows = Math.Min(sizeOfU, (registers - vec - RegisterTile.Spare) / vec);
            // a tail block of rows with too few accumulators waits on the FMA latency: fewer rows while the slots it
            // leaves idle are more than a sixteenth of u's (7 pixels: 5 rows and a tail of 2 by 4 vectors, 1.09-1.11 ms
            // on the 512-channel layer, not 6 and a tail of 1, 1.18-1.19; 56 rows of 2 vectors on an AVX2 machine keep
            // 6 and a tail of 2, its idle slots 4 of 112)
            while (fewerForTail && rows > 1 && sizeOfU % rows != 0 && (need - sizeOfU % rows * vec) * 16 > sizeOfU * vec) rows--;
            // 1/rows + 1/vec, compared across tiles as (rows + vec) / (rows * vec)
            if (rows < 1 || rows * vec < need) continue;
            if (best is not var (bv, br) || (long)(rows + vec) * (bv * br) < (long)(br + bv) * (rows * vec)) best = (vec, rows);
        }
        return best;
    }

    /// <summary>The most steps of a tile's innermost sum loops <see cref="Build"/> unrolls (a convolution's window of 3 x 3
    /// taps, each step the whole register tile's FMAs): loops of 3 steps cost a branch and an increment each 3 steps. On
    /// the Zen 3, ResNet-18's blocked 3x3 layers as nodes of the model, <c>r:3u s:3u</c> against <c>r:3 s:3</c>: the
    /// 7-pixel 512-channel layer's <c>w:7u e:8v</c> tile 2.84 against 3.30 ms (ONNX Runtime about 2.8), the 14-pixel
    /// layer's 2.43 against 2.49, the 56-pixel layer's 2.53 against 2.57.</summary>
    public const int UnrolledSteps = 9;

    /// <summary>How many of the innermost sum loops (<paramref name="sums"/>, outermost first) a tile of
    /// <paramref name="rows"/> rows of u by <paramref name="vectors"/> vectors unrolls: while their steps multiply to at
    /// most <see cref="UnrolledSteps"/>, never the blocked variable <paramref name="k"/> (its loop is long) nor a loop of
    /// one step, and only as many as leave registers for the broadcast values the unrolled steps share
    /// (<see cref="SharedLive"/>): the JIT keeps a value read by two steps in a register between them, and where the
    /// accumulators, the streamed vectors and those values pass the <paramref name="registers"/>, it spills. On the
    /// Zen 5 the stem's blocked 7x7 stride-2 tile <c>w:6u e:64v</c> ran 199 GFLOPS with its taps in a loop, 85-146 with
    /// <c>s:7u</c> (10 shared values: 24 + 4 + 10 registers); <c>w:4u e:64v</c> (16 + 4 + 6) 198 either way.</summary>
    static int Unrolled(Computation c, List<int> sums, int k, Tensor broadcast, int u, int rows, int vectors, int registers)
    {
        int count = 0;
        for (long steps = 1; count < sums.Count && sums[^(count + 1)] is var x && x != k && c.Sizes[x] > 1 && steps * c.Sizes[x] <= UnrolledSteps; count++)
            steps *= c.Sizes[x];
        while (count > 0 && rows * vectors + vectors + SharedLive(c, broadcast, u, rows, sums.GetRange(sums.Count - count, count)) > registers) count--;
        return count;
    }

    /// <summary>The most values of the broadcast operand that an unrolled block of the sum keeps live at once: the block's
    /// steps in order (the loops of <paramref name="unrolled"/>, outermost first), a value per row of u in each, a value
    /// live from its first read to its last where it is read more than once. A 3x3 window's taps along w over 7 rows
    /// share 6 (<c>I[c,h+r,w+s]</c>: row j at tap s+1 reads what row j+1 read at tap s); a matrix product's k, or a
    /// convolution's input channels, none.</summary>
    internal static int SharedLive(Computation c, Tensor broadcast, int u, int rows, IReadOnlyList<int> unrolled)
    {
        var first = new Dictionary<string, int>();
        var last = new Dictionary<string, int>();
        var at = new int[c.Vars.Length];
        int time = 0;
        void Steps(int depth)
        {
            if (depth < unrolled.Count)
            {
                for (int i = 0; i < c.Sizes[unrolled[depth]]; i++)
                {
                    at[unrolled[depth]] = i;
                    Steps(depth + 1);
                }
                return;
            }
            for (int j = 0; j < rows; j++, time++)
            {
                at[u] = j;
                var value = string.Join(',', broadcast.Index.Select(d => d.Sum(t => t.Coefficient * at[t.Var])));
                first.TryAdd(value, time);
                last[value] = time;
            }
        }
        Steps(0);
        var changes = first.Keys.Where(v => last[v] > first[v]).SelectMany(v => new[] { (Time: first[v], Change: 1), (Time: last[v], Change: -1) })
            .OrderBy(e => e.Time).ThenBy(e => e.Change);
        int live = 0, most = 0;
        foreach (var (_, change) in changes) most = Math.Max(most, live += change);
        return most;
    }

    /// <summary>The nest of the class comment: groups 1 to 6, <paramref name="block"/> the block of variable
    /// <paramref name="k"/> (null: unblocked); null when it would have more loops than a nest may.</summary>
    static Nest? Build(Computation c, MachineInfo machine, int v, int width, int u, int rows, int k, int? block, Tensor streamed, Tensor broadcast, bool rowsFirst = false)
    {
        var loops = new StringBuilder(">");
        int count = 0;
        void Add(int var, int size, char annotation = ' ', int tail = 0)
        {
            loops.Append(Loop(c, var, size, tail, annotation)).Append(' ');
            count++;
        }
        var output = c.Output.Index.Select(d => d[0].Var).ToList();
        // (with rowsFirst, u's blocks before everything)
        if (rowsFirst && c.Sizes[u] > rows) Add(u, c.Sizes[u] / rows, tail: c.Sizes[u] % rows);
        // 1: what the streamed operand has besides v (a convolution's block of output channels, a batch), then v's blocks
        foreach (int x in output.Where(x => x != v && x != u && streamed.VarStrides[x] != 0)) Add(x, c.Sizes[x]);
        if (c.Sizes[v] > width) Add(v, c.Sizes[v] / width, tail: c.Sizes[v] % width);
        // 2: the reduction's block loop
        if (block is { } b) Add(k, c.Sizes[k] / b);
        // 3: the rest of the output (the image's rows), then u's blocks
        foreach (int x in output.Where(x => x != v && x != u && streamed.VarStrides[x] == 0)) Add(x, c.Sizes[x]);
        if (!rowsFirst && c.Sizes[u] > rows) Add(u, c.Sizes[u] / rows, tail: c.Sizes[u] % rows);
        // 4: the reduction, the blocked variable's block in its place, its innermost loops but k's unrolled
        var sums = Enumerable.Range(0, c.Vars.Length).Where(x => c.IsReduction[x]).ToList();
        int unrolled = Unrolled(c, sums, k, broadcast, u, rows, width / machine.Fma.Lanes, machine.VectorRegisters);
        for (int i = 0; i < sums.Count; i++)
            Add(sums[i], sums[i] == k && block is { } kb ? kb : c.Sizes[sums[i]], i >= sums.Count - unrolled ? 'u' : ' ');
        // 5, 6: the register tile
        Add(u, rows, rows > 1 ? 'u' : ' ');
        Add(v, width, 'v');
        return count > Nest.MaxLoops ? null : Nest.Parse(c, loops.ToString());
    }
}
