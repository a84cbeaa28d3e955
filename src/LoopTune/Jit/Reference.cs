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

    /// <summary>Floating-point operations above which a check compares a sample of the output (<see cref="SampleSize"/>
    /// elements) instead of every element: the exact result of every element costs as much as the computation, in scalar
    /// double arithmetic (seconds for a 1024^3 matmul, minutes for 4096^3).</summary>
    public const double SampleAbove = 2e8;

    /// <summary>Output elements a sampled check compares: random ones, the first and the last.</summary>
    public const int SampleSize = 2048;

    /// <summary>The output elements a check of <paramref name="c"/> compares: all of them, or (above <see cref="SampleAbove"/>)
    /// <see cref="SampleSize"/> drawn with <paramref name="seed"/>, the first and the last among them, in order.</summary>
    public static long[] CheckedElements(Computation c, int seed = 7)
    {
        ArgumentNullException.ThrowIfNull(c);
        long n = c.Output.Length;
        if (c.Flops <= SampleAbove || n <= SampleSize) return [.. Enumerable.Range(0, (int)n).Select(i => (long)i)];
        var rng = new Random(seed);
        var set = new SortedSet<long> { 0, n - 1 };
        while (set.Count < SampleSize) set.Add(rng.NextInt64(n));
        return [.. set];
    }

    /// <summary>Fills <paramref name="span"/> with uniform random values in [lo, hi) from a xorshift64* stream seeded from
    /// <paramref name="rng"/>: a nanosecond an element, so the buffers of a 4096^3 matmul (200 MB) fill in a fraction of a
    /// second rather than a tuning's whole budget.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] // one call fills 200 MB: no tier-0 code
    public static void FillUniform(Span<float> span, Random rng, float lo = -1, float hi = 1)
    {
        ArgumentNullException.ThrowIfNull(rng);
        ulong x = (ulong)rng.NextInt64() | 1;
        float scale = (hi - lo) / (1 << 24);
        for (int i = 0; i < span.Length; i++)
        {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            span[i] = lo + scale * (uint)((x * 2685821657736338717UL) >> 40);
        }
    }

    /// <summary>The exact results (in double) and magnitudes of the output elements <paramref name="elements"/> (indices into
    /// the output), each summed over every combination of the reduction variables: what <see cref="Exact"/> gives for
    /// those elements, at the cost of those elements alone. With <paramref name="sizes"/>, each reduction variable runs over
    /// its first sizes[v] values only (the partial sums a slice of an outer reduction loop leaves).</summary>
    public static (double[] Exact, double[] Magnitude) ExactAt(Computation c, IReadOnlyList<long> elements, ReadOnlySpan<float> output,
        ReadOnlySpan<float> left, ReadOnlySpan<float> right, IReadOnlyList<int>? sizes = null)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(elements);
        int n = c.Sizes.Length;
        var reductions = Enumerable.Range(0, n).Where(v => c.IsReduction[v]).ToArray();
        var exact = new double[elements.Count];
        var magnitude = new double[elements.Count];
        int last = reductions.Length - 1;
        var limit = reductions.Select(v => (sizes ?? c.Sizes)[v]).ToArray();
        var leftStep = reductions.Select(v => c.Left.VarStrides[v]).ToArray();
        var rightStep = reductions.Select(v => c.Right.VarStrides[v]).ToArray();
        var at = new int[reductions.Length];
        for (int e = 0; e < elements.Count; e++)
        {
            long o = elements[e], l = 0, r = 0;
            for (int v = 0; v < n; v++)
            {
                if (c.IsReduction[v] || c.Output.VarStrides[v] == 0) continue;
                long x = o / c.Output.VarStrides[v] % c.Sizes[v];
                (l, r) = (l + x * c.Left.VarStrides[v], r + x * c.Right.VarStrides[v]);
            }
            double sum = output[(int)o], mag = Math.Abs(output[(int)o]);
            if (last < 0)
            {
                double p = (double)left[(int)l] * right[(int)r];
                (exact[e], magnitude[e]) = (sum + p, mag + Math.Abs(p));
                continue;
            }
            Array.Clear(at);
            while (true)
            {
                // the outer reductions fix a base; the innermost one runs as a strided dot product
                long li = l, ri = r;
                for (int i = 0; i < last; i++) (li, ri) = (li + at[i] * leftStep[i], ri + at[i] * rightStep[i]);
                for (int t = 0; t < limit[last]; t++, li += leftStep[last], ri += rightStep[last])
                {
                    double p = (double)left[(int)li] * right[(int)ri];
                    sum += p;
                    mag += Math.Abs(p);
                }
                int k = last - 1;
                for (; k >= 0 && ++at[k] == limit[k]; k--) at[k] = 0;
                if (k < 0) break;
            }
            (exact[e], magnitude[e]) = (sum, mag);
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
}
