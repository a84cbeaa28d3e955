using System.Runtime.CompilerServices;
using LoopTune.Ir;

namespace LoopTune.Jit;

/// <summary>
/// Copies an input into its packed layout (<see cref="Layout"/>): the loops that move it, walked as the kernel walks
/// them (tails included), each innermost run copied whole when it is contiguous in the input.
/// </summary>
sealed unsafe class PackPlan
{
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

    /// <summary>Writes the packed copy of <paramref name="input"/> to <paramref name="copy"/> (<see cref="Length"/> floats).</summary>
    // optimized from the first call: a search's first packed kernels ran their copies as tier-0 code, several times slower
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Pack(float* input, float* copy)
    {
        var remaining = (int[])sizes.Clone();
        Copy(0, remaining, input, copy);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void Copy(int i, int[] remaining, float* from, float* to)
    {
        var (v, step, fromStride, toStride) = loops[i];
        int covered = remaining[v], full = covered / step, rem = covered % step;
        if (i == loops.Length - 1)
        {
            Run(from, to, covered, fromStride);
            return;
        }
        if (i == loops.Length - 2 && loops[i + 1].Var != v)
        {
            // the last two loops in one place: runs of the innermost, as many as this loop has iterations
            var (u, _, runStride, _) = loops[i + 1];
            int run = remaining[u];
            for (int k = 0; k < full + (rem > 0 ? 1 : 0); k++) Run(from + k * fromStride, to + k * toStride, run, runStride);
            return;
        }
        remaining[v] = step;
        for (int k = 0; k < full; k++) Copy(i + 1, remaining, from + k * fromStride, to + k * toStride);
        if (rem > 0)
        {
            remaining[v] = rem;
            Copy(i + 1, remaining, from + full * fromStride, to + full * toStride);
        }
        remaining[v] = covered;
    }

    /// <summary>The innermost loop that moves the input (step 1: a loop of its variable further in would move it too).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Run(float* from, float* to, int count, long stride)
    {
        if (stride == 1) Buffer.MemoryCopy(from, to, count * sizeof(float), count * sizeof(float));
        else for (int k = 0; k < count; k++) to[k] = from[k * stride];
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

    public void Dispose()
    {
        foreach (var b in buffers) b.Dispose();
    }
}
