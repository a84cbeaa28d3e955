using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
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
    /// <paramref name="sizes"/>[v] elements of each variable (a slice's; default: all).</summary>
    public PackPlan(Nest nest, int tensor, int[]? sizes = null)
    {
        var strides = Layout.LoopStrides(nest);
        var plain = nest.Computation.Tensors[tensor].VarStrides;
        var moving = Enumerable.Range(0, nest.Count).Where(l => plain[nest[l].Var] != 0).ToList();
        // Two loops of one variable next to each other in the copy, the inner without a tail, walk one run: keep the inner.
        for (int i = moving.Count - 2; i >= 0; i--)
            if (nest[moving[i]].Var == nest[moving[i + 1]].Var && nest[moving[i + 1]].Tail == 0) moving.RemoveAt(i);
        loops = [.. moving.Select(l => (nest[l].Var, nest.InnerStep(l), plain[nest[l].Var] * nest.InnerStep(l), strides[tensor][l]))];
        this.sizes = sizes is null ? [.. nest.Computation.Sizes] : (int[])sizes.Clone();
        Length = Layout.PackedLength(nest, tensor);
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

    /// <summary>The innermost loop of the copy: <paramref name="count"/> elements, <paramref name="stride"/> apart in the
    /// input and <paramref name="toStride"/> in the copy (in vectors where both are 1: <c>Buffer.MemoryCopy</c>'s call
    /// on each 64-byte row of a 16-column panel of B took 1.2 ms for mm 256 512 1536's 3 MB on the Zen 3, vectors 0.5).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Run(float* from, float* to, int count, long stride, long toStride)
    {
        if (stride != 1 || toStride != 1)
            for (int k = 0; k < count; k++) to[k * toStride] = from[k * stride];
        else if (count > 256) Buffer.MemoryCopy(from, to, count * sizeof(float), count * sizeof(float));
        else
        {
            int k = 0;
            for (; k + 8 <= count; k += 8) Vector256.Store(Vector256.Load(from + k), to + k);
            for (; k < count; k++) to[k] = from[k];
        }
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
    public PackedCopies(IReadOnlyList<PackPlan> plans, bool mapPages)
    {
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
    }
}
