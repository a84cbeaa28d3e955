using System.Diagnostics;
using LoopTune.Ir;

namespace LoopTune.Env;

/// <summary>How fast the environment steps, cold (nothing remembered: every new schedule is compiled and timed) and warm
/// (the same episodes replayed: every schedule recalled).</summary>
/// <param name="ColdStepsPerSecond">Steps per second of random legal episodes with an empty memory.</param>
/// <param name="ColdEvaluationsPerSecond">Of those, compiled-and-timed schedules per second (cursor moves need none).</param>
/// <param name="WarmStepsPerSecond">Steps per second replaying the same episodes.</param>
public readonly record struct EnvSpeed(double ColdStepsPerSecond, double ColdEvaluationsPerSecond, double WarmStepsPerSecond, int Steps)
{
    /// <summary>Runs <paramref name="episodes"/> random episodes of <paramref name="length"/> steps on matmuls drawn from the
    /// mm64_256_16_range grid (m, n, k in 64..256 step 16), then replays them.</summary>
    public static EnvSpeed Measure(int episodes = 10, int length = 10, int seed = 1)
    {
        var rng = new Random(seed);
        var benchmarks = Enumerable.Range(0, episodes).Select(_ => Computation.Matmul(Pick(rng), Pick(rng), Pick(rng))).ToArray();
        using var evaluator = new KernelEvaluator();
        Jit.Kernel.WarmUp();
        var counting = new Counting(evaluator);
        var cold = Stopwatch.StartNew();
        int steps = Run(counting, benchmarks, length, seed);
        double coldSeconds = cold.Elapsed.TotalSeconds;
        int evaluations = counting.Fresh;
        var warm = Stopwatch.StartNew();
        int replays = 0;
        while (warm.Elapsed.TotalSeconds < 0.2) replays += Run(evaluator, benchmarks, length, seed);
        return new EnvSpeed(steps / coldSeconds, evaluations / coldSeconds, replays / warm.Elapsed.TotalSeconds, steps);
    }

    static int Pick(Random rng) => 64 + 16 * rng.Next(13);

    static int Run(IEvaluator evaluator, Computation[] benchmarks, int length, int seed)
    {
        var rng = new Random(seed);
        int steps = 0;
        foreach (var b in benchmarks)
        {
            var env = new LoopTuneEnv(evaluator, 100, length);
            var (_, info) = env.Reset(b);
            for (bool done = false; !done; steps++)
            {
                var mask = info.ActionMask;
                int pick = rng.Next(mask.Count(x => x));
                var r = env.Step(Enumerable.Range(0, mask.Length).Where(i => mask[i]).ElementAt(pick));
                (info, done) = (r.Info, r.Truncated);
            }
        }
        return steps;
    }

    sealed class Counting(IEvaluator inner) : IEvaluator
    {
        public int Fresh { get; private set; }

        public Evaluated Evaluate(Nest nest)
        {
            var e = inner.Evaluate(nest);
            if (!e.Recalled) Fresh++;
            return e;
        }
    }
}
