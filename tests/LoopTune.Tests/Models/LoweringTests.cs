using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Models;
using static LoopTune.Tests.Models.OnnxTestModels;

namespace LoopTune.Tests.Models;

/// <summary>Conv, Gemm and MatMul lowered to contractions, each run with a compiled kernel of its unscheduled nest
/// (and the work around it) and compared with ONNX Runtime's output for the same model.</summary>
public class LoweringTests
{
    /// <summary>Parses the model, infers shapes, lowers the one node and runs it; returns the op and its output.</summary>
    static (ContractionOp Op, float[] Output) LowerAndRun(byte[] bytes, Dictionary<string, (float[] Data, long[] Shape)> feeds)
    {
        var model = OnnxModel.Parse(bytes, "test.onnx");
        var lowered = ModelLowering.Lower(model, ShapeInference.Infer(model));
        var op = Assert.IsAssignableFrom<ContractionOp>(Assert.Single(lowered));
        var kernel = Kernel.Compile(Nest.Initial(op.Contraction));
        return (op, op.Run(kernel, feeds.ToDictionary(f => f.Key, f => f.Value.Data)));
    }

    static void CheckAgainstOnnxRuntime(byte[] bytes, Dictionary<string, (float[] Data, long[] Shape)> feeds, string expectedSpec)
    {
        var (op, output) = LowerAndRun(bytes, feeds);
        Assert.Equal(expectedSpec, op.Contraction.Text);
        var (want, shape) = RunOnnxRuntime(bytes, feeds, "Y")["Y"];
        Assert.Equal(shape, op.OutputShape.ToArray());
        AssertClose(want, output);
    }

    [Fact]
    public void A_padded_strided_conv_with_asymmetric_pads_and_a_batch_of_two_matches_onnx_runtime()
    {
        // X [2,3,9,10], W [4,3,3,2], strides 2 and 3, pads top 1, left 2, bottom 0, right 1:
        // OH = (9+1+0-3)/2+1 = 4, OW = (10+2+1-2)/3+1 = 4; the padded copy is [2,3,2*3+3,3*3+2] = [2,3,9,11], split
        // for stride 3 along w into P = min(3, 2) = 2 phases of Q = ceil(2/3) = 1 tap (q left out): [2,3,2,9,4+1-1]
        var bytes = Model(
            [Node("Conv", "conv", ["X", "W", "B"], ["Y"], Ints("strides", 2, 3), Ints("pads", 1, 2, 0, 1), Ints("kernel_shape", 3, 2))],
            [Value("X", [2, 3, 9, 10])], [Value("Y", null)],
            [Floats("W", [4, 3, 3, 2], Random(72, 2)), Floats("B", [4], Random(4, 3), raw: false)]);
        var feeds = new Dictionary<string, (float[], long[])> { ["X"] = (Random(2 * 3 * 9 * 10, 1), [2, 3, 9, 10]) };
        CheckAgainstOnnxRuntime(bytes, feeds, "O[n,f,h,w] += I[n,c,p,2*h+r,w] * W[f,c,r,p] n=2 f=4 h=4 w=4 c=3 p=2 r=3");
        var op = Assert.IsType<ConvOp>(LowerAndRun(bytes, feeds).Op);
        Assert.True(op.CopiesInput);
        Assert.True(op.SplitsPhases);
        Assert.Contains("[2,3,9,11]", op.OutsideKernel[0]);
        Assert.Contains("copied into [2,3,2,9,4]", op.OutsideKernel[0]);
        Assert.Contains("bias B", op.OutsideKernel[2]);
    }

