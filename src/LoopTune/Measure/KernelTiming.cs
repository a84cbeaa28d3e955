using LoopTune.Jit;

namespace LoopTune.Measure;

/// <summary>Times compiled kernels honestly: 64-byte aligned buffers of random data, the measuring thread pinned to one
/// core where the OS allows, warm-up, repeated samples, median and min.</summary>
public static class KernelTiming
{
    /// <summary>Measures <paramref name="kernel"/> on fresh aligned buffers.</summary>
    public static unsafe Measurement Measure(Kernel kernel, MeasureOptions options, int seed = 1)
    {
        var c = kernel.Computation;
        var rng = new Random(seed);
        using var o = new AlignedBuffer(c.Output.Length);
        using var l = new AlignedBuffer(c.Left.Length);
        using var r = new AlignedBuffer(c.Right.Length);
        foreach (var b in new[] { o, l, r }) b.Fill(rng);
        nint po = (nint)o.Pointer, pl = (nint)l.Pointer, pr = (nint)r.Pointer;
        using var pin = ThreadPinning.Pin();
        return Timing.Measure(() => kernel.Run((float*)po, (float*)pl, (float*)pr), c.Flops, options);
    }
}
