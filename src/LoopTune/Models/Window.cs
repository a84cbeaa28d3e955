using System.Collections.Immutable;

namespace LoopTune.Models;

/// <summary>
/// The sliding window of a Conv or a pooling node over its spatial axes: kernel, strides, dilations and the padding
/// before and after each axis, resolved from the attributes (<c>kernel_shape</c>, <c>strides</c>, <c>dilations</c>,
/// <c>pads</c> as [begin..., end...], <c>auto_pad</c> NOTSET, VALID, SAME_UPPER or SAME_LOWER).
/// </summary>
public sealed record Window(ImmutableArray<long> Kernel, ImmutableArray<long> Strides, ImmutableArray<long> Dilations,
    ImmutableArray<long> PadsBegin, ImmutableArray<long> PadsEnd, bool CeilMode)
{
    /// <summary>The output size of each spatial axis for these input sizes.</summary>
    public ImmutableArray<long> OutputSizes(IReadOnlyList<long> input) =>
        [.. Enumerable.Range(0, Kernel.Length).Select(i => OutputSize(i, input[i]))];

    long OutputSize(int axis, long input)
    {
        long span = input + PadsBegin[axis] + PadsEnd[axis] - Extent(axis);
        if (span < 0) return 0;
        long output = (CeilMode ? (span + Strides[axis] - 1) / Strides[axis] : span / Strides[axis]) + 1;
        // as ONNX Runtime and PyTorch: with ceil_mode, the last window must start inside the input or its begin pad
        if (CeilMode && (output - 1) * Strides[axis] >= input + PadsBegin[axis]) output--;
        return output;
    }

    /// <summary>Elements one window covers on an axis: <c>(kernel - 1) * dilation + 1</c>.</summary>
    public long Extent(int axis) => (Kernel[axis] - 1) * Dilations[axis] + 1;

    /// <summary>ONNX's <c>pads</c> order: every axis's begin, then every axis's end.</summary>
    public ImmutableArray<long> Pads => PadsBegin.AddRange(PadsEnd);

    /// <summary>Resolves a node's window over inputs of these spatial sizes; <paramref name="kernel"/> is the weights'
    /// spatial dims for a Conv without <c>kernel_shape</c>. Throws <see cref="ArgumentException"/> with the reason on
    /// attributes that do not fit the input.</summary>
    public static Window Of(OnnxNode node, IReadOnlyList<long> spatial, IReadOnlyList<long>? kernel)
    {
        int rank = spatial.Count;
        var k = node.Ints("kernel_shape") ?? kernel?.ToImmutableArray()
            ?? throw new ArgumentException("no kernel_shape");
        var strides = node.Ints("strides") ?? [.. Enumerable.Repeat(1L, rank)];
        var dilations = node.Ints("dilations") ?? [.. Enumerable.Repeat(1L, rank)];
        var pads = node.Ints("pads") ?? [.. Enumerable.Repeat(0L, 2 * rank)];
        if (k.Length != rank) throw new ArgumentException($"kernel_shape [{string.Join(",", k)}] for {rank} spatial axes");
        if (strides.Length != rank || strides.Any(s => s < 1)) throw new ArgumentException($"strides [{string.Join(",", strides)}] for {rank} spatial axes");
        if (dilations.Length != rank || dilations.Any(s => s < 1)) throw new ArgumentException($"dilations [{string.Join(",", dilations)}] for {rank} spatial axes");
        if (pads.Length != 2 * rank || pads.Any(p => p < 0)) throw new ArgumentException($"pads [{string.Join(",", pads)}] for {rank} spatial axes");
        if (k.Any(x => x < 1)) throw new ArgumentException($"kernel_shape [{string.Join(",", k)}]");
        var begin = pads.Take(rank).ToArray();
        var end = pads.Skip(rank).ToArray();
        string autoPad = node.String("auto_pad", "NOTSET");
        switch (autoPad)
        {
            case "NOTSET": break;
            case "VALID": Array.Clear(begin); Array.Clear(end); break;
            case "SAME_UPPER" or "SAME_LOWER":
                for (int i = 0; i < rank; i++)
                {
                    long output = (spatial[i] + strides[i] - 1) / strides[i];
                    long total = Math.Max(0, (output - 1) * strides[i] + (k[i] - 1) * dilations[i] + 1 - spatial[i]);
                    begin[i] = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
                    end[i] = total - begin[i];
                }
                break;
            default: throw new ArgumentException($"auto_pad '{autoPad}'");
        }
        return new Window(k, strides, dilations, [.. begin], [.. end], node.Int("ceil_mode", 0) != 0);
    }
}