    [Theory]
    [InlineData(new long[] { 1, 4, 9, 10 }, new long[] { 5, 4, 3, 3 }, new long[] { 1, 1, 1, 1 }, "O[f,h,w] += I[c,p,2*h+r,w+q] * W[f,c,r,p,q] f=5 h=5 w=5 c=4 p=2 r=3 q=2")]
    [InlineData(new long[] { 1, 4, 8, 8 }, new long[] { 5, 4, 3, 3 }, new long[] { 1, 1, 0, 0 }, "O[f,h,w] += I[c,p,2*h+r,w+q] * W[f,c,r,p,q] f=5 h=4 w=4 c=4 p=2 r=3 q=2")]
    [InlineData(new long[] { 1, 3, 16, 15 }, new long[] { 4, 3, 7, 7 }, new long[] { 3, 3, 2, 2 }, "O[f,h,w] += I[c,p,2*h+r,w+q] * W[f,c,r,p,q] f=4 h=8 w=7 c=3 p=2 r=7 q=4")]
    public void A_stride_2_conv_is_split_into_column_phases_so_w_is_contiguous_and_matches_onnx_runtime(long[] x, long[] w, long[] pads, string expectedSpec)
    {
        var bytes = Model(
            [Node("Conv", "conv", ["X", "W", "B"], ["Y"], Ints("strides", 2, 2), Ints("pads", pads))],
            [Value("X", x)], [Value("Y", null)],
            [Floats("W", w, Random(w.Aggregate(1L, (p, d) => p * d), 52)), Floats("B", [w[0]], Random(w[0], 53))]);
        long length = x.Aggregate(1L, (p, d) => p * d);
        CheckAgainstOnnxRuntime(bytes, new() { ["X"] = (Random(length, 51), x) }, expectedSpec);

        // a vectorized schedule over w, run twice into one output with other inputs: the phase copy's zeros stay
        var model = OnnxModel.Parse(bytes, "test.onnx");
        var op = Assert.IsType<ConvOp>(Assert.Single(ModelLowering.Lower(model, ShapeInference.Infer(model))));
        Assert.True(op.SplitsPhases);
        Assert.Equal(2.0 * x[0] * w[0] * op.OutputShape[2] * op.OutputShape[3] * x[1] * w[2] * w[3], op.Flops);
        RunTwiceAgainstOnnxRuntime(bytes, op, VectorizedOver(op.Contraction, "w"), x, 60);
    }

    /// <summary>A kernel of <paramref name="c"/> with its loops in order but <paramref name="var"/>'s, which is innermost and vectorized.</summary>
    static Kernel VectorizedOver(Computation c, string var) =>
        Kernel.Compile(Nest.Parse(c, string.Join(" ", c.Vars.Select((v, i) => (v, i)).Where(t => t.v != var).Select(t => $"{t.v}:{c.Sizes[t.i]}"))
            + $" >{var}:{c.Sizes[c.Vars.IndexOf(var)]}v"));

    /// <summary>Runs the op twice into one output, each time on another random X (seeds <paramref name="seed"/> + 1, + 2),
    /// against ONNX Runtime's output for the same X: what the op copies or packs once stays right from run to run.</summary>
    static void RunTwiceAgainstOnnxRuntime(byte[] bytes, ContractionOp op, Kernel kernel, long[] x, int seed)
    {
        var output = new float[op.Contraction.Output.Length];
        long length = x.Aggregate(1L, (p, d) => p * d);
        for (int run = 1; run <= 2; run++)
        {
            var feeds = new Dictionary<string, float[]> { ["X"] = Random(length, seed + run) };
            op.Run(kernel, feeds, output);
            AssertClose(RunOnnxRuntime(bytes, new Dictionary<string, (float[], long[])> { ["X"] = (feeds["X"], x) }, "Y")["Y"].Data, output);
        }
    }

