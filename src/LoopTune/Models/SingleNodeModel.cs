using Google.Protobuf;
using LoopTune.Models.Onnx;

namespace LoopTune.Models;

/// <summary>
/// One node of a model as a model of its own, for another runtime to run alone (<c>looptune model</c> times ONNX Runtime
/// on it): the node with its attributes, its constant inputs as initializers (weights, bias), every other input a graph
/// input and the first output a graph output, all float32 with the inferred shapes; the model's opset.
/// </summary>
public sealed class SingleNodeModel
{
    SingleNodeModel(byte[] bytes, IReadOnlyList<(string Name, long[] Shape)> inputs, string output, long[] outputShape)
    {
        Bytes = bytes; Inputs = inputs; Output = output; OutputShape = outputShape;
    }

    /// <summary>The serialized <c>ModelProto</c>.</summary>
    public byte[] Bytes { get; }
    /// <summary>The inputs to feed, with their shapes (the node's inputs that are not constants).</summary>
    public IReadOnlyList<(string Name, long[] Shape)> Inputs { get; }
    /// <summary>The output's name.</summary>
    public string Output { get; }
    public long[] OutputShape { get; }

    /// <summary>Builds the one-node model of <paramref name="node"/>; an input or output whose shape is unknown, or a node
    /// not read from a file, is an <see cref="ArgumentException"/>.</summary>
    public static SingleNodeModel Of(OnnxModel model, ModelShapes shapes, OnnxNode node)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(shapes);
        ArgumentNullException.ThrowIfNull(node);
        var proto = node.Proto?.Clone() ?? throw new ArgumentException($"node {node} was not read from a file");
        proto.Output.Clear();
        proto.Output.Add(node.Outputs[0]);
        long[] Shape(string name) => shapes.Of(name)?.ToArray() ?? throw new ArgumentException($"node {node}: the shape of {name} is unknown");
        var graph = new GraphProto { Name = node.Name };
        graph.Node.Add(proto);
        var inputs = new List<(string, long[])>();
        foreach (var name in node.Inputs.Where(i => i.Length > 0).Distinct())
        {
            if (model.Initializers.TryGetValue(name, out var constant)) graph.Initializer.Add(Tensor(constant, name));
            else
            {
                var shape = Shape(name);
                graph.Input.Add(Value(name, shape));
                inputs.Add((name, shape));
            }
        }
        var outputShape = Shape(node.Outputs[0]);
        graph.Output.Add(Value(node.Outputs[0], outputShape));
        var m = new ModelProto { IrVersion = Math.Max(model.IrVersion, 7), ProducerName = "looptune", Graph = graph };
        m.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = model.Opset });
        return new SingleNodeModel(m.ToByteArray(), inputs, node.Outputs[0], outputShape);
    }

    /// <summary>Builds a one-node model from scratch (no file: the peers' ONNX Runtime runs one per contraction, and the
    /// named datasets lower model layers through one): the node <paramref name="opType"/> of the default domain with the
    /// integer attributes <paramref name="ints"/> (a list for more than one value or when <c>IsList</c>), each input a
    /// graph input or, with a <c>Constant</c>, an initializer; the output <c>Y</c> of <paramref name="outputShape"/>; opset
    /// <see cref="MadeOpset"/>.</summary>
    public static SingleNodeModel Make(string opType, IReadOnlyList<NodeInput> inputs, long[] outputShape, params NodeAttribute[] ints)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputShape);
        var node = new NodeProto { OpType = opType, Name = opType.ToLowerInvariant(), Domain = "" };
        node.Output.Add(MadeOutput);
        foreach (var a in ints)
        {
            var attribute = new AttributeProto { Name = a.Name };
            if (a.IsList) { attribute.Type = AttributeProto.Types.AttributeType.Ints; attribute.Ints.AddRange(a.Values); }
            else { attribute.Type = AttributeProto.Types.AttributeType.Int; attribute.I = a.Values.Single(); }
            node.Attribute.Add(attribute);
        }
        var graph = new GraphProto { Name = opType };
        graph.Node.Add(node);
        var fed = new List<(string, long[])>();
        foreach (var input in inputs)
        {
            node.Input.Add(input.Name);
            if (input.Constant is { } data) graph.Initializer.Add(Floats(input.Name, input.Shape, data));
            else
            {
                graph.Input.Add(Value(input.Name, input.Shape));
                fed.Add((input.Name, input.Shape));
            }
        }
        graph.Output.Add(Value(MadeOutput, outputShape));
        var m = new ModelProto { IrVersion = 7, ProducerName = "looptune", Graph = graph };
        m.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = MadeOpset });
        return new SingleNodeModel(m.ToByteArray(), fed, MadeOutput, outputShape);
    }

    /// <summary>The opset of the models <see cref="Make"/> builds.</summary>
    public const int MadeOpset = 13;

    const string MadeOutput = "Y";

    /// <summary>A float32 initializer holding <paramref name="data"/> as raw little-endian bytes.</summary>
    static TensorProto Floats(string name, long[] shape, float[] data)
    {
        long length = shape.Aggregate(1L, (p, d) => p * d);
        if (data.Length != length) throw new ArgumentException($"initializer {name} holds {data.Length} floats, its shape {ModelShapes.Format(shape)} {length}");
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan())) };
        t.Dims.AddRange(shape);
        return t;
    }

    static TensorProto Tensor(OnnxTensor t, string name)
    {
        if (t.Proto is { } p)
        {
            var copy = p.Clone();
            copy.Name = name;
            return copy;
        }
        var made = new TensorProto { Name = name, DataType = (int)t.DataType };
        made.Dims.AddRange(t.Dims);
        if (t.IsFloat) made.FloatData.AddRange(t.Floats);
        else if (t.IsInteger) made.Int64Data.AddRange(t.Integers);
        else throw new ArgumentException($"tensor {name} holds {t.DataType}, which cannot be copied");
        return made;
    }

    static ValueInfoProto Value(string name, long[] dims)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = new TensorShapeProto() };
        foreach (long d in dims) tensor.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }
}

/// <summary>An input of a node made by <see cref="SingleNodeModel.Make"/>: fed at run time, or a constant (an initializer).</summary>
public sealed record NodeInput(string Name, long[] Shape, float[]? Constant = null);

/// <summary>An integer attribute of a node made by <see cref="SingleNodeModel.Make"/>: <c>ints</c> when
/// <paramref name="IsList"/>, else <c>i</c> (one value).</summary>
public sealed record NodeAttribute(string Name, long[] Values, bool IsList = true)
{
    /// <summary>A one-value (<c>i</c>) attribute.</summary>
    public static NodeAttribute Int(string name, long value) => new(name, [value], false);
}
