namespace LoopTune.Ir;

/// <summary>
/// Where a nest's loops move each tensor, and the packed copies of inputs (<see cref="Nest.Packed"/>).
/// A tensor as given moves by its variable's stride times the loop's inner step. A packed input is laid out in the order
/// the loops that move it visit it: the innermost of them steps one element, each loop further out steps over
/// everything the loops inside it cover (their iterations, a tail counted as one). On <c>n:32 m:256 k:384 m:8u n:2u n:16v</c>
/// over <c>B[k,n]</c> (k = 384, n = 1024) the packed B is <c>[n:32][k:384][n':2][n'':16]</c>: k steps 32 floats, not 1024.
/// </summary>
public static class Layout
{
    /// <summary>[tensor][loop]: the elements one iteration of each loop moves each tensor (0: it does not).</summary>
    public static long[][] LoopStrides(Nest nest)
    {
        var c = nest.Computation;
        var strides = new long[c.Tensors.Length][];
        for (int t = 0; t < strides.Length; t++)
        {
            strides[t] = new long[nest.Count];
            long packed = 1;
            for (int level = nest.Count - 1; level >= 0; level--)
            {
                long plain = c.Tensors[t].VarStrides[nest[level].Var];
                if (plain == 0) continue;
                if (!nest.IsPacked(t)) strides[t][level] = plain * nest.InnerStep(level);
                else
                {
                    strides[t][level] = packed;
                    packed *= nest[level].Iterations;
                }
            }
        }
        return strides;
    }

    /// <summary>Floats in the packed copy of input <paramref name="t"/>: the product of the iterations of the loops that move it
    /// (at least the tensor's length; more where tails leave holes); with <paramref name="inside"/>, of the loops inside
    /// that level only: one block of <see cref="BlockLevel"/>.</summary>
    public static long PackedLength(Nest nest, int t, int inside = -1)
    {
        var tensor = nest.Computation.Tensors[t];
        return nest.Loops.Skip(inside + 1).Where(l => tensor.VarStrides[l.Var] != 0).Aggregate(1L, (n, l) => n * l.Iterations);
    }

    /// <summary>The fewest floats a block of <see cref="BlockLevel"/> holds: below it, a copy's call costs about what it moves.</summary>
    public const int MinBlockFloats = 256;

    /// <summary>
    /// The loop at the start of each of whose iterations packed input <paramref name="t"/> is copied a block at a time, as
    /// BLIS packs its panels: the block the loops inside it read, laid out as <see cref="LoopStrides"/> lays out the whole
    /// (so the inner loops step through it alike), into a buffer that stays in the caches while the loops inside read it
    /// again. -1: the whole input is copied before the loops start. It is the deepest level L such that
    /// <list type="bullet">
    /// <item>every loop from the outermost to L moves the input (each element is copied once a run, as a whole copy does);</item>
    /// <item>the loop after L, outside the output tile's hoisted loops, does not (it reads the block again: the reason to
    /// have it in the cache);</item>
    /// <item>a parallel loop, if any, is L or further out (each thread copies the blocks of its own iterations);</item>
    /// <item>a block holds at least <see cref="MinBlockFloats"/>.</item>
    /// </list>
    /// <code>
    /// k:6 m:16 n:64 m:32 k:64 k:4u m:6u n:16v pack=A,B   A[m,k] at m:16, 192 x 256 (the L2's); B[k,n] at k:6, 256 x 1024
    /// n:192 k:2 m:21+2 k:384 m:6u n:16v pack=B           B at k:2: 384 x 16 (24 KB), read by m's 22 tiles
    /// m:16 n:8 k:64 m:8u n:32v pack=B                    B: -1 (m, the outermost, reads all of B again)
    /// </code>
    /// The whole copy is written to memory and read back from it; blocks are not: on the Zen 3 (some 9 GB/s of copy), mm
    /// 128 3072 768's whole copies took a fifth of its run.
    /// </summary>
    public static int BlockLevel(Nest nest, int t)
    {
        ArgumentNullException.ThrowIfNull(nest);
        if (!nest.IsPacked(t)) return -1;
        var c = nest.Computation;
        var moves = c.Tensors[t].VarStrides;
        int hoist = nest.SpelledOutFrom;
        while (hoist > 0 && !nest[hoist - 1].IsSpelledOut && c.IsReduction[nest[hoist - 1].Var]) hoist--;
        int level = -1;
        while (level + 1 < hoist && moves[nest[level + 1].Var] != 0) level++;
        bool reused = level >= 0 && level + 1 < hoist;
        return reused && level >= nest.ParallelLoop && PackedLength(nest, t, level) >= MinBlockFloats ? level : -1;
    }
}

