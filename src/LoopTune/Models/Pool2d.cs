using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LoopTune.Jit;

namespace LoopTune.Models;

/// <summary>
/// A 2-d <c>MaxPool</c> or <c>AveragePool</c> over NCHW (ONNX's semantics): windows of the kernel at the strides,
/// starting <c>pads</c> before the input (asymmetric pads, ceil_mode through the output sizes of <see cref="Window"/>);
/// padding never wins a max; an average divides by the window's elements inside the input, or with
/// <c>count_include_pad</c> by those inside the padded input (a ceil_mode window may reach past the end pad: that
/// part is not counted). Dilation 1. Each output row is made in two steps: the window's input rows reduced into one
/// row, then the reduction of every window of kw columns inside that row (both vectorised over contiguous floats), of which
/// the output columns take every sw-th at once (<see cref="Strided.Copy"/>; an average then scaled), and a column whose
/// window the padding cuts reduces its own columns.
/// </summary>
public sealed class Pool2d
{
    readonly bool max, countPad;
    readonly int kh, kw, sh, sw, top, left, bottom, right, h, w, oh, ow;
    /// <summary>Each thread's reduced row and its windows' reductions.</summary>
    (float[] Row, float[] Slide)[] scratch = [];

    /// <summary>A pool of <paramref name="window"/> over planes of <paramref name="inputH"/> x <paramref name="inputW"/>;
    /// dilations other than 1 are an <see cref="ArgumentException"/>.</summary>
    public Pool2d(bool max, Window window, bool countIncludePad, long inputH, long inputW)
    {
        ArgumentNullException.ThrowIfNull(window);
        if (window.Kernel.Length != 2) throw new ArgumentException($"a {window.Kernel.Length}-d pool (only 2-d ones run)");
        if (window.Dilations.Any(d => d != 1)) throw new ArgumentException($"dilations {ModelShapes.Format(window.Dilations)} (only 1 runs)");
        (this.max, countPad) = (max, countIncludePad);
        (kh, kw, sh, sw) = ((int)window.Kernel[0], (int)window.Kernel[1], (int)window.Strides[0], (int)window.Strides[1]);
        (top, left, bottom, right) = ((int)window.PadsBegin[0], (int)window.PadsBegin[1], (int)window.PadsEnd[0], (int)window.PadsEnd[1]);
        (h, w) = (checked((int)inputH), checked((int)inputW));
        var o = window.OutputSizes([inputH, inputW]);
        (oh, ow) = ((int)o[0], (int)o[1]);
    }

    /// <summary>Output rows and columns.</summary>
    public (int Rows, int Columns) Output => (oh, ow);

    /// <summary>Pools every plane of x (planes of h*w floats) into y (planes of oh*ow), the planes split among
    /// <paramref name="threads"/> threads (<see cref="TeamWork"/>). One run at a time.</summary>
    public void Run(float[] x, float[] y, int threads = 1)
    {
        if (kh == h && kw == w && top == 0 && left == 0 && bottom == 0 && right == 0) // one window, the whole plane: ResNet's last pool
        {
            TeamWork.For(threads, y.Length, 16, (_, start, end) =>
            {
                if (max) for (int p = start; p < end; p++) y[p] = ElementwiseOps.Max(x.AsSpan(p * h * w, h * w));
                else ElementwiseOps.PlaneMeans(x.AsSpan(start * h * w, (end - start) * h * w), y.AsSpan(start, end - start), h * w);
            });
            return;
        }
        if (scratch.Length < threads) scratch = [.. Enumerable.Range(0, threads).Select(_ => (new float[w], new float[w]))];
        TeamWork.For(threads, x.Length / (h * w), 1, (part, start, end) => Planes(x, y, start, end, scratch[part].Row, scratch[part].Slide));
    }