    [Fact]
    public void The_phase_split_of_a_7x7_stride_2_conv_is_told_in_the_outside_kernel_lines_with_a_tap_of_zeros_in_the_weights()
    {
        var bytes = Model(
            [Node("Conv", "stem", ["X", "W"], ["Y"], Ints("strides", 2, 2), Ints("pads", 3, 3, 2, 2))],
            [Value("X", [1, 3, 16, 15])], [Value("Y", null)], [Floats("W", [4, 3, 7, 7], Random(588, 54))]);
        var model = OnnxModel.Parse(bytes, "stem.onnx");
        var op = Assert.IsType<ConvOp>(Assert.Single(ModelLowering.Lower(model, ShapeInference.Infer(model))));
        Assert.Equal("O[f,h,w] += I[c,p,2*h+r,w+q] * W[f,c,r,p,q] f=4 h=8 w=7 c=3 p=2 r=7 q=4", op.Contraction.Text);
        // padded [1,3,2*7+7,2*6+7] = [1,3,21,19]; columns w+q reach 7+4-1 = 10
        Assert.Equal("I = X [1,3,16,15] with pads [3,3,2,2] (top, left, bottom, right) as zeros (padded [1,3,21,19]), split into 2 column phases "
            + "for stride 2 along w: I[n,c,p,y,x] = padded[n,c,y,2*x+p] (zero past the padded width), copied into [1,3,2,21,10]", op.OutsideKernel[0]);
        Assert.Equal("W = W [4,3,7,7] packed once as W[f,c,r,p,q] = W[f,c,r,2*q+p] (zero where 2*q+p >= 7), [4,3,7,2,4]", op.OutsideKernel[1]);
        Assert.Equal("O starts as zeros", op.OutsideKernel[2]);
        Assert.Equal(2.0 * 4 * 8 * 7 * 3 * 7 * 7, op.Flops);
        Assert.Equal(2.0 * 4 * 8 * 7 * 3 * 7 * 8, op.Contraction.Flops);
    }

    [Fact]
    public void Runs_into_one_output_overwrite_it_and_keep_the_padded_copy_zeros_between_runs()
    {
        var bytes = Model(
            [Node("Conv", "conv", ["X", "W", "B"], ["Y"], Ints("strides", 2, 3), Ints("pads", 1, 2, 0, 1), Ints("kernel_shape", 3, 2))],
            [Value("X", [2, 3, 9, 10])], [Value("Y", null)],
            [Floats("W", [4, 3, 3, 2], Random(72, 2)), Floats("B", [4], Random(4, 3))]);
        var model = OnnxModel.Parse(bytes, "test.onnx");
        var op = Assert.IsType<ConvOp>(Assert.Single(ModelLowering.Lower(model, ShapeInference.Infer(model))));
        var kernel = Kernel.Compile(Nest.Parse(op.Contraction, "n:2 f:4 h:4 c:3 r:3 p:2 >w:4v"));
        var output = Enumerable.Repeat(7f, (int)op.Contraction.Output.Length).ToArray();
        for (int seed = 1; seed <= 3; seed++)
        {
            var feeds = new Dictionary<string, float[]> { ["X"] = Random(2 * 3 * 9 * 10, seed) };
            op.Run(kernel, feeds, output);
            var want = RunOnnxRuntime(bytes, feeds.ToDictionary(f => f.Key, f => (f.Value, new long[] { 2, 3, 9, 10 })), "Y")["Y"].Data;
            AssertClose(want, output);
        }

        // rows of 6 floats of B in a wider vector read past B's end: the constant is copied once into a longer array
        var gemm = Model([Node("Gemm", "fc", ["A", "B"], ["Y"])], [Value("A", [5, 7])], [Value("Y", null)], [Floats("B", [7, 6], Random(42, 9))]);
        var fc = Assert.IsType<GemmOp>(Assert.Single(ModelLowering.Lower(OnnxModel.Parse(gemm, "fc.onnx"), ShapeInference.Infer(OnnxModel.Parse(gemm, "fc.onnx")))));
        var rows = Kernel.Compile(Nest.Parse(fc.Contraction, "m:5 k:7 >n:6v"));
        Assert.True(rows.ReadsPast > 0 || LoopTune.Jit.JitOptions.Default.VectorBits <= 128, $"reads past: {rows.ReadsPast}");
        var y = new float[30];
        for (int seed = 1; seed <= 2; seed++)
        {
            var a = Random(35, seed);
            fc.Run(rows, new Dictionary<string, float[]> { ["A"] = a }, y);
            AssertClose(RunOnnxRuntime(gemm, new Dictionary<string, (float[], long[])> { ["A"] = (a, [5, 7]) }, "Y")["Y"].Data, y);
        }
    }

