using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace LoopTune.Jit;

/// <summary>How the JIT generates code.</summary>
/// <param name="MaxVectorBits">Widest vector to use: 512, 256, 128, or 0 for scalar code only. Capped by what the
/// machine accelerates, so 512 on an AVX2 machine means 256.</param>
/// <param name="UseFma">Fused multiply-add when the machine has it; false forces multiply then add.</param>
/// <param name="MaxOperations">Most operations the kernel may spell out (multiply-adds, loads, tile loads and stores;
/// a loop counts as 8), a stand-in for code size, which is what RyuJIT's compile time follows. Past it, the JIT keeps
/// the outermost unrolled loops as loops (and says so in <see cref="Kernel.Notes"/>) until the code fits.</param>
public sealed record JitOptions(int MaxVectorBits = 512, bool UseFma = true, int MaxOperations = 1024)
{
    public static readonly JitOptions Default = new();

    /// <summary>Vector widths in floats, widest first, that this machine accelerates and the options allow.</summary>
    public IReadOnlyList<int> VectorWidths => Widths(MaxVectorBits);

    /// <summary>True when fused multiply-add is used (the machine has it and the options allow it).</summary>
    public bool Fused => UseFma && (Fma.IsSupported || AdvSimd.IsSupported);

    static int[] Widths(int maxBits)
    {
        var w = new List<int>();
        if (maxBits >= 512 && Vector512.IsHardwareAccelerated) w.Add(16);
        if (maxBits >= 256 && Vector256.IsHardwareAccelerated) w.Add(8);
        if (maxBits >= 128 && Vector128.IsHardwareAccelerated) w.Add(4);
        return [.. w];
    }

    /// <summary>Splits <paramref name="lanes"/> contiguous elements into chunks of the available widths, widest first,
    /// ending with scalars: 16 lanes on AVX2 are two 8-lane vectors; 13 on AVX-512 are 8 + 4 + 1.</summary>
    public IEnumerable<int> Chunks(int lanes)
    {
        foreach (int w in VectorWidths)
            for (; lanes >= w; lanes -= w) yield return w;
        for (; lanes > 0; lanes--) yield return 1;
    }
}
