using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using LoopTune.Ir;

namespace LoopTune.Jit;

/// <summary>
/// Copies an input into its packed layout (<see cref="Layout"/>): the loops that move it, walked as the kernel walks
/// them (tails included), each innermost run copied whole when it is contiguous in the input.
/// </summary>
sealed unsafe class PackPlan
{
    const int LineFloats = 16;
    readonly (int Var, int Step, long From, long To)[] loops; // From: the input's stride per iteration; To: the copy's
    readonly int[] sizes;

    /// <summary>The plan for input <paramref name="tensor"/> of <paramref name="nest"/>, over the first
    /// <paramref name="sizes"/>[v] elements of each variable (a slice's; default: all); with <paramref name="inside"/>, of
    /// one block of <see cref="Layout.BlockLevel"/>: the loops inside that level, over the elements <paramref name="sizes"/>
    /// leaves each variable in the iteration (a tail's fewer).</summary>
    public PackPlan(Nest nest, int tensor, int[]? sizes = null, int inside = -1)
    {
        var strides = Layout.LoopStrides(nest);
        var plain = nest.Computation.Tensors[tensor].VarStrides;
        var moving = Enumerable.Range(inside + 1, nest.Count - inside - 1).Where(l => plain[nest[l].Var] != 0).ToList();
        // Two loops of one variable next to each other in the copy, the inner without a tail, walk one run: keep the inner.
        for (int i = moving.Count - 2; i >= 0; i--)
            if (nest[moving[i]].Var == nest[moving[i + 1]].Var && nest[moving[i + 1]].Tail == 0) moving.RemoveAt(i);
        loops = [.. moving.Select(l => (nest[l].Var, nest.InnerStep(l), plain[nest[l].Var] * nest.InnerStep(l), strides[tensor][l]))];
        this.sizes = sizes is null ? [.. nest.Computation.Sizes] : (int[])sizes.Clone();
        Length = Layout.PackedLength(nest, tensor, inside);
        Tensor = tensor;
        Elements = Enumerable.Range(0, this.sizes.Length).Where(v => plain[v] != 0).Aggregate(1.0, (n, v) => n * this.sizes[v]);
    }

    /// <summary>About how many elements one <see cref="Pack"/> copies: the product of the sizes it covers of the input's
    /// variables (a slice's share of the whole's, in the ratio of the two).</summary>
    public double Elements { get; }

    /// <summary>The tensor (index into <see cref="Computation.Tensors"/>) this plan packs.</summary>
    public int Tensor { get; }

    /// <summary>Floats the copy holds.</summary>
    public long Length { get; }

    /// <summary>Iterations of the copy's outermost loop (elements, where it has one loop): what <see cref="Pack(float*, float*, int, int)"/>
    /// divides among threads.</summary>
    public int OuterIterations => loops.Length == 1 ? sizes[loops[0].Var] : (sizes[loops[0].Var] + loops[0].Step - 1) / loops[0].Step;

    /// <summary>Writes the part of the packed copy that iterations [<paramref name="lo"/>, <paramref name="hi"/>) of its
    /// outermost loop make (<see cref="OuterIterations"/>): threads given disjoint ranges write disjoint parts, and all of
    /// them together the whole copy.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Pack(float* input, float* copy, int lo, int hi)
    {
        hi = Math.Min(hi, OuterIterations);
        if (lo >= hi) return;
        if (loops.Length == 1)
        {
            var (_, _, fromStride, toStride) = loops[0];
            Run(input + lo * fromStride, copy + lo * toStride, hi - lo, fromStride, toStride);
            return;
        }
        Span<int> remaining = stackalloc int[sizes.Length];
        sizes.CopyTo(remaining);
        Iterations(0, remaining, input, copy, lo, hi);
    }

