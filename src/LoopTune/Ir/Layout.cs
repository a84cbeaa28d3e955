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
    /// (at least the tensor's length; more where tails leave holes).</summary>
    public static long PackedLength(Nest nest, int t)
    {
        var tensor = nest.Computation.Tensors[t];
        return nest.Loops.Where(l => tensor.VarStrides[l.Var] != 0).Aggregate(1L, (n, l) => n * l.Iterations);
    }
}

