using System.Diagnostics;
using LoopTune.Measure;


namespace LoopTune.Tests.Measure;

/// <summary>Runs alone (<see cref="TimingOracle"/>): its oracles are spins of a few milliseconds by the wall clock, whose
/// ratio a full run's other tests on both cores could flatten (a 4 ms spin against an 8 ms one measured 1.01x once, in CI
/// beside the random-schedule kernels).</summary>
[Collection(nameof(TimingOracle))]
public sealed class TimerTests
{
    private static readonly MeasureOptions Tiny = new(0.001, 0.01, 5, 0.0005, 200);

    private static double sink;

    private static void Work()
    {
        double s = 0;
        for (int i = 1; i <= 200; i++) s += Math.Sqrt(i);
        sink += s;
    }

    [Fact]
    public void ReturnsSanePositiveNumbers()
    {
        var m = Timing.Measure(Work, 400, Tiny);
        Assert.True(m.MedianSeconds > 0 && double.IsFinite(m.MedianSeconds));
        Assert.InRange(m.MinSeconds, double.Epsilon, m.MedianSeconds);
        Assert.InRange(m.Samples, Tiny.MinSamples, Tiny.MaxSamples);
        Assert.True(m.RunsPerSample >= 1);
        Assert.Equal(400 / m.MedianSeconds / 1e9, m.Gflops, 9);
        Assert.True(m.BestGflops >= m.Gflops);
    }

    [Fact]
    public void TakesExactlyMinSamplesWhenMinSecondsIsZero()
    {
        var m = Timing.Measure(Work, 1, Tiny with { MinSeconds = 0, MinSamples = 9 });
        Assert.Equal(9, m.Samples);
    }

    [Fact]
    public void StopsAtMaxSamples()
    {
        var m = Timing.Measure(Work, 1, Tiny with { MinSeconds = 60, MinSamples = 3, MaxSamples = 5 });
        Assert.Equal(5, m.Samples);
    }

    [Fact]
    public void WarmsUpAtLeastOnceAndRunsEverySample()
    {
        long calls = 0;
        var m = Timing.Measure(() => calls++, 1, new MeasureOptions(0, 0, 3, 0, 3));
        Assert.Equal(1, m.RunsPerSample);
        Assert.Equal(1 + 3, calls);
    }

    [Fact]
    public void SlowWorkGetsOneRunPerSample()
    {
        var m = Timing.Measure(() => Spin(0.003), 1, new MeasureOptions(0, 0, 2, 0.002, 2));
        Assert.Equal(1, m.RunsPerSample);
        Assert.True(m.MinSeconds >= 0.003);
    }

