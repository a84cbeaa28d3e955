namespace LoopTune.Store;

/// <summary>The schedule a tuner chose for a computation on one machine and runtime, kept in the
/// <see cref="MeasurementStore"/>'s <c>records</c> table so a later run can reuse it instead of searching again.</summary>
/// <param name="Schedule">The nest's compact form with its cursor (<see cref="Ir.Nest.Serialize"/>), which
/// <see cref="Ir.Nest.Parse"/> reads back.</param>
/// <param name="Method">The search that chose it (<see cref="Search.SearchResult.Method"/>).</param>
/// <param name="Budget">The search's budget as given (e.g. "1s", "0").</param>
/// <param name="Gflops">The kernel's GFLOPS (the computation's FLOPs over its median time) when it was tuned.</param>
/// <param name="TunedAt">When it was tuned (UTC).</param>
public sealed record TuningRecord(string Schedule, string Method, string Budget, double Gflops, DateTime TunedAt);

/// <summary>A tuning record with its key in the store: the computation (<see cref="Ir.Computation.Text"/>), the threads its
/// kernel runs on, and the machine (<see cref="Measure.PeakCache.MachineKey"/>) and runtime
/// (<see cref="MeasurementStore.CurrentRuntime"/>) it was tuned on.</summary>
public sealed record KeyedRecord(string Spec, int Threads, string Machine, string Runtime, TuningRecord Record)
{
    /// <summary>The timing context it was tuned in, which its runtime key names (<see cref="MeasurementStore.RuntimeAt(int, Measure.TimingContext)"/>).</summary>
    public Measure.TimingContext Context => MeasurementStore.ContextOf(Runtime);
}
