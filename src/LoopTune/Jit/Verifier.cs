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
    static readonly float Sentinel = BitConverter.Int32BitsToSingle(0x7FA5A5A5);

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
        var rng = new Random(seed);
        var buffers = c.Tensors.Select(t => Guarded(t.Length, rng)).ToArray();
        var inputs = buffers[1..].Select(b => (float[])b.Clone()).ToArray();
        var elements = Reference.CheckedElements(c, seed);
        var (exact, magnitude) = Reference.ExactAt(c, elements, Inner(buffers[0]), Inner(buffers[1]), Inner(buffers[2]));
        fixed (float* o = buffers[0], l = buffers[1], r = buffers[2])
            run((nint)(o + Guard), (nint)(l + Guard), (nint)(r + Guard));

        double tolerance = Reference.Tolerance(c);
        string? problem = Compare(c, Inner(buffers[0]), elements, exact, magnitude, out double worst);
        for (int t = 0; t < 3 && problem is null; t++)
        {
            var b = buffers[t];
            int bad = Enumerable.Range(0, b.Length).FirstOrDefault(i => (i < Guard || i >= b.Length - Guard) && !SameBits(b[i], Sentinel), -1);
            if (bad >= 0) problem = $"guard zone of {c.Tensors[t].Name} overwritten at {bad - Guard} (relative to its first element)";
        }
        for (int t = 1; t < 3 && problem is null; t++)
            if (!buffers[t].AsSpan().SequenceEqual(inputs[t - 1])) problem = $"input {c.Tensors[t].Name} was modified";
        return new Verification(problem is null, worst, tolerance, problem, elements.Length);
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
        var rng = new Random(seed);
        var buffers = c.Tensors.Select(t => Guarded(t.Length, rng)).ToArray();
        var all = Reference.CheckedElements(c, seed);
        var before = all.ToDictionary(o => o, o => buffers[0][Guard + o]); // the sampled elements' values: those outside must keep them
        var cut = Enumerable.Range(0, sizes.Length).Where(v => !c.IsReduction[v] && sizes[v] < c.Sizes[v]).ToArray();
        long Index(long o, int v) => o / c.Output.VarStrides[v] % c.Sizes[v];
        bool Inside(long o) => cut.All(v => Index(o, v) < sizes[v]);
        long Fold(long o) => cut.Aggregate(o, (e, v) => e - (Index(e, v) - Index(e, v) % sizes[v]) * c.Output.VarStrides[v]);
        var inside = all.Select(Fold).Distinct().Order().ToArray();
        var (exact, magnitude) = Reference.ExactAt(c, inside, Inner(buffers[0]), Inner(buffers[1]), Inner(buffers[2]), sizes);
        fixed (float* o = buffers[0], l = buffers[1], r = buffers[2])
            slice.Run(o + Guard, l + Guard, r + Guard);
        string? problem = Compare(c, Inner(buffers[0]), inside, exact, magnitude, out double worst);
        var output = Inner(buffers[0]);
        foreach (long o in all.Where(o => !Inside(o)))
            if (problem is null && !SameBits(output[(int)o], before[o])) problem = $"{c.Output.Name} element {o}, outside the slice, was written";
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

    static float[] Guarded(long length, Random rng)
    {
        var b = new float[length + 2 * Guard];
        Array.Fill(b, Sentinel);
        Reference.FillUniform(b.AsSpan(Guard, checked((int)length)), rng);
        return b;
    }

    static Span<float> Inner(float[] b) => b.AsSpan(Guard, b.Length - 2 * Guard);
    static bool SameBits(float a, float b) => BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(b);
}
