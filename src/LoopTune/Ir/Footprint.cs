namespace LoopTune.Ir;

/// <summary>
/// How much data a part of a nest touches: what cache blocking sizes its blocks by. The loops from position
/// <c>from</c> inward run over a box of each variable's values (the extent of the variable's outermost loop among them,
/// 1 for a variable with none); each tensor's part of it is the product, over its dimensions, of the index's range
/// (<c>h+r</c> ranges over extent(h) + extent(r) - 1 values), capped at the dimension's size.
/// <code>
/// mm 1024 1024 1024, n:32 m:128 k:1024 m:8u n:2u n:16v
/// Bytes(nest, 2): k 1024, m 8, n 32: A 8 x 1024 + B 1024 x 32 + C 8 x 32 floats = 164,864 bytes
/// </code>
/// </summary>
public static class Footprint
{
    /// <summary>Bytes (float32) of the three tensors that one iteration of the loops above <paramref name="from"/> touches.</summary>
    public static long Bytes(Nest nest, int from)
    {
        ArgumentNullException.ThrowIfNull(nest);
        ArgumentOutOfRangeException.ThrowIfNegative(from);
        var c = nest.Computation;
        var extent = new long[c.Vars.Length];
        Array.Fill(extent, 1);
        var seen = new bool[c.Vars.Length];
        for (int i = from; i < nest.Count; i++)
            if (!seen[nest[i].Var])
            {
                seen[nest[i].Var] = true;
                extent[nest[i].Var] = nest.Extent(i);
            }
        long total = 0;
        foreach (var t in c.Tensors)
        {
            long n = 1;
            for (int d = 0; d < t.Index.Length; d++)
                n *= Math.Min(t.Shape[d], t.Index[d].Sum(term => term.Coefficient * (extent[term.Var] - 1)) + 1);
            total += n;
        }
        return total * sizeof(float);
    }
}