    /// <summary>Writes the packed copy of <paramref name="input"/> to <paramref name="copy"/> (<see cref="Length"/> floats).</summary>
    // optimized from the first call: a search's first packed kernels ran their copies as tier-0 code, several times slower
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Pack(float* input, float* copy)
    {
        Span<int> remaining = stackalloc int[sizes.Length];
        sizes.CopyTo(remaining);
        Copy(0, remaining, input, copy);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void Copy(int i, Span<int> remaining, float* from, float* to)
    {
        var (v, step, fromStride, toStride) = loops[i];
        int covered = remaining[v], full = covered / step, rem = covered % step;
        if (i == loops.Length - 1)
        {
            Run(from, to, covered, fromStride, toStride);
            return;
        }
        if (i == loops.Length - 2 && loops[i + 1].Var != v)
        {
            // the last two loops in one place: runs of the innermost, as many as this loop has iterations
            var (u, _, runStride, runTo) = loops[i + 1];
            int run = remaining[u], runs = full + (rem > 0 ? 1 : 0);
            if (runStride != 1 && fromStride == 1 && runTo == 1 && Avx.IsSupported)
            {
                Transposed(from, to, run, runs, runStride, toStride);
                return;
            }
            if (runStride != 1 && fromStride == 1)
            {
                // runs across the input's lines (A's rows of a tile): a line (16 floats) of each in turn, so that all of them
                // stream at once and each is read along
                for (int k = 0; k < runs; k += LineFloats)
                {
                    int n = Math.Min(LineFloats, runs - k);
                    for (int q = 0; q < run; q++) Run(from + q * runStride + k, to + q * runTo + k * toStride, n, 1, toStride);
                }
                return;
            }
            if (runStride == 1 && runTo == 1 && run <= 256)
            {
                Lines(from, to, runs, run, fromStride, toStride);
                return;
            }
            for (int k = 0; k < runs; k++) Run(from + k * fromStride, to + k * toStride, run, runStride, runTo);
            return;
        }
        Iterations(i, remaining, from, to, 0, int.MaxValue);
    }

    /// <summary>Iterations [<paramref name="lo"/>, <paramref name="hi"/>) of loop <paramref name="i"/> of the copy (its tail
    /// the last), each copying what the loops inside it move.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void Iterations(int i, Span<int> remaining, float* from, float* to, int lo, int hi)
    {
        var (v, step, fromStride, toStride) = loops[i];
        int covered = remaining[v], full = covered / step, rem = covered % step;
        hi = Math.Min(hi, full + (rem > 0 ? 1 : 0));
        for (int k = lo; k < hi; k++)
        {
            remaining[v] = k < full ? step : rem;
            Copy(i + 1, remaining, from + k * fromStride, to + k * toStride);
        }
        remaining[v] = covered;
    }

    /// <summary><paramref name="runs"/> runs of <paramref name="run"/> (at most 256) contiguous floats, <paramref name="fromStride"/>
    /// apart in the input and <paramref name="toStride"/> in the copy, in vectors: a panel of B, a line of each row. One
    /// call of <see cref="Run"/> a row cost mm 256 512 1536's blocks of B some 5 % of its run on the Zen 3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Lines(float* from, float* to, int runs, int run, long fromStride, long toStride)
    {
        for (int r = 0; r < runs; r++, from += fromStride, to += toStride)
        {
            int k = 0;
            for (; k + 8 <= run; k += 8) Vector256.Store(Vector256.Load(from + k), to + k);
            for (; k < run; k++) to[k] = from[k];
        }
    }

    /// <summary>
    /// <c>to[q + k * toStride] = from[q * rowStride + k]</c> for <paramref name="rows"/> rows q and <paramref name="count"/>
    /// columns k: the rows of a tile of A, read along, laid out a column at a time (the tile's rows side by side), as the
    /// tile broadcasts them. Eight rows by eight columns at a time are loaded as eight vectors and transposed in registers;
    /// each column's first rows are stored (4, 2, 1 floats at a time), so nothing past them is written. A float at a time,
    /// mm 256 512 1536's blocks of A (a 6-row tile) took 10 % of its run on the Zen 3. The next tile's rows (the rows after
    /// these, as A's tiles follow each other) are prefetched a line of each every 16 columns: each row is read for only
    /// 1 KB, too short for the hardware's prefetcher to start, and mm 1536 1024 512's blocks of A were copied at 6.8 GB/s
    /// without, 12.3 with (the Zen 3).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Transposed(float* from, float* to, int rows, int count, long rowStride, long toStride)
    {
        for (int q0 = 0; q0 < rows; q0 += 8)
        {
            int r = Math.Min(8, rows - q0);
            float* f = from + q0 * rowStride, t = to + q0;
            int k = 0;
            float* next = f + r * rowStride; // the next tile's rows, read next: their lines asked for a tile ahead
            for (; k + 8 <= count; k += 8)
            {
                if ((k & (LineFloats - 1)) == 0)
                    for (int q = 0; q < r; q++) Sse.Prefetch0(next + q * rowStride + k);
                var (c0, c1, c2, c3, c4, c5, c6, c7) = Transpose8(Row(f, 0, r, rowStride, k), Row(f, 1, r, rowStride, k), Row(f, 2, r, rowStride, k), Row(f, 3, r, rowStride, k),
                    Row(f, 4, r, rowStride, k), Row(f, 5, r, rowStride, k), Row(f, 6, r, rowStride, k), Row(f, 7, r, rowStride, k));
                float* at = t + k * toStride;
                StoreFirst(c0, at, r);
                StoreFirst(c1, at + toStride, r);
                StoreFirst(c2, at + 2 * toStride, r);
                StoreFirst(c3, at + 3 * toStride, r);
                StoreFirst(c4, at + 4 * toStride, r);
                StoreFirst(c5, at + 5 * toStride, r);
                StoreFirst(c6, at + 6 * toStride, r);
                StoreFirst(c7, at + 7 * toStride, r);
            }
            for (; k < count; k++)
                for (int q = 0; q < r; q++) t[q + k * toStride] = f[q * rowStride + k];
        }
    }

    /// <summary>Columns k..k+7 of row q, or zeros for a row past the <paramref name="rows"/> there are.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Row(float* f, int q, int rows, long rowStride, int k) => q < rows ? Vector256.Load(f + q * rowStride + k) : Vector256<float>.Zero;

    /// <summary>The 8 x 8 transpose: result j holds element j of each of the eight vectors, in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>, Vector256<float>) Transpose8(
        Vector256<float> r0, Vector256<float> r1, Vector256<float> r2, Vector256<float> r3, Vector256<float> r4, Vector256<float> r5, Vector256<float> r6, Vector256<float> r7)
    {
        var (t0, t1, t2, t3) = (Avx.UnpackLow(r0, r1), Avx.UnpackHigh(r0, r1), Avx.UnpackLow(r2, r3), Avx.UnpackHigh(r2, r3));
        var (t4, t5, t6, t7) = (Avx.UnpackLow(r4, r5), Avx.UnpackHigh(r4, r5), Avx.UnpackLow(r6, r7), Avx.UnpackHigh(r6, r7));
        var (u0, u1, u2, u3) = (Avx.Shuffle(t0, t2, 0x44), Avx.Shuffle(t0, t2, 0xEE), Avx.Shuffle(t1, t3, 0x44), Avx.Shuffle(t1, t3, 0xEE));
        var (u4, u5, u6, u7) = (Avx.Shuffle(t4, t6, 0x44), Avx.Shuffle(t4, t6, 0xEE), Avx.Shuffle(t5, t7, 0x44), Avx.Shuffle(t5, t7, 0xEE));
        return (Avx.Permute2x128(u0, u4, 0x20), Avx.Permute2x128(u1, u5, 0x20), Avx.Permute2x128(u2, u6, 0x20), Avx.Permute2x128(u3, u7, 0x20),
            Avx.Permute2x128(u0, u4, 0x31), Avx.Permute2x128(u1, u5, 0x31), Avx.Permute2x128(u2, u6, 0x31), Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>Stores the first <paramref name="n"/> (1 to 8) lanes of <paramref name="v"/> at <paramref name="p"/> and nothing past them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreFirst(Vector256<float> v, float* p, int n)
    {
        if (n == 8)
        {
            v.Store(p);
            return;
        }
        var half = v.GetLower();
        if (n >= 4)
        {
            half.Store(p);
            p += 4;
            (n, half) = (n - 4, v.GetUpper());
        }
        if (n >= 2)
        {
            *(double*)p = half.AsDouble().ToScalar();
            p += 2;
            (n, half) = (n - 2, Sse.MoveHighToLow(half, half));
        }
        if (n == 1) *p = half.ToScalar();
    }

    /// <summary>The innermost loop of the copy: <paramref name="count"/> elements, <paramref name="stride"/> apart in the
    /// input and <paramref name="toStride"/> in the copy (in vectors where both are 1: <c>Buffer.MemoryCopy</c>'s call
    /// on each 64-byte row of a 16-column panel of B took 1.2 ms for mm 256 512 1536's 3 MB on the Zen 3, vectors 0.5).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Run(float* from, float* to, int count, long stride, long toStride)
    {
        if (stride != 1 || toStride != 1)
            for (int k = 0; k < count; k++) to[k * toStride] = from[k * stride];
        else if (count > 256) Buffer.MemoryCopy(from, to, count * sizeof(float), count * sizeof(float));
        else Lines(from, to, 1, count, 0, 0);
    }
}

/// <summary>The packed copies one run of a kernel reads: <see cref="AlignedBuffer"/>s (a large one on huge pages, taken
/// from and given back to the process's kept blocks), each with a vector of zeros past its end (a kernel may read that
/// far, <see cref="Kernel.ReadsPast"/>). <see cref="Sources"/> remembers which input each copy was last made from. Freed by
/// <see cref="Dispose"/> (<see cref="Kernel.Release"/>), or by the buffers' finalizers with the kernel.</summary>
sealed unsafe class PackedCopies : IDisposable
{
    readonly AlignedBuffer[] buffers;

    /// <param name="plans">What is copied.</param>
    /// <param name="mapPages">Whether every page is written once now, so that the first run does not pay the operating
    /// system for mapping them (a whole kernel's first run may be its only timed one); a slice's are left to its untimed
    /// first run, which writes only its share.</param>
    /// <param name="blocks">The blocks the kernel copies in its loops (<see cref="PackBlocks"/>), each thread's buffers made on
    /// its first run.</param>
    public PackedCopies(IReadOnlyList<PackPlan> plans, IReadOnlyList<PackPlan> blocks, bool mapPages)
    {
        blockPlans = blocks;
        Blocks(1); // the calling thread's now: a prepared kernel's first run allocates nothing (Kernel.Prepare)
        copyShare = (t, lo, hi) => job!.Pack((float*)jobFrom, (float*)jobTo, lo, hi);
        buffers = new AlignedBuffer[plans.Count];
        Sources = new nint[plans.Count];
        for (int i = 0; i < buffers.Length; i++)
        {
            // not zeroed (a 4096^3 matmul's copy is 64 MB): the copy writes every element the kernel reads; the readable
            // tail past it, which a kernel may read but never uses, is zeros
            buffers[i] = new AlignedBuffer(plans[i].Length);
            if (mapPages)
                for (long at = 0; at < plans[i].Length; at += PageFloats) buffers[i].Pointer[at] = 0;
        }
    }

    /// <summary>Floats of a 4 KiB page.</summary>
    const int PageFloats = 1024;

    public float* this[int i] => buffers[i].Pointer;

    readonly IReadOnlyList<PackPlan> blockPlans;
    PackBlocks?[] threadBlocks = [];

    /// <summary>The buffers of the blocks copied in the loops for each of <paramref name="threads"/> threads (made on first
    /// use); nulls when the kernel copies no block.</summary>
    public PackBlocks?[] Blocks(int threads)
    {
        if (threadBlocks.Length < threads)
        {
            var more = new PackBlocks?[threads];
            threadBlocks.CopyTo(more, 0);
            for (int t = threadBlocks.Length; t < threads; t++) more[t] = blockPlans.Count > 0 ? new PackBlocks(blockPlans) : null;
            threadBlocks = more;
        }
        return threadBlocks;
    }

    /// <summary>The input each copy was made from last (0: none yet).</summary>
    public nint[] Sources { get; }

    readonly Action<int, int, int> copyShare; // made once: a run on several threads allocates nothing
    PackPlan? job;
    nint jobFrom, jobTo;

    /// <summary>Makes copy <paramref name="i"/> of <paramref name="from"/> with <paramref name="plan"/> on
    /// <paramref name="team"/>, thread t copying iterations [chunks[t], chunks[t + 1]) of its outermost loop.</summary>
    public void PackOn(ThreadTeam team, PackPlan plan, int i, float* from, int[] chunks)
    {
        (job, jobFrom, jobTo) = (plan, (nint)from, (nint)this[i]);
        team.Run(copyShare, chunks);
        job = null;
    }

    public void Dispose()
    {
        foreach (var b in buffers) b.Dispose();
        foreach (var b in threadBlocks) b?.Dispose();
    }
}

/// <summary>One thread's buffers for the inputs a kernel copies a block at a time (<see cref="Layout.BlockLevel"/>): the
/// kernel calls <see cref="Pack"/> at the start of each iteration of the block's loop and reads the block from the buffer
/// it returns. Each thread running the kernel has its own (<see cref="Kernel.Threads"/>); freed by <see cref="Dispose"/>
/// or the buffers' finalizers.</summary>
sealed unsafe class PackBlocks : IDisposable
{
    readonly PackPlan[] plans;
    readonly AlignedBuffer?[] buffers = new AlignedBuffer?[3]; // per input tensor: its block, a vector of zeros past it

    /// <param name="plans">Every block copy the kernel makes, each a tail context's own, in the order the kernel names them.</param>
    public PackBlocks(IReadOnlyList<PackPlan> plans)
    {
        this.plans = [.. plans];
        foreach (var g in plans.GroupBy(p => p.Tensor)) buffers[g.Key] = new AlignedBuffer(g.Max(p => p.Length));
    }

    /// <summary>Copies the block at <paramref name="from"/> with plan <paramref name="plan"/>; returns where it now is.
    /// Called by the emitted kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public float* Pack(int plan, float* from)
    {
        var p = plans[plan];
        float* to = buffers[p.Tensor]!.Pointer;
        p.Pack(from, to);
        return to;
    }

    public void Dispose()
    {
        foreach (var b in buffers) b?.Dispose();
    }
}
