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
        long runs = Calibrate(run, options).Runs;
        double[] samples = Sample(run, runs, options);
        Array.Sort(samples);
        return new Measurement(Median(samples), samples[0], samples.Length, runs, flops);
    }

    /// <summary>Times several pieces of work side by side, for a fair comparison on a machine whose speed changes over time:
    /// each is warmed up and calibrated as <see cref="Measure(Action, double, MeasureOptions)"/> does, then they are sampled
    /// in rounds, one sample of each per round in the order given, so every piece sees the same stretches of a noisy
    /// neighbour. Sampling stops once every piece has <see cref="MeasureOptions.MinSamples"/> samples and the rounds have
    /// lasted <see cref="MeasureOptions.MinSeconds"/> per piece, or after <see cref="MeasureOptions.MaxSamples"/> rounds, or
    /// once the rounds have lasted <see cref="MeasureOptions.MaxSeconds"/> in all (one round at least).</summary>
    /// <remarks>On the 2-vCPU EPYC the speed of a load-heavy kernel flips between two levels (58 and 86 GFLOPS for one
    /// convolution) every few hundred milliseconds while the FMA peak stays put: a neighbour on the core's other hardware
    /// thread. Two kernels timed one after the other can land on different levels; two samples a few milliseconds apart
    /// rarely do, which is what <see cref="Together.Ratio"/> uses.</remarks>
    public static Together MeasureTogether(IReadOnlyList<Action> runs, IReadOnlyList<double> flops, MeasureOptions options) =>
        MeasureTogether(runs, flops, options, null);

    /// <summary><see cref="MeasureTogether(IReadOnlyList{Action}, IReadOnlyList{double}, MeasureOptions)"/> in turns:
    /// <paramref name="turn"/> is called with a piece's index (and is not timed) before its calibration and before each
    /// of its turns of samples, to ready the machine for that piece: let another runtime's threads go idle, place the
    /// caller. A turn costs more than a sample (a settle of some milliseconds at least, and untimed runs), so in turns
    /// each piece takes several samples in a row (<see cref="SamplesPerTurn"/>: about <see cref="TurnSamplingSeconds"/>
    /// of them, a few turns each at least), piece after piece; a block of k such samples gives k rounds, the j-th sample
    /// of each piece in round j. A piece that follows itself (a lone piece) takes no turn, as nothing else ran since.</summary>
    public static Together MeasureTogether(IReadOnlyList<Action> runs, IReadOnlyList<double> flops, MeasureOptions options, Action<int>? turn)
    {
        ArgumentNullException.ThrowIfNull(runs);
        ArgumentNullException.ThrowIfNull(flops);
        if (runs.Count == 0 || runs.Count != flops.Count) throw new ArgumentException($"{runs.Count} runs and {flops.Count} flop counts: give one of each, at least one", nameof(flops));
        options.Validate();
        int last = -1;
        long turns = 0;
        // the turns' own time (a settle) is not sampling: the limits count the samples' time only
        void Turn(int i)
        {
            long t = Stopwatch.GetTimestamp();
            if (turn is not null && i != last) turn(i);
            last = i;
            turns += Stopwatch.GetTimestamp() - t;
        }
        var calibrated = runs.Select((r, i) =>
        {
            Turn(i);
            return Calibrate(r, options);
        }).ToList();
        long[] perSample = [.. calibrated.Select(c => c.Runs)];
        int block = turn is null ? 1 : SamplesPerTurn(options, calibrated.Max(c => c.SampleSeconds));
        var rounds = new List<double[]>();
        long start = Stopwatch.GetTimestamp();
        turns = 0;
        double Sampled() => Stopwatch.GetElapsedTime(start, Stopwatch.GetTimestamp() - turns).TotalSeconds;
        while (rounds.Count < options.MaxSamples
               && (rounds.Count < options.MinSamples || Sampled() < options.MinSeconds * runs.Count)
               && (rounds.Count == 0 || Sampled() < options.MaxSeconds))
        {
            int k = Math.Min(block, options.MaxSamples - rounds.Count);
            var samples = runs.Select((r, i) =>
            {
                Turn(i);
                return Enumerable.Range(0, k).Select(_ => Time(r, perSample[i]) / perSample[i]).ToArray();
            }).ToList();
            for (int j = 0; j < k; j++) rounds.Add([.. samples.Select(x => x[j])]);
        }
        var measurements = runs.Select((_, i) =>
        {
            double[] sorted = [.. rounds.Select(x => x[i]).Order()];
            return new Measurement(Median(sorted), sorted[0], sorted.Length, perSample[i], flops[i]);
        });
        return new Together([.. measurements], [.. rounds]);
    }

    /// <summary>About how long a turn's samples of its piece last (<see cref="SamplesPerTurn"/>): several times a turn's
    /// own cost at two threads (a settle of 2 ms when the last runtime's threads are already idle, up to some 25 ms when
    /// they spin on, then 5 ms of untimed runs), short beside the few hundred milliseconds over which this machine's speed
    /// was seen to change.</summary>
    public const double TurnSamplingSeconds = 0.04;

    /// <summary>The fewest turns each piece takes within <see cref="MeasureOptions.MinSeconds"/> of sampling
    /// (<see cref="SamplesPerTurn"/>).</summary>
    public const int MinTurns = 4;

    /// <summary>How many samples a piece takes in a row in its turn, when a sample lasts <paramref name="sampleSeconds"/>
    /// (the longest piece's, from its calibration): about <see cref="TurnSamplingSeconds"/> of them, but no more than
    /// leave each piece <see cref="MinTurns"/> turns within <see cref="MeasureOptions.MinSeconds"/>; one at least.</summary>
    internal static int SamplesPerTurn(MeasureOptions options, double sampleSeconds)
    {
        if (!(sampleSeconds > 0)) return 1;
        double k = Math.Min(TurnSamplingSeconds, options.MinSeconds / MinTurns) / sampleSeconds;
        return (int)Math.Clamp(Math.Floor(k), 1, options.MaxSamples);
    }

    /// <summary>Warms up for WarmupSeconds (at least one call), doubling the batch while it is
    /// shorter than half a sample; returns the runs that make one sample last about SampleSeconds
    /// (from the fastest measurable batch, or the last batch size if none could be measured).</summary>
    private static (long Runs, double SampleSeconds) Calibrate(Action run, MeasureOptions o)
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
        if (perRun == double.MaxValue) return (batch, o.SampleSeconds);
        long runs = (long)Math.Clamp(Math.Round(o.SampleSeconds / perRun), 1, MaxRunsPerSample);
        return (runs, runs * perRun);
    }

    private static double[] Sample(Action run, long runs, MeasureOptions o)
    {
        var samples = new List<double>(o.MinSamples);
        long start = Stopwatch.GetTimestamp();
        while (samples.Count < o.MaxSamples
               && (samples.Count < o.MinSamples || Stopwatch.GetElapsedTime(start).TotalSeconds < o.MinSeconds)
               && (samples.Count == 0 || Stopwatch.GetElapsedTime(start).TotalSeconds < o.MaxSeconds))
            samples.Add(Time(run, runs) / runs);
        return [.. samples];
    }

    private static double Time(Action run, long runs)
    {
        long t0 = Stopwatch.GetTimestamp();
        for (long r = 0; r < runs; r++) run();
        return (Stopwatch.GetTimestamp() - t0) / (double)Stopwatch.Frequency;
    }

    internal static double Median(double[] sorted) =>
        sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
}

/// <summary>Pieces of work timed side by side (<see cref="Timing.MeasureTogether"/>).</summary>
/// <param name="Measurements">Each piece's measurement over all the rounds, in the order given.</param>
/// <param name="Rounds">Seconds per run of each piece, round by round (<c>Rounds[round][piece]</c>).</param>
public sealed record Together(IReadOnlyList<Measurement> Measurements, IReadOnlyList<double[]> Rounds)
{
    /// <summary>How many times faster piece <paramref name="a"/> ran than piece <paramref name="b"/> (in GFLOPS, so pieces of
    /// different work compare): the median over the rounds of the ratio within each round, whose two samples lie
    /// milliseconds apart and so on the same level of a machine whose speed changes over time.</summary>
    public double Ratio(int a, int b)
    {
        var m = Measurements;
        return Timing.Median([.. Rounds.Select(r => m[a].Flops / r[a] / (m[b].Flops / r[b])).Order()]);
    }
}
