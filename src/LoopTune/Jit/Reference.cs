using LoopTune.Ir;

namespace LoopTune.Jit;

/// <summary>The plain implementation every kernel is checked against: one loop per variable, in the computation's order,
/// no tiling, no vectors.</summary>
public static class Reference
{
    /// <summary>Output += Left * Right in float, the obvious way: one loop per variable, the last innermost.</summary>
    public static void Run(Computation c, Span<float> output, ReadOnlySpan<float> left, ReadOnlySpan<float> right)
    {
        Walk(c, 0, 0, 0, 0, output, left, right, [], []);
    }

    /// <summary>The exact result in double, and per output element the sum of magnitudes |c0| + sum |a*b| that bounds the
    /// rounding error of any float evaluation order (see <see cref="Tolerance"/>).</summary>
    public static (double[] Exact, double[] Magnitude) Exact(Computation c, ReadOnlySpan<float> output, ReadOnlySpan<float> left, ReadOnlySpan<float> right)
    {
        var exact = new double[c.Output.Length];
        var magnitude = new double[c.Output.Length];
        for (int i = 0; i < exact.Length; i++) { exact[i] = output[i]; magnitude[i] = Math.Abs(output[i]); }
        Walk(c, 0, 0, 0, 0, [], left, right, exact, magnitude);
        return (exact, magnitude);
    }

    /// <summary>The loop over variable <paramref name="v"/> at offsets (o, l, r); in double when <paramref name="output"/>
    /// is empty (into exact and magnitude), else in float.</summary>
    static void Walk(Computation c, int v, long o, long l, long r, Span<float> output, ReadOnlySpan<float> left, ReadOnlySpan<float> right,
                     double[] exact, double[] magnitude)
    {
        long so = c.Output.VarStrides[v], sl = c.Left.VarStrides[v], sr = c.Right.VarStrides[v];
        int n = c.Sizes[v];
        if (v < c.Sizes.Length - 1)
        {
            for (int i = 0; i < n; i++) Walk(c, v + 1, o + i * so, l + i * sl, r + i * sr, output, left, right, exact, magnitude);
            return;
        }
        for (int i = 0; i < n; i++, o += so, l += sl, r += sr)
        {
            if (output.Length > 0) { output[(int)o] += left[(int)l] * right[(int)r]; continue; }
            double p = (double)left[(int)l] * right[(int)r];
            exact[o] += p;
            magnitude[o] += Math.Abs(p);
        }
    }

    /// <summary>Relative error bound for float summation of n terms in any order: 2 (n + 2) 2^-24, the classic
    /// gamma_n bound with a safety factor of two. An element passes when |got - exact| &lt;= Tolerance * magnitude.</summary>
    public static double Tolerance(Computation c)
    {
        double n = 1;
        for (int v = 0; v < c.Sizes.Length; v++) if (c.IsReduction[v]) n *= c.Sizes[v];
        return 2 * (n + 2) * Math.Pow(2, -24);
    }
}
