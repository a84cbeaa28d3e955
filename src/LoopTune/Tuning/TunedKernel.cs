using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Store;

namespace LoopTune;

/// <summary>
/// A computation's kernel as a <see cref="Tuner"/> gives it: compiled from the schedule recorded for this machine, or from
/// the one a search just chose and recorded; or, recalled, the record's compiled library loaded (<see cref="Native"/>).
/// Runs are thread-safe.
/// </summary>
public sealed class TunedKernel
{
    readonly Lazy<Kernel> kernel;
    readonly NativeKernel? native;

    internal TunedKernel(Kernel kernel, TuningRecord record, bool recalled)
    {
        this.kernel = new Lazy<Kernel>(kernel);
        Computation = kernel.Computation;
        Record = record;
        Recalled = recalled;
    }

    /// <summary>A recalled kernel whose runs call the record's compiled library; <paramref name="compile"/> makes the JIT's
    /// kernel of the same schedule if <see cref="Kernel"/> is asked for.</summary>
    internal TunedKernel(NativeKernel native, TuningRecord record, Func<Kernel> compile)
    {
        this.native = native;
        kernel = new Lazy<Kernel>(compile, LazyThreadSafetyMode.ExecutionAndPublication);
        Computation = native.Computation;
        Record = record;
        Recalled = true;
    }

    /// <summary>The JIT's kernel of the schedule (its nest, compile time, notes, threads). For a <see cref="Native"/> kernel
    /// it is compiled when first asked for here, and runs go to the library all the same.</summary>
    public Kernel Kernel => kernel.Value;

    /// <summary>The computation it computes.</summary>
    public Computation Computation { get; }

    /// <summary>The chosen schedule in its compact form (<see cref="Nest.Serialize"/>; <c>looptune run SPEC -s SCHEDULE</c> runs it).</summary>
    public string Schedule => Record.Schedule;

    /// <summary>The kernel's GFLOPS as measured when it was tuned (on <see cref="Threads"/> threads), not measured again.</summary>
    public double Gflops => Record.Gflops;

    /// <summary>The threads a run uses (<see cref="Kernel.Threads"/>; 1 for a <see cref="Native"/> kernel).</summary>
    public int Threads => native is null ? Kernel.Threads : 1;

    /// <summary>The record it came from: the schedule, the search and its budget, the GFLOPS and when it was tuned.</summary>
    public TuningRecord Record { get; }

    /// <summary>Whether it was recalled from the records (compiled or loaded only) rather than tuned by this tuner.</summary>
    public bool Recalled { get; }

    /// <summary>Whether runs call the record's compiled library (the schedule exported as C and built by the C compiler
    /// when it was tuned or first recalled, checked against the reference then: <see cref="Tuner"/>'s compiled records)
    /// rather than the JIT's kernel.</summary>
    public bool Native => native is not null;

    /// <summary>The compiled library a <see cref="Native"/> kernel runs, or null.</summary>
    public string? Library => native?.Library;

    /// <summary>Runs the kernel on spans in the computation's operand order, output first: <c>output += left * right</c>
    /// (row-major, each at least its tensor's length; an <see cref="ArgumentException"/> otherwise).</summary>
    public unsafe void Run(Span<float> output, ReadOnlySpan<float> left, ReadOnlySpan<float> right)
    {
        if (native is null)
        {
            Kernel.Run(output, left, right);
            return;
        }
        Kernel.CheckLengths(Computation, output.Length, left.Length, right.Length);
        fixed (float* o = output, l = left, r = right) native.Run(o, l, r);
    }

    /// <summary>The computation, the schedule and its GFLOPS, e.g. <c>mm 256 256 256: m:64 ... (113.4 GFLOPS)</c>.</summary>
    public override string ToString() => FormattableString.Invariant($"{Computation.Text}: {Schedule} ({Gflops:F1} GFLOPS)");
}
