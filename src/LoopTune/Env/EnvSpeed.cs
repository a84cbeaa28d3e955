using System.Diagnostics;
using LoopTune.Ir;

namespace LoopTune.Env;

/// <summary>How fast the environment steps, cold (an empty measurement store: every new schedule is compiled and timed) and
/// warm (the same episodes replayed by fresh evaluators over the filled store: every schedule recalled from SQLite).</summary>
/// <param name="ColdStepsPerSecond">Steps per second of random legal episodes with an empty memory.</param>
/// <param name="ColdEvaluationsPerSecond">Of those, compiled-and-timed schedules per second (cursor moves need none).</param>
/// <param name="WarmStepsPerSecond">Steps per second replaying the same episodes from the store.</param>
public readonly record struct EnvSpeed(double ColdStepsPerSecond, double ColdEvaluationsPerSecond, double WarmStepsPerSecond, int Steps)
{
    /// <summary>Runs <paramref name="episodes"/> random episodes of <paramref name="length"/> steps on matmuls drawn from the
    /// mm64_256_16_range grid (m, n, k in 64..256 step 16), then replays them.</summary>
    public static EnvSpeed Measure(int episodes = 10, int length = 10, int seed = 1)
    {
        var rng = new Random(seed);
        var benchmarks = Enumerable.Range(0, episodes).Select(_ => Computation.Matmul(Pick(rng), Pick(rng), Pick(rng))).ToArray();
        var db = Path.Combine(Path.GetTempPath(), $"looptune-envspeed-{Environment.ProcessId}-{Guid.NewGuid():N}.db");
        try
        {
            Jit.Kernel.WarmUp();
            double coldSeconds;
            int steps, evaluations;
            using (var cold = new Counting(Evaluators.Default(db)))
            {
                var clock = Stopwatch.StartNew();
                steps = Run(cold, benchmarks, length, seed);
                coldSeconds = clock.Elapsed.TotalSeconds;
                evaluations = cold.Fresh;
            }
            var warm = Stopwatch.StartNew();
            int replays = 0;
            while (warm.Elapsed.TotalSeconds < 0.3)
            {
                using var fresh = Evaluators.Default(db); // nothing in memory: every state comes from SQLite
                replays += Run(fresh, benchmarks, length, seed);
            }
            return new EnvSpeed(steps / coldSeconds, evaluations / coldSeconds, replays / warm.Elapsed.TotalSeconds, steps);
        }
        finally
        {
            foreach (var f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(db) + "*")) File.Delete(f);
        }
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

    sealed class Counting(KernelEvaluator inner) : IEvaluator, IDisposable
    {
        public void Dispose() => inner.Dispose();

        public int Fresh { get; private set; }

        public Evaluated Evaluate(Nest nest)
        {
            var e = inner.Evaluate(nest);
            if (!e.Recalled) Fresh++;
            return e;
        }
    }
}
