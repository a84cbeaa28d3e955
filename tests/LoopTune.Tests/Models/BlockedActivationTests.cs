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
        // blocks of whole vectors and a lane's tail (16 and 12 channels: 8 lanes, or 16), on one thread and on two
        foreach (int block in new[] { 16, 12 })
            foreach (int threads in new[] { 1, 2 })
            {
                var wide = new BlockedLayout(2, 48, 3, 5, block, 1);
                var xs = Random(2 * 48 * 15, 2);
                var ws = Filled(wide, xs, ring: 1);
                var m = new float[96];
                wide.PlaneMeans(ws, Start(ws), m, threads);
                for (int p = 0; p < 96; p++) Assert.Equal(xs.Skip(p * 15).Take(15).Average(), m[p], 1e-5f);
            }
        Assert.Null(BlockedLayout.Of([1, 6, 4, 4], 4, 1)); // 4 does not divide 6
        Assert.Throws<ArgumentException>(() => layout.To(a, Start(a), new float[5]));
    }
    /// <summary>A small ResNet: X [1,3,12,12] -> stem (32 filters 3x3, pads 1) -> bn -> Relu -> MaxPool 3x3/2 pads 1 [1,32,6,6]
    /// -> a basic block (two 3x3 convolutions with BatchNormalization, the input added, Relu) -> a downsampling block (3x3
    /// stride 2 to 64 channels, 3x3, a 1x1 stride-2 branch added, Relu) [1,64,3,3] -> GlobalAveragePool -> Flatten -> Gemm
    /// [1,5]. With <paramref name="tap"/>, the first block's output is also a graph output (so it cannot stay in blocks); with
    /// <paramref name="average"/>, a 3x3 AveragePool (each whole plane, as ResNet-18's last 7x7 one) instead of the GlobalAveragePool.</summary>
    static byte[] SmallResNet(bool tap = false, bool average = false, int batch = 1) => Model(
        [
            Node("Conv", "stem", ["X", "W0"], ["S"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
            BatchNorm("bn0", "S", "SN"),
            Node("Relu", "relu0", ["SN"], ["SR"]),
            Node("MaxPool", "pool", ["SR"], ["P"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1)),
            Node("Conv", "c1", ["P", "W1"], ["Y1"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
            BatchNorm("bn1", "Y1", "N1"),
            Node("Relu", "r1", ["N1"], ["R1"]),
            Node("Conv", "c2", ["R1", "W2"], ["Y2"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
            BatchNorm("bn2", "Y2", "N2"),
            Node("Add", "a2", ["N2", "P"], ["A2"]),
            Node("Relu", "r2", ["A2"], ["B1"]),
            Node("Conv", "c3", ["B1", "W3"], ["Y3"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3), Ints("strides", 2, 2)),
            BatchNorm("bn3", "Y3", "N3"),
            Node("Relu", "r3", ["N3"], ["R3"]),
            Node("Conv", "c4", ["R3", "W4"], ["Y4"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
            BatchNorm("bn4", "Y4", "N4"),
            Node("Conv", "down", ["B1", "Wd", "Bd"], ["D"], Ints("kernel_shape", 1, 1), Ints("strides", 2, 2)),
            Node("Add", "a4", ["N4", "D"], ["A4"]),
            Node("Relu", "r4", ["A4"], ["B2"]),
            average ? Node("AveragePool", "gap", ["B2"], ["G"], Ints("kernel_shape", 3, 3)) : Node("GlobalAveragePool", "gap", ["B2"], ["G"]),
            Node("Flatten", "flatten", ["G"], ["F"], Int("axis", 1)),
            Node("Gemm", "fc", ["F", "Wf", "Bf"], ["Y"], Int("transB", 1)),
        ],
        [Value("X", [batch, 3, 12, 12])], tap ? [Value("Y", null), Value("B1", null)] : [Value("Y", null)],
        [
            Floats("W0", [32, 3, 3, 3], Random(864, 1)), .. Norm("bn0", 32, 2), Floats("W1", [32, 32, 3, 3], Random(9216, 3)), .. Norm("bn1", 32, 4),
            Floats("W2", [32, 32, 3, 3], Random(9216, 5)), .. Norm("bn2", 32, 6), Floats("W3", [64, 32, 3, 3], Random(18432, 7)), .. Norm("bn3", 64, 8),
            Floats("W4", [64, 64, 3, 3], Random(36864, 9)), .. Norm("bn4", 64, 10), Floats("Wd", [64, 32, 1, 1], Random(2048, 11)), Floats("Bd", [64], Random(64, 12)),
            Floats("Wf", [5, 64], Random(320, 13)), Floats("Bf", [5], Random(5, 14)),
        ]);

    [Theory]
    [InlineData(false, 1, true, false, 8, 1)]
    [InlineData(false, 2, false, true, 8, 1)]
    [InlineData(true, 1, true, false, 8, 1)]
    [InlineData(false, 2, true, false, 32, 1)] // the stem's block too: the pool writes its rows straight into the layout
    [InlineData(false, 2, true, true, 8, 2)]   // two images
    public void A_residual_network_with_its_activations_in_blocks_runs_as_onnx_runtime_runs_it(bool tap, int threads, bool stemBlocked, bool average, int block, int batch)
    {
        var bytes = SmallResNet(tap, average, batch);
        var model = OnnxModel.Parse(bytes, "resnet.onnx");
        var shapes = ShapeInference.Infer(model);
        Kernel Compiled(ContractionOp op)
        {
            var k = Kernel.Compile(op.Contraction.Vars.Contains("e") ? Vectorized(op.Contraction, (int)op.Contraction.Sizes[op.Contraction.Vars.IndexOf("e")]) : Nest.Initial(op.Contraction));
            k.SetThreads(threads);
            return k;
        }
        var kernels = new Dictionary<OnnxNode, ChosenKernel>();
        var linked = new Dictionary<OnnxNode, ChosenKernel>();
        foreach (var node in model.Nodes.Where(n => n.OpType is "Conv" or "Gemm"))
        {
            var ways = ModelLowering.Alternatives(model, shapes, node).OfType<ContractionOp>().ToList();
            // the stem in blocks (its pool then pools them) or read in place
            var op = node.Name == "stem" && stemBlocked ? ways.First(w => w is ConvOp { Lowering: ConvLowering.Blocked }) : ways[0];
            kernels[node] = new ChosenKernel(op, Compiled(op));
            if (node.OpType == "Conv" && ConvOp.LowerBlockedInput(model, shapes, node, block) is ConvOp b) linked[node] = new ChosenKernel(b, Compiled(b));
        }
        Assert.Equal(5, linked.Count); // not the stem: the block does not divide its 3 channels
        var runner = ModelRunner.Build(model, shapes, kernels, linked);
        var x = runner.Value("X");
        Random(x.Length, 42).CopyTo(x);
        var outputs = tap ? new[] { "Y", "B1" } : ["Y"];
        var want = RunOnnxRuntime(bytes, new Dictionary<string, (float[], long[])> { ["X"] = (x, [batch, 3, 12, 12]) }, outputs);
        for (int pass = 0; pass < 2; pass++) // a second pass into the same arrays gives the same outputs
        {
            runner.Run();
            foreach (var o in outputs) AssertClose(want[o].Data, runner.Value(o));
        }
        Assert.All(runner.Folds, f => Assert.True(f.Passed, $"{f}"));
        // the branch is made after c4, so it adds c4's output (N4). With B1 a graph output, c2 writes it back in NCHW (with
        // P, then NCHW too, added) and c1 copies P into blocks, as c3 and the branch do B1 (once)
        Assert.Equal(5, runner.LinkedConvolutions);
        Assert.Equal(stemBlocked && !tap, runner.BlockedValues.Contains("P")); // the pool writes blocks after a blocked stem
        Assert.Equal(!tap, runner.BlockedValues.Contains("B1"));
        Assert.Superset(new HashSet<string> { "R1", "R3", "N4", "B2" }, new HashSet<string>(runner.BlockedValues));
        Assert.Equal((stemBlocked && !tap ? 0 : 1) + (tap ? 1 : 0), runner.Profile(1).Count(p => p.Op == "Reorder"));
    }
    /// <summary>A blocked kernel's schedule carried over to the lowering in blocks (<see cref="ConvOp.InBlocks"/>): its loops
    /// over c split into k (the innermost K channels) and d, a loop straddling K split in two; the kernel computes the
    /// convolution; schedules that cannot carry over give null.</summary>
    [Fact]
    public void A_blocked_schedule_carries_over_to_the_input_in_blocks()
    {
        var (model, shapes, bytes) = Conv(64, 64, 7, 7, 3, 1, 1);
        var op = Lowered(model, shapes, 32);
        var blocked = Computation.Parse("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=7 w=7 e=32 c=64 r=3 s=3");
        var nest = op.InBlocks(Nest.Parse(blocked, ">g:2p c:16 h:7 c:4 r:3u s:3u w:7u e:32v pack=W"));
        Assert.NotNull(nest);
        Assert.Equal(">g:2p d:2 k:8 h:7 k:4 r:3u s:3u w:7u e:32v pack=W", nest.Serialize());
        Assert.Equal(">g:2 d:2 h:7 k:32 r:3 s:3 w:7u e:32v", op.InBlocks(Nest.Parse(blocked, ">g:2 c:2 h:7 c:32 r:3 s:3 w:7u e:32v"))!.Serialize());
        var x = Random(64 * 49, 9);
        var (want, _) = RunOnnxRuntime(bytes, new Dictionary<string, (float[], long[])> { ["X"] = (x, [1, 64, 7, 7]) }, "Y")["Y"];
        AssertClose(want, op.Run(Kernel.Compile(nest), new Dictionary<string, float[]> { ["X"] = x }));
        Assert.Null(op.InBlocks(Nest.Parse(blocked, ">g:2 c:5+4 h:7 c:12 r:3 s:3 w:7u e:32v")));  // a tail over c
        Assert.Null(op.InBlocks(Nest.Parse(blocked, ">g:2 c:3+1 h:7 c:3 c:7 r:3 s:3 w:7u e:32v"))); // 7 channels do not meet 32
        Assert.Null(op.InBlocks(Nest.Parse(Computation.Parse("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=4 h=7 w=7 e=16 c=64 r=3 s=3"), ">g:4 c:64 h:7 r:3 s:3 w:7u e:16v"))); // another block
    }
}