    [Fact]
    public void InvalidOptionsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Timing.Measure(Work, 1, default));
        Assert.Throws<ArgumentOutOfRangeException>(() => Timing.Measure(Work, 1, Tiny with { MaxSamples = 2, MinSamples = 3 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Timing.Measure(Work, 1, Tiny with { MinSeconds = double.NaN }));
    }

    [Fact]
    public void PresetsAreOrderedAndNewIsDefault()
    {
        Assert.Equal(MeasureOptions.Default, new MeasureOptions());
        Assert.Equal(new MeasureOptions(0.02, 0.2, 7, 0.002, 1000, 2), MeasureOptions.Default);
        Assert.True(MeasureOptions.Quick.MinSeconds < MeasureOptions.Default.MinSeconds);
        Assert.True(MeasureOptions.Thorough.MinSeconds > MeasureOptions.Default.MinSeconds);
        foreach (var o in new[] { MeasureOptions.Quick, MeasureOptions.Default, MeasureOptions.Thorough }) o.Validate();
    }

    [Fact]
    public void EnvPresetTimesASlowCallOnceAndAFastOneBySamples()
    {
        int calls = 0;
        var slow = Timing.Measure(() => { calls++; Spin(0.004); }, 1, MeasureOptions.Env);
        Assert.Equal(1, calls);
        Assert.Equal(1, slow.Samples);
        Assert.InRange(slow.MedianSeconds, 0.004, 1);

        calls = 0;
        var fast = Timing.Measure(() => { calls++; Spin(0.00005); }, 1, MeasureOptions.Env);
        Assert.True(calls > 2, $"{calls} calls");
        Assert.True(fast.RunsPerSample > 1);
        Assert.InRange(fast.MedianSeconds, 0.00005, 0.002);
    }

    [Fact]
    public void MeasureTogether_samples_in_rounds_and_pairs_ratios_within_a_round()
    {
        var calls = new List<int>();
        var options = new MeasureOptions(0, 0, 7, 0.0005, 7); // an odd count: the median ratio is one round's, and its reciprocal the other way
        // spins of 4 and 8 ms: long enough that a busy machine's overshoot (a fraction of a millisecond) leaves their ratio near 2
        var t = Timing.MeasureTogether([() => { calls.Add(0); Spin(0.004); }, () => { calls.Add(1); Spin(0.008); }], [1e6, 1e6], options);
        Assert.Equal(7, t.Rounds.Count);
        Assert.All(t.Measurements, m => Assert.Equal(7, m.Samples));
        Assert.All(t.Measurements, m => Assert.Equal(1, m.RunsPerSample)); // each spin outlasts a sample
        // one calibration call each, then the rounds alternate: 0, 1, 0, 1, ...
        Assert.Equal([0, 1, .. Enumerable.Range(0, 14).Select(i => i % 2)], calls);
        // the oracle is the spin's own duration: the first piece runs twice as fast as the second
        Assert.InRange(t.Measurements[0].MedianSeconds, 0.004, 0.012);
        Assert.InRange(t.Measurements[1].MedianSeconds, 0.008, 0.016);
        Assert.InRange(t.Ratio(0, 1), 1.6, 2.4);
        Assert.Equal(1 / t.Ratio(0, 1), t.Ratio(1, 0), 9);
    }

    [Fact]
    public void Sampling_stops_at_MaxSeconds_after_one_sample_at_least()
    {
        // pieces of 30 and 60 ms, 7 rounds asked for, 0.1 s allowed: the rounds stop after the one that passes it
        var options = new MeasureOptions(0, 0, 7, 0.001, 7, MaxSeconds: 0.1);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var t = Timing.MeasureTogether([() => Spin(0.03), () => Spin(0.06)], [1, 1], options);
        Assert.InRange(t.Rounds.Count, 1, 2);
        Assert.True(clock.Elapsed.TotalSeconds < 0.6, $"{clock.Elapsed.TotalSeconds:F2} s");
        var one = Timing.Measure(() => Spin(0.2), 1, new MeasureOptions(0, 0, 5, 0.001, 5, MaxSeconds: 0.05));
        Assert.Equal(1, one.Samples);
        Assert.Throws<ArgumentOutOfRangeException>(() => Timing.Measure(() => { }, 1, MeasureOptions.Default with { MaxSeconds = 0 }));
    }

    [Fact]
    public void MeasureTogether_ratio_follows_each_round_not_the_medians()
    {
        // a machine that halves its speed in every other round: piece 0 is always 1.5x piece 1 within a round
        var rounds = Enumerable.Range(0, 7).Select(i => i % 2 == 0 ? new[] { 1.0, 1.5 } : [2.0, 3.0]).ToList();
        var m = new Measurement(1, 1, 7, 1, 1);
        var t = new Together([m, m], rounds);
        Assert.Equal(1.5, t.Ratio(0, 1), 12);
    }

    [Fact]
    public void In_turns_each_piece_takes_its_samples_in_a_row_after_its_turn_and_rounds_pair_the_jth_samples()
    {
        var events = new List<string>();
        int slow = 1; // the machine's speed, changed at every turn of piece 0: samples of one block share it
        var options = new MeasureOptions(0, 0.05, 3, 0.0005, 100);
        var t = Timing.MeasureTogether(
            [() => { events.Add("run 0"); Spin(0.002 * slow); }, () => { events.Add("run 1"); Spin(0.004 * slow); }], [1e6, 1e6], options,
            i =>
            {
                events.Add($"turn {i}");
                if (i == 0) slow = 3 - slow;
            });
        // every run follows a turn of its own piece (a turn before each calibration too), and never twice in a row
        string? turned = null;
        foreach (var e in events)
            if (e.StartsWith("turn", StringComparison.Ordinal))
            {
                Assert.NotEqual(turned, e);
                turned = e;
            }
            else Assert.Equal(turned, e.Replace("run", "turn", StringComparison.Ordinal));
        // the blocks after the calibrations: piece 0's k samples, then piece 1's k, the same k each (samples of 4 to 8 ms
        // against a quarter of MinSeconds, 12.5 ms: one to three in a row)
        var blocks = string.Join(",", events.Skip(4)).Split("turn 0,", StringSplitOptions.RemoveEmptyEntries)
            .Select(b => b.TrimEnd(',').Split(",turn 1,")).ToList();
        Assert.Equal(events.Take(4), ["turn 0", "run 0", "turn 1", "run 1"]); // one calibration run each: a spin outlasts a sample
        Assert.All(blocks, b => Assert.Equal(b[0].Split(',').Length, b[1].Split(',').Length));
        int k = blocks[0][0].Split(',').Length;
        Assert.InRange(k, 1, 3);
        Assert.Equal(blocks.Sum(b => b[0].Split(',').Length), t.Rounds.Count);
        Assert.All(t.Measurements, m => Assert.Equal(t.Rounds.Count, m.Samples));
        Assert.True(blocks.Count >= 2);
        // the oracle: piece 0 is twice as fast as piece 1 at either speed; a round pairing samples of different blocks
        // would see 1x or 4x
        Assert.InRange(t.Ratio(0, 1), 1.6, 2.4);
    }

    [Fact]
    public void A_lone_piece_in_turns_takes_one_turn()
    {
        int turns = 0, runs = 0;
        var t = Timing.MeasureTogether([() => { runs++; Spin(0.001); }], [1], new MeasureOptions(0, 0.02, 5, 0.0005, 100), _ => turns++);
        Assert.Equal(1, turns);
        Assert.Equal(t.Rounds.Count + 1, runs); // its calibration's run, then one per sample
        Assert.True(t.Rounds.Count >= 5);
    }

    [Fact]
    public void SamplesPerTurn_fills_about_TurnSamplingSeconds_leaving_each_piece_MinTurns_turns()
    {
        Assert.Equal(20, Timing.SamplesPerTurn(MeasureOptions.Default, 0.002)); // 40 ms of 2 ms samples
        Assert.Equal(10, Timing.SamplesPerTurn(MeasureOptions.Quick, 0.001)); // MinSeconds 0.04: four turns of 10 ms
        Assert.Equal(1, Timing.SamplesPerTurn(MeasureOptions.Default, 0.03)); // a sample longer than a turn's share
        Assert.Equal(1, Timing.SamplesPerTurn(MeasureOptions.Default, 0));
        Assert.Equal(1, Timing.SamplesPerTurn(MeasureOptions.Default with { MinSeconds = 0 }, 0.001));
        Assert.Equal(7, Timing.SamplesPerTurn(MeasureOptions.Default with { MaxSamples = 7 }, 0.0001));
    }

    [Fact]
    public void MeasureTogether_refuses_mismatched_input()
    {
        Assert.Throws<ArgumentException>(() => Timing.MeasureTogether([Work], [1, 2], Tiny));
        Assert.Throws<ArgumentException>(() => Timing.MeasureTogether([], [], Tiny));
        Assert.Throws<ArgumentOutOfRangeException>(() => Timing.MeasureTogether([Work], [1], default));
    }

    private static void Spin(double seconds)
    {
        long start = Stopwatch.GetTimestamp();
        while (Stopwatch.GetElapsedTime(start).TotalSeconds < seconds) Thread.SpinWait(10);
    }
}
