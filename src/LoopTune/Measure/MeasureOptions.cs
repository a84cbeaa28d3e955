namespace LoopTune.Measure;

/// <summary>How long and how often <see cref="Timing.Measure(Action, double, MeasureOptions)"/> runs a
/// piece of work: a warm-up, then samples of about <paramref name="SampleSeconds"/> each until both
/// <paramref name="MinSeconds"/> of sampling and <paramref name="MinSamples"/> samples are reached,
/// never more than <paramref name="MaxSamples"/>, and never sampling past <paramref name="MaxSeconds"/> (one sample at
/// least): a kernel whose one run lasts a second gets fewer samples rather than a minute of timing. <c>new MeasureOptions()</c>
/// is <see cref="Default"/>; <c>default(MeasureOptions)</c> is all zeros and invalid.</summary>
public readonly record struct MeasureOptions(
    double WarmupSeconds = 0.02,
    double MinSeconds = 0.2,
    int MinSamples = 7,
    double SampleSeconds = 0.002,
    int MaxSamples = 1000,
    double MaxSeconds = double.PositiveInfinity)
{
    /// <summary>The defaults: about 0.25 s for a fast kernel, sampling stopped after 2 s (pieces timed together: 2 s in all),
    /// so that the final timing of a large problem next to its peers stays within a few seconds.</summary>
    public MeasureOptions() : this(0.02, 0.2, 7, 0.002, 1000, 2)
    {
    }

    /// <summary>The defaults.</summary>
    public static MeasureOptions Default { get; } = new();

    /// <summary>About five times less time than <see cref="Default"/>: for searches and tests.</summary>
    public static MeasureOptions Quick { get; } = new(0.004, 0.04, 5, 0.001, 200, 1);

    /// <summary>About five times more time than <see cref="Default"/>: for reports.</summary>
    public static MeasureOptions Thorough { get; } = new(0.1, 1.0, 15, 0.005, 5000, 15);

    /// <summary>For a search's last word on its few fastest schedules, timed side by side: about 30 ms of samples each after
    /// a 2 ms warm-up, at least 3 samples.</summary>
    public static MeasureOptions Confirm { get; } = new(0.002, 0.03, 3, 0.001, 100, 0.5);

    /// <summary>For the environment's steps and the searches: no separate warm-up; a kernel whose first run lasts 2 ms or
    /// more is timed by that run alone, a faster one by samples over about 2 ms after a calibration run.</summary>
    public static MeasureOptions Env { get; } = new(0, 0.002, 1, 0.001, 50);

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> unless every field makes sense.</summary>
    public void Validate()
    {
        Check(WarmupSeconds, nameof(WarmupSeconds));
        Check(MinSeconds, nameof(MinSeconds));
        Check(SampleSeconds, nameof(SampleSeconds));
        ArgumentOutOfRangeException.ThrowIfLessThan(MinSamples, 1, nameof(MinSamples));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxSamples, MinSamples, nameof(MaxSamples));
        if (double.IsNaN(MaxSeconds) || MaxSeconds <= 0) throw new ArgumentOutOfRangeException(nameof(MaxSeconds), MaxSeconds, "must be a positive number of seconds (or infinity)");
    }

    private static void Check(double seconds, string name)
    {
        if (!double.IsFinite(seconds) || seconds < 0)
            throw new ArgumentOutOfRangeException(name, seconds, "must be a finite number of seconds >= 0");
    }
}

/// <summary>The result of timing one piece of work: seconds per run (median and minimum over
/// <paramref name="Samples"/> samples of <paramref name="RunsPerSample"/> runs each) and the
/// floating-point operations one run performs.</summary>
public readonly record struct Measurement(double MedianSeconds, double MinSeconds, int Samples, long RunsPerSample, double Flops)
{
    /// <summary>Billions of floating-point operations per second at the median time.</summary>
    public double Gflops => Flops / MedianSeconds / 1e9;

    /// <summary>Billions of floating-point operations per second at the fastest sample.</summary>
    public double BestGflops => Flops / MinSeconds / 1e9;
}
