using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using LoopTune.Ir;

namespace LoopTune.Jit;

/// <summary>A piece of a vectorized loop: a vector of <paramref name="Width"/> floats (1: a scalar) of which the first
/// <paramref name="Lanes"/> are live; the rest are masked off.</summary>
public readonly record struct Chunk(int Width, int Lanes)
{
    public bool IsMasked => Lanes < Width;
}

/// <summary>How the JIT generates code.</summary>
/// <param name="MaxVectorBits">Widest vector to use: 512, 256, 128, or 0 for scalar code only. Capped by what the
/// machine accelerates, so 512 on an AVX2 machine means 256.</param>
/// <param name="UseFma">Fused multiply-add when the machine has it; false forces multiply then add.</param>
/// <param name="MaxOperations">Most operations the kernel may spell out (multiply-adds, loads, tile loads and stores;
/// a loop counts as 8), a stand-in for code size, which is what RyuJIT's compile time follows. Past it, the JIT keeps
/// the outermost unrolled loops as loops (and says so in <see cref="Kernel.Notes"/>) until the code fits.</param>
/// <param name="MaskedTails">Cover the lanes left over after the full vectors with one masked vector (x86 AVX / AVX-512
/// masked loads and stores) instead of narrower vectors and scalars.</param>
/// <param name="WideInputLoads">Load a masked vector of an input as a whole vector when its extra lanes only ever reach
/// output lanes that are never stored (the vectorized variable indexes the output, not a sum over lanes): a plain load in
/// the inner loop instead of a masked one, which costs load-port time on x86 and a register for the mask (on the 2-vCPU
/// EPYC: 1.02-1.03x on convolutions whose rows are 14 or 6 wide, 1.6x on a 12-accumulator tile that spilled with masks).
/// The kernel then reads up to <see cref="Kernel.ReadsPast"/> floats past the end of an input.</param>
/// <param name="FuseLanes">Vectorize across an unrolled loop and the vectorized loop right below it as one run of lanes when
/// their output elements are one contiguous block and that takes fewer vectors: rows of 6 floats, 4 of them unrolled, are
/// 3 full vectors instead of 4 three-quarters full. An input whose rows are longer than the output's (a convolution's
/// <c>I[c,h+r,w+s]</c>) then fills a vector from two or three loads and blends (x86: SSE4.1 for 4 lanes, AVX for 8, a
/// select under a constant vector for AVX-512's 16). Needs <paramref name="WideInputLoads"/>. On the 2-vCPU EPYC, conv 16 32 8 32 with <c>f:4u h:4u w:6v</c> ran at
/// 84.6 GFLOPS (fastest sample 90.0) against 61.5 (65.5) for <c>f:4u h:2u w:6v</c>, side by side.</param>
/// <param name="PrefetchBlockBytes">Prefetch, with each load of an input in the tile's loops, the same element of the
/// input's next block, when the input is read in blocks of at most this many bytes each reused by a few iterations of the
/// loops around the tile (at most <see cref="PrefetchReuse"/>): the first of those iterations then finds the block in the
/// cache. The caller gives the machine's L1d size (a block ahead that does not fit evicts the one in use: a 1.2 MB block of
/// the 512-channel layer ran 2.4 ms instead of 1.3). For an operand read from memory once per run (a model's weights in a
/// forward pass); 0, the default, prefetches nothing, as the extra loads slow a kernel whose blocks are already cached
/// (<see cref="Lowering"/>).</param>
/// <param name="PrefetchSpreadBytes">Where more than <see cref="PrefetchReuse"/> iterations of the loops around the tile read
/// an input's block again (a product's panel of B, read by every row tile), prefetch its next block spread over them: the
/// i-th of those iterations prefetches the i-th line of each of the tile's rows of the next block (its first iteration
/// only of the loops further out), so the next block arrives while the current one is in use, a few lines per step, and
/// the first tile over a block does not wait for memory. Only for a next block of at most this many bytes, so that it
/// fits in the L2 beside the current one: <see cref="Default"/> gives half this machine's L2 (<see cref="CacheSizes"/>),
/// 0 turns it off. On the Zen 5, mm 128 2304 768 (B's 196 KB panels read from memory, as when the libraries' runs come in
/// between) ran 0.95-1.00x oneDNN side by side instead of 0.90-0.92x.</param>
/// <param name="PrefetchSpreadMinBytes">The smallest next block <paramref name="PrefetchSpreadBytes"/> prefetches: one that
/// fits in the L1d stays there between the tiles, and its guards would cost a compare a line in every step for nothing
/// (<see cref="Default"/>: this machine's L1d).</param>
/// <param name="PackBlocks">Copy a packed input a block at a time, in the loops, where <see cref="Layout.BlockLevel"/> finds a
/// level for it, rather than whole before them: each block is copied into a buffer that stays in the caches while the
/// loops inside read it, so neither the copy nor the reads go to memory. False copies every packed input whole (the
/// C export, whose functions copy outside the loops).</param>
/// <param name="ZeroTiles">Start an output tile that a loop of the sum runs over from zero, its output elements asked for
/// (a prefetch) as it starts and added when it is stored, as BLIS's micro-kernels do, rather than loaded before the sum:
/// the tile's chains of multiply-adds then never wait for the output's lines, which a large product's next tile reads
/// from memory. A tile whose lanes are apart in the output (a convolution's tile along its channels) asks for each of its
/// lines once and gathers, adds and scatters when stored; with AVX-512, rows whose lanes land in runs of the output are
/// transposed in registers and added a run at a time (<see cref="TileRowsStoreOp"/>: conv 64 56 56 64 3 3's channel tile
/// on the Zen 5, 0.885-0.899x oneDNN against 0.861-0.880x, four alternating pairs; 292-296 GFLOPS against 268 at two
/// threads). The sum's order changes (the output's value is added last, not
/// first). On the Zen 3, hot, the BLIS-blocked tile of five large products ran 2-5 % faster (mm 1536 1024 512: 88.7
/// GFLOPS against 86.1); conv 64 56 56 64 3 3's channel tile 0.92-0.97x oneDNN against 0.88-0.95x gathered first
/// (alternating). False loads the tile first (the C export).</param>
public sealed record JitOptions(int MaxVectorBits = 512, bool UseFma = true, int MaxOperations = 1024, bool MaskedTails = true, bool WideInputLoads = true,
    bool FuseLanes = true, int PrefetchBlockBytes = 0, int PrefetchSpreadBytes = 0, int PrefetchSpreadMinBytes = 0, bool PackBlocks = true, bool ZeroTiles = true)
{
    /// <summary>The most iterations of the loops between an input's block loop and the tile (which read the same block
    /// again) for which <see cref="PrefetchBlockBytes"/> prefetches the next block: each of them prefetches it again.</summary>
    public const int PrefetchReuse = 8;

    /// <summary>What every kernel of this process is compiled with unless options are given: the widest vectors the machine
    /// accelerates, or fewer when <see cref="LimitVectorBits"/> said so (<c>--vector-bits</c>).</summary>
    public static JitOptions Default => limited.Value ?? Standard;

    static readonly JitOptions Standard = new()
    {
        PrefetchSpreadBytes = (CacheSizes.Current.L2Kib ?? 0) * 1024 / 2,
        PrefetchSpreadMinBytes = (CacheSizes.Current.L1dKib ?? 0) * 1024,
    };

    /// <summary>Async-local, so a limit set by one command reaches its own work (threads it starts included) and not that
    /// of another command run in the same process (the tests run many).</summary>
    static readonly AsyncLocal<JitOptions?> limited = new();

    /// <summary>The vector widths in bits that this machine accelerates, widest first (512, 256, 128; empty without SIMD).</summary>
    public static IReadOnlyList<int> AcceleratedBits { get; } = [.. Widths(512).Select(w => w * 32)];

    /// <summary>Makes <paramref name="bits"/> the widest vector of every kernel this process compiles by default, and of
    /// everything that describes the machine (<see cref="Measure.Machine"/>): the whole process then tunes as a machine of
    /// that width would. A width this machine does not accelerate is a <see cref="LoopTuneException"/> naming the ones it does.</summary>
    public static void LimitVectorBits(int bits)
    {
        CheckVectorBits(bits);
        limited.Value = bits == AcceleratedBits.FirstOrDefault() ? null : Standard with { MaxVectorBits = bits };
    }

    /// <summary>Throws a <see cref="LoopTuneException"/> unless <paramref name="bits"/> is a vector width this machine accelerates.</summary>
    public static int CheckVectorBits(int bits) => AcceleratedBits.Contains(bits) ? bits
        : throw new LoopTuneException($"vector width {bits} bits: this machine accelerates {(AcceleratedBits.Count == 0 ? "none" : string.Join(", ", AcceleratedBits))}");

    /// <summary>The widest vector these options compile with, in bits (0: scalar code only).</summary>
    public int VectorBits => VectorWidths.Count > 0 ? VectorWidths[0] * 32 : 0;

    /// <summary>Vector widths in floats, widest first, that this machine accelerates and the options allow.</summary>
    public IReadOnlyList<int> VectorWidths => MaxVectorBits switch { >= 512 => To512, >= 256 => To256, >= 128 => To128, _ => None };

    // the lists VectorWidths gives, made once: the lowering asks for them at every vectorized statement
    static readonly IReadOnlyList<int> To512 = Array.AsReadOnly(Widths(512)), To256 = Array.AsReadOnly(Widths(256)),
        To128 = Array.AsReadOnly(Widths(128)), None = Array.AsReadOnly(Widths(0));

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

    /// <summary>Splits <paramref name="lanes"/> contiguous elements into vector chunks: full vectors of the widest width
    /// (16 lanes on AVX2 are two 8-lane vectors), then the rest as one masked vector of the narrowest width that holds it
    /// (13 on AVX-512: one 16-lane vector with 13 lanes live), or, without masked tails, as narrower vectors and scalars
    /// (13: 8 + 4 + 1).</summary>
    public IEnumerable<Chunk> Chunks(int lanes)
    {
        var widths = VectorWidths;
        if (widths.Count > 0)
            for (; lanes >= widths[0]; lanes -= widths[0]) yield return new Chunk(widths[0], widths[0]);
        if (lanes == 0) yield break;
        int masked = 0; // the narrowest width that holds the rest and masks
        foreach (int w in widths)
            if (w >= lanes && Masking(w) && (masked == 0 || w < masked)) masked = w;
        if (masked > 0)
        {
            yield return new Chunk(masked, lanes);
            yield break;
        }
        foreach (int w in widths)
            for (; lanes >= w; lanes -= w) yield return new Chunk(w, w);
        for (; lanes > 0; lanes--) yield return new Chunk(1, 1);
    }

    /// <summary>True when two <paramref name="width"/>-lane vectors can be blended under a constant mask here (for
    /// <see cref="FuseLanes"/>).</summary>
    public static bool Blends(int width) => width switch { 16 => Avx512F.IsSupported, 8 => Avx.IsSupported, 4 => Sse41.IsSupported, _ => false };

    /// <summary>True when a <paramref name="width"/>-lane vector can be loaded and stored under a mask here.</summary>
    public bool Masking(int width) => MaskedTails && width switch { 16 => Avx512F.IsSupported, 8 or 4 => Avx.IsSupported, _ => false };
}
