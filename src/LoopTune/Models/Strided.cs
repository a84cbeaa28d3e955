using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LoopTune.Models;

/// <summary>Copies of every step-th float of a row (a strided convolution's columns, a pool's windows), vectorized for
/// step 2.</summary>
static class Strided
{
    /// <summary>The widest vectors <see cref="Evens"/> may use here: 512 bits with AVX-512, 256 with AVX2, else 0.</summary>
    public static int Widest { get; } = Avx512F.IsSupported ? 512 : Avx2.IsSupported ? 256 : 0;

    /// <summary>The columns x in [0, count) whose source column <c>step*x+offset</c> lies in [0, width): [X0, X1), empty
    /// when X1 &lt;= X0.</summary>
    public static (int X0, int X1) Reach(int offset, int step, int width, int count)
    {
        int first = -offset, last = width - 1 - offset;
        return (first <= 0 ? 0 : (first + step - 1) / step, last < 0 ? 0 : Math.Min(count, last / step + 1));
    }

    /// <summary><c>to[i] = from[start + step*i]</c> for every i of <paramref name="to"/>: a block copy for step 1, vector
    /// shuffles of even elements for step 2, one by one otherwise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Copy(ReadOnlySpan<float> from, int start, int step, Span<float> to)
    {
        if (step == 1) { Row(from.Slice(start, to.Length), to); return; }
        int i = 0;
        if (step == 2) i = Evens(from[start..], to, Widest);
        for (int col = start + step * i; i < to.Length; i++, col += step) to[i] = from[col];
    }

    /// <summary><c>to[i] = from[i]</c> for every i of <paramref name="to"/>, for rows of distinct arrays (a padded copy's,
    /// a block of a bias): up to <see cref="ShortRow"/> floats in vectors, the last one overlapping the one before it when
    /// the length is not a multiple of the width, instead of a call of memmove per row, whose cost for 7 to 56 floats was
    /// most of a padded copy's (ResNet-18 copies 3,584 rows a layer: 0.04-0.09 ms of a pass's layer, 1 ms a pass); longer
    /// rows with <see cref="Span{T}.CopyTo"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Row(ReadOnlySpan<float> from, Span<float> to)
    {
        int n = to.Length;
        if (n > ShortRow) { from[..n].CopyTo(to); return; }
        if (from.Length < n) throw new ArgumentException($"the row to copy holds {from.Length} floats, not {n}", nameof(from));
        ref float src = ref MemoryMarshal.GetReference(from);
        ref float dst = ref MemoryMarshal.GetReference(to);
        if (Vector512.IsHardwareAccelerated && n >= 16) Overlapping<Vector512<float>>(ref src, ref dst, n, 16);
        else if (Vector256.IsHardwareAccelerated && n >= 8) Overlapping<Vector256<float>>(ref src, ref dst, n, 8);
        else if (Vector128.IsHardwareAccelerated && n >= 4) Overlapping<Vector128<float>>(ref src, ref dst, n, 4);
        else for (int i = 0; i < n; i++) Unsafe.Add(ref dst, i) = Unsafe.Add(ref src, i);
    }

    /// <summary>The longest row <see cref="Row"/> copies in vectors of its own.</summary>
    public const int ShortRow = 128;

    /// <summary>n &gt;= width floats in vectors of <typeparamref name="TVector"/> (width floats each), the last ending at n.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Overlapping<TVector>(ref float src, ref float dst, int n, int width) where TVector : unmanaged
    {
        int i = 0;
        for (; i + width <= n; i += width)
            Unsafe.WriteUnaligned(ref Unsafe.As<float, byte>(ref Unsafe.Add(ref dst, i)), Unsafe.ReadUnaligned<TVector>(ref Unsafe.As<float, byte>(ref Unsafe.Add(ref src, i))));
        if (i < n)
            Unsafe.WriteUnaligned(ref Unsafe.As<float, byte>(ref Unsafe.Add(ref dst, n - width)), Unsafe.ReadUnaligned<TVector>(ref Unsafe.As<float, byte>(ref Unsafe.Add(ref src, n - width))));
    }

    /// <summary>Writes <c>from[2*i]</c> into <c>to[i]</c> a vector at a time while a vector of <paramref name="to"/> and two
    /// of <paramref name="from"/> remain: vectors of <paramref name="bits"/> (512 needs AVX-512, 256 AVX2; anything else
    /// writes none), then 256-bit ones for the rest; returns how many it wrote.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int Evens(ReadOnlySpan<float> from, Span<float> to, int bits)
    {
        int i = 0;
        ref float src = ref MemoryMarshal.GetReference(from);
        ref float dst = ref MemoryMarshal.GetReference(to);
        if (bits == 512 && Avx512F.IsSupported)
        {
            var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            for (; i + 16 <= to.Length && 2 * i + 32 <= from.Length; i += 16)
            {
                var lo = Vector512.LoadUnsafe(ref src, (nuint)(2 * i));
                var hi = Vector512.LoadUnsafe(ref src, (nuint)(2 * i + 16));
                Avx512F.PermuteVar16x32x2(lo, even, hi).StoreUnsafe(ref dst, (nuint)i);
            }
        }
        if (bits >= 256 && Avx2.IsSupported) // the rest (all of it for 256 bits) 8 at a time
        {
            for (; i + 8 <= to.Length && 2 * i + 16 <= from.Length; i += 8)
            {
                var lo = Vector256.LoadUnsafe(ref src, (nuint)(2 * i));
                var hi = Vector256.LoadUnsafe(ref src, (nuint)(2 * i + 8));
                // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then the 64-bit pairs reordered 0, 2, 1, 3
                var pairs = Avx.Shuffle(lo, hi, 0b10_00_10_00).AsDouble();
                Avx2.Permute4x64(pairs, 0b11_01_10_00).AsSingle().StoreUnsafe(ref dst, (nuint)i);
            }
        }
        return i;
    }
}
