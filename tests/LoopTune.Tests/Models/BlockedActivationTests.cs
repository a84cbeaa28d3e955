using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Models;
using static LoopTune.Tests.Models.OnnxTestModels;

namespace LoopTune.Tests.Models;

/// <summary>Convolutions lowered <see cref="ConvLowering.BlockedInput"/>: alone (NCHW in and out) against ONNX Runtime, and
/// linked (<see cref="ConvOp.RunLinked"/>: input read in place from a padded blocked activation, output stored into
/// another, the bias, residual and Relu in the kernel) against a plain convolution written here; the layouts' copies and
/// means against the NCHW values.</summary>
public class BlockedActivationTests
{
    /// <summary>One Conv of <paramref name="c"/> to <paramref name="f"/> channels on a [1, c, h, w] input, with a bias.</summary>
    static (OnnxModel Model, ModelShapes Shapes, byte[] Bytes) Conv(int c, int f, int h, int w, int k, int stride, int pad)
    {
        var bytes = Model(
            [Node("Conv", "conv", ["X", "W", "B"], ["Y"], Ints("pads", pad, pad, pad, pad), Ints("kernel_shape", k, k), Ints("strides", stride, stride))],
            [Value("X", [1, c, h, w])], [Value("Y", null)],
            [Floats("W", [f, c, k, k], Random(f * c * k * k, 3)), Floats("B", [f], Random(f, 4))]);
        var model = OnnxModel.Parse(bytes, "conv.onnx");
        return (model, ShapeInference.Infer(model), bytes);
    }

    /// <summary>The convolution of the model written out: Y[f,y,x] = B[f] + sum over c, r, s of W * X (zero outside X).</summary>
    static float[] Reference(OnnxModel model, float[] x, int c, int h, int w, int f, int k, int stride, int pad, int oh, int ow)
    {
        var (wt, b) = (model.Initializers["W"].Floats, model.Initializers["B"].Floats);
        var y = new float[f * oh * ow];
        for (int o = 0; o < f; o++)
            for (int yy = 0; yy < oh; yy++)
                for (int xx = 0; xx < ow; xx++)
                {
                    double sum = b[o];
                    for (int i = 0; i < c; i++)
                        for (int r = 0; r < k; r++)
                            for (int s = 0; s < k; s++)
                            {
                                int row = yy * stride + r - pad, col = xx * stride + s - pad;
                                if (row >= 0 && row < h && col >= 0 && col < w) sum += wt[((o * c + i) * k + r) * k + s] * x[(i * h + row) * w + col];
                            }
                    y[(o * oh + yy) * ow + xx] = (float)sum;
                }
        return y;
    }

    static ConvOp Lowered(OnnxModel model, ModelShapes shapes, int block) =>
        Assert.IsType<ConvOp>(ConvOp.LowerBlockedInput(model, shapes, model.Nodes[0], block));

    [Theory]
    [InlineData(8, 8, 6, 7, 3, 1, 1, 4)]
    [InlineData(8, 12, 9, 9, 3, 2, 1, 4)]  // stride 2, ResNet's downsampling 3x3
    [InlineData(8, 4, 8, 8, 1, 2, 0, 4)]   // a 1x1 stride-2 branch
    [InlineData(16, 8, 5, 5, 3, 1, 1, 8)]
    public void Alone_it_computes_the_convolution_onnx_runtime_computes(int c, int f, int h, int w, int k, int stride, int pad, int block)
    {
        var (model, shapes, bytes) = Conv(c, f, h, w, k, stride, pad);
        var op = Lowered(model, shapes, block);
        Assert.Equal("blocked input " + block, op.LoweringName);
        var x = Random(c * h * w, 9);
        var feeds = new Dictionary<string, float[]> { ["X"] = x };
        foreach (var nest in new[] { Nest.Initial(op.Contraction), Vectorized(op.Contraction, block) })
        {
            var kernel = Kernel.Compile(nest);
            var got = op.Run(kernel, feeds);
            var (want, _) = RunOnnxRuntime(bytes, new Dictionary<string, (float[], long[])> { ["X"] = (x, [1, c, h, w]) }, "Y")["Y"];
            AssertClose(want, got);
            op.Run(kernel, feeds, got); // again into the same arrays
            AssertClose(want, got);
        }
    }

    /// <summary>A schedule vectorized along the output's block, its sum split around the tile when it can be (the first visit
    /// reads the bias, the last stores with the epilogue).</summary>
    static Nest Vectorized(Computation c, int block)
    {
        var nest = Nest.Initial(c);
        string order = string.Join(" ", c.Vars.Select((v, i) => (v, i)).Where(p => p.v is not ("e" or "w")).Select(p => $"{p.v}:{c.Sizes[p.i]}"));
        int w = (int)c.Sizes[c.Vars.IndexOf("w")];
        string text = $">{order} w:{w}u e:{block}v";
        if (c.Vars.IndexOf("d") is var d and >= 0 && c.Sizes[d] > 1) // d outermost: the sum in parts around the tile
            text = $">d:{c.Sizes[d]} " + text[1..].Replace($"d:{c.Sizes[d]} ", "", StringComparison.Ordinal);
        return Nest.Parse(c, text);
    }

