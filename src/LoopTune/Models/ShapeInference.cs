using System.Collections.Immutable;

namespace LoopTune.Models;

/// <summary>The shape of every value of a model that <see cref="ShapeInference"/> could work out, and for the others
/// why not.</summary>
public sealed class ModelShapes(IReadOnlyDictionary<string, ImmutableArray<long>> shapes, IReadOnlyDictionary<string, string> unknown)
{
    /// <summary>Value name to shape (dims outermost first; a scalar has none).</summary>
    public IReadOnlyDictionary<string, ImmutableArray<long>> Shapes { get; } = shapes;
    /// <summary>Value name to the reason its shape is unknown (an operator without a shape rule, or an unknown input).</summary>
    public IReadOnlyDictionary<string, string> Unknown { get; } = unknown;

    /// <summary>The shape of a value, or null when it is unknown.</summary>
    public ImmutableArray<long>? Of(string name) => Shapes.TryGetValue(name, out var s) ? s : null;

    /// <summary>Dims as text, e.g. <c>[1,64,112,112]</c>.</summary>
    public static string Format(IEnumerable<long> dims) => $"[{string.Join(",", dims)}]";
}

/// <summary>
/// Shape inference through a model's graph, node by node in file order, for the operators of ResNet-style CNNs and
/// MLPs: Conv, MaxPool, AveragePool, GlobalAveragePool/GlobalMaxPool, Gemm, MatMul (numpy batch broadcasting),
/// BatchNormalization, elementwise unary operators (Relu, Sigmoid, Tanh, ...), Add/Sub/Mul/Div (numpy broadcasting),
/// Flatten, Reshape (a constant shape), Constant, Identity, Dropout, Softmax, Concat. A graph input's symbolic or
/// unknown dim (a batch size named <c>N</c>) takes <c>symbolicSize</c>. An operator without a rule leaves its outputs
/// unknown, with the reason; shapes that do not fit their operator are an <see cref="OnnxError"/> naming the node.
/// </summary>
public static class ShapeInference
{
    static readonly HashSet<string> SameShape = new(StringComparer.Ordinal)
    {
        "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "Identity", "Dropout", "Softmax", "LogSoftmax", "Exp", "Log",
        "Neg", "Abs", "Sqrt", "Elu", "Selu", "HardSigmoid", "HardSwish", "Erf", "Gelu", "Cast", "BatchNormalization",
        "LRN", "InstanceNormalization", "LayerNormalization",
    };

    static readonly HashSet<string> Broadcasting = new(StringComparer.Ordinal) { "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum" };

