using System.Numerics;
using System.Runtime.CompilerServices;

namespace LoopTune.Models;

/// <summary>The binary element-wise operators <see cref="Broadcast"/> runs.</summary>
public enum BinaryOp { Add, Sub, Mul, Div }

/// <summary>
/// The element-wise operators of a forward pass (<see cref="ModelRunner"/>), vectorised with <see cref="Vector{T}"/>
/// over contiguous runs of floats: Relu, a per-channel affine map (a BatchNormalization), the mean of each plane
/// (GlobalAveragePool). Tensors are row-major; a "plane" is the run of floats one (n, c) pair covers.
/// </summary>
public static class ElementwiseOps
{
    static int Lanes => Vector<float>.Count;

    /// <summary><c>y = max(x, 0)</c>: <see cref="AddRelu"/> without a residual.</summary>
    public static void Relu(ReadOnlySpan<float> x, Span<float> y) => AddRelu(x, default, true, y);

    /// <summary><c>y = x + residual</c> (when given) then <c>max(y, 0)</c> (when <paramref name="relu"/>), in one pass; y may be x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddRelu(ReadOnlySpan<float> x, ReadOnlySpan<float> residual, bool relu, Span<float> y)
    {
        bool add = !residual.IsEmpty;
        int i = 0;
        for (; i <= x.Length - Lanes; i += Lanes)
        {
            var v = new Vector<float>(x[i..]);
            if (add) v += new Vector<float>(residual[i..]);
            (relu ? Vector.Max(v, Vector<float>.Zero) : v).CopyTo(y[i..]);
        }
        for (; i < x.Length; i++)
        {
            float v = add ? x[i] + residual[i] : x[i];
            y[i] = relu && !(v > 0) ? 0 : v;
        }
    }

    /// <summary><c>y = x * scale[c] + shift[c]</c> where c is the channel of the plane of <paramref name="plane"/>
    /// floats each element lies in (planes cycle through the channels: NCHW with any N).</summary>
    public static void ChannelAffine(ReadOnlySpan<float> x, Span<float> y, ReadOnlySpan<float> scale, ReadOnlySpan<float> shift, int plane)
    {
        for (int p = 0, c = 0; p < x.Length / plane; p++, c = c + 1 == scale.Length ? 0 : c + 1)
            Affine(x.Slice(p * plane, plane), y.Slice(p * plane, plane), scale[c], shift[c]);
    }

    /// <summary><c>y = x * scale + shift</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Affine(ReadOnlySpan<float> x, Span<float> y, float scale, float shift)
    {
        var s = new Vector<float>(scale);
        var t = new Vector<float>(shift);
        int i = 0;
        for (; i <= x.Length - Lanes; i += Lanes) Vector.FusedMultiplyAdd(new Vector<float>(x[i..]), s, t).CopyTo(y[i..]);
        for (; i < x.Length; i++) y[i] = MathF.FusedMultiplyAdd(x[i], scale, shift);
    }

    /// <summary>The mean of each plane of <paramref name="plane"/> floats: <c>y[p] = sum(x[p*plane ..]) / plane</c>.</summary>
    public static void PlaneMeans(ReadOnlySpan<float> x, Span<float> y, int plane)
    {
        for (int p = 0; p < y.Length; p++) y[p] = Sum(x.Slice(p * plane, plane)) / plane;
    }

    /// <summary>The largest of the floats (at least one), in vector lanes, then across them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Max(ReadOnlySpan<float> x)
    {
        float max = x[0];
        int i = 0;
        if (x.Length >= Lanes)
        {
            var acc = new Vector<float>(x);
            for (i = Lanes; i <= x.Length - Lanes; i += Lanes) acc = Vector.Max(acc, new Vector<float>(x[i..]));
            for (int k = 0; k < Lanes; k++) max = Math.Max(max, acc[k]);
        }
        for (; i < x.Length; i++) max = Math.Max(max, x[i]);
        return max;
    }

    /// <summary>The sum of the floats, in vector lanes, then across them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Sum(ReadOnlySpan<float> x)
    {
        var acc = Vector<float>.Zero;
        int i = 0;
        for (; i <= x.Length - Lanes; i += Lanes) acc += new Vector<float>(x[i..]);
        float sum = Vector.Sum(acc);
        for (; i < x.Length; i++) sum += x[i];
        return sum;
    }

    /// <summary><c>y[i] = a[i] op b[i]</c> over y's length, where an operand whose step is false is one float repeated.</summary>
    internal static void Row(BinaryOp op, ReadOnlySpan<float> a, bool aSteps, ReadOnlySpan<float> b, bool bSteps, Span<float> y)
    {
        switch (op)
        {
            case BinaryOp.Add: Row<Plus>(a, aSteps, b, bSteps, y); break;
            case BinaryOp.Sub: Row<Minus>(a, aSteps, b, bSteps, y); break;
            case BinaryOp.Mul: Row<Times>(a, aSteps, b, bSteps, y); break;
            default: Row<Over>(a, aSteps, b, bSteps, y); break;
        }
    }

