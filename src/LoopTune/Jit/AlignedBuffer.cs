using System.Runtime.InteropServices;

namespace LoopTune.Jit;

/// <summary>A native float buffer whose first usable element is 64-byte aligned, with optional guard
/// zones on both sides filled with <see cref="Sentinel"/> so that out-of-bounds writes by a kernel are
/// caught by <see cref="GuardsIntact"/>. The memory is not cleared; call <see cref="Clear"/> or
/// <see cref="Fill"/>. At least <see cref="ReadableTail"/> floats past the end are readable, guard or zeros, for kernels
/// that load an input's last vector whole (<c>Kernel.ReadsPast</c>). Free it with <see cref="Dispose"/> (a finalizer
/// frees it otherwise).</summary>
public sealed unsafe partial class AlignedBuffer : IDisposable
{
    /// <summary>Alignment in bytes of <see cref="Pointer"/>: one cache line, one Vector512.</summary>
    public const int Alignment = 64;

    /// <summary>Bit pattern of every guard element: a signalling NaN that arithmetic never produces.</summary>
    public const uint Sentinel = 0x7FA5A5A5;

    /// <summary>Floats past the last usable one that may be read: one 512-bit vector, more than a kernel reads past an
    /// input (<c>Kernel.ReadsPast</c> is at most a vector's width less one).</summary>
    public const int ReadableTail = Alignment / sizeof(float);

    private const int LineFloats = Alignment / sizeof(float);
    private readonly long front;
    private readonly long bytes;
    private nint block;
    private readonly bool pooled;

    /// <summary>Allocates <paramref name="length"/> usable floats with <paramref name="guard"/> sentinel
    /// floats before and after them. The front guard is rounded up to whole cache lines to keep alignment.</summary>
    public AlignedBuffer(long length, int guard = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfNegative(guard);
        Length = length;
        Guard = guard;
        front = (guard + LineFloats - 1L) / LineFloats * LineFloats;
        long tail = Math.Max(guard, ReadableTail);
        bytes = (front + length + tail) * sizeof(float);
        bool huge = bytes >= HugeAbove;
        if (huge) bytes = Granular(bytes);
        if (huge && Pool.Take(bytes) is { } kept)
            (block, bytes, pooled) = (kept.Block, kept.Bytes, true);
        else
        {
            block = (nint)NativeMemory.AlignedAlloc((nuint)bytes, (nuint)(huge ? HugePage : Alignment));
            if (huge && OperatingSystem.IsLinux()) AdviseHugePages((void*)block, (nuint)bytes);
            pooled = huge;
        }
        NativeMemory.Clear((float*)block + front + length + guard, (nuint)((tail - guard) * sizeof(float)));
        GC.AddMemoryPressure(bytes);
        madeOnThread += bytes;
        FillGuards();
    }

    /// <summary>Frees the memory if <see cref="Dispose"/> was never called.</summary>
    ~AlignedBuffer() => Free();

    /// <summary>Number of usable floats.</summary>
    public long Length { get; }

    /// <summary>Number of sentinel floats requested on each side.</summary>
    public int Guard { get; }

    /// <summary>The first usable element, 64-byte aligned.</summary>
    public float* Pointer => (float*)Block + front;

    /// <summary>The usable part as a span (its length must fit an int).</summary>
    public Span<float> Span => Length <= int.MaxValue
        ? new Span<float>(Pointer, (int)Length)
        : throw new InvalidOperationException($"AlignedBuffer of {Length} floats is too long for a Span.");

    private nint Block => block != 0 ? block : throw new ObjectDisposedException(nameof(AlignedBuffer));

    /// <summary>True when every guard element still holds <see cref="Sentinel"/>.</summary>
    public bool GuardsIntact() => FirstBrokenGuard() is null;

    /// <summary>Buffers of this many bytes or more are aligned to <see cref="HugePage"/> and advised to the kernel as
    /// transparent huge pages (Linux's <c>madvise(MADV_HUGEPAGE)</c>, which takes effect where THP is "always" or
    /// "madvise"): the 200 MB of a 4096^3 matmul then fault in a few hundred pages rather than 50,000 (0.8 s on a VM here),
    /// and large kernels and peers alike run with fewer TLB misses.</summary>
    public const long HugeAbove = 8L << 20;

    /// <summary>A large buffer's size rounded up to a multiple of an eighth of the power of two at or below it (and of
    /// <see cref="HugePage"/>): 12.5 % more address space at most, whose pages are never touched unless used, so that
    /// buffers of nearly the same size take each other's kept blocks (<see cref="Pool"/>). The cold copies of a model's
    /// weights (<c>KernelTiming.Workspace</c>) come to 256 MiB less or more than one operand: each one a little larger than
    /// every block kept before took fresh pages, 0.46 s for 256 MiB on a VM here where a kept block's took 0.02.</summary>
    internal static long Granular(long bytes)
    {
        long granule = Math.Max(HugePage, (1L << (63 - (int)long.LeadingZeroCount(bytes))) / 8);
        return (bytes + granule - 1) / granule * granule;
    }

