using LoopTune.Ir;

namespace LoopTune.Jit;

/// <summary>The outcome of checking a kernel against <see cref="Reference"/>.</summary>
/// <param name="Passed">Every output element within tolerance, inputs unchanged, guard zones intact.</param>
/// <param name="MaxError">Largest |got - exact| / magnitude over the output elements.</param>
/// <param name="Tolerance">The bound each element must meet (<see cref="Reference.Tolerance"/>).</param>
/// <param name="Problem">What failed first, in words; null when passed.</param>
/// <param name="Checked">Output elements compared with the exact result: all of them, or a sample on a large computation
/// (<see cref="Reference.CheckedElements"/>); 0 when not said.</param>
public readonly record struct Verification(bool Passed, double MaxError, double Tolerance, string? Problem, long Checked = 0)
{
    /// <summary>"all 65536 output elements" or "a sample of 2048 of 1048576 output elements".</summary>
    public string Describe(long elements) => Checked >= elements ? $"all {elements} output elements" : $"a sample of {Checked} of {elements} output elements";
}

/// <summary>Runs a kernel once on random data placed between guard zones and compares it with the exact result.</summary>
public static class Verifier
{
    /// <summary>Floats of sentinel on each side of every buffer: more than <see cref="Kernel.ReadsPast"/>, so a kernel
    /// that loads an input's last vector whole reads signalling NaNs into lanes it must never store.</summary>
    public const int Guard = 64;

    public static unsafe Verification Verify(Kernel kernel, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        return Verify(kernel.Computation, (o, l, r) => kernel.Run((float*)o, (float*)l, (float*)r), seed);
    }

    /// <summary>Checks any code that computes <paramref name="c"/> as a kernel does, <paramref name="run"/>(output, left,
    /// right) on raw buffers (an exported C function, say), as <see cref="Verify(Kernel, int)"/> checks a kernel.</summary>
    public static unsafe Verification Verify(Computation c, Action<nint, nint, nint> run, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(run);
        var buffers = Buffers(c, seed);
        try
        {
            ulong[] inputs = [Checksum(buffers[1].Span), Checksum(buffers[2].Span)];
            var elements = Reference.CheckedElements(c, seed);
            var (exact, magnitude) = Reference.ExactAt(c, elements, buffers[0].Span, buffers[1].Span, buffers[2].Span);
            run((nint)buffers[0].Pointer, (nint)buffers[1].Pointer, (nint)buffers[2].Pointer);

            double tolerance = Reference.Tolerance(c);
            string? problem = Compare(c, buffers[0].Span, elements, exact, magnitude, out double worst);
            for (int t = 0; t < 3 && problem is null; t++)
                if (buffers[t].FirstBrokenGuard() is long bad) problem = $"guard zone of {c.Tensors[t].Name} overwritten at {bad} (relative to its first element)";
            for (int t = 1; t < 3 && problem is null; t++)
                if (Checksum(buffers[t].Span) != inputs[t - 1]) problem = $"input {c.Tensors[t].Name} was modified";
            return new Verification(problem is null, worst, tolerance, problem, elements.Length);
        }
        finally
        {
            foreach (var b in buffers) b.Dispose();
        }
    }

    /// <summary>
    /// Checks a kernel too slow to run whole on a slice of it (<see cref="Kernel.CompileSlice(Nest, int, JitOptions?)"/>):
    /// the first <paramref name="outerIterations"/> iterations of its outermost loop. Null when the outermost loop runs once
    /// (there is no slice). See <see cref="VerifySlice(Nest, int[], JitOptions?, int)"/>.
    /// </summary>
    public static Verification? VerifySlice(Nest nest, int outerIterations, JitOptions? options = null, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(nest);
        return nest[0].Iterations <= 1 ? null : VerifySlice(nest, Kernel.SliceSizes(nest, outerIterations), options, seed);
    }

    /// <summary>
    /// Checks the slice of <paramref name="nest"/> over the first <paramref name="sizes"/>[v] elements of each variable
    /// (<see cref="Kernel.CompileSlice(Nest, int[], JitOptions?)"/>). The slice finishes the output elements whose output
    /// variables it covers, with the sum cut to the first sizes[r] terms of each reduction variable r it cuts, and leaves the
    /// others alone: the sampled elements inside it (the sample folded into it) are compared with those exact partial sums,
    /// the sampled elements outside must be unchanged.
    /// </summary>
    public static unsafe Verification VerifySlice(Nest nest, int[] sizes, JitOptions? options = null, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(nest);
        var c = nest.Computation;
        var slice = Kernel.CompileSlice(nest, sizes, options);
        var buffers = Buffers(c, seed);
        using var output = buffers[0];
        using var left = buffers[1];
        using var right = buffers[2];
        var all = Reference.CheckedElements(c, seed);
        var before = all.ToDictionary(o => o, o => output.Span[(int)o]); // the sampled elements' values: those outside must keep them
        var cut = Enumerable.Range(0, sizes.Length).Where(v => !c.IsReduction[v] && sizes[v] < c.Sizes[v]).ToArray();
        long Index(long o, int v) => o / c.Output.VarStrides[v] % c.Sizes[v];
        bool Inside(long o) => cut.All(v => Index(o, v) < sizes[v]);
        long Fold(long o) => cut.Aggregate(o, (e, v) => e - (Index(e, v) - Index(e, v) % sizes[v]) * c.Output.VarStrides[v]);
        var inside = all.Select(Fold).Distinct().Order().ToArray();
        var (exact, magnitude) = Reference.ExactAt(c, inside, output.Span, left.Span, right.Span, sizes);
        slice.Run(output.Pointer, left.Pointer, right.Pointer);
        string? problem = Compare(c, output.Span, inside, exact, magnitude, out double worst);
        foreach (long o in all.Where(o => !Inside(o)))
            if (problem is null && !SameBits(output.Span[(int)o], before[o])) problem = $"{c.Output.Name} element {o}, outside the slice, was written";
        return new Verification(problem is null, worst, Reference.Tolerance(c), problem, inside.Length);
    }