    /// <summary><see cref="Row(BinaryOp, ReadOnlySpan{float}, bool, ReadOnlySpan{float}, bool, Span{float})"/> for one
    /// operator, inlined into the loop (a switch per vector kept it from vectorizing well).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Row<T>(ReadOnlySpan<float> a, bool aSteps, ReadOnlySpan<float> b, bool bSteps, Span<float> y) where T : struct, IBinary
    {
        var av = new Vector<float>(a[0]);
        var bv = new Vector<float>(b[0]);
        int i = 0;
        for (; i <= y.Length - Lanes; i += Lanes)
            T.Of(aSteps ? new Vector<float>(a[i..]) : av, bSteps ? new Vector<float>(b[i..]) : bv).CopyTo(y[i..]);
        for (; i < y.Length; i++) y[i] = T.Of(a[aSteps ? i : 0], b[bSteps ? i : 0]);
    }

    interface IBinary
    {
        static abstract Vector<float> Of(Vector<float> a, Vector<float> b);
        static abstract float Of(float a, float b);
    }

    readonly struct Plus : IBinary
    {
        public static Vector<float> Of(Vector<float> a, Vector<float> b) => a + b;
        public static float Of(float a, float b) => a + b;
    }

    readonly struct Minus : IBinary
    {
        public static Vector<float> Of(Vector<float> a, Vector<float> b) => a - b;
        public static float Of(float a, float b) => a - b;
    }

    readonly struct Times : IBinary
    {
        public static Vector<float> Of(Vector<float> a, Vector<float> b) => a * b;
        public static float Of(float a, float b) => a * b;
    }

    readonly struct Over : IBinary
    {
        public static Vector<float> Of(Vector<float> a, Vector<float> b) => a / b;
        public static float Of(float a, float b) => a / b;
    }
}

/// <summary>
/// A binary element-wise operator with numpy's (ONNX's multidirectional) broadcasting between two fixed shapes: the
/// shapes are aligned from the right; dims of size 1 in the output are dropped, and neighbouring dims merged where
/// both operands step through them alike (both contiguous, or both repeated), so equal shapes are one run of floats
/// and a per-channel operand ([C,1,1] against [N,C,H,W]) is one float repeated over each plane of H*W.
/// </summary>
public sealed class Broadcast
{
    readonly int[] sizes, aStrides, bStrides;

    Broadcast(int[] sizes, int[] aStrides, int[] bStrides, IReadOnlyList<long> output)
    {
        (this.sizes, this.aStrides, this.bStrides) = (sizes, aStrides, bStrides);
        Output = [.. output];
    }

    /// <summary>The output's shape.</summary>
    public long[] Output { get; }

    /// <summary>The plan for operands of shapes <paramref name="a"/> and <paramref name="b"/>; shapes that do not
    /// broadcast are an <see cref="ArgumentException"/>.</summary>
    public static Broadcast Of(IReadOnlyList<long> a, IReadOnlyList<long> b)
    {
        var output = ShapeInference.Broadcast([.. a], [.. b]);
        int rank = output.Length;
        long Dim(IReadOnlyList<long> s, int i) => i < rank - s.Count ? 1 : s[i - (rank - s.Count)];
        var dims = new List<(int Size, int A, int B)>();
        long aStride = 1, bStride = 1;
        for (int i = rank - 1; i >= 0; i--)
        {
            long da = Dim(a, i), db = Dim(b, i);
            if (output[i] != 1) dims.Insert(0, (checked((int)output[i]), da == 1 ? 0 : (int)aStride, db == 1 ? 0 : (int)bStride));
            aStride *= da;
            bStride *= db;
        }
        if (dims.Count == 0) dims.Add((1, 1, 1));
        for (int i = dims.Count - 2; i >= 0; i--) // merge a dim into the one inside it when both operands step alike
        {
            var (outer, inner) = (dims[i], dims[i + 1]);
            if (outer.A == inner.A * inner.Size && outer.B == inner.B * inner.Size)
            {
                dims[i] = (outer.Size * inner.Size, inner.A, inner.B);
                dims.RemoveAt(i + 1);
            }
        }
        return new Broadcast([.. dims.Select(d => d.Size)], [.. dims.Select(d => d.A)], [.. dims.Select(d => d.B)], output);
    }

    /// <summary><c>y = a op b</c>, broadcast; y holds the output's elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run(BinaryOp op, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        int inner = sizes[^1], outer = y.Length / inner, rank = sizes.Length;
        Span<int> index = stackalloc int[rank];
        int ai = 0, bi = 0;
        for (int row = 0; row < outer; row++)
        {
            ElementwiseOps.Row(op, a[ai..], aStrides[^1] != 0, b[bi..], bStrides[^1] != 0, y.Slice(row * inner, inner));
            for (int d = rank - 2; d >= 0; d--) // the next row: an odometer over the outer dims
            {
                ai += aStrides[d];
                bi += bStrides[d];
                if (++index[d] < sizes[d]) break;
                ai -= aStrides[d] * sizes[d];
                bi -= bStrides[d] * sizes[d];
                index[d] = 0;
            }
        }
    }
}
