using System.Collections.Immutable;
using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Models;

/// <summary>What <see cref="ModelLowering"/> made of one node: a <see cref="ContractionOp"/> or <see cref="NotTuned"/>.</summary>
public abstract class LoweredNode(OnnxNode node)
{
    public OnnxNode Node { get; } = node;
}

/// <summary>A node left to other code, with the reason (an operator that is not a contraction, a grouped or dilated
/// convolution, an unknown shape).</summary>
public sealed class NotTuned(OnnxNode node, string reason) : LoweredNode(node)
{
    public string Reason { get; } = reason;
    public override string ToString() => $"{Node}: not tuned: {Reason}";
}

/// <summary>
/// A node that is one contraction (<see cref="Contraction"/>, the kernel's <c>out += left * right</c>) plus the work done
/// outside the kernel, listed in <see cref="OutsideKernel"/> (a padded copy of the input, the output's initial value
/// from a bias, a scale). <see cref="Run"/> does all of it around a compiled kernel of the contraction.
/// </summary>
public abstract class ContractionOp(OnnxNode node, OnnxModel model, Computation contraction, ImmutableArray<long> outputShape,
    ImmutableArray<string> outsideKernel) : LoweredNode(node)
{
    protected OnnxModel Model { get; } = model;
    /// <summary>The contraction the kernel computes; its text is the spec to tune.</summary>
    public Computation Contraction { get; } = contraction;
    /// <summary>The shape of the node's output, as ONNX lays it out (row-major).</summary>
    public ImmutableArray<long> OutputShape { get; } = outputShape;
    /// <summary>What is done around the kernel, in order, one line each.</summary>
    public ImmutableArray<string> OutsideKernel { get; } = outsideKernel;

    /// <summary>Runs the node: the node's inputs are taken from <paramref name="feeds"/> by name, or else from the
    /// model's initializers; returns the output, row-major in <see cref="OutputShape"/>. The kernel must be compiled
    /// from a nest of <see cref="Contraction"/> (any schedule).</summary>
    public float[] Run(Kernel kernel, IReadOnlyDictionary<string, float[]> feeds)
    {
        if (!kernel.Computation.Equals(Contraction))
            throw new ArgumentException($"the kernel computes {kernel.Computation.Text}, not {Contraction.Text}");
        if (kernel.Fraction != 1) throw new ArgumentException("the kernel is a slice of the contraction");
        var output = new float[checked((int)Contraction.Output.Length)];
        Func<string, float[]> value = name => feeds.TryGetValue(name, out var v) ? v : Constant(name) ?? throw new ArgumentException($"no value for {name}: feed it");
        var (left, right) = Prepare(output, value);
        kernel.Run(output, left, right);
        Finish(output, value);
        return output;
    }

    /// <summary>Writes the output's initial value and returns the kernel's two inputs.</summary>
    protected abstract (float[] Left, float[] Right) Prepare(float[] output, Func<string, float[]> value);

    /// <summary>Work on the output after the kernel (none by default).</summary>
    protected virtual void Finish(float[] output, Func<string, float[]> value) { }

    /// <summary>The float32 initializer of that name, or null.</summary>
    protected float[]? Constant(string name) => Model.Initializers.TryGetValue(name, out var t) && t.IsFloat ? t.Floats : null;

    /// <summary>Checks a value's length against its inferred shape.</summary>
    protected static float[] Sized(float[] value, string name, long length) =>
        value.Length == length ? value : throw new ArgumentException($"{name} holds {value.Length} floats, its shape {length}");

    public override string ToString() => $"{Node}: {Contraction.Text}";
}
