using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LoopTune.Learning.Nn;

/// <summary>
/// Matrix products in managed code. A 4x16 register tile of c is kept in eight <see cref="Vector256{T}"/>
/// accumulators; each step broadcasts a[i, k] and fuses it with 16 floats of row k of op(b)
/// (<see cref="Vector256.FusedMultiplyAdd"/>, one FMA instruction where the CPU has it). op(b) is packed into
/// contiguous 16-column panels (zero padded) when it is transposed or when a is tall enough to reuse them;
/// k is blocked by 256 so a panel block stays in L1. Fewer than 4 rows (acting on one state) stream the rows of b
/// instead: c[i, :] += a[i, k] * b[k, :] for each k. The kernels are compiled fully optimized from the first call.
/// <para>Every element of c is one chain c = fma(a[i,k], b[k,j], c) over k = 0, 1, ..., K-1 starting from 0
/// (or from c), whatever the shapes, the transposes, the tile or the packing. So the result is deterministic and
/// each row of c is bit-identical whatever the batch size it was computed in.</para>
/// <para>A thread may hand its batch products (4 rows or more) to a native sgemm instead (<see cref="Use"/>: a learner's
/// updates, Ape-X's batches), whose sums may be ordered differently; acting on one state stays here, so an actor's
/// choices do not depend on which library its learner used.</para>
/// </summary>
public static class Gemm
{
    const int NR = 16, MR = 4, KC = 256;

    [ThreadStatic] static ISgemm? native;

    /// <summary>The native sgemm this thread's batch products run on, or null for the managed kernels.</summary>
    public static ISgemm? Native => native;

    /// <summary>Runs this thread's batch products on <paramref name="backend"/> (null: the managed kernels) until the
    /// returned scope is disposed, which restores the previous choice.</summary>
    public static Scope Use(ISgemm? backend)
    {
        var previous = native;
        native = backend;
        return new Scope(previous);
    }

    /// <summary>Restores the thread's previous <see cref="Use"/> choice when disposed.</summary>
    public readonly struct Scope(ISgemm? previous) : IDisposable
    {
        public void Dispose() => native = previous;
    }

    /// <summary>c = (accumulate ? c : 0) + op(a) * op(b), op = transpose when the flag is set. Shapes are checked
    /// (<see cref="ArgumentException"/>); c must not share storage with a or b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Multiply(Matrix a, bool transposeA, Matrix b, bool transposeB, Matrix c, bool accumulate = false)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(c);
        int m = transposeA ? a.Cols : a.Rows, k = transposeA ? a.Rows : a.Cols;
        int kb = transposeB ? b.Cols : b.Rows, n = transposeB ? b.Rows : b.Cols;
        if (k != kb) throw new ArgumentException($"Gemm: op(a) is {m}x{k} but op(b) is {kb}x{n}");
        if (c.Rows != m || c.Cols != n) throw new ArgumentException($"Gemm: c is {c.Rows}x{c.Cols}, op(a) * op(b) is {m}x{n}", nameof(c));
        if (ReferenceEquals(c.Data, a.Data) || ReferenceEquals(c.Data, b.Data)) throw new ArgumentException("Gemm: c must not share storage with a or b", nameof(c));
        if (!accumulate) Array.Clear(c.Data);
        if (m == 0 || n == 0 || k == 0) return;
        if (native is { } library && m >= MR)
        {
            fixed (float* pa = a.Data, pb = b.Data, pc = c.Data)
                library.Sgemm(transposeA, transposeB, m, n, k, pa, a.Cols, pb, b.Cols, pc, n);
            return;
        }

