using LoopTune.Models;
using LoopTune.Models.Onnx;
using static LoopTune.Tests.Models.OnnxTestModels;

namespace LoopTune.Tests.Models;

/// <summary>The element-wise operators of the forward pass (<see cref="ElementwiseOps"/>, <see cref="Broadcast"/>,
/// <see cref="Pool2d"/>) against plain scalar references written from ONNX's definitions, on lengths that leave a tail
/// after the full vectors; the pools also against ONNX Runtime.</summary>
public class ElementwiseOpsTests
{
    [Fact]
    public void Relu_is_the_scalar_max_with_zero_at_every_length()
    {
        for (int n = 0; n < 40; n++)
        {
            var x = Random(n, n);
            var y = new float[n];
            ElementwiseOps.Relu(x, y);
            Assert.Equal(x.Select(v => Math.Max(v, 0f)), y);
        }
    }

    [Fact]
    public void A_channel_affine_map_and_the_plane_means_match_the_scalar_sums()
    {
        // [2,3,5,7]: 6 planes of 35 floats cycling through 3 channels
        var x = Random(2 * 3 * 35, 1);
        float[] scale = [0.5f, -2, 3], shift = [1, 0.25f, -4];
        var y = new float[x.Length];
        ElementwiseOps.ChannelAffine(x, y, scale, shift, 35);
        for (int i = 0; i < x.Length; i++) Assert.Equal(x[i] * scale[i / 35 % 3] + shift[i / 35 % 3], y[i], 1e-6f);
        var means = new float[6];
        ElementwiseOps.PlaneMeans(x, means, 35);
        for (int p = 0; p < 6; p++) Assert.Equal(x.Skip(p * 35).Take(35).Sum() / 35, means[p], 1e-6f);
    }

