namespace LoopTune.Measure;

/// <summary>The single-core FP32 FMA peak, measured by a microkernel emitted at run time
/// (<see cref="PeakKernel"/>) on a thread pinned to one core: the figure kernels are compared against.
/// Nothing here caches the result (<see cref="PeakCache"/> does).</summary>
public static class Peak
{
    private const long Iterations = 4096;
    private const float X = 0.99999f, Y = 1e-5f;
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(int, int), PeakKernel> kernels = new();
    private static float sink;

    /// <summary>Vector width in bits the peak kernel uses: the widest the JIT uses (<see cref="Jit.JitOptions.Default"/>).</summary>
    public static int VectorBits => Kernel(null, Chains).Bits;

    /// <summary>Whether the peak kernel uses hardware fused multiply-add.</summary>
    public static bool FusedMultiplyAdd => PeakKernel.HardwareFma;

    /// <summary>Independent accumulators of the peak kernel: enough to fill two FMA pipes of latency 6.</summary>
    public const int Chains = 12;

    /// <summary>Times the peak kernel at <paramref name="bits"/> (default: the JIT's width) with <paramref name="chains"/>
    /// independent accumulators; its <see cref="Measurement.Gflops"/> is the median. One chain times the FMA's latency.</summary>
    public static Measurement Measure(MeasureOptions options, int? bits = null, int chains = Chains)
    {
        var k = Kernel(bits, chains);
        var run = k.Run;
        using var pin = ThreadPinning.Pin();
        return Timing.Measure(() => sink += run(Iterations, X, Y), Iterations * k.FlopsPerIteration, Short(options));
    }

    /// <summary><paramref name="options"/> with samples of at most 0.2 ms (a few dozen runs of the microkernel), as many as
    /// its time allows: shorter than the slice the scheduler gives a process that shares the core, so that even then some
    /// samples run untouched, and the fastest sample (<see cref="MeasureGflops"/>) is the core's. With 5 ms samples and a
    /// busy loop on the same core every sample was cut in two: 122 GFLOPS of a 225 peak.</summary>
    internal static MeasureOptions Short(MeasureOptions options) =>
        options with { SampleSeconds = Math.Min(options.SampleSeconds, 0.0002), MaxSamples = Math.Max(options.MaxSamples, 5000) };

    /// <summary>The FMA peak of one core in GFLOPS at <paramref name="bits"/> (default: the JIT's width): the fastest sample,
    /// not the median. The microkernel touches no memory, so nothing but other work on the core (a neighbour, an interrupt,
    /// a preemption) makes a sample slower; the median of a busy moment was once remembered as 78.5 GFLOPS on a core whose
    /// peak is 225, and every report of that data folder then read "271 % of peak".</summary>
    public static double MeasureGflops(MeasureOptions options, int? bits = null) => Measure(options, bits).BestGflops;

    static PeakKernel Kernel(int? bits, int chains)
    {
        int b = bits ?? Jit.JitOptions.Default.VectorBits;
        return kernels.GetOrAdd((b == 0 ? 128 : b, chains), key => PeakKernel.Create(key.Item1, key.Item2, PeakKernel.HardwareFma));
    }
}
