using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LoopTune.Jit;

/// <summary>
/// The store of a tile's rows whose lanes are apart in the output (<see cref="TileRowsStoreOp"/>): a convolution's tile
/// along its output channels holds, per pixel of a row, a vector of 16 channels, and in NCHW each channel's pixels are one
/// run of floats. The kernel writes the rows' vectors into a scratch (row j's lane i at <c>scratch[j*16 + i]</c>);
/// <see cref="Add16"/> loads up to 8 of them back, transposes them in registers (three rounds of two-vector permutes) so
/// that each lane's values of every row are 8 consecutive floats, and adds each to that lane's run of the output in one
/// masked load and store, where the plain store took a lane out of each vector and added it to its float alone (16 lanes
/// x 6 rows: 96 extracts, loads, adds and stores). Gathering each lane's values from the scratch instead (AVX2's
/// gather) was slower than the plain store (145-165 GFLOPS against 156-182 on that tile): a gather waits for the stores
/// it reads to complete.
/// </summary>
static unsafe class TileRows
{
    /// <summary>The most rows one store takes.</summary>
    public const int MostRows = 8;

    /// <summary>Whether rows of vectors of <paramref name="width"/> floats are stored so here: 16 lanes, with AVX-512.</summary>
    public static bool Supports(int width) => width == 16 && Avx512F.VL.IsSupported;

    public static readonly MethodInfo Add16Method = typeof(TileRows).GetMethod(nameof(Add16))!;

    static readonly Vector512<int> Pairs0 = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    static readonly Vector512<int> Pairs1 = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    static readonly Vector512<int> Quads0 = Vector512.Create(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
    static readonly Vector512<int> Quads1 = Vector512.Create(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
    static readonly Vector512<int> Octs0 = Vector512.Create(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    static readonly Vector512<int> Octs1 = Vector512.Create(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);

    /// <summary><c>to[i*stride + j] += rows[j*16 + i]</c> for the 16 lanes i and the <paramref name="count"/> rows j
    /// (2 to <see cref="MostRows"/>; a lane's run must not reach the next lane's: count &lt;= stride). Reads 8 rows. The
    /// output's last store (<see cref="OutputStore"/>) then adds <paramref name="residual"/>'s elements at the same places
    /// (laid out as <paramref name="to"/>; null: none) and keeps <c>max(v, 0)</c> with <paramref name="relu"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Add16(float* to, long stride, int count, float* rows, float* residual, bool relu)
    {
        Vector512<float> R(int j) => Vector512.Load(rows + j * 16);
        // pairs of rows interleaved: lanes 0-7 and 8-15 of rows 2j, 2j+1
        var (a0, a1) = (Avx512F.PermuteVar16x32x2(R(0), Pairs0, R(1)), Avx512F.PermuteVar16x32x2(R(0), Pairs1, R(1)));
        var (b0, b1) = (Avx512F.PermuteVar16x32x2(R(2), Pairs0, R(3)), Avx512F.PermuteVar16x32x2(R(2), Pairs1, R(3)));
        var (c0, c1) = (Avx512F.PermuteVar16x32x2(R(4), Pairs0, R(5)), Avx512F.PermuteVar16x32x2(R(4), Pairs1, R(5)));
        var (d0, d1) = (Avx512F.PermuteVar16x32x2(R(6), Pairs0, R(7)), Avx512F.PermuteVar16x32x2(R(6), Pairs1, R(7)));
        // quads: rows 0-3 (t) and 4-7 (u) of lanes 0-3, 4-7, 8-11, 12-15
        var (t0, t1, t2, t3) = (Avx512F.PermuteVar16x32x2(a0, Quads0, b0), Avx512F.PermuteVar16x32x2(a0, Quads1, b0), Avx512F.PermuteVar16x32x2(a1, Quads0, b1), Avx512F.PermuteVar16x32x2(a1, Quads1, b1));
        var (u0, u1, u2, u3) = (Avx512F.PermuteVar16x32x2(c0, Quads0, d0), Avx512F.PermuteVar16x32x2(c0, Quads1, d0), Avx512F.PermuteVar16x32x2(c1, Quads0, d1), Avx512F.PermuteVar16x32x2(c1, Quads1, d1));
        var mask = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(count)).AsSingle();
        // each lane's 8 rows, two lanes a vector
        long apart = residual - to; // null: never read
        bool add = residual is not null;
        Quad(t0, u0, to, stride, mask, apart, add, relu);
        Quad(t1, u1, to + 4 * stride, stride, mask, apart, add, relu);
        Quad(t2, u2, to + 8 * stride, stride, mask, apart, add, relu);
        Quad(t3, u3, to + 12 * stride, stride, mask, apart, add, relu);
    }

    /// <summary>The four lanes whose rows 0-3 are <paramref name="top"/> and 4-7 <paramref name="bottom"/>, each added to its
    /// run, the first at <paramref name="to"/>, the next ones a stride apart (<see cref="Run"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Quad(Vector512<float> top, Vector512<float> bottom, float* to, long stride, Vector256<float> mask, long apart, bool add, bool relu)
    {
        var (a, b) = (Avx512F.PermuteVar16x32x2(top, Octs0, bottom), Avx512F.PermuteVar16x32x2(top, Octs1, bottom));
        Run(a.GetLower(), to, mask, apart, add, relu);
        Run(a.GetUpper(), to + stride, mask, apart, add, relu);
        Run(b.GetLower(), to + 2 * stride, mask, apart, add, relu);
        Run(b.GetUpper(), to + 3 * stride, mask, apart, add, relu);
    }

    /// <summary>Adds <paramref name="lanes"/> to the run at <paramref name="to"/> under <paramref name="mask"/>; with the
    /// epilogue, then the residual's run <paramref name="apart"/> floats further (when <paramref name="add"/>), then the
    /// Relu (when <paramref name="relu"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Run(Vector256<float> lanes, float* to, Vector256<float> mask, long apart, bool add, bool relu)
    {
        var v = Avx512F.VL.MaskLoad(to, mask, Vector256<float>.Zero) + lanes;
        if (add) v += Avx512F.VL.MaskLoad(to + apart, mask, Vector256<float>.Zero);
        if (relu) v = Vector256.Max(v, Vector256<float>.Zero);
        Avx512F.VL.MaskStore(to, mask, v);
    }
}
