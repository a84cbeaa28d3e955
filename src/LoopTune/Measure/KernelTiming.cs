using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Measure;

/// <summary>Times compiled kernels honestly: 64-byte aligned buffers of random data, the measuring thread pinned to one
/// core where the OS allows, warm-up, repeated samples, median and min.</summary>
public static class KernelTiming
{
    /// <summary>Measures <paramref name="kernel"/> on fresh aligned buffers.</summary>
    public static Measurement Measure(Kernel kernel, MeasureOptions options, int seed = 1)
    {
        using var buffers = new Workspace(kernel.Computation, seed);
        return Measure(kernel, options, buffers);
    }

    /// <summary>Measures <paramref name="kernel"/> on buffers made earlier for its computation (so that many schedules of
    /// one computation are timed without allocating and filling again).</summary>
    public static unsafe Measurement Measure(Kernel kernel, MeasureOptions options, Workspace buffers)
    {
        var run = Runner(kernel, buffers);
        using var pin = ThreadPinning.Pin();
        return Timing.Measure(run, kernel.Computation.Flops, options);
    }

    /// <summary>One run of <paramref name="kernel"/> on <paramref name="buffers"/>, to be timed.</summary>
    public static unsafe Action Runner(Kernel kernel, Workspace buffers)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(buffers);
        if (!buffers.Computation.Equals(kernel.Computation))
            throw new ArgumentException($"the workspace is for {buffers.Computation}, the kernel for {kernel.Computation}", nameof(buffers));
        nint po = (nint)buffers.Output.Pointer, pl = (nint)buffers.Left.Pointer, pr = (nint)buffers.Right.Pointer;
        return () => kernel.Run((float*)po, (float*)pl, (float*)pr);
    }

    /// <summary>Aligned buffers for one computation's three tensors, filled with random values in [-1, 1].</summary>
    public sealed class Workspace : IDisposable
    {
        public Workspace(Computation computation, int seed = 1)
        {
            Computation = computation;
            var rng = new Random(seed);
            Output = Filled(computation.Output.Length, rng);
            Left = Filled(computation.Left.Length, rng);
            Right = Filled(computation.Right.Length, rng);
        }

        public Computation Computation { get; }
        public AlignedBuffer Output { get; }
        public AlignedBuffer Left { get; }
        public AlignedBuffer Right { get; }

        static AlignedBuffer Filled(long length, Random rng)
        {
            var b = new AlignedBuffer(length);
            b.Fill(rng);
            return b;
        }

        public void Dispose()
        {
            Output.Dispose();
            Left.Dispose();
            Right.Dispose();
        }
    }
}
