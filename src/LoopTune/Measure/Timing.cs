using System.Diagnostics;

namespace LoopTune.Measure;

/// <summary>Times a piece of work on the calling thread: warm-up, calibration of runs per sample,
/// then repeated samples; the result is per-run seconds (median and minimum). Pin the thread first
/// (<see cref="ThreadPinning"/>) for steadier numbers.</summary>
public static class Timing
{
    private const long MaxRunsPerSample = 1L << 40;

    /// <summary>Times <paramref name="run"/> with <see cref="MeasureOptions.Default"/>.</summary>
    public static Measurement Measure(Action run, double flops) => Measure(run, flops, MeasureOptions.Default);

    /// <summary>Times <paramref name="run"/>, which performs <paramref name="flops"/> floating-point
    /// operations per call, as <paramref name="options"/> says.</summary>
    public static Measurement Measure(Action run, double flops, MeasureOptions options)
    {
        ArgumentNullException.ThrowIfNull(run);
        options.Validate();
        if (options is { WarmupSeconds: 0, MinSamples: 1 })
        {
            // No warm-up asked for and one sample enough: a first call that alone outlasts MinSeconds is that sample
            // (a 10 ms kernel is timed once, not three times; what the environment and the searches need).
            double first = Time(run, 1);
            if (first >= options.MinSeconds && first >= options.SampleSeconds) return new Measurement(first, first, 1, 1, flops);
        }
        long runs = Calibrate(run, options);
        double[] samples = Sample(run, runs, options);
        Array.Sort(samples);
        return new Measurement(Median(samples), samples[0], samples.Length, runs, flops);
    }

    /// <summary>Warms up for WarmupSeconds (at least one call), doubling the batch while it is
    /// shorter than half a sample; returns the runs that make one sample last about SampleSeconds
    /// (from the fastest measurable batch, or the last batch size if none could be measured).</summary>
    private static long Calibrate(Action run, MeasureOptions o)
    {
        long start = Stopwatch.GetTimestamp(), batch = 1;
        double perRun = double.MaxValue;
        do
        {
            double t = Time(run, batch);
            if (t > 0) perRun = Math.Min(perRun, t / batch);
            if (t < o.SampleSeconds / 2 && batch < MaxRunsPerSample) batch *= 2;
        }
        while (Stopwatch.GetElapsedTime(start).TotalSeconds < o.WarmupSeconds);
        return perRun < double.MaxValue ? (long)Math.Clamp(Math.Round(o.SampleSeconds / perRun), 1, MaxRunsPerSample) : batch;
    }

    private static double[] Sample(Action run, long runs, MeasureOptions o)
    {
        var samples = new List<double>(o.MinSamples);
        long start = Stopwatch.GetTimestamp();
        while (samples.Count < o.MaxSamples
               && (samples.Count < o.MinSamples || Stopwatch.GetElapsedTime(start).TotalSeconds < o.MinSeconds))
            samples.Add(Time(run, runs) / runs);
        return [.. samples];
    }

    private static double Time(Action run, long runs)
    {
        long t0 = Stopwatch.GetTimestamp();
        for (long r = 0; r < runs; r++) run();
        return (Stopwatch.GetTimestamp() - t0) / (double)Stopwatch.Frequency;
    }

    private static double Median(double[] sorted) =>
        sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
}