        // element (i, k) of op(a) is a.Data[i * rsA + k * csA]; element (k, j) of op(b) is b.Data[k * rsB + j * csB]
        nint rsA = transposeA ? 1 : k, csA = transposeA ? m : 1;
        nint rsB = transposeB ? 1 : n, csB = transposeB ? k : 1;
        if (m < MR && !transposeB)
        {
            fixed (float* pa = a.Data, pb = b.Data, pc = c.Data)
                for (int i = 0; i < m; i++) RowTimesB(pa + i * rsA, csA, pb, k, n, pc + (nint)i * n);
            return;
        }
        int panels = (n + NR - 1) / NR, full = n / NR;
        bool pack = transposeB || m > 2 * MR;
        int packedPanels = pack ? panels : panels - full;   // unpacked: only the ragged last panel is copied
        float[] packed = ArrayPool<float>.Shared.Rent(Math.Max(1, checked(packedPanels * k * NR)));
        try
        {
            fixed (float* pa = a.Data, pb = b.Data, pc = c.Data, pp = packed)
            {
                for (int p = pack ? 0 : full; p < panels; p++)
                    Pack(pb, rsB, csB, k, p * NR, Math.Min(NR, n - p * NR), pp + (nint)(pack ? p : 0) * k * NR);
                float* tile = stackalloc float[MR * NR];
                for (int k0 = 0; k0 < k; k0 += KC)
                {
                    int kc = Math.Min(KC, k - k0);
                    for (int p = 0; p < panels; p++)
                    {
                        int j0 = p * NR, width = Math.Min(NR, n - j0);
                        bool direct = !pack && p < full;
                        nint ldb = direct ? n : NR;
                        float* bp = direct ? pb + (nint)k0 * n + j0 : pp + (nint)(pack ? p : 0) * k * NR + (nint)k0 * NR;
                        int i = 0;
                        for (; i + MR <= m; i += MR)
                        {
                            float* ap = pa + i * rsA + k0 * csA, cp = pc + (nint)i * n + j0;
                            if (width == NR) Kernel4(ap, rsA, csA, bp, ldb, kc, cp, n);
                            else
                            {
                                CopyTile(cp, n, tile, NR, MR, width);
                                Kernel4(ap, rsA, csA, bp, ldb, kc, tile, NR);
                                CopyTile(tile, NR, cp, n, MR, width);
                            }
                        }
                        for (; i < m; i++)
                        {
                            float* ap = pa + i * rsA + k0 * csA, cp = pc + (nint)i * n + j0;
                            if (width == NR) Kernel1(ap, csA, bp, ldb, kc, cp);
                            else
                            {
                                CopyTile(cp, n, tile, NR, 1, width);
                                Kernel1(ap, csA, bp, ldb, kc, tile);
                                CopyTile(tile, NR, cp, n, 1, width);
                            }
                        }
                    }
                }
            }
        }
        finally { ArrayPool<float>.Shared.Return(packed); }
    }

    /// <summary>Copies columns j0 .. j0+width of op(b) (all k rows) into a k x 16 panel, zero padded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Pack(float* b, nint rsB, nint csB, int k, int j0, int width, float* dst)
    {
        if (csB == 1)
            for (int kk = 0; kk < k; kk++)
            {
                float* src = b + kk * rsB + j0, row = dst + (nint)kk * NR;
                int j = 0;
                for (; j < width; j++) row[j] = src[j];
                for (; j < NR; j++) row[j] = 0;
            }
        else
        {
            for (int j = 0; j < NR; j++)
            {
                if (j < width)
                {
                    float* src = b + (j0 + j) * csB;
                    for (int kk = 0; kk < k; kk++) dst[(nint)kk * NR + j] = src[kk * rsB];
                }
                else
                    for (int kk = 0; kk < k; kk++) dst[(nint)kk * NR + j] = 0;
            }
        }
    }

    static unsafe void CopyTile(float* src, nint lds, float* dst, nint ldd, int rows, int width)
    {
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < NR; j++)
                if (j < width) dst[r * ldd + j] = src[r * lds + j];
    }

    /// <summary>c[0, 0..n] += a[0, 0..k] * b[0..k, 0..n], b row-major with n columns; the same fma per element as the tiles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void RowTimesB(float* a, nint csA, float* b, int k, int n, float* c)
    {
        int vectors = n - n % 8;
        for (int kk = 0; kk < k; kk++, a += csA, b += n)
        {
            float s = *a;
            var x = Vector256.Create(s);
            int j = 0;
            for (; j < vectors; j += 8) Vector256.FusedMultiplyAdd(x, Vector256.Load(b + j), Vector256.Load(c + j)).Store(c + j);
            for (; j < n; j++) c[j] = MathF.FusedMultiplyAdd(s, b[j], c[j]);
        }
    }

    /// <summary>c[0..4, 0..16] += a[0..4, 0..kc] * b[0..kc, 0..16].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Kernel4(float* a, nint rsA, nint csA, float* b, nint ldb, int kc, float* c, nint ldc)
    {
        var c00 = Vector256.Load(c); var c01 = Vector256.Load(c + 8);
        var c10 = Vector256.Load(c + ldc); var c11 = Vector256.Load(c + ldc + 8);
        var c20 = Vector256.Load(c + 2 * ldc); var c21 = Vector256.Load(c + 2 * ldc + 8);
        var c30 = Vector256.Load(c + 3 * ldc); var c31 = Vector256.Load(c + 3 * ldc + 8);
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Vector256.Load(b); var b1 = Vector256.Load(b + 8);
            var x = Vector256.Create(a[0]);
            c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
            x = Vector256.Create(a[rsA]);
            c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
            x = Vector256.Create(a[2 * rsA]);
            c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
            x = Vector256.Create(a[3 * rsA]);
            c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
            a += csA;
            b += ldb;
        }
        c00.Store(c); c01.Store(c + 8);
        c10.Store(c + ldc); c11.Store(c + ldc + 8);
        c20.Store(c + 2 * ldc); c21.Store(c + 2 * ldc + 8);
        c30.Store(c + 3 * ldc); c31.Store(c + 3 * ldc + 8);
    }

    /// <summary>c[0, 0..16] += a[0, 0..kc] * b[0..kc, 0..16].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Kernel1(float* a, nint csA, float* b, nint ldb, int kc, float* c)
    {
        var c0 = Vector256.Load(c); var c1 = Vector256.Load(c + 8);
        for (int kk = 0; kk < kc; kk++)
        {
            var x = Vector256.Create(*a);
            c0 = Vector256.FusedMultiplyAdd(x, Vector256.Load(b), c0);
            c1 = Vector256.FusedMultiplyAdd(x, Vector256.Load(b + 8), c1);
            a += csA;
            b += ldb;
        }
        c0.Store(c); c1.Store(c + 8);
    }
}

/// <summary>A single-precision GEMM from another library (OpenBLAS, oneDNN) that <see cref="Gemm"/> may run a thread's batch
/// products on: row-major <c>c = op(a) op(b) + c</c>, op(a) m x k, op(b) k x n, each leading dimension the stored row's
/// length, on the calling thread alone.</summary>
public unsafe interface ISgemm
{
    /// <summary>The library's name (for logs and reports).</summary>
    string Name { get; }

    /// <summary>c[m x n, ldc] += op(a) op(b); a is stored m x k (k x m when <paramref name="transA"/>) with rows of
    /// <paramref name="lda"/>, b k x n (n x k when <paramref name="transB"/>) with rows of <paramref name="ldb"/>.</summary>
    void Sgemm(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc);
}
