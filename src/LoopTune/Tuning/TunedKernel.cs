using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Store;

namespace LoopTune;

/// <summary>
/// A computation's kernel as a <see cref="Tuner"/> gives it: compiled from the schedule recorded for this machine, or from
/// the one a search just chose and recorded. Runs are thread-safe (<see cref="Kernel.Run(Span{float}, ReadOnlySpan{float}, ReadOnlySpan{float})"/>).
/// </summary>
public sealed class TunedKernel
{
    internal TunedKernel(Kernel kernel, TuningRecord record, bool recalled)
    {
        Kernel = kernel;
        Record = record;
        Recalled = recalled;
    }

    /// <summary>The compiled kernel (its nest, compile time, notes, threads).</summary>
    public Kernel Kernel { get; }

    /// <summary>The computation it computes.</summary>
    public Computation Computation => Kernel.Computation;

    /// <summary>The chosen schedule in its compact form (<see cref="Nest.Serialize"/>; <c>looptune run SPEC -s SCHEDULE</c> runs it).</summary>
    public string Schedule => Record.Schedule;

    /// <summary>The kernel's GFLOPS as measured when it was tuned (on <see cref="Threads"/> threads), not measured again.</summary>
    public double Gflops => Record.Gflops;

    /// <summary>The threads a run uses (<see cref="Kernel.Threads"/>).</summary>
    public int Threads => Kernel.Threads;

    /// <summary>The record it came from: the schedule, the search and its budget, the GFLOPS and when it was tuned.</summary>
    public TuningRecord Record { get; }

    /// <summary>Whether it was recalled from the records (compiled only) rather than tuned by this tuner.</summary>
    public bool Recalled { get; }

    /// <summary>Runs the kernel on spans in the computation's operand order, output first: <c>output += left * right</c>
    /// (row-major, each at least its tensor's length; an <see cref="ArgumentException"/> otherwise).</summary>
    public void Run(Span<float> output, ReadOnlySpan<float> left, ReadOnlySpan<float> right) => Kernel.Run(output, left, right);

    /// <summary>The computation, the schedule and its GFLOPS, e.g. <c>mm 256 256 256: m:64 ... (113.4 GFLOPS)</c>.</summary>
    public override string ToString() => FormattableString.Invariant($"{Computation.Text}: {Schedule} ({Gflops:F1} GFLOPS)");
}
