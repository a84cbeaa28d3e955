using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LoopTune.Learning.Nn;

/// <summary>
/// Element-wise loops of the network library on <see cref="Vector{T}"/> (Adam's on <see cref="Vector512{T}"/>). Each gives, element for element, what the scalar
/// loop it replaces gives (the same operations in the same order on each element, no fused multiply-add), except the
/// reductions (<see cref="Sum"/>, <see cref="SumOfSquares"/>, <see cref="SumOfSquaredDeviations"/>), which add in double
/// over several lanes and so in another order than one running sum: equal to it up to double rounding. The loops are
/// compiled fully optimized from the first call (a learner's first seconds would otherwise run them unoptimized).
/// </summary>
static class Vec
{
    static int Width => Vector<float>.Count;

    static Vector<float> At(ReadOnlySpan<float> s, int i) => new(s[i..]);

    static Vector<float> At(Span<float> s, int i) => new(s[i..]);

    /// <summary>to[i] += from[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Add(Span<float> to, ReadOnlySpan<float> from)
    {
        Check(to.Length, from.Length);
        int i = 0;
        for (; i <= to.Length - Width; i += Width) (At(to, i) + At(from, i)).CopyTo(to[i..]);
        for (; i < to.Length; i++) to[i] += from[i];
    }

    /// <summary>to[i] += a[i] * b[i] (rounded after the product, as <c>to[i] += a[i] * b[i]</c> in C#).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddProduct(Span<float> to, ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Check(to.Length, a.Length);
        Check(to.Length, b.Length);
        int i = 0;
        for (; i <= to.Length - Width; i += Width) (At(to, i) + At(a, i) * At(b, i)).CopyTo(to[i..]);
        for (; i < to.Length; i++) to[i] += a[i] * b[i];
    }

    /// <summary>x[i] *= scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Scale(Span<float> x, float scale)
    {
        int i = 0;
        for (; i <= x.Length - Width; i += Width) (At(x, i) * scale).CopyTo(x[i..]);
        for (; i < x.Length; i++) x[i] *= scale;
    }

    /// <summary>y[i] = x[i] &gt; 0 ? x[i] : 0 (NaN and -0 give 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Relu(ReadOnlySpan<float> x, Span<float> y)
    {
        Check(y.Length, x.Length);
        int i = 0;
        for (; i <= x.Length - Width; i += Width)
        {
            var v = At(x, i);
            Vector.ConditionalSelect(Vector.GreaterThan(v, Vector<float>.Zero), v, Vector<float>.Zero).CopyTo(y[i..]);
        }
        for (; i < x.Length; i++) y[i] = x[i] > 0 ? x[i] : 0f;
    }

    /// <summary>dx[i] = x[i] &gt; 0 ? dy[i] : 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ReluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        Check(dx.Length, x.Length);
        Check(dx.Length, dy.Length);
        int i = 0;
        for (; i <= x.Length - Width; i += Width)
            Vector.ConditionalSelect(Vector.GreaterThan(At(x, i), Vector<float>.Zero), At(dy, i), Vector<float>.Zero).CopyTo(dx[i..]);
        for (; i < x.Length; i++) dx[i] = x[i] > 0 ? dy[i] : 0f;
    }

    /// <summary>y[i] = (a + x[i]) - b, in float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddThenSubtract(float a, ReadOnlySpan<float> x, float b, Span<float> y)
    {
        Check(y.Length, x.Length);
        var (va, vb) = (new Vector<float>(a), new Vector<float>(b));
        int i = 0;
        for (; i <= x.Length - Width; i += Width) (va + At(x, i) - vb).CopyTo(y[i..]);
        for (; i < x.Length; i++) y[i] = a + x[i] - b;
    }

    /// <summary>y[i] = x[i] - b, in float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Subtract(ReadOnlySpan<float> x, float b, Span<float> y)
    {
        Check(y.Length, x.Length);
        var vb = new Vector<float>(b);
        int i = 0;
        for (; i <= x.Length - Width; i += Width) (At(x, i) - vb).CopyTo(y[i..]);
        for (; i < x.Length; i++) y[i] = x[i] - b;
    }

    /// <summary>sums[r] = the float sum of row r's elements from column <paramref name="first"/> on, each row one running
    /// sum in column order (as a scalar loop), of a row-major matrix of <paramref name="cols"/> columns; four rows at a time,
    /// so that four independent sums are in flight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RunningRowSums(ReadOnlySpan<float> data, int cols, int first, Span<float> sums)
    {
        int rows = sums.Length;
        Check(rows * cols, data.Length);
        int r = 0;
        for (; r + 4 <= rows; r += 4)
        {
            ReadOnlySpan<float> a = data.Slice(r * cols, cols), b = data.Slice((r + 1) * cols, cols), c = data.Slice((r + 2) * cols, cols), d = data.Slice((r + 3) * cols, cols);
            float sa = 0, sb = 0, sc = 0, sd = 0;
            for (int j = first; j < cols; j++) (sa, sb, sc, sd) = (sa + a[j], sb + b[j], sc + c[j], sd + d[j]);
            (sums[r], sums[r + 1], sums[r + 2], sums[r + 3]) = (sa, sb, sc, sd);
        }
        for (; r < rows; r++)
        {
            float s = 0;
            foreach (float v in data.Slice(r * cols + first, cols - first)) s += v;
            sums[r] = s;
        }
    }

    /// <summary>The sum of x in double.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double Sum(ReadOnlySpan<float> x)
    {
        var acc = Vector<double>.Zero;
        int i = 0;
        for (; i <= x.Length - Width; i += Width)
        {
            Vector.Widen(At(x, i), out var lo, out var hi);
            acc += lo + hi;
        }
        double sum = Vector.Sum(acc);
        for (; i < x.Length; i++) sum += x[i];
        return sum;
    }

    /// <summary>The sum of x[i]^2 in double (each square exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double SumOfSquares(ReadOnlySpan<float> x)
    {
        var (a, b) = (Vector<double>.Zero, Vector<double>.Zero);
        int i = 0;
        for (; i <= x.Length - Width; i += Width)
        {
            Vector.Widen(At(x, i), out var lo, out var hi);
            (a, b) = (a + lo * lo, b + hi * hi);
        }
        double sum = Vector.Sum(a + b);
        for (; i < x.Length; i++) sum += (double)x[i] * x[i];
        return sum;
    }

    /// <summary>The sum of (x[i] - mean)^2 in double.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double SumOfSquaredDeviations(ReadOnlySpan<float> x, double mean)
    {
        var (a, b, m) = (Vector<double>.Zero, Vector<double>.Zero, new Vector<double>(mean));
        int i = 0;
        for (; i <= x.Length - Width; i += Width)
        {
            Vector.Widen(At(x, i), out var lo, out var hi);
            (lo, hi) = (lo - m, hi - m);
            (a, b) = (a + lo * lo, b + hi * hi);
        }
        double sum = Vector.Sum(a + b);
        for (; i < x.Length; i++) sum += (x[i] - mean) * (x[i] - mean);
        return sum;
    }

    /// <summary>Layer normalisation of one row: h[j] = (float)((x[j] - mean) * s) in double, then y[j] = w[j] h[j] + b[j]
    /// in float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Normalize(ReadOnlySpan<float> x, double mean, float s, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> h, Span<float> y)
    {
        int n = x.Length;
        Check(n, w.Length); Check(n, b.Length); Check(n, h.Length); Check(n, y.Length);
        var (vm, vs) = (new Vector<double>(mean), new Vector<double>((double)s));
        int j = 0;
        for (; j <= n - Width; j += Width)
        {
            Vector.Widen(At(x, j), out var lo, out var hi);
            var hj = Vector.Narrow((lo - vm) * vs, (hi - vm) * vs);
            hj.CopyTo(h[j..]);
            (At(w, j) * hj + At(b, j)).CopyTo(y[j..]);
        }
        for (; j < n; j++)
        {
            h[j] = (float)((x[j] - mean) * s);
            y[j] = w[j] * h[j] + b[j];
        }
    }

    /// <summary>One row of layer normalisation's backward pass: the parameter gradients (dw[j] += g[j] h[j], db[j] += g[j],
    /// in float) and the sums of dh = g w and dh h in double; returns those two sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static (double SumDh, double SumDhH) NormalizeGradients(ReadOnlySpan<float> g, ReadOnlySpan<float> h, ReadOnlySpan<float> w, Span<float> dw, Span<float> db)
    {
        int n = g.Length;
        Check(n, h.Length); Check(n, w.Length); Check(n, dw.Length); Check(n, db.Length);
        var (sg, sgh) = (Vector<double>.Zero, Vector<double>.Zero);
        int j = 0;
        for (; j <= n - Width; j += Width)
        {
            var (gj, hj) = (At(g, j), At(h, j));
            (At(dw, j) + gj * hj).CopyTo(dw[j..]);
            (At(db, j) + gj).CopyTo(db[j..]);
            Vector.Widen(gj, out var g0, out var g1);
            Vector.Widen(At(w, j), out var w0, out var w1);
            Vector.Widen(hj, out var h0, out var h1);
            var (d0, d1) = (g0 * w0, g1 * w1);
            sg += d0 + d1;
            sgh += d0 * h0 + d1 * h1;
        }
        double sumG = Vector.Sum(sg), sumGh = Vector.Sum(sgh);
        for (; j < n; j++)
        {
            dw[j] += g[j] * h[j];
            db[j] += g[j];
            double dh = (double)g[j] * w[j];
            sumG += dh;
            sumGh += dh * h[j];
        }
        return (sumG, sumGh);
    }

    /// <summary>d[j] = (float)(invStd ((double)g[j] w[j] - meanG - h[j] meanGh)), in double.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void NormalizeInputGradient(ReadOnlySpan<float> g, ReadOnlySpan<float> h, ReadOnlySpan<float> w, float invStd, double meanG, double meanGh, Span<float> d)
    {
        int n = g.Length;
        Check(n, h.Length); Check(n, w.Length); Check(n, d.Length);
        var (vs, vg, vgh) = (new Vector<double>((double)invStd), new Vector<double>(meanG), new Vector<double>(meanGh));
        int j = 0;
        for (; j <= n - Width; j += Width)
        {
            Vector.Widen(At(g, j), out var g0, out var g1);
            Vector.Widen(At(w, j), out var w0, out var w1);
            Vector.Widen(At(h, j), out var h0, out var h1);
            Vector.Narrow(vs * (g0 * w0 - vg - h0 * vgh), vs * (g1 * w1 - vg - h1 * vgh)).CopyTo(d[j..]);
        }
        for (; j < n; j++) d[j] = (float)(invStd * ((double)g[j] * w[j] - meanG - h[j] * meanGh));
    }

    /// <summary>One bias-corrected Adam step on every element in float, as torch.optim.Adam's on float32 parameters:
    /// m = b1 m + c1 g, v = b2 v + (c2 g) g, p = p - (step m) / (sqrt(v) / root2 + eps), each operation rounded to float in
    /// that order (no fused multiply-add), the same in the vector loop (512 bits where the processor has them: 16
    /// elements, a division and a square root each per element as the scalar loop) and its scalar tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AdamStep(Span<float> value, ReadOnlySpan<float> grad, Span<float> m, Span<float> v, float b1, float c1, float b2, float c2, float step, float root2, float eps)
    {
        int n = value.Length;
        Check(n, grad.Length); Check(n, m.Length); Check(n, v.Length);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var (vb1, vc1, vb2, vc2) = (Vector512.Create(b1), Vector512.Create(c1), Vector512.Create(b2), Vector512.Create(c2));
            var (vstep, vroot2, veps) = (Vector512.Create(step), Vector512.Create(root2), Vector512.Create(eps));
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var g = Vector512.Create(grad[i..]);
                var mi = vb1 * Vector512.Create(m[i..]) + vc1 * g;
                var vi = vb2 * Vector512.Create(v[i..]) + vc2 * g * g;
                mi.CopyTo(m[i..]);
                vi.CopyTo(v[i..]);
                (Vector512.Create(value[i..]) - vstep * mi / (Vector512.Sqrt(vi) / vroot2 + veps)).CopyTo(value[i..]);
            }
        }
        for (; i < n; i++)
        {
            float g = grad[i];
            float mi = b1 * m[i] + c1 * g, vi = b2 * v[i] + c2 * g * g;
            (m[i], v[i]) = (mi, vi);
            value[i] = value[i] - step * mi / (MathF.Sqrt(vi) / root2 + eps);
        }
    }

    static void Check(int expected, int length)
    {
        if (length != expected) throw new ArgumentException($"spans of {expected} and {length} elements");
    }
}