    /// <summary>A max pool of x in a blocked layout, <c>[G, h, w, E]</c> from element <paramref name="start"/> (a blocked
    /// convolution's output left as its kernel wrote it, <see cref="ConvOp.RunBlocked"/>), into y in NCHW,
    /// <c>y[E*g+e, oy, ox]</c>: each output pixel the max of its window's pixels, E channels at once in vectors, a row of
    /// pixels at a time, then transposed into y's planes (<see cref="ConvOp.Transpose"/>). With <paramref name="relu"/>, the
    /// pool of max(x, 0) (a Relu between the convolution and the pool): the max of a window and 0, the same numbers, on a
    /// quarter as many. The rows of (g, oy) are split among <paramref name="threads"/> threads. Only a MaxPool (an
    /// <see cref="InvalidOperationException"/> otherwise).</summary>
    public void RunBlocked(float[] x, int start, int groups, int e, float[] y, bool relu, int threads = 1)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (!max) throw new InvalidOperationException("only a MaxPool pools a blocked layout");
        if ((long)start + (long)groups * h * w * e > x.Length || (long)groups * e * oh * ow != y.Length)
            throw new ArgumentException($"x holds {x.Length - start} floats from {start} and y {y.Length}; [{groups},{h},{w},{e}] pools into {groups * e} planes of {oh}x{ow}");
        if (blockedRows.Length < threads) blockedRows = [.. Enumerable.Range(0, threads).Select(_ => new float[ow * e])];
        TeamWork.For(threads, groups * oh, 1, (part, first, end) =>
        {
            for (int row = first; row < end; row++) BlockedRow(x.AsSpan(start + row / oh * h * w * e, h * w * e), row % oh, e, relu, blockedRows[part],
                y.AsSpan(row / oh * e * oh * ow + row % oh * ow));
        });
    }

    /// <summary><see cref="RunBlocked(float[], int, int, int, float[], bool, int)"/> into the interior of an activation kept in
    /// blocks (<paramref name="to"/> from <paramref name="toStart"/>, laid out as <paramref name="layout"/>, of the pool's
    /// output shape): each pooled row of E channels written as the layout's blocks of channels, no transpose.</summary>
    public void RunBlocked(float[] x, int start, int groups, int e, float[] to, int toStart, BlockedLayout layout, bool relu, int threads = 1)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(to);
        ArgumentNullException.ThrowIfNull(layout);
        if (!max) throw new InvalidOperationException("only a MaxPool pools a blocked layout");
        if ((long)start + (long)groups * h * w * e > x.Length || layout.N * layout.C != (long)groups * e || layout.H != oh || layout.W != ow || to.Length - toStart < layout.Length)
            throw new ArgumentException($"x holds {x.Length - start} floats from {start}; [{groups},{h},{w},{e}] pools into {groups * e} planes of {oh}x{ow}, not {layout}");
        TeamWork.For(threads, groups * oh, 1, (_, first, end) => PooledRows(x, start, e, to, toStart, layout, relu, first, end));
    }

    /// <summary>Rows [first, end) of (group, output row) of <see cref="RunBlocked(float[], int, int, int, float[], int, BlockedLayout, bool, int)"/>,
    /// compiled fully optimized from the first call (a pass calls it a few times: as tier-0 code its copies took 0.16 ms
    /// of ResNet-18's stem pool at two threads, against 0.10 for the whole pool).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void PooledRows(float[] x, int start, int e, float[] to, int toStart, BlockedLayout layout, bool relu, int first, int end)
    {
        int b = layout.Block;
        var (_, group, pitch, _) = layout.Strides;
        for (int r = first; r < end; r++)
        {
            int g = r / oh, oy = r % oh;
            // the pooled row's channels e*g + i0 .. + width: one block of the layout (b divides e, or e divides b), pooled
            // straight into its row
            for (int i0 = 0, width = Math.Min(b, e); i0 < e; i0 += width)
            {
                int c = g * e + i0;
                long at = toStart + layout.Interior + c / b * group + oy * pitch + c % b;
                BlockedRow(x.AsSpan(start + g * h * w * e, h * w * e), oy, e, relu, to.AsSpan((int)at, (ow - 1) * b + width), default, i0, width, b);
            }
        }
    }

    /// <summary>Each thread's row of pooled pixels, [ow, E], before its transpose.</summary>
    float[][] blockedRows = [];

    /// <summary>Output row <paramref name="oy"/> of one group of <see cref="RunBlocked"/>: <paramref name="group"/> is its
    /// [h, w, E] input, <paramref name="to"/> its first output pixel in channel plane E*g. Each vector of E channels of a
    /// pixel is reduced over the window in a register, then stored once. With <paramref name="count"/>, only channels
    /// [<paramref name="c0"/>, c0 + count) of each pixel, into <paramref name="row"/> <paramref name="pitch"/> floats a
    /// pixel (a block of another width's layout, <see cref="PooledRows"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void BlockedRow(ReadOnlySpan<float> group, int oy, int e, bool relu, Span<float> row, Span<float> to, int c0 = 0, int count = 0, int pitch = 0)
    {
        (count, pitch) = count == 0 ? (e, e) : (count, pitch);
        int y0 = oy * sh - top, first = Math.Max(y0, 0), last = Math.Min(y0 + kh, h);
        ref float x = ref MemoryMarshal.GetReference(group);
        ref float r = ref MemoryMarshal.GetReference(row);
        bool wide = Vector512.IsHardwareAccelerated && count % Vector512<float>.Count == 0 && c0 % Vector512<float>.Count == 0;
        bool half = !wide && count % Vector256<float>.Count == 0 && c0 % Vector256<float>.Count == 0;
        for (int ox = 0; ox < ow; ox++)
        {
            int x0 = ox * sw - left, from = Math.Max(x0, 0), until = Math.Min(x0 + kw, w);
            // a window the padding covers whole gives the lowest float, as Run does (the Relu came before the pool)
            float start = relu && first < last && from < until ? 0 : float.MinValue;
            nuint at = (nuint)(ox * pitch); // channel i of the pixel at at + i - c0
            if (wide)
                for (int i = c0; i < c0 + count; i += Vector512<float>.Count)
                {
                    var acc = Vector512.Create(start);
                    for (int yy = first; yy < last; yy++)
                    {
                        nuint p = (nuint)((yy * w + from) * e + i), step = (nuint)e;
                        // a window's row of three pixels unrolled (ResNet's 3x3 pools): its stem pool took 0.057 ms at two
                        // threads (0.113 at one) with its input in L3, 0.070 (0.130) with the loop
                        if (until - from == 3)
                            acc = Vector512.Max(acc, Vector512.Max(Vector512.Max(Vector512.LoadUnsafe(ref x, p), Vector512.LoadUnsafe(ref x, p + step)), Vector512.LoadUnsafe(ref x, p + 2 * step)));
                        else
                            for (int xx = from; xx < until; xx++, p += step) acc = Vector512.Max(acc, Vector512.LoadUnsafe(ref x, p));
                    }
                    acc.StoreUnsafe(ref r, at + (nuint)(i - c0));
                }
            else if (half)
                for (int i = c0; i < c0 + count; i += Vector256<float>.Count)
                {
                    var acc = Vector256.Create(start);
                    for (int yy = first; yy < last; yy++)
                        for (int xx = from; xx < until; xx++) acc = Vector256.Max(acc, Vector256.LoadUnsafe(ref x, (nuint)((yy * w + xx) * e + i)));
                    acc.StoreUnsafe(ref r, at + (nuint)(i - c0));
                }
            else
                for (int i = c0; i < c0 + count; i++)
                {
                    float acc = start;
                    for (int yy = first; yy < last; yy++)
                        for (int xx = from; xx < until; xx++) acc = Math.Max(acc, group[(yy * w + xx) * e + i]);
                    row[ox * pitch + i - c0] = acc;
                }
        }
        if (!to.IsEmpty) ConvOp.Transpose(row, ow, e, to, oh * ow);
    }

    /// <summary>Planes [start, end) of <see cref="Run"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void Planes(ReadOnlySpan<float> x, Span<float> y, int start, int end, float[] row, float[] slide)
    {
        for (int p = start; p < end; p++)
            for (int oy = 0; oy < oh; oy++)
                OutputRow(x.Slice(p * h * w, h * w), y.Slice((p * oh + oy) * ow, ow), oy, row, slide);
    }

    /// <summary>Output row <paramref name="oy"/> of one plane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void OutputRow(ReadOnlySpan<float> plane, Span<float> output, int oy, float[] row, float[] slide)
    {
        int y0 = oy * sh - top, first = Math.Max(y0, 0), last = Math.Min(y0 + kh, h);
        if (last <= first)
        {
            output.Fill(max ? float.MinValue : 0);
            return;
        }
        Fold(plane[(first * w)..(last * w)], last - first, w, row.AsSpan(0, w));
        int rows = countPad ? Math.Min(y0 + kh, h + bottom) - y0 : last - first;
        Slide(row, slide);
        // the columns whose window lies inside the row take every sw-th window's reduction at once; the others one by one
        var (from, to) = Strided.Reach(-left, sw, w - kw + 1, ow); // windows starting at x0 = sw*ox-left in [0, w-kw]
        int inner0 = Math.Min(ow, from), inner1 = Math.Max(inner0, to);
        var inner = output[inner0..inner1];
        Strided.Copy(slide, inner0 * sw - left, sw, inner);
        if (!max) Scale(inner, 1f / (rows * kw));
        for (int ox = 0; ox < inner0; ox++) output[ox] = Edge(row, ox, rows);
        for (int ox = inner1; ox < ow; ox++) output[ox] = Edge(row, ox, rows);
    }

    /// <summary>Output column <paramref name="ox"/> of a window cut by the padding, from the reduced row.</summary>
    float Edge(float[] row, int ox, int rows)
    {
        int x0 = ox * sw - left, from = Math.Max(x0, 0), to = Math.Min(x0 + kw, w);
        float acc = Clipped(row, from, to);
        return max ? acc : acc / (rows * (countPad ? Math.Min(x0 + kw, w + right) - x0 : to - from));
    }

    /// <summary><c>x *= factor</c>, element-wise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Scale(Span<float> x, float factor)
    {
        int i = 0, lanes = Vector<float>.Count;
        var f = new Vector<float>(factor);
        for (; i <= x.Length - lanes; i += lanes) (new Vector<float>(x[i..]) * f).CopyTo(x[i..]);
        for (; i < x.Length; i++) x[i] *= factor;
    }

    /// <summary>The reduction of the row's columns [from, to) (a window cut by the padding; none: max's lowest, or 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    float Clipped(float[] row, int from, int to)
    {
        if (to <= from) return max ? float.MinValue : 0;
        float acc = row[from];
        for (int x = from + 1; x < to; x++) acc = max ? Math.Max(acc, row[x]) : acc + row[x];
        return acc;
    }

    /// <summary><c>slide[x]</c> = the reduction of the row's columns [x, x + kw), for every window inside the row.</summary>
    void Slide(float[] row, float[] slide)
    {
        int windows = Math.Max(w - kw + 1, 0);
        Fold(row.AsSpan(0, windows + kw - 1), kw, 1, slide.AsSpan(0, windows));
    }

    /// <summary><c>to[i]</c> = the max (or the sum) of <c>from[k*step + i]</c> over k in [0, count) (<paramref name="to"/>
    /// apart from <paramref name="from"/>: a lane may be written twice): a pool window's rows
    /// (step: a row) or its columns (step 1), reduced in one pass with each vector of <paramref name="to"/> in a register
    /// and stored once (the last vector overlapping the one before it when the length is not a multiple of the width).
    /// Before, a row was copied and combined with each further row in turn, a pass of sliced spans each: the stem's pool
    /// of ResNet-18 took 0.34 ms on the Zen 5, 0.19 now (hot, alone), ONNX Runtime's 0.10-0.13 in its pass.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void Fold(ReadOnlySpan<float> from, int count, int step, Span<float> to)
    {
        int n = to.Length;
        if (n == 0) return;
        if (count < 1 || (long)(count - 1) * step + n > from.Length)
            throw new ArgumentException($"{count} spans of {n} floats {step} apart need {(long)(count - 1) * step + n} floats, not {from.Length}");
        ref float src = ref MemoryMarshal.GetReference(from);
        ref float dst = ref MemoryMarshal.GetReference(to);
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count) Fold512(ref src, count, step, n, ref dst);
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count) Fold256(ref src, count, step, n, ref dst);
        else
            for (int i = 0; i < n; i++)
            {
                float acc = Unsafe.Add(ref src, i);
                for (int k = 1; k < count; k++) acc = max ? Math.Max(acc, Unsafe.Add(ref src, k * step + i)) : acc + Unsafe.Add(ref src, k * step + i);
                Unsafe.Add(ref dst, i) = acc;
            }
    }

    /// <summary><see cref="Fold"/> in 512-bit vectors, n at least one vector (<see cref="Fold256"/> the same in 256-bit ones: the
    /// interface both implement is not public).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void Fold512(ref float src, int count, int step, int n, ref float dst)
    {
        bool max = this.max;
        // the last vector ends at n, overlapping the one before it
        for (int i = 0; ; i = Math.Min(i + Vector512<float>.Count, n - Vector512<float>.Count))
        {
            var acc = Vector512.LoadUnsafe(ref src, (nuint)i);
            for (int k = 1; k < count; k++)
            {
                var x = Vector512.LoadUnsafe(ref src, (nuint)(k * step + i));
                acc = max ? Vector512.Max(acc, x) : acc + x;
            }
            acc.StoreUnsafe(ref dst, (nuint)i);
            if (i + Vector512<float>.Count == n) return;
        }
    }

    /// <summary><see cref="Fold512"/> in 256-bit vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void Fold256(ref float src, int count, int step, int n, ref float dst)
    {
        bool max = this.max;
        // the last vector ends at n, overlapping the one before it
        for (int i = 0; ; i = Math.Min(i + Vector256<float>.Count, n - Vector256<float>.Count))
        {
            var acc = Vector256.LoadUnsafe(ref src, (nuint)i);
            for (int k = 1; k < count; k++)
            {
                var x = Vector256.LoadUnsafe(ref src, (nuint)(k * step + i));
                acc = max ? Vector256.Max(acc, x) : acc + x;
            }
            acc.StoreUnsafe(ref dst, (nuint)i);
            if (i + Vector256<float>.Count == n) return;
        }
    }
}
