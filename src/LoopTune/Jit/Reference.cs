using LoopTune.Ir;

namespace LoopTune.Jit;

/// <summary>The plain implementation every kernel is checked against: one loop per variable, in the computation's order,
/// no tiling, no vectors.</summary>
public static class Reference
{
    /// <summary>Output += Left * Right in float, the obvious way.</summary>
    public static void Run(Computation c, Span<float> output, ReadOnlySpan<float> left, ReadOnlySpan<float> right)
    {
        foreach (var (o, l, r) in Points(c)) output[(int)o] += left[(int)l] * right[(int)r];
    }

    /// <summary>The exact result in double, and per output element the sum of magnitudes |c0| + sum |a*b| that bounds the
    /// rounding error of any float evaluation order (see <see cref="Tolerance"/>).</summary>
    public static (double[] Exact, double[] Magnitude) Exact(Computation c, ReadOnlySpan<float> output, ReadOnlySpan<float> left, ReadOnlySpan<float> right)
    {
        var exact = new double[c.Output.Length];
        var magnitude = new double[c.Output.Length];
        for (int i = 0; i < exact.Length; i++) { exact[i] = output[i]; magnitude[i] = Math.Abs(output[i]); }
        foreach (var (o, l, r) in Points(c))
        {
            double p = (double)left[(int)l] * right[(int)r];
            exact[o] += p;
            magnitude[o] += Math.Abs(p);
        }
        return (exact, magnitude);
    }

    /// <summary>Relative error bound for float summation of n terms in any order: 2 (n + 2) 2^-24, the classic
    /// gamma_n bound with a safety factor of two. An element passes when |got - exact| &lt;= Tolerance * magnitude.</summary>
    public static double Tolerance(Computation c)
    {
        double n = 1;
        for (int v = 0; v < c.Sizes.Length; v++) if (c.IsReduction[v]) n *= c.Sizes[v];
        return 2 * (n + 2) * Math.Pow(2, -24);
    }

    /// <summary>The (output, left, right) element indices of every iteration point, last variable fastest.</summary>
    public static IEnumerable<(long Output, long Left, long Right)> Points(Computation c)
    {
        var sizes = c.Sizes;
        var idx = new int[sizes.Length];
        var s = c.Tensors.Select(t => t.VarStrides).ToArray();
        while (true)
        {
            long o = 0, l = 0, r = 0;
            for (int v = 0; v < idx.Length; v++) { o += s[0][v] * idx[v]; l += s[1][v] * idx[v]; r += s[2][v] * idx[v]; }
            yield return (o, l, r);
            int d = idx.Length - 1;
            while (d >= 0 && ++idx[d] == sizes[d]) idx[d--] = 0;
            if (d < 0) yield break;
        }
    }
}