    [Fact]
    public void A_same_padded_conv_of_one_image_drops_the_batch_and_a_1x1_conv_reads_its_input_as_it_is()
    {
        var same = Model([Node("Conv", "conv", ["X", "W"], ["Y"], Ints("strides", 2, 2), new() { Name = "auto_pad", Type = LoopTune.Models.Onnx.AttributeProto.Types.AttributeType.String, S = Google.Protobuf.ByteString.CopyFromUtf8("SAME_UPPER") })],
            [Value("X", [1, 2, 7, 6])], [Value("Y", null)], [Floats("W", [3, 2, 3, 3], Random(54, 5))]);
        CheckAgainstOnnxRuntime(same, new() { ["X"] = (Random(84, 4), [1, 2, 7, 6]) }, "O[f,h,w] += I[c,p,2*h+r,w+q] * W[f,c,r,p,q] f=3 h=4 w=3 c=2 p=2 r=3 q=2");

        var pointwise = Model([Node("Conv", "conv", ["X", "W"], ["Y"])], [Value("X", [1, 4, 5, 6])], [Value("Y", null)], [Floats("W", [3, 4, 1, 1], Random(12, 7))]);
        CheckAgainstOnnxRuntime(pointwise, new() { ["X"] = (Random(120, 6), [1, 4, 5, 6]) }, "C[m,n] += A[m,k] * B[k,n] m=3 n=30 k=4");
        Assert.False(Assert.IsType<ConvOp>(LowerAndRun(pointwise, new() { ["X"] = (Random(120, 6), [1, 4, 5, 6]) }).Op).CopiesInput);
    }

    [Theory]
    [InlineData(new long[] { 1, 6, 7, 8 }, new long[] { 5, 6, 1, 1 }, new long[] { 2, 2 }, new long[] { 0, 0, 0, 0 }, "C[m,n] += A[m,k] * B[k,n] m=5 n=16 k=6")]
    [InlineData(new long[] { 2, 3, 11, 9 }, new long[] { 4, 3, 1, 1 }, new long[] { 2, 2 }, new long[] { 0, 0, 0, 0 }, "C[b,m,n] += A[m,k] * B[b,k,n] b=2 m=4 n=30 k=3")]
    [InlineData(new long[] { 1, 4, 9, 10 }, new long[] { 5, 4, 3, 3 }, new long[] { 2, 2 }, new long[] { 1, 1, 1, 1 }, "C[m,n] += A[m,k] * B[k,n] m=5 n=25 k=36")]
    [InlineData(new long[] { 1, 3, 16, 15 }, new long[] { 4, 3, 7, 7 }, new long[] { 2, 2 }, new long[] { 3, 3, 2, 2 }, "C[m,n] += A[m,k] * B[k,n] m=4 n=56 k=147")]
    // stride 2 along rows of 40 columns: 20 output columns, one vector of even elements and a tail
    [InlineData(new long[] { 1, 2, 7, 40 }, new long[] { 3, 2, 3, 3 }, new long[] { 2, 2 }, new long[] { 1, 1, 0, 0 }, "C[m,n] += A[m,k] * B[k,n] m=3 n=60 k=18")]
    [InlineData(new long[] { 2, 3, 9, 10 }, new long[] { 4, 3, 3, 2 }, new long[] { 2, 3 }, new long[] { 1, 2, 0, 1 }, "C[b,m,n] += A[m,k] * B[b,k,n] b=2 m=4 n=16 k=18")]
    [InlineData(new long[] { 1, 4, 6, 7 }, new long[] { 2, 4, 3, 3 }, new long[] { 1, 1 }, new long[] { 1, 1, 1, 1 }, "C[m,n] += A[m,k] * B[k,n] m=2 n=42 k=36")]
    public void A_conv_lowered_to_a_product_over_its_windows_columns_matches_onnx_runtime_run_after_run(long[] x, long[] w, long[] strides, long[] pads, string expectedSpec)
    {
        var bytes = Model(
            [Node("Conv", "conv", ["X", "W", "B"], ["Y"], Ints("strides", strides), Ints("pads", pads), Ints("kernel_shape", w[2], w[3]))],
            [Value("X", x)], [Value("Y", null)],
            [Floats("W", w, Random(w.Aggregate(1L, (p, d) => p * d), 72)), Floats("B", [w[0]], Random(w[0], 73))]);
        var model = OnnxModel.Parse(bytes, "test.onnx");
        var ways = ModelLowering.Alternatives(model, ShapeInference.Infer(model), model.Nodes[0]);
        Assert.Equal((w[2] * w[3] == 1 ? 1 : 2) + ConvOp.Blocks(w[0]).Length, ways.Length);
        var op = Assert.IsType<ConvOp>(Assert.Single(ways, l => ((ConvOp)l).Lowering == ConvLowering.Columns));
        Assert.Equal(ConvLowering.Columns, op.Lowering);
        Assert.Equal(expectedSpec, op.Contraction.Text);
        Assert.Equal(x[0] == 1, op.Contraction.AsMatmul() is not null); // one image: the project's own mm, with sgemm as its peer
        Assert.True(op.CopiesInput);
        Assert.Equal(2.0 * x[0] * w[0] * op.OutputShape[2] * op.OutputShape[3] * x[1] * w[2] * w[3], op.Flops);
        Assert.Equal(op.Flops, op.Contraction.Flops); // no taps of zeros

        // a vectorized schedule over the output plane, run into one output with other inputs: the columns' zeros stay
        RunTwiceAgainstOnnxRuntime(bytes, op, VectorizedOver(op.Contraction, "n"), x, 80);
    }

