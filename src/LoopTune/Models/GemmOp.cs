using System.Collections.Immutable;
using LoopTune.Ir;
using static LoopTune.Models.ContractionText;

namespace LoopTune.Models;

/// <summary>
/// A <c>Gemm</c> (<c>Y = alpha * A' * B' + beta * C</c>) as <c>Y[m,n] += A[m,k] * B[k,n]</c>, with A and B indexed in
/// the layout they are stored in (transA: <c>A[k,m]</c>, transB: <c>B[n,k]</c>), so no transpose is copied. alpha is
/// folded into B when B is a constant (else into A when A is), once; with neither constant, Y is scaled after the
/// kernel. Y starts as <c>beta * C</c> broadcast to [M,N] (zeros without C).
/// </summary>
public sealed class GemmOp : ContractionOp
{
    readonly string a, b;
    readonly string? c;
    readonly float alpha, beta;
    readonly long cRows, cColumns;
    readonly Lazy<float[]?> scaled;

    GemmOp(OnnxNode node, OnnxModel model, Computation contraction, ImmutableArray<long> outputShape, ImmutableArray<string> outside,
        string? alphaInto, long cRows, long cColumns) : base(node, model, contraction, outputShape, outside)
    {
        a = node.Inputs[0]; b = node.Inputs[1]; c = node.Input(2);
        alpha = node.Float("alpha", 1); beta = node.Float("beta", 1);
        (AlphaInto, this.cRows, this.cColumns) = (alphaInto, cRows, cColumns);
        scaled = new(() => alphaInto is null ? null : [.. Constant(alphaInto)!.Select(v => v * alpha)]);
    }

    /// <summary>The constant input alpha is folded into (its name), or null when alpha is 1 or applied after the kernel.</summary>
    public string? AlphaInto { get; }

    internal static LoweredNode Lower(OnnxNode node, OnnxModel model, ImmutableArray<long> aShape, ImmutableArray<long> bShape,
        ImmutableArray<long>? cShape, ImmutableArray<long> y)
    {
        bool ta = node.Int("transA", 0) != 0, tb = node.Int("transB", 0) != 0;
        long m = y[0], n = y[1], k = ta ? aShape[0] : aShape[1];
        float alpha = node.Float("alpha", 1), beta = node.Float("beta", 1);
        long cRows = 1, cColumns = 1;
        if (cShape is { } cs)
        {
            if (cs.Length > 2) return new NotTuned(node, $"bias C {ModelShapes.Format(cs)} has more than 2 dims");
            cRows = cs.Length == 2 ? cs[0] : 1;
            cColumns = cs.Length >= 1 ? cs[^1] : 1;
            if (cRows != 1 && cRows != m || cColumns != 1 && cColumns != n)
                return new NotTuned(node, $"bias C {ModelShapes.Format(cs)} does not broadcast to [{m},{n}]");
        }
        var contraction = new ContractionText().Var("m", m).Var("n", n).Var("k", k)
            .Tensor("Y", D("m"), D("n"))
            .Tensor("A", ta ? [D("k"), D("m")] : [D("m"), D("k")])
            .Tensor("B", tb ? [D("n"), D("k")] : [D("k"), D("n")])
            .Build();
        bool Constant(string name) => model.Initializers.TryGetValue(name, out var t) && t.IsFloat;
        string? alphaInto = alpha == 1 ? null : Constant(node.Inputs[1]) ? node.Inputs[1] : Constant(node.Inputs[0]) ? node.Inputs[0] : null;
        var outside = new List<string>
        {
            $"A = {node.Inputs[0]} {ModelShapes.Format(aShape)}{(ta ? " (transA: read as A[k,m])" : "")}{(alphaInto == node.Inputs[0] ? $" times alpha {alpha}, once" : "")}",
            $"B = {node.Inputs[1]} {ModelShapes.Format(bShape)}{(tb ? " (transB: read as B[n,k])" : "")}{(alphaInto == node.Inputs[1] ? $" times alpha {alpha}, once" : "")}",
        };
        string bias = node.Input(2) is { } cName && beta != 0
            ? $"{(beta == 1 ? "" : $"beta {beta} times ")}{cName} {ModelShapes.Format(cShape!.Value)} broadcast to [{m},{n}]"
            : "";
        if (alpha != 1 && alphaInto is null)
        {
            outside.Add("Y starts as zeros");
            outside.Add($"after the kernel: Y = alpha {alpha} times Y{(bias.Length > 0 ? " plus " + bias : "")}");
        }
        else outside.Add(bias.Length > 0 ? $"Y starts as {bias}" : "Y starts as zeros");
        return new GemmOp(node, model, contraction, y, [.. outside], alphaInto, cRows, cColumns);
    }

    bool PostScale => alpha != 1 && AlphaInto is null;

    protected override (string? Left, string? Right) OperandInputs() => (a, b);

    protected override bool IsConstant(float[] array) => (scaled.IsValueCreated && ReferenceEquals(array, scaled.Value)) || base.IsConstant(array);

    protected override (float[] Left, float[] Right) Prepare(float[] output, Func<string, float[]> value)
    {
        var left = AlphaInto == a ? scaled.Value! : Sized(value(a), a, Contraction.Left.Length);
        var right = AlphaInto == b ? scaled.Value! : Sized(value(b), b, Contraction.Right.Length);
        if (!PostScale) AddBias(output, value);
        return (left, right);
    }

    protected override void Finish(float[] output, Func<string, float[]> value)
    {
        if (!PostScale) return;
        for (int i = 0; i < output.Length; i++) output[i] *= alpha;
        AddBias(output, value);
    }

    /// <summary>Adds <c>beta * C</c>, broadcast, to the output.</summary>
    void AddBias(float[] output, Func<string, float[]> value)
    {
        if (c is null || beta == 0) return;
        var bias = Sized(value(c), c, cRows * cColumns);
        int m = (int)OutputShape[0], n = (int)OutputShape[1];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                output[i * n + j] += beta * bias[(cRows == 1 ? 0 : i) * cColumns + (cColumns == 1 ? 0 : j)];
    }
}
