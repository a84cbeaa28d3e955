using Google.Protobuf;
using LoopTune.Models.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace LoopTune.Tests.Models;

/// <summary>Small ONNX models written with the generated protobuf classes, and ONNX Runtime (one thread) as the oracle
/// that runs them.</summary>
static class OnnxTestModels
{
    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };
    public static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };
    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public static NodeProto Node(string op, string name, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = name };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        n.Attribute.AddRange(attributes);
        return n;
    }

    /// <summary>A float32 initializer, in raw_data (little-endian) or in float_data.</summary>
    public static TensorProto Floats(string name, long[] dims, float[] data, bool raw = true)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        t.Dims.AddRange(dims);
        if (raw) t.RawData = ByteString.CopyFrom(data.SelectMany(BitConverter.GetBytes).ToArray());
        else t.FloatData.AddRange(data);
        return t;
    }

    /// <summary>An int64 initializer (a Reshape's shape), in raw_data or in int64_data.</summary>
    public static TensorProto Int64s(string name, long[] data, bool raw = true)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        t.Dims.Add(data.Length);
        if (raw) t.RawData = ByteString.CopyFrom(data.SelectMany(BitConverter.GetBytes).ToArray());
        else t.Int64Data.AddRange(data);
        return t;
    }

    /// <summary>A float32 value declaration; null dims: no shape declared; a dim of -1: symbolic (named N).</summary>
    public static ValueInfoProto Value(string name, long[]? dims)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float };
        if (dims is not null)
        {
            tensor.Shape = new TensorShapeProto();
            foreach (long d in dims)
                tensor.Shape.Dim.Add(d < 0 ? new TensorShapeProto.Types.Dimension { DimParam = "N" } : new TensorShapeProto.Types.Dimension { DimValue = d });
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }

    public static byte[] Model(NodeProto[] nodes, ValueInfoProto[] inputs, ValueInfoProto[] outputs, TensorProto[] initializers, int opset = 13)
    {
        var graph = new GraphProto { Name = "test" };
        graph.Node.AddRange(nodes);
        graph.Input.AddRange(inputs);
        graph.Output.AddRange(outputs);
        graph.Initializer.AddRange(initializers);
        var model = new ModelProto { IrVersion = 8, ProducerName = "looptune-tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        return model.ToByteArray();
    }

    /// <summary>The four constants of BatchNormalization <paramref name="name"/> of <paramref name="c"/> channels (variance positive).</summary>
    public static TensorProto[] Norm(string name, int c, int seed) =>
    [
        Floats(name + "_g", [c], Random(c, seed)), Floats(name + "_b", [c], Random(c, seed + 1)),
        Floats(name + "_m", [c], Random(c, seed + 2)), Floats(name + "_v", [c], [.. Random(c, seed + 3).Select(v => Math.Abs(v) + 0.1f)]),
    ];

    /// <summary>BatchNormalization <paramref name="name"/> of <paramref name="x"/> with the constants of <see cref="Norm"/>, epsilon 1e-3.</summary>
    public static NodeProto BatchNorm(string name, string x, string y) =>
        Node("BatchNormalization", name, [x, name + "_g", name + "_b", name + "_m", name + "_v"], [y], Float("epsilon", 1e-3f));

    public static float[] Random(long count, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, (int)count).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
    }

    /// <summary>Runs the model in ONNX Runtime on one thread; returns each requested output with its shape.</summary>
    public static Dictionary<string, (float[] Data, long[] Shape)> RunOnnxRuntime(byte[] model, IReadOnlyDictionary<string, (float[] Data, long[] Shape)> feeds, params string[] outputs)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
        using var session = new InferenceSession(model, options);
        var names = feeds.Keys.ToArray();
        var values = names.Select(n => OrtValue.CreateTensorValueFromMemory(feeds[n].Data, feeds[n].Shape)).ToArray();
        try
        {
            using var run = new RunOptions();
            using var results = session.Run(run, names, values, outputs);
            var map = new Dictionary<string, (float[], long[])>();
            for (int i = 0; i < outputs.Length; i++)
                map[outputs[i]] = (results[i].GetTensorDataAsSpan<float>().ToArray(), results[i].GetTensorTypeAndShape().Shape);
            return map;
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>Element-wise agreement within float rounding of short sums: |got - want| &lt;= 1e-4 max(1, |want|).</summary>
    public static void AssertClose(float[] want, float[] got)
    {
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(got[i] - want[i]) <= 1e-4 * Math.Max(1, Math.Abs(want[i])), $"element {i}: got {got[i]}, ONNX Runtime {want[i]}");
    }
}