    /// <summary>The size of a transparent huge page on x86-64.</summary>
    public const int HugePage = 2 << 20;

    private static void AdviseHugePages(void* start, nuint length)
    {
        try { _ = Madvise(start, length, 14); } // MADV_HUGEPAGE; a refusal leaves ordinary pages
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { /* no libc: ordinary pages */ }
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* start, nuint length, int advice);

    /// <summary>Fills the usable part with uniform random values in [lo, hi).</summary>
    public void Fill(Random rng, float lo = -1, float hi = 1) => Reference.FillUniform(new Span<float>(Pointer, checked((int)Length)), rng, lo, hi);

    /// <summary>Sets the usable part to zero; the guards are untouched.</summary>
    public void Clear() => NativeMemory.Clear(Pointer, (nuint)(Length * sizeof(float)));

    /// <summary>Frees the memory; calling it again does nothing.</summary>
    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    private void FillGuards()
    {
        uint* p = (uint*)block;
        for (long i = 0; i < front; i++) p[i] = Sentinel;
        for (long i = 0; i < Guard; i++) p[front + Length + i] = Sentinel;
    }

    /// <summary>Where the first guard element that no longer holds <see cref="Sentinel"/> is, relative to the first usable
    /// element (negative before it), or null when all are intact.</summary>
    public long? FirstBrokenGuard()
    {
        uint* p = (uint*)Block;
        for (long i = 0; i < front; i++)
            if (p[i] != Sentinel) return i - front;
        for (long i = 0; i < Guard; i++)
            if (p[front + Length + i] != Sentinel) return Length + i;
        return null;
    }

    private void Free()
    {
        nint p = Interlocked.Exchange(ref block, 0);
        if (p == 0) return;
        if (!pooled || !Pool.Keep(p, bytes)) NativeMemory.AlignedFree((void*)p);
        GC.RemoveMemoryPressure(bytes);
    }

    /// <summary>Bytes of the buffers made on the calling thread so far (new or reused blocks alike): what a test of code that
    /// must not make buffers at some point reads before and after.</summary>
    public static long MadeOnThisThread => madeOnThread;

    [ThreadStatic] private static long madeOnThread;

    /// <summary>Bytes of freed buffers the process keeps for reuse now (<see cref="ReleaseKept"/>).</summary>
    public static long KeptBytes => Pool.Bytes;

    /// <summary>Frees the memory of disposed buffers kept for reuse: what a library call does before it returns to a
    /// program that has no more use for large buffers.</summary>
    public static void ReleaseKept() => Pool.Clear();

    /// <summary>
    /// The process's freed large blocks (<see cref="HugeAbove"/> bytes or more), kept for the next buffer that fits (the
    /// smallest kept block of at least its size and at most twice it), up to <see cref="Limit"/> bytes in all. Fresh pages
    /// are what large buffers cost: a 64 MB buffer's first fill took 130 ms on a VM here where a reused one's took 30, and
    /// a large problem's search, verification and peers each make hundreds of megabytes of them.
    /// </summary>
    static class Pool
    {
        static readonly Lock gate = new();
        static readonly List<(nint Block, long Bytes)> kept = [];

        /// <summary>An eighth of the memory the process may use, at most 2 GiB.</summary>
        static readonly long Limit = Math.Min(2L << 30, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 8);

        public static long Bytes
        {
            get { lock (gate) return kept.Sum(k => k.Bytes); }
        }

        public static (nint Block, long Bytes)? Take(long bytes)
        {
            lock (gate)
            {
                int best = -1;
                for (int i = 0; i < kept.Count; i++)
                    if (kept[i].Bytes >= bytes && kept[i].Bytes <= 2 * bytes && (best < 0 || kept[i].Bytes < kept[best].Bytes)) best = i;
                if (best < 0) return null;
                var k = kept[best];
                kept.RemoveAt(best);
                return k;
            }
        }

        /// <summary>Keeps <paramref name="block"/> if the limit allows; false when the caller must free it.</summary>
        public static bool Keep(nint block, long bytes)
        {
            lock (gate)
            {
                if (kept.Sum(k => k.Bytes) + bytes > Limit) return false;
                kept.Add((block, bytes));
                return true;
            }
        }

        public static void Clear()
        {
            List<(nint Block, long Bytes)> drop;
            lock (gate)
            {
                drop = [.. kept];
                kept.Clear();
            }
            foreach (var (b, _) in drop) NativeMemory.AlignedFree((void*)b);
        }
    }
}