    [Theory]
    [InlineData(new long[] { 1, 4, 9, 10 }, new long[] { 32, 4, 3, 3 }, new long[] { 1, 1 }, new long[] { 1, 1, 1, 1 })]
    [InlineData(new long[] { 2, 3, 9, 10 }, new long[] { 16, 3, 3, 2 }, new long[] { 2, 3 }, new long[] { 1, 2, 0, 1 })]
    [InlineData(new long[] { 1, 3, 16, 15 }, new long[] { 64, 3, 7, 7 }, new long[] { 2, 2 }, new long[] { 3, 3, 2, 2 })]
    [InlineData(new long[] { 1, 5, 8, 8 }, new long[] { 48, 5, 3, 3 }, new long[] { 2, 2 }, new long[] { 1, 1, 0, 0 })]
    [InlineData(new long[] { 1, 8, 9, 10 }, new long[] { 32, 8, 1, 1 }, new long[] { 2, 2 }, new long[] { 0, 0, 0, 0 })]
    public void A_conv_lowered_to_blocks_of_output_channels_matches_onnx_runtime_run_after_run(long[] x, long[] w, long[] strides, long[] pads)
    {
        var bytes = Model(
            [Node("Conv", "conv", ["X", "W", "B"], ["Y"], Ints("strides", strides), Ints("pads", pads), Ints("kernel_shape", w[2], w[3]))],
            [Value("X", x)], [Value("Y", null)],
            [Floats("W", w, Random(w.Aggregate(1L, (p, d) => p * d), 74)), Floats("B", [w[0]], Random(w[0], 75))]);
        var model = OnnxModel.Parse(bytes, "test.onnx");
        // one blocked lowering per block of output channels that divides them, the widest (the default) first
        var blocks = ConvOp.Blocks(w[0]);
        Assert.Equal(ConvOp.Block(w[0]), blocks[0]);
        var ops = ModelLowering.Alternatives(model, ShapeInference.Infer(model), model.Nodes[0]).OfType<ConvOp>().Where(l => l.Lowering == ConvLowering.Blocked).ToList();
        Assert.Equal(blocks, ops.Select(o => (long)o.ChannelBlock));
        foreach (var (op, e) in ops.Zip(blocks))
        {
            Assert.True(e > 1 && w[0] % e == 0, $"block {e}");
            var c = op.Contraction;
            Assert.Equal(c.Sizes[Array.IndexOf(c.Vars.ToArray(), "e")], e);
            Assert.Equal($"blocked {e}", op.LoweringName);
            Assert.StartsWith(w[0] == e ? "O[" + (x[0] > 1 ? "n," : "") + "h,w,e] += I[" : "O[" + (x[0] > 1 ? "n," : "") + "g,h,w,e] += I[", c.Text, StringComparison.Ordinal);
            Assert.Equal(op.Flops, c.Flops);
            Assert.Contains("written into the node's output", op.OutsideKernel[^1]);

            // output channels vectorized, the input broadcast; run twice into one output with other inputs
            RunTwiceAgainstOnnxRuntime(bytes, op, VectorizedOver(c, "e"), x, 90);
        }
    }

