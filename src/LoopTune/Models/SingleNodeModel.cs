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