    /// <summary>Infers the shape of every value reachable from the graph inputs and the initializers.</summary>
    public static ModelShapes Infer(OnnxModel model, long symbolicSize = 1)
    {
        var shapes = new Dictionary<string, ImmutableArray<long>>(StringComparer.Ordinal);
        var unknown = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, t) in model.Initializers) shapes[name] = t.Dims;
        foreach (var input in model.Inputs)
        {
            if (input.Shape is { } s) shapes[input.Name] = [.. s.Select(d => d.Value ?? symbolicSize)];
            else unknown[input.Name] = $"graph input {input.Name} declares no shape";
        }
        foreach (var node in model.Nodes)
        {
            if (node.OpType == "Constant" && model.Initializers.ContainsKey(node.Outputs[0])) continue;
            var missing = node.Inputs.Where(i => i.Length > 0 && !shapes.ContainsKey(i)).ToList();
            if (missing.Count > 0)
            {
                foreach (var o in node.Outputs) unknown[o] = $"{node}: the shape of {missing[0]} is unknown";
                continue;
            }
            ImmutableArray<long>? output;
            try { output = Output(model, node, i => shapes[node.Inputs[i]]); }
            catch (ArgumentException e) { throw new OnnxError(model.Source, $"node {node}: {e.Message}", e); }
            if (output is { } o0)
            {
                if (o0.Any(d => d < 1)) throw new OnnxError(model.Source, $"node {node}: output shape {ModelShapes.Format(o0)} has an empty dim");
                shapes[node.Outputs[0]] = o0;
            }
            else unknown[node.Outputs[0]] = $"{node}: no shape rule for {node.OpType}";
            foreach (var extra in node.Outputs.Skip(1).Where(x => x.Length > 0))
                unknown[extra] = $"{node}: only the first output of {node.OpType} is inferred";
        }
        return new ModelShapes(shapes, unknown);
    }

    /// <summary>The first output's shape, or null when the operator has no rule here. Inputs that do not fit throw
    /// <see cref="ArgumentException"/> with the reason.</summary>
    static ImmutableArray<long>? Output(OnnxModel model, OnnxNode node, Func<int, ImmutableArray<long>> input)
    {
        string op = node.OpType;
        if (SameShape.Contains(op)) return input(0);
        if (Broadcasting.Contains(op)) return Enumerable.Range(0, node.Inputs.Length).Select(input).Aggregate(Broadcast);
        return op switch
        {
            "Conv" => Conv(node, input(0), input(1)),
            "MaxPool" or "AveragePool" => Pool(node, input(0)),
            "GlobalAveragePool" or "GlobalMaxPool" => [.. input(0).Take(2), .. Enumerable.Repeat(1L, input(0).Length - 2)],
            "Gemm" => Gemm(node, input(0), input(1)),
            "MatMul" => MatMul(input(0), input(1)),
            "Flatten" => Flatten(node, input(0)),
            "Reshape" => Reshape(model, node, input(0)),
            "Concat" => Concat(node, Enumerable.Range(0, node.Inputs.Length).Select(input).ToList()),
            _ => null,
        };
    }

    static ImmutableArray<long> Conv(OnnxNode node, ImmutableArray<long> x, ImmutableArray<long> w)
    {
        if (x.Length < 3) throw new ArgumentException($"input X {ModelShapes.Format(x)} needs a batch, a channel and a spatial axis");
        if (w.Length != x.Length) throw new ArgumentException($"weights W {ModelShapes.Format(w)} do not match input X {ModelShapes.Format(x)}");
        long group = node.Int("group", 1);
        if (group < 1 || x[1] % group != 0 || w[0] % group != 0 || x[1] / group != w[1])
            throw new ArgumentException($"input X {ModelShapes.Format(x)} has {x[1]} channels; weights W {ModelShapes.Format(w)} with group {group} need {w[1] * group}");
        var window = Window.Of(node, x[2..], w[2..]);
        if (!window.Kernel.SequenceEqual(w[2..])) throw new ArgumentException($"kernel_shape {ModelShapes.Format(window.Kernel)} differs from the weights' {ModelShapes.Format(w[2..])}");
        return [x[0], w[0], .. window.OutputSizes(x[2..])];
    }

    static ImmutableArray<long> Pool(OnnxNode node, ImmutableArray<long> x)
    {
        if (x.Length < 3) throw new ArgumentException($"input {ModelShapes.Format(x)} needs a batch, a channel and a spatial axis");
        return [x[0], x[1], .. Window.Of(node, x[2..], null).OutputSizes(x[2..])];
    }

    static ImmutableArray<long> Gemm(OnnxNode node, ImmutableArray<long> a, ImmutableArray<long> b)
    {
        if (a.Length != 2 || b.Length != 2) throw new ArgumentException($"A {ModelShapes.Format(a)} and B {ModelShapes.Format(b)} must be matrices");
        bool ta = node.Int("transA", 0) != 0, tb = node.Int("transB", 0) != 0;
        long m = ta ? a[1] : a[0], k = ta ? a[0] : a[1], kb = tb ? b[1] : b[0], n = tb ? b[0] : b[1];
        if (k != kb) throw new ArgumentException($"A {ModelShapes.Format(a)}{(ta ? " transposed" : "")} has {k} columns, B {ModelShapes.Format(b)}{(tb ? " transposed" : "")} {kb} rows");
        return [m, n];
    }

    /// <summary>numpy's matmul: a 1-d operand is a row (A) or a column (B) that is then dropped; batch dims broadcast.</summary>
    internal static ImmutableArray<long> MatMul(ImmutableArray<long> a, ImmutableArray<long> b)
    {
        if (a.Length == 0 || b.Length == 0) throw new ArgumentException("MatMul of a scalar");
        var a2 = a.Length == 1 ? [1, a[0]] : a;
        var b2 = b.Length == 1 ? [b[0], 1] : b;
        if (a2[^1] != b2[^2]) throw new ArgumentException($"A {ModelShapes.Format(a)} has {a2[^1]} columns, B {ModelShapes.Format(b)} {b2[^2]} rows");
        var batch = Broadcast(a2[..^2], b2[..^2]);
        var result = batch.ToList();
        if (a.Length > 1) result.Add(a2[^2]);
        if (b.Length > 1) result.Add(b2[^1]);
        return [.. result];
    }

    /// <summary>numpy's broadcasting: dims aligned from the right, a 1 stretches to the other.</summary>
    internal static ImmutableArray<long> Broadcast(ImmutableArray<long> a, ImmutableArray<long> b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var result = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            long x = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            long y = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            if (x != y && x != 1 && y != 1) throw new ArgumentException($"shapes {ModelShapes.Format(a)} and {ModelShapes.Format(b)} do not broadcast");
            result[i] = x == 1 ? y : x;
        }
        return [.. result];
    }

    static ImmutableArray<long> Flatten(OnnxNode node, ImmutableArray<long> x)
    {
        long axis = node.Int("axis", 1);
        if (axis < 0) axis += x.Length;
        if (axis < 0 || axis > x.Length) throw new ArgumentException($"axis {node.Int("axis", 1)} for input {ModelShapes.Format(x)}");
        return [x.Take((int)axis).Aggregate(1L, (p, d) => p * d), x.Skip((int)axis).Aggregate(1L, (p, d) => p * d)];
    }

    static ImmutableArray<long>? Reshape(OnnxModel model, OnnxNode node, ImmutableArray<long> x)
    {
        if (node.Input(1) is not { } shapeName) throw new ArgumentException("no shape input");
        if (!model.Initializers.TryGetValue(shapeName, out var shapeTensor) || !shapeTensor.IsInteger) return null;
        var target = shapeTensor.Integers.ToArray();
        bool allowZero = node.Int("allowzero", 0) != 0;
        long total = x.Aggregate(1L, (p, d) => p * d);
        int infer = -1;
        long known = 1;
        for (int i = 0; i < target.Length; i++)
        {
            if (target[i] == 0 && !allowZero)
            {
                if (i >= x.Length) throw new ArgumentException($"shape {ModelShapes.Format(target)} copies dim {i} of {ModelShapes.Format(x)}");
                target[i] = x[i];
            }
            if (target[i] == -1)
            {
                if (infer >= 0) throw new ArgumentException($"shape {ModelShapes.Format(shapeTensor.Integers)} has two -1");
                infer = i;
            }
            else if (target[i] < 0) throw new ArgumentException($"shape {ModelShapes.Format(shapeTensor.Integers)} has a negative dim");
            else known *= target[i];
        }
        if (infer >= 0 && known > 0) target[infer] = total / known;
        if (target.Aggregate(1L, (p, d) => p * d) != total)
            throw new ArgumentException($"cannot reshape {ModelShapes.Format(x)} ({total} elements) to {ModelShapes.Format(shapeTensor.Integers)}");
        return [.. target];
    }

    static ImmutableArray<long> Concat(OnnxNode node, List<ImmutableArray<long>> inputs)
    {
        var first = inputs[0];
        long axis = node.Int("axis", 0);
        if (axis < 0) axis += first.Length;
        if (axis < 0 || axis >= first.Length) throw new ArgumentException($"axis {node.Int("axis", 0)} for {ModelShapes.Format(first)}");
        foreach (var s in inputs)
            if (s.Length != first.Length || Enumerable.Range(0, s.Length).Any(i => i != axis && s[i] != first[i]))
                throw new ArgumentException($"cannot concatenate {ModelShapes.Format(first)} and {ModelShapes.Format(s)} on axis {axis}");
        return first.SetItem((int)axis, inputs.Sum(s => s[(int)axis]));
    }
}