    [Theory]
    [InlineData(49, 16, 49)]
    [InlineData(203, 24, 210)]
    [InlineData(130, 64, 131)]
    [InlineData(5, 3, 7)]
    public void The_transpose_of_a_blocked_output_writes_every_element_where_a_loop_would_and_nothing_else(int rows, int columns, int stride)
    {
        var from = Random(rows * columns, 95);
        var to = Enumerable.Repeat(-9f, (columns - 1) * stride + rows + 3).ToArray();
        ConvOp.Transpose(from, rows, columns, to, stride);
        var want = Enumerable.Repeat(-9f, to.Length).ToArray();
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < columns; j++) want[j * stride + i] = from[i * columns + j];
        Assert.Equal(want, to);
        Assert.Throws<ArgumentException>(() => ConvOp.Transpose(from, rows, columns, to.AsSpan(0, to.Length - 4), stride));
    }

    [Theory]
    [InlineData(49, 16, 49, true, true)]
    [InlineData(203, 24, 210, true, false)]
    [InlineData(64, 8, 64, false, true)]
    [InlineData(5, 3, 7, true, true)]
    public void The_transpose_with_an_epilogue_adds_the_residual_then_applies_the_relu_to_every_element_it_writes(int rows, int columns, int stride, bool add, bool relu)
    {
        var from = Random(rows * columns, 96);
        int length = (columns - 1) * stride + rows + 3;
        var residual = Random(length, 97);
        var to = Enumerable.Repeat(-9f, length).ToArray();
        ConvOp.Transpose(from, rows, columns, to, stride, add ? residual : default, relu);
        var want = Enumerable.Repeat(-9f, length).ToArray();
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < columns; j++)
            {
                float v = from[i * columns + j] + (add ? residual[j * stride + i] : 0);
                want[j * stride + i] = relu ? Math.Max(v, 0) : v;
            }
        Assert.Equal(want, to);
        Assert.Throws<ArgumentException>(() => ConvOp.Transpose(from, rows, columns, to, stride, residual.AsSpan(0, length - 4), relu));
    }

    [Fact]
    public void The_one_pass_epilogue_adds_the_residual_then_applies_the_relu()
    {
        var x = Random(1000, 98);
        var r = Random(1000, 99);
        var y = (float[])x.Clone();
        ElementwiseOps.AddRelu(y, r, true, y);
        Assert.Equal(x.Select((v, i) => Math.Max(v + r[i], 0f)), y);
        var z = (float[])x.Clone();
        ElementwiseOps.AddRelu(z, default, false, z);
        Assert.Equal(x, z);
        ElementwiseOps.AddRelu(z, default, true, z);
        Assert.Equal(x.Select(v => Math.Max(v, 0f)), z);
    }

    [Theory]
    [InlineData(512)]
    [InlineData(256)]
    public void The_vector_copy_of_even_elements_writes_what_a_loop_would_and_stops_before_reading_past_the_row(int bits)
    {
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported)
        {
            Assert.Equal(0, Strided.Evens(new float[64], new float[32], bits)); // no such vectors here: nothing written
            return;
        }
        // without AVX-512, 512 bits asked for are 256-bit vectors
        var from = Random(95, 90);
        var to = new float[45];
        int written = Strided.Evens(from, to, bits);
        Assert.Equal(40, written); // 512 bits: 16, 16, then 8; 256 bits: 8 five times; the last 5 are left to a loop
        for (int i = 0; i < written; i++) Assert.Equal(from[2 * i], to[i]);
        Assert.All(to[written..], v => Assert.Equal(0f, v));
    }

    [Fact]
    public void A_row_copy_writes_every_float_of_its_row_and_nothing_beside_it_for_every_length()
    {
        // every length from 0 to past the vector path's limit, each at every offset of a 64-byte line, in guard zones
        for (int n = 0; n <= Strided.ShortRow + 3; n++)
            for (int offset = 0; offset < 16; offset++)
            {
                var from = Random(n + 40, n + 7);
                var to = Enumerable.Repeat(-5f, n + 40).ToArray();
                Strided.Row(from.AsSpan(offset + 3, n), to.AsSpan(offset, n));
                for (int i = 0; i < to.Length; i++)
                    Assert.Equal(i >= offset && i < offset + n ? from[i + 3] : -5f, to[i]);
            }
        Assert.Throws<ArgumentException>(() => Strided.Row(new float[5], new float[6]));
    }

    [Fact]
    public void A_gemm_with_transB_alpha_beta_and_a_bias_matches_onnx_runtime_with_alpha_folded_into_the_constant_B()
    {
        var bytes = Model(
            [Node("Gemm", "fc", ["A", "B", "C"], ["Y"], Int("transB", 1), Float("alpha", 0.5f), Float("beta", 2f))],
            [Value("A", [5, 7])], [Value("Y", null)],
            [Floats("B", [6, 7], Random(42, 11)), Floats("C", [6], Random(6, 12))]);
        var feeds = new Dictionary<string, (float[], long[])> { ["A"] = (Random(35, 10), [5, 7]) };
        CheckAgainstOnnxRuntime(bytes, feeds, "Y[m,n] += A[m,k] * B[n,k] m=5 n=6 k=7");
        var op = Assert.IsType<GemmOp>(LowerAndRun(bytes, feeds).Op);
        Assert.Equal("B", op.AlphaInto);
        Assert.Equal("Y starts as beta 2 times C [6] broadcast to [5,6]", op.OutsideKernel[2]);
    }

    [Fact]
    public void A_gemm_of_two_fed_inputs_with_transA_applies_alpha_after_the_kernel_and_matches_onnx_runtime()
    {
        var bytes = Model(
            [Node("Gemm", "fc", ["A", "B", "C"], ["Y"], Int("transA", 1), Float("alpha", -1.5f), Float("beta", 0.25f))],
            [Value("A", [7, 5]), Value("B", [7, 6])], [Value("Y", null)], [Floats("C", [5, 1], Random(5, 22), raw: false)]);
        var feeds = new Dictionary<string, (float[], long[])> { ["A"] = (Random(35, 20), [7, 5]), ["B"] = (Random(42, 21), [7, 6]) };
        CheckAgainstOnnxRuntime(bytes, feeds, "Y[m,n] += A[k,m] * B[k,n] m=5 n=6 k=7");
        Assert.Null(Assert.IsType<GemmOp>(LowerAndRun(bytes, feeds).Op).AlphaInto);
    }

    [Theory]
    [InlineData(new long[] { 3, 4, 5 }, new long[] { 3, 5, 6 }, "Y[b,m,n] += A[b,m,k] * B[b,k,n] b=3 m=4 n=6 k=5")]
    [InlineData(new long[] { 2, 3, 4, 5 }, new long[] { 5, 6 }, "Y[b1,b2,m,n] += A[b1,b2,m,k] * B[k,n] b1=2 b2=3 m=4 n=6 k=5")]
    [InlineData(new long[] { 2, 1, 4, 5 }, new long[] { 3, 5, 6 }, "Y[b1,b2,m,n] += A[b1,m,k] * B[b2,k,n] b1=2 b2=3 m=4 n=6 k=5")]
    [InlineData(new long[] { 5 }, new long[] { 2, 5, 6 }, "Y[b,n] += A[k] * B[b,k,n] b=2 n=6 k=5")]
    public void A_batched_matmul_matches_onnx_runtime(long[] a, long[] b, string expectedSpec)
    {
        var bytes = Model([Node("MatMul", "mm", ["A", "B"], ["Y"])], [Value("A", a)], [Value("Y", null)],
            [Floats("B", b, Random(b.Aggregate(1L, (p, d) => p * d), 31))]);
        CheckAgainstOnnxRuntime(bytes, new() { ["A"] = (Random(a.Aggregate(1L, (p, d) => p * d), 30), a) }, expectedSpec);
    }

    [Fact]
    public void A_grouped_conv_is_not_tuned_with_its_reason_and_the_rest_goes_on()
    {
        var bytes = Model(
            [
                Node("Conv", "grouped", ["X", "W1"], ["T"], Int("group", 2)),
                Node("Relu", "relu", ["T"], ["U"]),
                Node("Conv", "plain", ["U", "W2"], ["Y"], Ints("pads", 1, 1, 1, 1)),
            ],
            [Value("X", [1, 4, 6, 6])], [Value("Y", null), Value("U", null)],
            [Floats("W1", [4, 2, 3, 3], Random(72, 41)), Floats("W2", [2, 4, 3, 3], Random(72, 42))]);
        var model = OnnxModel.Parse(bytes, "grouped.onnx");
        var lowered = ModelLowering.Lower(model, ShapeInference.Infer(model));
        Assert.Equal("grouped (Conv): not tuned: group 2 (a grouped convolution is 2 contractions; only group 1 is lowered)", lowered[0].ToString());
        Assert.Equal("relu (Relu): not tuned: Relu is not a contraction", lowered[1].ToString());
        var plain = Assert.IsType<ConvOp>(lowered[2]);
        Assert.Equal("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=2 h=4 w=4 c=4 r=3 s=3", plain.Contraction.Text);

        // the lowered conv, fed ONNX Runtime's value of its input, gives ONNX Runtime's output
        var ort = RunOnnxRuntime(bytes, new Dictionary<string, (float[], long[])> { ["X"] = (Random(144, 40), [1, 4, 6, 6]) }, "U", "Y");
        var output = plain.Run(Kernel.Compile(Nest.Initial(plain.Contraction)), new Dictionary<string, float[]> { ["U"] = ort["U"].Data });
        AssertClose(ort["Y"].Data, output);
    }

    [Fact]
    public void A_dilated_conv_is_not_tuned()
    {
        var bytes = Model([Node("Conv", "dilated", ["X", "W"], ["Y"], Ints("dilations", 2, 2))],
            [Value("X", [1, 2, 8, 8])], [Value("Y", null)], [Floats("W", [2, 2, 3, 3], Random(36, 1))]);
        var model = OnnxModel.Parse(bytes, "dilated.onnx");
        var result = Assert.IsType<NotTuned>(Assert.Single(ModelLowering.Lower(model, ShapeInference.Infer(model))));
        Assert.Equal("dilations [2,2] (only dilation 1 is lowered)", result.Reason);
    }

    [Fact]
    public void Running_with_a_kernel_of_another_contraction_is_refused()
    {
        var bytes = Model([Node("MatMul", "mm", ["A", "B"], ["Y"])], [Value("A", [2, 3]), Value("B", [3, 4])], [Value("Y", null)], []);
        var model = OnnxModel.Parse(bytes, "mm.onnx");
        var op = Assert.IsType<MatMulOp>(Assert.Single(ModelLowering.Lower(model, ShapeInference.Infer(model))));
        var other = Kernel.Compile(Nest.Initial(Computation.Parse("mm 2 4 3")));
        Assert.Contains("not Y[m,n] += A[m,k] * B[k,n]", Assert.Throws<ArgumentException>(() => op.Run(other, new Dictionary<string, float[]>())).Message);
    }
}