    /// <summary>Checks <paramref name="kernel"/> (compiled from <paramref name="nest"/>) in about <paramref name="maxSeconds"/>
    /// at most, given the seconds a whole run is <paramref name="predictedSeconds"/> to take (<c>KernelTiming.Plan</c>):
    /// whole when that fits, else on the slice of <see cref="Kernel.ProbeSizes"/> for the work that fits.</summary>
    public static Verification VerifyWithin(Nest nest, Kernel kernel, double predictedSeconds, double maxSeconds, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(nest);
        ArgumentNullException.ThrowIfNull(kernel);
        if (predictedSeconds <= maxSeconds) return Verify(kernel, seed);
        var sizes = Kernel.ProbeSizes(nest, nest.Computation.Flops * maxSeconds / predictedSeconds);
        return sizes.SequenceEqual(nest.Computation.Sizes) ? Verify(kernel, seed) : VerifySlice(nest, sizes, null, seed);
    }

    /// <summary><see cref="Compare(Computation, ReadOnlySpan{float}, double[], double[], out double)"/> over the output elements
    /// <paramref name="elements"/> only, <paramref name="exact"/> and <paramref name="magnitude"/> given for those.</summary>
    public static string? Compare(Computation c, ReadOnlySpan<float> got, IReadOnlyList<long> elements, double[] exact, double[] magnitude, out double worst)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(elements);
        double tolerance = Reference.Tolerance(c);
        string? problem = null;
        worst = 0;
        for (int e = 0; e < elements.Count; e++)
        {
            int i = (int)elements[e];
            double error = Math.Abs(got[i] - exact[e]) / Math.Max(magnitude[e], 1e-30);
            if (!(error <= tolerance) && problem is null)
                problem = $"{c.Output.Name} element {i}: got {got[i]}, expected {exact[e]:G9} (relative error {error:E2} > {tolerance:E2})";
            worst = double.IsNaN(error) ? double.PositiveInfinity : Math.Max(worst, error);
        }
        return problem;
    }

    /// <summary>Compares <paramref name="got"/> with the exact result element by element within <see cref="Reference.Tolerance"/>:
    /// the first element out of tolerance in words (null when all pass), and the largest relative error.</summary>
    public static string? Compare(Computation c, ReadOnlySpan<float> got, double[] exact, double[] magnitude, out double worst)
    {
        ArgumentNullException.ThrowIfNull(c);
        double tolerance = Reference.Tolerance(c);
        string? problem = null;
        worst = 0;
        for (int i = 0; i < got.Length; i++)
        {
            double error = Math.Abs(got[i] - exact[i]) / Math.Max(magnitude[i], 1e-30);
            if (!(error <= tolerance) && problem is null)
                problem = $"{c.Output.Name} element {i}: got {got[i]}, expected {exact[i]:G9} (relative error {error:E2} > {tolerance:E2})";
            worst = double.IsNaN(error) ? double.PositiveInfinity : Math.Max(worst, error);
        }
        return problem;
    }

    /// <summary>The computation's tensors between guard zones, filled with random values in [-1, 1] in tensor order (output
    /// first) from one generator seeded with <paramref name="seed"/>. On huge pages when large, from the process's kept
    /// blocks (<see cref="AlignedBuffer"/>): a 4096^3 matmul's check made 320 MB of fresh managed arrays, 0.8 s on a VM here.</summary>
    static AlignedBuffer[] Buffers(Computation c, int seed)
    {
        var rng = new Random(seed);
        var buffers = new AlignedBuffer[c.Tensors.Length];
        for (int t = 0; t < buffers.Length; t++)
        {
            buffers[t] = new AlignedBuffer(c.Tensors[t].Length, Guard);
            buffers[t].Fill(rng);
        }
        return buffers;
    }

    /// <summary>An order-dependent checksum of the bits of <paramref name="values"/> (FNV-1a over 32-bit words): any one
    /// changed value changes it, as each step is a bijection of the state; what "an input was modified" rests on.</summary>
    public static ulong Checksum(ReadOnlySpan<float> values)
    {
        ulong h = 14695981039346656037UL;
        foreach (uint w in System.Runtime.InteropServices.MemoryMarshal.Cast<float, uint>(values)) h = (h ^ w) * 1099511628211UL;
        return h;
    }

    static bool SameBits(float a, float b) => BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(b);
}
