using System.Globalization;
using LoopTune.Ir;

namespace LoopTune.Measure;

/// <summary>
/// A register tile sized from the machine (<see cref="MachineInfo"/>), for the hand schedules of <c>bench</c> and
/// <c>demo</c>: <see cref="Rows"/> unrolled rows of <see cref="Vectors"/> vectors of <see cref="Lanes"/> floats, whose
/// accumulators stay in registers across the reduction. Enough independent accumulators to keep every FMA pipe busy
/// (pipes x latency), up to twice that, within the vector registers less one per vector of the streamed operand and two
/// (the broadcast and a spare). On the three machines the project has met this gives the tiles that measured best there:
/// <code>
/// | machine                         | pipes x latency | registers | tile (rows x lanes) |
/// |---------------------------------|-----------------|-----------|---------------------|
/// | AVX2 EPYC, 2 x 256-bit pipes    | 2 x 4-5         | 16        | 6 x 16: 12 ymm      |
/// | Zen 4, 512-bit ops on 256-bit   | 1 x 4           | 32        | 4 x 32: 8 zmm       |
/// | Zen 5, 2 x 512-bit pipes        | 2 x 4           | 32        | 8 x 32: 16 zmm      |
/// </code>
/// </summary>
public readonly record struct RegisterTile(int Rows, int Vectors, int Lanes)
{
    /// <summary>Vectors of the streamed operand per row.</summary>
    public const int VectorsPerRow = 2;

    /// <summary>Vector registers a tile leaves besides its accumulators and the streamed operand's vectors: the broadcast
    /// and a spare.</summary>
    public const int Spare = 2;

    public int Accumulators => Rows * Vectors;

    /// <summary>Floats of one row of the tile.</summary>
    public int Width => Vectors * Lanes;

    /// <summary>The tile for <paramref name="m"/>.</summary>
    public static RegisterTile For(MachineInfo m)
    {
        ArgumentNullException.ThrowIfNull(m);
        int need = m.Fma.Accumulators, budget = m.VectorRegisters - VectorsPerRow - Spare;
        int target = Math.Clamp(2 * need, Math.Min(need, budget), budget);
        return new RegisterTile(Math.Max(1, target / VectorsPerRow), VectorsPerRow, m.Fma.Lanes);
    }

    /// <summary>The seed's actions that take <c>mm N N N</c> (N at least <see cref="Rows"/> and <see cref="Width"/>) from
    /// its initial nest to <c>m n k m'(rows, unrolled) n'(Width, vectorized)</c>: the demo's walk. The seed splits by powers
    /// of two, so the rows are the largest power of two up to <see cref="Rows"/> (4 of the AVX2 machine's 6).</summary>
    public string MatmulWalk() => Invariant(
        $"split_{WalkRows},down,swap_down,swap_down,unroll,up,up,split_{Width},down,swap_down,swap_down,vectorize");

    /// <summary>The rows of <see cref="MatmulWalk"/>'s tile.</summary>
    public int WalkRows => 1 << (int)Math.Log2(Rows);

    /// <summary>mm M N K as <c>n m k k'(4u) m'(Rows u) n'(Width v)</c>, each outer loop with its tail, the tile narrowed to
    /// the sizes where they are smaller.</summary>
    public Nest Matmul(int m, int n, int k)
    {
        int rows = Math.Min(Rows, m), width = Math.Min(Width, n), ku = k >= 4 ? 4 : 1;
        var unrollK = ku > 1 ? "k:4u " : "";
        return Nest.Parse(Computation.Matmul(m, n, k),
            Invariant($">n:{n / width}{Tail(n % width)} m:{m / rows}{Tail(m % rows)} k:{k / ku}{Tail(k % ku)} {unrollK}m:{rows}u n:{width}v"));
    }

    /// <summary>A convolution <c>O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s]</c> with the tile over output channels (unrolled,
    /// at most 8), output rows (unrolled) and one row's columns (vectorized, at most <see cref="Width"/>; wider rows are
    /// split), the whole reduction (c, r, s) around it. A pointwise one (<c>O[f,p] += I[c,p] * W[f,c]</c>, the form
    /// <c>conv C H W F 1 1</c> builds) has the same tile over its image as one row of H*W pixels, the channels' blocks
    /// outermost, so that each block of weights is read from the L1 over every pixel (on the Zen 5, conv 64 32 32 64 1 1
    /// ran 0.86-0.88x oneDNN so, 0.70x with the pixels' blocks outermost; conv 64 56 56 256 1 1 0.95x against 0.95x).</summary>
    public Nest Convolution(ConvShape shape)
    {
        bool pointwise = shape.R == 1 && shape.S == 1;
        int wout = pointwise ? shape.H * shape.W : shape.W - shape.S + 1;
        int lanes = Math.Min(Width, wout), vectors = (lanes + Lanes - 1) / Lanes;
        int channels = Math.Min(Math.Min(8, shape.F), Math.Max(1, Accumulators / vectors));
        if (pointwise)
            return Nest.Parse(shape.ToComputation(), Invariant(
                $">f:{shape.F / channels}{Tail(shape.F % channels)} p:{wout / lanes}{Tail(wout % lanes)} c:{shape.C} f:{channels}u p:{lanes}v"));
        int hout = shape.H - shape.R + 1, rows = Math.Clamp(Accumulators / (vectors * channels), 1, hout);
        var w = wout > lanes ? Invariant($"w:{wout / lanes}{Tail(wout % lanes)} ") : "";
        return Nest.Parse(shape.ToComputation(), Invariant(
            $">h:{hout / rows}{Tail(hout % rows)} f:{shape.F / channels}{Tail(shape.F % channels)} {w}c:{shape.C} r:{shape.R} s:{shape.S} f:{channels}u {(rows > 1 ? Invariant($"h:{rows}u ") : "")}w:{lanes}v"));
    }

    static string Tail(int t) => t == 0 ? "" : Invariant($"+{t}");
    static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
