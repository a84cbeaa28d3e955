using System.Collections.Immutable;
using Google.Protobuf;
using LoopTune.Models.Onnx;

namespace LoopTune.Models;

/// <summary>
/// An ONNX model read from a file (<c>ModelProto</c>): its nodes in file order, its initializers, its graph inputs
/// (those that are not initializers) and outputs. <see cref="ShapeInference"/> gives every value's shape;
/// <see cref="ModelLowering"/> turns its convolutions and matrix products into contractions.
/// </summary>
public sealed class OnnxModel
{
    OnnxModel(string source, long irVersion, long opset, string producer, string graphName, ImmutableArray<OnnxNode> nodes,
        IReadOnlyDictionary<string, OnnxTensor> initializers, ImmutableArray<OnnxValue> inputs, ImmutableArray<OnnxValue> outputs)
    {
        Source = source; IrVersion = irVersion; Opset = opset; Producer = producer; GraphName = graphName;
        Nodes = nodes; Initializers = initializers; Inputs = inputs; Outputs = outputs;
    }

    /// <summary>The file the model was read from (or the label given to <see cref="Parse"/>); errors name it.</summary>
    public string Source { get; }
    public long IrVersion { get; }
    /// <summary>The version of the default (ai.onnx) operator set the model imports.</summary>
    public long Opset { get; }
    /// <summary>Producer name and version, e.g. <c>pytorch 2.1</c>.</summary>
    public string Producer { get; }
    public string GraphName { get; }
    public ImmutableArray<OnnxNode> Nodes { get; }
    /// <summary>Constant tensors by name: the graph's initializers and the values of its <c>Constant</c> nodes.</summary>
    public IReadOnlyDictionary<string, OnnxTensor> Initializers { get; }
    /// <summary>The graph inputs fed at run time (an input that is also an initializer is left out).</summary>
    public ImmutableArray<OnnxValue> Inputs { get; }
    public ImmutableArray<OnnxValue> Outputs { get; }

    /// <summary>Reads an ONNX file. A missing, unreadable, truncated or non-ONNX file is an <see cref="OnnxError"/> naming it.</summary>
    public static OnnxModel Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new OnnxError(path, $"cannot read the file: {e.Message}", e);
        }
        return Parse(bytes, path);
    }

    /// <summary>Reads a serialized <c>ModelProto</c>; <paramref name="source"/> names it in errors.</summary>
    public static OnnxModel Parse(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.IsEmpty) throw new OnnxError(source, "the file is empty, not an ONNX model");
        ModelProto proto;
        try { proto = ModelProto.Parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxError(source, $"not an ONNX model, or a truncated one: the protobuf does not parse ({e.Message})", e);
        }
        return Build(proto, source);
    }

    static OnnxModel Build(ModelProto proto, string source)
    {
        if (!proto.HasIrVersion || proto.IrVersion <= 0) throw new OnnxError(source, "not an ONNX model: no ir_version");
        if (proto.Graph is not { } graph) throw new OnnxError(source, "not an ONNX model, or a truncated one: no graph");
        var opset = proto.OpsetImport.FirstOrDefault(o => !o.HasDomain || o.Domain is "" or "ai.onnx");
        if (opset is null) throw new OnnxError(source, "not an ONNX model, or a truncated one: no opset_import for the default domain");

        var nodes = graph.Node.Select((n, i) => OnnxNode.Read(n, i, source)).ToImmutableArray();
        var initializers = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (var t in graph.Initializer) initializers[t.Name] = OnnxTensor.Read(t, source);
        foreach (var n in nodes.Where(n => n.OpType == "Constant" && n.Outputs.Length == 1))
            if (n.Attributes.TryGetValue("value", out var v) && v.Tensor is { } t) initializers[n.Outputs[0]] = t;
        var inputs = graph.Input.Where(i => !initializers.ContainsKey(i.Name)).Select(OnnxValue.Read).ToImmutableArray();
        var outputs = graph.Output.Select(OnnxValue.Read).ToImmutableArray();
        CheckWiring(source, nodes, initializers, inputs, outputs);
        string producer = $"{proto.ProducerName} {proto.ProducerVersion}".Trim();
        return new OnnxModel(source, proto.IrVersion, opset.Version, producer, graph.Name, nodes, initializers, inputs, outputs);
    }

    /// <summary>Every node input is defined before it is used and every graph output is defined: a graph cut short
    /// (a truncated file whose cut fell between two messages) fails here.</summary>
    static void CheckWiring(string source, ImmutableArray<OnnxNode> nodes, Dictionary<string, OnnxTensor> initializers,
        ImmutableArray<OnnxValue> inputs, ImmutableArray<OnnxValue> outputs)
    {
        if (nodes.IsEmpty) throw new OnnxError(source, "the graph has no nodes");
        var defined = new HashSet<string>(initializers.Keys, StringComparer.Ordinal);
        defined.UnionWith(inputs.Select(i => i.Name));
        foreach (var node in nodes)
        {
            if (string.IsNullOrEmpty(node.OpType)) throw new OnnxError(source, $"node {node.Name} has no op_type");
            foreach (var input in node.Inputs.Where(i => i.Length > 0))
                if (!defined.Contains(input))
                    throw new OnnxError(source, $"node {node} reads '{input}', which no earlier node, graph input or initializer defines");
            defined.UnionWith(node.Outputs.Where(o => o.Length > 0));
        }
        if (outputs.IsEmpty) throw new OnnxError(source, "the graph declares no outputs");
        foreach (var o in outputs)
            if (!defined.Contains(o.Name)) throw new OnnxError(source, $"graph output '{o.Name}' is defined by no node");
    }

    /// <summary>This model with more constants (or constants replaced), all else shared: tensors computed from the
    /// model's own (BatchNormalization folded into a Conv's weights) for nodes lowered against it.</summary>
    public OnnxModel WithConstants(IEnumerable<OnnxTensor> constants)
    {
        var all = new Dictionary<string, OnnxTensor>(Initializers, StringComparer.Ordinal);
        foreach (var t in constants) all[t.Name] = t;
        return new OnnxModel(Source, IrVersion, Opset, Producer, GraphName, Nodes, all, Inputs, Outputs);
    }

    /// <summary>The declared input or output of that name, or null.</summary>
    public OnnxValue? Value(string name) => Inputs.Concat(Outputs).FirstOrDefault(v => v.Name == name);

    public override string ToString() =>
        $"{Path.GetFileName(Source)}: {Nodes.Length} nodes, opset {Opset}, inputs {string.Join(", ", Inputs)}, outputs {string.Join(", ", Outputs)}";
}
