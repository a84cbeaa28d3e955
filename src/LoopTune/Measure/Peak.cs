namespace LoopTune.Measure;

/// <summary>The single-core FP32 FMA peak, measured by a microkernel emitted at run time
/// (<see cref="PeakKernel"/>) on a thread pinned to one core: the figure kernels are compared against.
/// Nothing here caches the result (<see cref="PeakCache"/> does).</summary>
public static class Peak
{
    private const long Iterations = 4096;
    private const float X = 0.99999f, Y = 1e-5f;
    private static readonly Lazy<PeakKernel> kernel = new(() => PeakKernel.Create());
    private static float sink;

    /// <summary>Vector width in bits the peak kernel uses (the widest hardware-accelerated one).</summary>
    public static int VectorBits => kernel.Value.Bits;

    /// <summary>Whether the peak kernel uses hardware fused multiply-add.</summary>
    public static bool FusedMultiplyAdd => kernel.Value.Fused;

    /// <summary>Times the peak kernel; its <see cref="Measurement.Gflops"/> is the median peak.</summary>
    public static Measurement Measure(MeasureOptions options)
    {
        var k = kernel.Value;
        var run = k.Run;
        using var pin = ThreadPinning.Pin();
        return Timing.Measure(() => sink += run(Iterations, X, Y), Iterations * k.FlopsPerIteration, options);
    }

    /// <summary>The FMA peak of one core in GFLOPS (median over the samples).</summary>
    public static double MeasureGflops(MeasureOptions options) => Measure(options).Gflops;
}