    public static TheoryData<long[], long[]> Shapes => new()
    {
        { [2, 3, 5, 7], [2, 3, 5, 7] },     // equal
        { [2, 3, 5, 7], [1, 3, 1, 1] },     // per channel
        { [3, 1, 1], [2, 3, 4, 5] },        // per channel, on the left, fewer dims
        { [2, 3, 5, 7], [] },               // a scalar
        { [2, 3, 5, 7], [7] },              // a row
        { [4, 1], [1, 5] },                 // both broadcast
        { [2, 1, 4], [3, 1] },              // both, different ranks
        { [2, 3, 1, 9], [2, 1, 5, 1] },     // alternating
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void A_broadcast_binary_op_matches_the_scalar_definition(long[] aShape, long[] bShape)
    {
        var plan = Broadcast.Of(aShape, bShape);
        long[] output = [.. LoopTune.Models.ShapeInference.Broadcast([.. aShape], [.. bShape])];
        Assert.Equal(output, plan.Output);
        var a = Random(aShape.Aggregate(1L, (p, d) => p * d), 2);
        var b = Random(bShape.Aggregate(1L, (p, d) => p * d), 3).Select(v => v + 2).ToArray(); // no division by ~0
        foreach (var op in Enum.GetValues<BinaryOp>())
        {
            var y = new float[output.Aggregate(1L, (p, d) => p * d)];
            plan.Run(op, a, b, y);
            for (int i = 0; i < y.Length; i++)
            {
                float x0 = a[Index(i, output, aShape)], x1 = b[Index(i, output, bShape)];
                float want = op switch { BinaryOp.Add => x0 + x1, BinaryOp.Sub => x0 - x1, BinaryOp.Mul => x0 * x1, _ => x0 / x1 };
                Assert.True(want == y[i], $"{op} element {i}: {y[i]}, want {want}");
            }
        }
    }

    /// <summary>The element of an operand of shape <paramref name="shape"/> that output element <paramref name="flat"/> reads.</summary>
    static int Index(int flat, long[] output, long[] shape)
    {
        int index = 0, stride = 1;
        for (int d = output.Length - 1, s = shape.Length - 1; d >= 0; d--, s--)
        {
            int coordinate = (int)(flat % output[d]);
            flat /= (int)output[d];
            if (s < 0) continue;
            if (shape[s] != 1) index += coordinate * stride;
            stride *= (int)shape[s];
        }
        return index;
    }

    public static TheoryData<bool, int, int, int[], bool, bool> Pools => new()
    {
        // max, kernel, stride, pads (top, left, bottom, right), count_include_pad, ceil_mode
        { true, 3, 2, [1, 1, 1, 1], false, false },
        { true, 3, 2, [1, 0, 0, 2], false, false },
        { true, 2, 3, [0, 1, 1, 0], false, true },
        { false, 3, 2, [1, 0, 0, 2], false, false },
        { false, 3, 2, [1, 0, 0, 2], true, false },
        { false, 3, 1, [2, 1, 0, 1], true, false },
        { false, 2, 3, [0, 1, 1, 0], true, true },
        { false, 7, 1, [0, 0, 0, 0], false, false },
    };

    [Theory]
    [MemberData(nameof(Pools))]
    public void A_pool_with_asymmetric_pads_and_strides_matches_the_scalar_definition(bool max, int k, int s, int[] pads, bool countPad, bool ceil)
    {
        const int planes = 6, h = 13, w = 19; // w: a tail after the full vectors
        var (pool, x, y) = RunPool(max, k, s, pads, countPad, ceil, planes, h, w);
        var (oh, ow) = pool.Output;
        Assert.Equal(OutputSize(h, k, s, pads[0], pads[2], ceil), oh);
        Assert.Equal(OutputSize(w, k, s, pads[1], pads[3], ceil), ow);
        for (int p = 0; p < planes; p++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    float want = PoolReference(max, x.AsSpan(p * h * w, h * w), h, w, k, s, pads, countPad, oy, ox);
                    Assert.True(Math.Abs(want - y[(p * oh + oy) * ow + ox]) <= 1e-6f, $"plane {p} ({oy},{ox}): {y[(p * oh + oy) * ow + ox]}, want {want}");
                }
    }

    [Theory]
    [InlineData(true, 2)]
    [InlineData(false, 2)]
    [InlineData(true, 1)]
    public void A_pool_over_rows_wide_enough_for_vectors_of_windows_matches_the_scalar_definition(bool max, int s)
    {
        const int planes = 2, h = 9, w = 75; // rows of 75: two 512-bit vectors of every other window, then a tail
        int[] pads = [1, 1, 0, 1];
        var (pool, x, y) = RunPool(max, 3, s, pads, false, false, planes, h, w);
        var (oh, ow) = pool.Output;
        for (int p = 0; p < planes; p++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                    Assert.Equal(PoolReference(max, x.AsSpan(p * h * w, h * w), h, w, 3, s, pads, false, oy, ox), y[(p * oh + oy) * ow + ox], 1e-6f);
    }

    [Theory]
    [InlineData(true, 5)]
    [InlineData(false, 5)]
    [InlineData(true, 10)]
    [InlineData(false, 18)]
    [InlineData(true, 34)]
    [InlineData(false, 35)]
    public void A_pool_over_rows_of_any_width_matches_the_scalar_definition(bool max, int w)
    {
        // widths that reduce a window's rows and columns in floats one by one (5), in 256-bit vectors (10), in one
        // 512-bit vector with or without an overlapping last one (18, 34), and in several (35)
        const int planes = 3, h = 8;
        int[] pads = [1, 1, 0, 0];
        var (pool, x, y) = RunPool(max, 3, 2, pads, false, false, planes, h, w);
        var (oh, ow) = pool.Output;
        for (int p = 0; p < planes; p++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                    Assert.Equal(PoolReference(max, x.AsSpan(p * h * w, h * w), h, w, 3, 2, pads, false, oy, ox), y[(p * oh + oy) * ow + ox], 1e-6f);
    }

    [Theory]
    [InlineData(true, 7, 7, 1)]
    [InlineData(false, 7, 7, 1)]
    [InlineData(false, 3, 19, 2)]
    [InlineData(true, 5, 2, 3)]
    public void A_pool_whose_window_is_the_whole_plane_matches_the_scalar_definition(bool max, int h, int w, int threads)
    {
        const int planes = 37;
        var pool = new Pool2d(max, new Window([h, w], [1, 1], [1, 1], [0, 0], [0, 0], false), false, h, w);
        Assert.Equal((1, 1), pool.Output);
        var x = Random(planes * h * w, h * w);
        var y = new float[planes];
        pool.Run(x, y, threads);
        for (int p = 0; p < planes; p++)
        {
            var plane = x.AsSpan(p * h * w, h * w).ToArray();
            Assert.Equal(max ? plane.Max() : plane.Sum() / plane.Length, y[p], 1e-6f);
        }
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public void A_pool_with_asymmetric_pads_and_strides_matches_onnx_runtime(bool max, bool countPad)
    {
        int[] pads = [1, 0, 2, 1];
        var (_, x, y) = RunPool(max, 3, 2, pads, countPad, false, 4, 11, 13);
        var attributes = new List<AttributeProto> { Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 0, 2, 1) };
        if (!max) attributes.Add(Int("count_include_pad", countPad ? 1 : 0));
        var bytes = Model([Node(max ? "MaxPool" : "AveragePool", "pool", ["X"], ["Y"], [.. attributes])], [Value("X", [1, 4, 11, 13])], [Value("Y", null)], []);
        var (want, _) = RunOnnxRuntime(bytes, new Dictionary<string, (float[], long[])> { ["X"] = (x, [1, 4, 11, 13]) }, "Y")["Y"];
        AssertClose(want, y);
    }

    /// <summary>A max pool of a blocked layout, [G, h, w, E], against the pool of the same values in NCHW: E of 4 (one
    /// channel at a time), 8 (256-bit vectors) and 16 or 32 (512-bit ones where the machine has them), with and without the
    /// Relu before it, on 1 and 3 threads.</summary>
    [Theory]
    [InlineData(4, false, 1)]
    [InlineData(8, true, 1)]
    [InlineData(16, false, 3)]
    [InlineData(32, true, 1)]
    public void A_max_pool_of_a_blocked_layout_is_the_pool_of_its_planes(int e, bool relu, int threads)
    {
        const int groups = 4, h = 11, w = 10;
        int[] pads = [1, 0, 2, 1];
        var window = new Window([3, 3], [2, 2], [1, 1], [pads[0], pads[1]], [pads[2], pads[3]], false);
        var pool = new Pool2d(true, window, false, h, w);
        var blocked = Random(5 + groups * h * w * e, e); // from element 5, as an aligned array's data start anywhere
        var planes = new float[groups * e * h * w]; // NCHW: plane E*g+c holds blocked[g, y, x, c], after the Relu
        for (int g = 0; g < groups; g++)
            for (int i = 0; i < h * w; i++)
                for (int c = 0; c < e; c++)
                {
                    float v = blocked[5 + (g * h * w + i) * e + c];
                    planes[(g * e + c) * h * w + i] = relu ? Math.Max(v, 0) : v;
                }
        var want = new float[groups * e * pool.Output.Rows * pool.Output.Columns];
        pool.Run(planes, want);
        var got = new float[want.Length];
        pool.RunBlocked(blocked, 5, groups, e, got, relu, threads);
        Assert.Equal(want, got);
        Assert.Throws<InvalidOperationException>(() => new Pool2d(false, window, false, h, w).RunBlocked(blocked, 5, groups, e, got, relu));
        Assert.Throws<ArgumentException>(() => pool.RunBlocked(blocked, 6, groups, e, got, relu));
        // into the interior of a padded layout in blocks of half, the same or twice E (their 4 groups make whole blocks),
        // the padding left as it was
        foreach (int b in new[] { e / 2, e, 2 * e }.Where(b => b >= 2 && groups * e % b == 0))
        {
            var layout = new BlockedLayout(1, groups * e, pool.Output.Rows, pool.Output.Columns, b, 1);
            var into = Enumerable.Repeat(float.NaN, (int)layout.Length + 3).ToArray();
            pool.RunBlocked(blocked, 5, groups, e, into, 3, layout, relu, threads);
            var back = new float[want.Length];
            layout.To(into, 3, back);
            Assert.Equal(want, back);
            Assert.Equal(layout.Length - want.Length, into.Skip(3).Count(float.IsNaN));
        }
    }

    static (Pool2d Pool, float[] X, float[] Y) RunPool(bool max, int k, int s, int[] pads, bool countPad, bool ceil, int planes, int h, int w)
    {
        var window = new Window([k, k], [s, s], [1, 1], [pads[0], pads[1]], [pads[2], pads[3]], ceil);
        var pool = new Pool2d(max, window, countPad, h, w);
        var x = Random(planes * h * w, k * 10 + s);
        var y = new float[planes * pool.Output.Rows * pool.Output.Columns];
        pool.Run(x, y);
        return (pool, x, y);
    }

    static int OutputSize(int size, int k, int s, int begin, int end, bool ceil)
    {
        int span = size + begin + end - k, n = (ceil ? (span + s - 1) / s : span / s) + 1;
        return ceil && (n - 1) * s >= size + begin ? n - 1 : n;
    }

    /// <summary>ONNX's pool at one output: the window's elements inside the input (max, or their sum over their count, or
    /// with count_include_pad over the window's positions inside the padded input).</summary>
    static float PoolReference(bool max, ReadOnlySpan<float> plane, int h, int w, int k, int s, int[] pads, bool countPad, int oy, int ox)
    {
        float acc = max ? float.NegativeInfinity : 0;
        int inside = 0, padded = 0;
        for (int r = 0; r < k; r++)
            for (int c = 0; c < k; c++)
            {
                int y = oy * s - pads[0] + r, x = ox * s - pads[1] + c;
                if (y < h + pads[2] && x < w + pads[3]) padded++;
                if (y < 0 || y >= h || x < 0 || x >= w) continue;
                acc = max ? Math.Max(acc, plane[y * w + x]) : acc + plane[y * w + x];
                inside++;
            }
        return max ? acc : acc / (countPad ? padded : inside);
    }
}
