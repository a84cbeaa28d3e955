using System.Runtime.InteropServices;
using Google.Protobuf;
using LoopTune.Models.Onnx;

namespace LoopTune.Models;

/// <summary>
/// ResNet's layers written as an ONNX model with seeded random weights: where no trained model is at hand (ResNet-50's
/// weights ship in no package served here), its speed is the real model's (the same operators on the same shapes: the
/// weights' values change no kernel's time) and its outputs are not a classifier's. What <c>looptune model resnet50</c>
/// runs.
/// <para>The network is torchvision's ResNet with bottleneck blocks (v1.5: the stride in each block's 3x3 convolution):
/// a 7x7 stride-2 stem, BatchNormalization, Relu and a 3x3 stride-2 MaxPool; then stages of blocks
/// <c>1x1 -> 3x3 -> 1x1 (4x the channels)</c>, each convolution followed by a BatchNormalization, the block's input added
/// (through a 1x1 convolution and its BatchNormalization in each stage's first block) before the last Relu; then a
/// GlobalAveragePool, a Flatten and a Gemm to the classes. Batch 1, opset 13.</para>
/// <para>The weights are He-initialized, the BatchNormalizations' scales 0.8-1.2 (0.3x on each block's last one, as a
/// trained ResNet damps its residual branches), their shifts and means small and their variances 0.8-1.2, so that the
/// activations neither vanish nor grow through the 16 blocks.</para>
/// </summary>
public static class SyntheticResNet
{
    /// <summary>ResNet-50's stages: 3, 4, 6 and 3 bottleneck blocks.</summary>
    public static readonly IReadOnlyList<int> ResNet50 = [3, 4, 6, 3];

    /// <summary>The model's ONNX bytes: <paramref name="depths"/> bottleneck blocks per stage, the stem's
    /// <paramref name="width"/> channels (each stage doubling them), <paramref name="image"/> x <paramref name="image"/>
    /// RGB input <c>data</c>, <paramref name="classes"/> outputs <c>logits</c>, the weights drawn from <paramref name="seed"/>.</summary>
    public static byte[] Bottleneck(IReadOnlyList<int> depths, int width = 64, int image = 224, int classes = 1000, int seed = 50)
    {
        ArgumentNullException.ThrowIfNull(depths);
        if (depths.Count == 0 || depths.Any(d => d < 1)) throw new ArgumentException($"each stage needs a block at least, not [{string.Join(", ", depths)}]", nameof(depths));
        if (width < 1 || image < 32 || classes < 1) throw new ArgumentException($"width {width}, image {image} and classes {classes}: width and classes at least 1, the image at least 32 pixels");
        var net = new Writer(seed);
        string h = net.ConvNorm("data", 3, width, 7, 2, relu: true);
        h = net.Node("MaxPool", [h], "pool", Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1));
        long channels = width;
        for (int stage = 0; stage < depths.Count; stage++)
        {
            long inner = (long)width << stage, outer = inner * 4;
            for (int block = 0; block < depths[stage]; block++)
            {
                int stride = stage > 0 && block == 0 ? 2 : 1;
                string a = net.ConvNorm(h, channels, inner, 1, 1, relu: true);
                string b = net.ConvNorm(a, inner, inner, 3, stride, relu: true);
                string c = net.ConvNorm(b, inner, outer, 1, 1, relu: false, scale: 0.3);
                string shortcut = block == 0 ? net.ConvNorm(h, channels, outer, 1, stride, relu: false) : h;
                h = net.Node("Relu", [net.Node("Add", [c, shortcut], "add")], "relu");
                channels = outer;
            }
        }
        string flat = net.Node("Flatten", [net.Node("GlobalAveragePool", [h], "gap")], "flat");
        double sd = Math.Sqrt(1.0 / channels);
        string fc = net.Initializer("fc_w", [classes, channels], r => sd * Normal(r));
        string bias = net.Initializer("fc_b", [classes], r => 0.01 * Normal(r));
        net.Graph.Node.Add(NodeOf("Gemm", "fc", [flat, fc, bias], "logits", new AttributeProto { Name = "transB", Type = AttributeProto.Types.AttributeType.Int, I = 1 }));
        net.Graph.Input.Add(Value("data", [1, 3, image, image]));
        net.Graph.Output.Add(Value("logits", [1, classes]));
        var model = new ModelProto { IrVersion = 8, ProducerName = "looptune", Graph = net.Graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        return model.ToByteArray();
    }

    sealed class Writer(int seed)
    {
        readonly Random rng = new(seed);
        int count;
        public GraphProto Graph { get; } = new() { Name = "resnet" };

        /// <summary>A node with one output, named from <paramref name="prefix"/>; returns the output's name.</summary>
        public string Node(string op, string[] inputs, string prefix, params AttributeProto[] attributes)
        {
            string output = $"{prefix}{count++}";
            Graph.Node.Add(NodeOf(op, output, inputs, output, attributes));
            return output;
        }

        /// <summary>A float initializer of <paramref name="dims"/>, each value drawn by <paramref name="draw"/>.</summary>
        public string Initializer(string prefix, long[] dims, Func<Random, double> draw)
        {
            string name = $"{prefix}{count++}";
            var data = new float[dims.Aggregate(1L, (a, b) => a * b)];
            for (int i = 0; i < data.Length; i++) data[i] = (float)draw(rng);
            var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(data.AsSpan())) };
            t.Dims.AddRange(dims);
            Graph.Initializer.Add(t);
            return name;
        }

        /// <summary>A <paramref name="k"/>x<paramref name="k"/> convolution (padded to keep the size at stride 1), its
        /// BatchNormalization, and a Relu when asked; returns the last output.</summary>
        public string ConvNorm(string x, long c, long f, int k, int stride, bool relu, double scale = 1)
        {
            double sd = Math.Sqrt(2.0 / (c * k * k)); // He
            string w = Initializer("w", [f, c, k, k], r => sd * Normal(r));
            string y = Node("Conv", [x, w], "conv", Ints("kernel_shape", k, k), Ints("strides", stride, stride), Ints("pads", k / 2, k / 2, k / 2, k / 2));
            string gamma = Initializer("scale", [f], r => scale * (0.8 + 0.4 * r.NextDouble())), beta = Initializer("shift", [f], r => 0.1 * Normal(r));
            string mean = Initializer("mean", [f], r => 0.1 * Normal(r)), variance = Initializer("var", [f], r => 0.8 + 0.4 * r.NextDouble());
            string z = Node("BatchNormalization", [y, gamma, beta, mean, variance], "bn");
            return relu ? Node("Relu", [z], "relu") : z;
        }
    }

    /// <summary>A standard normal value (Box-Muller).</summary>
    static double Normal(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());

    static NodeProto NodeOf(string op, string name, string[] inputs, string output, params AttributeProto[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = name };
        n.Input.AddRange(inputs);
        n.Output.Add(output);
        n.Attribute.AddRange(attributes);
        return n;
    }

    static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    static ValueInfoProto Value(string name, long[] dims)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = new TensorShapeProto() };
        foreach (long d in dims) tensor.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }
}
