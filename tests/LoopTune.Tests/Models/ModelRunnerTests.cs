using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Models;
using static LoopTune.Tests.Models.OnnxTestModels;

namespace LoopTune.Tests.Models;

/// <summary>The forward pass (<see cref="ModelRunner"/>) of small CNNs written here, with a compiled kernel of each
/// contraction's unscheduled nest, against ONNX Runtime running the whole model; BatchNormalization folding against the
/// unfolded computation; nodes it cannot run refused by name.</summary>
public class ModelRunnerTests
{
    /// <summary>X [1,3,16,16] -> conv1 (8 filters 3x3, pads 1, bias) -> bn1 -> Relu -> MaxPool 3x3/2 pads [1,1,0,0]
    /// [1,8,8,8] -> conv2 (8 filters 3x3, pads 1, no bias) -> bn2 -> Add (the pool's output) -> Add (a per-channel constant
    /// [8,1,1]) -> Relu -> AveragePool 2x2/2 pads [0,0,1,1] count_include_pad [1,8,4,4] -> GlobalAveragePool -> Flatten
    /// [1,8] -> Gemm (transB, bias) [1,5].</summary>
    static byte[] SmallCnn() => Model(
        [
            Node("Conv", "conv1", ["X", "W1", "B1"], ["Y1"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
            BatchNorm("bn1", "Y1", "N1"),
            Node("Relu", "relu1", ["N1"], ["R1"]),
            Node("MaxPool", "pool", ["R1"], ["P"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 0, 0)),
            Node("Conv", "conv2", ["P", "W2"], ["Y2"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
            BatchNorm("bn2", "Y2", "N2"),
            Node("Add", "add", ["N2", "P"], ["A"]),
            Node("Add", "bias", ["A", "C"], ["A2"]),
            Node("Relu", "relu2", ["A2"], ["R2"]),
            Node("AveragePool", "avg", ["R2"], ["Q"], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2), Ints("pads", 0, 0, 1, 1), Int("count_include_pad", 1)),
            Node("GlobalAveragePool", "gap", ["Q"], ["G"]),
            Node("Flatten", "flatten", ["G"], ["F"], Int("axis", 1)),
            Node("Gemm", "fc", ["F", "Wf", "Bf"], ["Y"], Int("transB", 1)),
        ],
        [Value("X", [1, 3, 16, 16])], [Value("Y", null)],
        [
            Floats("W1", [8, 3, 3, 3], Random(216, 1)), Floats("B1", [8], Random(8, 2)), .. Norm("bn1", 8, 3),
            Floats("W2", [8, 8, 3, 3], Random(576, 7)), .. Norm("bn2", 8, 8), Floats("C", [8, 1, 1], Random(8, 12)),
            Floats("Wf", [5, 8], Random(40, 13)), Floats("Bf", [5], Random(5, 14)),
        ]);

    /// <summary>The runner of a model with a kernel of each contraction's unscheduled nest.</summary>
    internal static (OnnxModel Model, Dictionary<OnnxNode, ChosenKernel> Kernels, ModelRunner Runner) Build(byte[] bytes, int threads = 1)
    {
        var model = OnnxModel.Parse(bytes, "test.onnx");
        var shapes = ShapeInference.Infer(model);
        var kernels = ModelLowering.Lower(model, shapes).OfType<ContractionOp>()
            .ToDictionary(op => op.Node, op => new ChosenKernel(op, Threaded(Kernel.Compile(Nest.Initial(op.Contraction)), threads)));
        return (model, kernels, ModelRunner.Build(model, shapes, kernels));
    }

    /// <summary><paramref name="kernel"/> set to run on <paramref name="threads"/> threads (more than the cores allowed).</summary>
    static Kernel Threaded(Kernel kernel, int threads)
    {
        kernel.SetThreads(threads);
        return kernel;
    }

    /// <summary>The model of <paramref name="bytes"/> with each Conv's blocked lowering and a kernel of its unscheduled nest
    /// on <paramref name="threads"/> threads (no parallel loop: the copies, write-back and epilogue take the threads); null
    /// when a Conv has no blocked lowering on this machine's vectors.</summary>
    static (OnnxModel Model, ModelShapes Shapes, Dictionary<OnnxNode, ChosenKernel> Kernels)? BlockedKernels(byte[] bytes, int threads)
    {
        var model = OnnxModel.Parse(bytes, "test.onnx");
        var shapes = ShapeInference.Infer(model);
        var kernels = new Dictionary<OnnxNode, ChosenKernel>();
        foreach (var node in model.Nodes.Where(n => n.OpType == "Conv"))
        {
            var blocked = ModelLowering.Alternatives(model, shapes, node).OfType<ConvOp>().FirstOrDefault(o => o.Lowering == ConvLowering.Blocked);
            if (blocked is null) return null;
            kernels[node] = new ChosenKernel(blocked, Threaded(Kernel.Compile(Nest.Initial(blocked.Contraction)), threads));
        }
        return (model, shapes, kernels);
    }

    /// <summary>Runs ours and ONNX Runtime's on the same input; returns our runner.</summary>
    static ModelRunner RunAgainstOnnxRuntime(byte[] bytes, long[] inputShape, string output = "Y", int threads = 1)
    {
        var (_, _, runner) = Build(bytes, threads);
        var x = runner.Value("X");
        Random(x.Length, 42).CopyTo(x);
        runner.Run();
        var (want, shape) = RunOnnxRuntime(bytes, new Dictionary<string, (float[], long[])> { ["X"] = (x, inputShape) }, output)[output];
        AssertClose(want, runner.Value(output));
        runner.Run(); // a second pass into the same arrays gives the same output
        AssertClose(want, runner.Value(output));
        return runner;
    }

    /// <summary>The epilogue a pass gives each convolution (<see cref="ModelRunner.EpilogueAfter"/>), which the choice among
    /// its lowerings times it with: ResNet's basic block, the first convolution with its BatchNormalization folded and a
    /// Relu, the second with the block's input added, then a Relu; none where the Add has no other value; of a downsampling
    /// branch and the convolution added to it, the later one adds.</summary>
    [Fact]
    public void The_epilogue_after_a_convolution_is_the_residual_and_relu_that_the_pass_fuses()
    {
        var bytes = Model(
            [
                Node("Conv", "conv1", ["X", "W1"], ["Y1"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
                BatchNorm("bn1", "Y1", "N1"),
                Node("Relu", "relu1", ["N1"], ["R1"]),
                Node("Conv", "conv2", ["R1", "W2"], ["Y2"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
                Node("Add", "add", ["Y2", "X"], ["A"]),
                Node("Relu", "relu2", ["A"], ["B"]),
                Node("Conv", "conv3", ["B", "W3"], ["Y3"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
                Node("Add", "add3", ["Y3", "Y3"], ["Z"]),
                Node("Conv", "down", ["Z", "W4"], ["D"], Ints("kernel_shape", 1, 1)),
                Node("Conv", "conv5", ["Z", "W5"], ["Y5"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
                Node("Add", "add5", ["Y5", "D"], ["Y"]),
            ],
            [Value("X", [1, 4, 5, 5])], [Value("Y", null)],
            [Floats("W1", [4, 4, 3, 3], Random(144, 1)), .. Norm("bn1", 4, 2), Floats("W2", [4, 4, 3, 3], Random(144, 3)), Floats("W3", [4, 4, 3, 3], Random(144, 4)),
             Floats("W4", [4, 4, 1, 1], Random(16, 5)), Floats("W5", [4, 4, 3, 3], Random(144, 6))]);
        var model = OnnxModel.Parse(bytes, "block.onnx");
        var shapes = ShapeInference.Infer(model);
        Assert.Equal((false, true), ModelRunner.EpilogueAfter(model, shapes, model.Nodes[0]));
        Assert.Equal((true, true), ModelRunner.EpilogueAfter(model, shapes, model.Nodes[3]));
        Assert.Equal((false, false), ModelRunner.EpilogueAfter(model, shapes, model.Nodes[6])); // Y3 + Y3: no other value to add
        // a downsampling branch and the block's second convolution, added: the one made later adds (ResNet's stride-2 blocks)
        Assert.Equal((false, false), ModelRunner.EpilogueAfter(model, shapes, model.Nodes[8]));
        Assert.Equal((true, false), ModelRunner.EpilogueAfter(model, shapes, model.Nodes[9]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void A_small_cnn_runs_end_to_end_as_onnx_runtime_runs_it_with_both_batch_norms_folded(int threads)
    {
        // at 3 threads the copies around the kernels and the pools are split among them
        var runner = RunAgainstOnnxRuntime(SmallCnn(), [1, 3, 16, 16], threads: threads);
        Assert.Equal([("conv1", "bn1"), ("conv2", "bn2")], runner.Folds.Select(f => (f.Conv, f.BatchNorm)));
        Assert.All(runner.Folds, f => Assert.True(f.Passed, $"{f}"));
        Assert.Equal(["X"], runner.Inputs);
        Assert.Equal(2.0 * (8 * 16 * 16 * 27 + 8 * 8 * 8 * 72 + 5 * 8), runner.Flops);
        // relu1 (the only reader of conv1+bn1's output) and add (conv2+bn2's output plus the pool's, made earlier) run in
        // their convolution's epilogue; the per-channel Add (it broadcasts) and relu2 (after it) run as their own steps
        Assert.Equal(["conv1", "pool", "conv2", "bias", "relu2", "avg", "gap", "fc"], runner.Profile(1).Select(p => p.Node));
    }

    [Theory]
    [InlineData(true, 1)]
    [InlineData(false, 1)]
    [InlineData(true, 2)]
    [InlineData(false, 3)]
    public void Blocked_convolutions_write_their_output_back_with_the_residual_and_relu_fused_as_onnx_runtime_computes_them(bool bias, int threads)
    {
        // X [1,16,9,11] -> conv1 (16 filters 3x3, pads 1) -> Relu -> R1; conv2 (16 filters 3x3, pads 1) of R1 -> Add R1 -> Relu -> Y:
        // both convolutions lowered blocked (16 output channels, innermost), whose write-back does the epilogue
        var bytes = Model(
            [
                Node("Conv", "conv1", bias ? ["X", "W1", "B1"] : ["X", "W1"], ["Y1"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
                Node("Relu", "relu1", ["Y1"], ["R1"]),
                Node("Conv", "conv2", ["R1", "W2"], ["Y2"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
                Node("Add", "add", ["Y2", "R1"], ["A"]),
                Node("Relu", "relu2", ["A"], ["Y"]),
            ],
            [Value("X", [1, 16, 9, 11])], [Value("Y", null)],
            [Floats("W1", [16, 16, 3, 3], Random(2304, 21)), Floats("B1", [16], Random(16, 22)), Floats("W2", [16, 16, 3, 3], Random(2304, 23))]);
        if (BlockedKernels(bytes, threads) is not var (model, shapes, kernels)) return; // no block of output channels divides 16 on this machine's vectors
        var runner = ModelRunner.Build(model, shapes, kernels);
        Assert.Equal(["conv1", "conv2"], runner.Profile(1).Select(p => p.Node));
        var x = runner.Value("X");
        Random(x.Length, 24).CopyTo(x);
        var want = RunOnnxRuntime(bytes, new Dictionary<string, (float[], long[])> { ["X"] = (x, [1, 16, 9, 11]) }, "Y")["Y"].Item1;
        for (int pass = 0; pass < 2; pass++) // the second into the same arrays
        {
            runner.Run();
            AssertClose(want, runner.Value("Y"));
        }
        Assert.Contains(runner.Value("Y"), v => v == 0);
        Assert.Equal(0, runner.HandedOff); // rows of 11 pixels: each writes its output back
        Assert.Equal(2, runner.Arrays.Shared); // the two given convolutions, run on ops of the pass's own, share a blocked output and a padded copy
    }

    [Theory]
    [InlineData(true, 1)]
    [InlineData(false, 1)]
    [InlineData(true, 3)]
    public void A_max_pool_after_a_blocked_convolution_pools_its_blocked_output_as_onnx_runtime_computes_it(bool relu, int threads)
    {
        // X [1,5,12,13] -> conv (32 filters 3x3, pads 1, bias) -> [Relu] -> MaxPool 3x3/2 pads [1,1,0,0] -> Y [1,32,6,6]:
        // the pool reads the blocked kernel's output (ResNet's stem and its pool), and the Relu is done on the pooled pixels
        var bytes = Model(
            [
                Node("Conv", "conv", ["X", "W", "B"], ["C"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
                .. relu ? [Node("Relu", "relu", ["C"], ["R"])] : Array.Empty<LoopTune.Models.Onnx.NodeProto>(),
                Node("MaxPool", "pool", [relu ? "R" : "C"], ["Y"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 0, 0)),
            ],
            [Value("X", [1, 5, 12, 13])], [Value("Y", null)],
            [Floats("W", [32, 5, 3, 3], Random(1440, 31)), Floats("B", [32], Random(32, 32))]);
        var model = OnnxModel.Parse(bytes, "test.onnx");
        var shapes = ShapeInference.Infer(model);
        var conv = model.Nodes[0];
        // the narrowest block (one vector), where the other tests take the default, the widest
        var blocked = ModelLowering.Alternatives(model, shapes, conv).OfType<ConvOp>().LastOrDefault(o => o.Lowering == ConvLowering.Blocked);
        if (blocked is null) return; // no block of output channels divides 32 on this machine's vectors
        var kernel = Threaded(Kernel.Compile(Nest.Initial(blocked.Contraction)), threads);
        var runner = ModelRunner.Build(model, shapes, new Dictionary<OnnxNode, ChosenKernel> { [conv] = new(blocked, kernel) });
        Assert.Equal(["conv", "pool"], runner.Profile(1).Select(p => p.Node));
        var x = runner.Value("X");
        Random(x.Length, 33).CopyTo(x);
        var want = RunOnnxRuntime(bytes, new Dictionary<string, (float[], long[])> { ["X"] = (x, [1, 5, 12, 13]) }, "Y")["Y"].Item1;
        for (int pass = 0; pass < 2; pass++)
        {
            runner.Run();
            AssertClose(want, runner.Value("Y"));
        }
        Assert.Equal(relu, runner.Value("Y").Any(v => v == 0) && !runner.Value("Y").Any(v => v < 0));
        Assert.All(runner.Value("C"), v => Assert.Equal(0, v)); // no write-back: the pool read the blocked layout
        // a MaxPool after a convolution lowered otherwise reads its NCHW output, with the same result
        var direct = ModelLowering.Alternatives(model, shapes, conv).OfType<ConvOp>().First(o => o.Lowering == ConvLowering.Direct);
        var plain = ModelRunner.Build(model, shapes, new Dictionary<OnnxNode, ChosenKernel> { [conv] = new(direct, Kernel.Compile(Nest.Initial(direct.Contraction))) });
        x.CopyTo(plain.Value("X"), 0);
        plain.Run();
        AssertClose(want, plain.Value("Y"));
        Assert.Contains(plain.Value("C"), v => v != 0);
    }

    [Theory]
    [InlineData(16, 1, 1, true)]
    [InlineData(16, 1, 3, true)]
    [InlineData(8, 2, 1, true)]
    [InlineData(11, 1, 1, false)] // rows of 11 pixels are not whole tiles of the write-back: conv1 writes its output and conv2 copies it
    public void A_blocked_convolution_read_only_by_the_next_writes_into_its_padded_input_as_onnx_runtime_computes_it(int width, int batch, int threads, bool handsOff)
    {
        // X [N,16,6,W] -> conv1 (16 filters 3x3, pads 1, bias) -> Relu -> R; conv2 (16 filters 3x3, pads [2,1,0,1]) of R -> Y:
        // conv1's write-back goes straight into conv2's padded copy of R, whose zeros stay
        long[] shape = [batch, 16, 6, width];
        var bytes = Model(
            [
                Node("Conv", "conv1", ["X", "W1", "B1"], ["C"], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
                Node("Relu", "relu", ["C"], ["R"]),
                Node("Conv", "conv2", ["R", "W2"], ["Y"], Ints("pads", 2, 1, 0, 1), Ints("kernel_shape", 3, 3)),
            ],
            [Value("X", shape)], [Value("Y", null)],
            [Floats("W1", [16, 16, 3, 3], Random(2304, 41)), Floats("B1", [16], Random(16, 42)), Floats("W2", [16, 16, 3, 3], Random(2304, 43))]);
        if (BlockedKernels(bytes, threads) is not var (model, shapes, kernels)) return; // no block of output channels divides 16 on this machine's vectors
        var runner = ModelRunner.Build(model, shapes, kernels);
        Assert.Equal(handsOff ? 1 : 0, runner.HandedOff);
        var x = runner.Value("X");
        Random(x.Length, 44).CopyTo(x);
        var want = RunOnnxRuntime(bytes, new Dictionary<string, (float[], long[])> { ["X"] = (x, shape) }, "Y")["Y"].Item1;
        for (int pass = 0; pass < 2; pass++) // the second into the same arrays: the padded copy's zeros are still zeros
        {
            runner.Run();
            AssertClose(want, runner.Value("Y"));
        }
        Assert.Equal(handsOff, runner.Value("R").All(v => v == 0)); // handed on: R in NCHW is never written
        // the ops given are left as they were: run alone, conv1's writes its output and conv2's makes its own padded copy
        var (conv1, k1) = kernels[model.Nodes[0]];
        var (conv2, k2) = kernels[model.Nodes[2]];
        var r = conv1.Run(k1, new Dictionary<string, float[]> { ["X"] = x }).Select(v => Math.Max(v, 0f)).ToArray();
        AssertClose(want, conv2.Run(k2, new Dictionary<string, float[]> { ["R"] = r }));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Values_whose_readers_are_done_give_their_arrays_to_later_ones_and_the_pass_still_computes_as_onnx_runtime(int threads)
    {
        // X [1,16,8,16] -> conv1 -> Relu -> A; conv2(A) + X -> Relu -> C; conv3(C) -> Relu -> D; conv4(D) + C -> F: A's array,
        // read last by conv2, holds D; the four blocked convolutions share their blocked outputs and padded copies
        long[] shape = [1, 16, 8, 16];
        LoopTune.Models.Onnx.NodeProto Conv(string name, string x, string y) => Node("Conv", name, [x, "W" + name], [y], Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3));
        var bytes = Model(
            [
                Conv("1", "X", "Y1"), Node("Relu", "r1", ["Y1"], ["A"]),
                Conv("2", "A", "Y2"), Node("Add", "a2", ["Y2", "X"], ["S2"]), Node("Relu", "r2", ["S2"], ["C"]),
                Conv("3", "C", "Y3"), Node("Relu", "r3", ["Y3"], ["D"]),
                Conv("4", "D", "Y4"), Node("Add", "a4", ["Y4", "C"], ["F"]),
            ],
            [Value("X", shape)], [Value("F", null)], [.. Enumerable.Range(1, 4).Select(i => Floats($"W{i}", [16, 16, 3, 3], [.. Random(2304, 50 + i).Select(w => w / 12)]))]); // weights of He scale: values stay near 1 through the four
        if (BlockedKernels(bytes, threads) is not var (model, shapes, kernels)) return; // no block of output channels divides 16 on this machine's vectors
        var runner = ModelRunner.Build(model, shapes, kernels);
        Assert.Same(runner.Value("A"), runner.Value("D"));
        Assert.NotSame(runner.Value("C"), runner.Value("F"));
        var x = runner.Value("X");
        Random(x.Length, 55).CopyTo(x);
        var want = RunOnnxRuntime(bytes, new Dictionary<string, (float[], long[])> { ["X"] = (x, shape) }, "F")["F"].Item1;
        for (int pass = 0; pass < 3; pass++)
        {
            runner.Run();
            AssertClose(want, runner.Value("F"));
        }
        Assert.Equal(4, runner.Arrays.Values); // X; A then D; C; F
        Assert.Equal(2, runner.Arrays.Shared); // one blocked output and one padded copy for the four convolutions
    }

    [Fact]
    public void A_batch_norm_whose_conv_output_is_also_read_elsewhere_runs_unfolded_as_onnx_runtime_runs_it()
    {
        // Y1 is read by bn1 and by the Add: bn1 cannot be folded into conv1
        var bytes = Model(
            [
                Node("Conv", "conv1", ["X", "W1"], ["Y1"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2)),
                BatchNorm("bn1", "Y1", "N1"),
                Node("Add", "add", ["N1", "Y1"], ["Y"]),
            ],
            [Value("X", [2, 3, 9, 9])], [Value("Y", null)], [Floats("W1", [4, 3, 3, 3], Random(108, 1)), .. Norm("bn1", 4, 2)]);
        Assert.Empty(RunAgainstOnnxRuntime(bytes, [2, 3, 9, 9]).Folds);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_folded_conv_matches_the_conv_followed_by_the_batch_norm_formula(bool bias)
    {
        // X [1,4,10,12] -> conv (6 filters 3x3, stride 2 along w: a phase-split lowering, pads 1) -> bn -> N (the output)
        var bytes = Model(
            [
                Node("Conv", "conv", bias ? ["X", "W", "B"] : ["X", "W"], ["Y1"], Ints("kernel_shape", 3, 3), Ints("strides", 1, 2), Ints("pads", 1, 1, 1, 1)),
                BatchNorm("bn", "Y1", "N"),
            ],
            [Value("X", [1, 4, 10, 12])], [Value("N", null)], [Floats("W", [6, 4, 3, 3], Random(216, 1)), Floats("B", [6], Random(6, 2)), .. Norm("bn", 6, 3)]);
        var (model, kernels, runner) = Build(bytes);
        Assert.Single(runner.Folds);
        var x = runner.Value("X");
        Random(x.Length, 5).CopyTo(x);
        runner.Run();

        var conv = kernels[model.Nodes[0]];
        var unfolded = conv.Op.Run(conv.Kernel, new Dictionary<string, float[]> { ["X"] = x });
        float[] C(string name) => model.Initializers[name].Floats;
        var (gamma, beta, mean, variance) = (C("bn_g"), C("bn_b"), C("bn_m"), C("bn_v"));
        int plane = unfolded.Length / 6;
        var want = unfolded.Select((v, i) => (float)((v - mean[i / plane]) / Math.Sqrt(variance[i / plane] + 1e-3) * gamma[i / plane] + beta[i / plane])).ToArray();
        AssertClose(want, runner.Value("N"));
    }

    [Fact]
    public void A_node_the_pass_cannot_run_is_refused_by_name_and_a_contraction_without_a_kernel_too()
    {
        var bytes = Model(
            [Node("Conv", "conv", ["X", "W"], ["Y1"], Ints("kernel_shape", 1, 1)), Node("Softmax", "soft", ["Y1"], ["Y"])],
            [Value("X", [1, 2, 3, 3])], [Value("Y", null)], [Floats("W", [2, 2, 1, 1], Random(4, 1))]);
        var model = OnnxModel.Parse(bytes, "test.onnx");
        var shapes = ShapeInference.Infer(model);
        var problem = Assert.Single(ModelRunner.Unsupported(model, shapes));
        Assert.StartsWith("soft (Softmax): Softmax is not an operator the forward pass runs", problem);
        var e = Assert.Throws<OnnxError>(() => ModelRunner.Build(model, shapes, new Dictionary<OnnxNode, ChosenKernel>()));
        Assert.Contains("cannot run node conv (Conv): no tuned kernel was chosen for it", e.Message);
    }

    [Fact]
    public void A_grouped_conv_and_a_dilated_pool_are_refused_with_their_reasons()
    {
        var bytes = Model(
            [
                Node("Conv", "grouped", ["X", "W"], ["Y1"], Ints("kernel_shape", 1, 1), Int("group", 2)),
                Node("MaxPool", "dilated", ["Y1"], ["Y"], Ints("kernel_shape", 2, 2), Ints("dilations", 2, 2)),
            ],
            [Value("X", [1, 4, 6, 6])], [Value("Y", null)], [Floats("W", [4, 2, 1, 1], Random(8, 1))]);
        var model = OnnxModel.Parse(bytes, "test.onnx");
        var problems = ModelRunner.Unsupported(model, ShapeInference.Infer(model));
        Assert.Equal(2, problems.Count);
        Assert.StartsWith("grouped (Conv): not tuned: group 2", problems[0]);
        Assert.Equal("dilated (MaxPool): dilations [2,2] (only 1 runs)", problems[1]);
    }
}
