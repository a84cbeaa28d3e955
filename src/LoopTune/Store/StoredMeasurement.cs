namespace LoopTune.Store;

/// <summary>One record of the <see cref="MeasurementStore"/>: how fast a schedule of a computation ran on this machine
/// and runtime. Times are seconds per run; <see cref="MeasuredAt"/> is UTC.</summary>
/// <param name="Computation">The computation's canonical text (<see cref="Ir.Computation.Text"/>).</param>
/// <param name="Schedule">The schedule without its cursor (<see cref="Ir.Nest.ScheduleKey"/>).</param>
/// <param name="MedianSeconds">Median seconds per run over the samples.</param>
/// <param name="MinSeconds">Fastest sample, seconds per run.</param>
/// <param name="Samples">How many samples the median and minimum are over.</param>
/// <param name="Gflops">Billions of floating-point operations per second at the median time.</param>
/// <param name="MeasuredAt">When the measurement was taken (UTC).</param>
public sealed record StoredMeasurement(string Computation, string Schedule, double MedianSeconds, double MinSeconds,
                                       int Samples, double Gflops, DateTime MeasuredAt)
{
    /// <summary>Billions of floating-point operations per second at the fastest sample.</summary>
    public double BestGflops => Gflops * MedianSeconds / MinSeconds;
}
