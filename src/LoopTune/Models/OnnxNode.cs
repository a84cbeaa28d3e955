using System.Collections.Immutable;
using LoopTune.Models.Onnx;

namespace LoopTune.Models;

/// <summary>ONNX attribute kinds (<c>AttributeProto.AttributeType</c>), with ONNX's numbers.</summary>
public enum OnnxAttributeType
{
    Undefined = 0, Float = 1, Int = 2, String = 3, Tensor = 4, Graph = 5, Floats = 6, Ints = 7, Strings = 8,
    Tensors = 9, Graphs = 10, SparseTensor = 11, SparseTensors = 12, TypeProto = 13, TypeProtos = 14,
}

/// <summary>One attribute of a node; the field its <see cref="Type"/> names holds the value.</summary>
public sealed record OnnxAttribute(string Name, OnnxAttributeType Type, float Float, long Int, string String,
    ImmutableArray<float> Floats, ImmutableArray<long> Ints, OnnxTensor? Tensor)
{
    internal static OnnxAttribute Read(AttributeProto a, string source) =>
        new(a.Name, (OnnxAttributeType)a.Type, a.F, a.I, a.S.ToStringUtf8(), [.. a.Floats], [.. a.Ints],
            a.T is null ? null : OnnxTensor.Read(a.T, source));
}

/// <summary>One node of the graph: an operator applied to named values. An empty input name is an omitted optional input.</summary>
public sealed class OnnxNode(string name, string opType, string domain, ImmutableArray<string> inputs, ImmutableArray<string> outputs,
    IReadOnlyDictionary<string, OnnxAttribute> attributes)
{
    /// <summary>The node's name, or <c>OpType_index</c> when the file gives none.</summary>
    public string Name { get; } = name;
    public string OpType { get; } = opType;
    /// <summary>The operator set's domain; empty for the default ONNX domain.</summary>
    public string Domain { get; } = domain;
    public ImmutableArray<string> Inputs { get; } = inputs;
    public ImmutableArray<string> Outputs { get; } = outputs;
    public IReadOnlyDictionary<string, OnnxAttribute> Attributes { get; } = attributes;

    /// <summary>The i-th input's name, or null when the node has no such input (or it was omitted).</summary>
    public string? Input(int i) => i < Inputs.Length && Inputs[i].Length > 0 ? Inputs[i] : null;

    /// <summary>An integer attribute, or the default when absent.</summary>
    public long Int(string name, long fallback) => Attributes.TryGetValue(name, out var a) ? a.Int : fallback;
    /// <summary>A float attribute, or the default when absent.</summary>
    public float Float(string name, float fallback) => Attributes.TryGetValue(name, out var a) ? a.Float : fallback;
    /// <summary>A string attribute, or the default when absent.</summary>
    public string String(string name, string fallback) => Attributes.TryGetValue(name, out var a) ? a.String : fallback;
    /// <summary>An integer list attribute, or null when absent.</summary>
    public ImmutableArray<long>? Ints(string name) => Attributes.TryGetValue(name, out var a) ? a.Ints : null;

    /// <summary>The message it was read from (null for a node made in code): <see cref="SingleNodeModel"/> copies it.</summary>
    internal NodeProto? Proto { get; init; }

    /// <summary>Name and operator, e.g. <c>conv1 (Conv)</c>.</summary>
    public override string ToString() => $"{Name} ({OpType})";

    internal static OnnxNode Read(NodeProto n, int index, string source)
    {
        var attributes = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        foreach (var a in n.Attribute) attributes[a.Name] = OnnxAttribute.Read(a, source);
        string name = n.HasName && n.Name.Length > 0 ? n.Name : $"{n.OpType}_{index}";
        return new OnnxNode(name, n.OpType, n.Domain, [.. n.Input], [.. n.Output], attributes) { Proto = n };
    }
}

/// <summary>One dimension of a declared shape: a number, or a symbolic name (<c>dim_param</c>, e.g. a batch size),
/// or neither when the file leaves it unknown.</summary>
public readonly record struct OnnxDim(long? Value, string? Param)
{
    public override string ToString() => Value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? Param ?? "?";
}

/// <summary>A graph input or output as the file declares it: a name, an element type and a shape (which may be
/// missing or symbolic).</summary>
public sealed record OnnxValue(string Name, OnnxDataType ElementType, ImmutableArray<OnnxDim>? Shape)
{
    internal static OnnxValue Read(ValueInfoProto v)
    {
        var t = v.Type?.TensorType;
        ImmutableArray<OnnxDim>? shape = t?.Shape is { } s
            ? [.. s.Dim.Select(d => new OnnxDim(d.HasDimValue ? d.DimValue : null, d.HasDimParam ? d.DimParam : null))]
            : null;
        return new OnnxValue(v.Name, (OnnxDataType)(t?.ElemType ?? 0), shape);
    }

    public override string ToString() => Shape is { } s ? $"{Name} [{string.Join(",", s)}]" : $"{Name} [unknown shape]";
}