    [Theory]
    [InlineData(8, 8, 6, 7, 3, 1, 1, 4, false, false, 1)]
    [InlineData(8, 8, 6, 7, 3, 1, 1, 4, true, true, 1)]
    [InlineData(8, 8, 6, 7, 3, 1, 1, 4, true, true, 2)]
    [InlineData(8, 12, 9, 9, 3, 2, 1, 4, false, true, 2)]
    [InlineData(8, 4, 8, 8, 1, 2, 0, 4, true, false, 1)]  // reads the interior of a padded layout
    public void Linked_it_reads_its_input_in_place_and_stores_its_output_with_the_epilogue_into_the_next_layout(int c, int f, int h, int w, int k, int stride, int pad,
        int block, bool residual, bool relu, int threads)
    {
        var (model, shapes, _) = Conv(c, f, h, w, k, stride, pad);
        var op = Lowered(model, shapes, block);
        int oh = (int)op.OutputShape[2], ow = (int)op.OutputShape[3];
        var x = Random(c * h * w, 9);
        var want = Reference(model, x, c, h, w, f, k, stride, pad, oh, ow);
        var res = residual ? Random(want.Length, 11) : null;
        for (int i = 0; i < want.Length; i++)
        {
            if (res is not null) want[i] += res[i];
            if (relu) want[i] = Math.Max(want[i], 0);
        }
        // the input two pixels padded: its outer ring NaN (no window reaches it), the inner one zeros; the output and the
        // residual padded by one, their padding NaN: the kernel must neither read nor write it
        var input = new BlockedLayout(1, c, h, w, block, 2);
        var output = new BlockedLayout(1, f, oh, ow, block, 1);
        var xb = Filled(input, x, ring: 1);
        var yb = Filled(output, new float[want.Length], ring: 0);
        var rb = res is null ? null : Filled(output, res, ring: 0);
        foreach (var nest in new[] { Nest.Initial(op.Contraction), Vectorized(op.Contraction, block) })
        {
            var kernel = Kernel.Compile(nest);
            kernel.SetThreads(threads);
            op.RunLinked(kernel, new Dictionary<string, float[]>(), xb, input, yb, output, rb, relu);
            var got = new float[want.Length];
            output.To(yb, Start(yb), got);
            AssertClose(want, got);
            Assert.True(Padding(output, yb).All(float.IsNaN), "the output's padding was written");
        }
        // a layout the windows overrun, or of another block, is refused by name
        Assert.False(op.ReadsInPlace(new BlockedLayout(1, c, h, w, block, 0)) && pad > 0);
        Assert.False(op.ReadsInPlace(new BlockedLayout(1, c, h, w, block * 2, 2)));
        var e = Assert.Throws<InvalidOperationException>(() => op.RunLinked(Kernel.Compile(Nest.Initial(op.Contraction)), new Dictionary<string, float[]>(), xb, input with { Block = block * 2 }, yb, output, rb, relu));
        Assert.Contains("cannot read its input in place", e.Message);
    }

    /// <summary>An aligned array of <paramref name="layout"/> holding <paramref name="nchw"/> in its interior, zeros in the
    /// <paramref name="ring"/> pixels around it and NaN beyond.</summary>
    static float[] Filled(BlockedLayout layout, float[] nchw, int ring)
    {
        var a = GC.AllocateArray<float>((int)layout.Length + 64, pinned: true);
        Array.Fill(a, float.NaN);
        int start = Start(a);
        var inner = new BlockedLayout(layout.N, layout.C, layout.H + 2 * ring, layout.W + 2 * ring, layout.Block, layout.Pad - ring);
        inner.From(new float[inner.N * inner.C * inner.H * inner.W], a, start); // zeros over the ring and the interior
        layout.From(nchw, a, start);
        return a;
    }

    static unsafe int Start(float[] a)
    {
        fixed (float* p = a) return (int)((64 - (long)p % 64) % 64 / sizeof(float));
    }

    /// <summary>The floats of <paramref name="layout"/>'s padding in <paramref name="a"/>.</summary>
    static IEnumerable<float> Padding(BlockedLayout layout, float[] a)
    {
        int start = Start(a);
        for (long i = 0; i < layout.Length; i++)
        {
            long pixel = i / layout.Block, x = pixel % layout.Columns, y = pixel / layout.Columns % layout.Rows;
            if (y < layout.Pad || y >= layout.Pad + layout.H || x < layout.Pad || x >= layout.Pad + layout.W) yield return a[start + i];
        }
    }

    [Fact]
    public void A_layout_holds_the_activation_and_gives_its_channel_means()
    {
        var layout = new BlockedLayout(2, 8, 3, 5, 4, 1);
        var x = Random(2 * 8 * 3 * 5, 1);
        var a = Filled(layout, x, ring: 1);
        var back = new float[x.Length];
        layout.To(a, Start(a), back, threads: 2);
        Assert.Equal(x, back);
        // element (n=1, c=6, y=2, x=3) where the layout says
        Assert.Equal(x[((1 * 8 + 6) * 3 + 2) * 5 + 3], a[Start(a) + (int)(layout.Interior + layout.Strides.Image + layout.Strides.Group + 2 * layout.Strides.Row + 3 * 4 + 2)]);
        var means = new float[16];
        layout.PlaneMeans(a, Start(a), means);
        for (int p = 0; p < 16; p++) Assert.Equal(x.Skip(p * 15).Take(15).Average(), means[p], 1e-5f);
        Assert.Null(BlockedLayout.Of([1, 6, 4, 4], 4, 1)); // 4 does not divide 6
        Assert.Throws<ArgumentException>(() => layout.To(a, Start(a), new float[5]));
    }
}
