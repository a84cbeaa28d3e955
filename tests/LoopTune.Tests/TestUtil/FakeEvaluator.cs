using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Tests.TestUtil;

/// <summary>A deterministic evaluator: GFLOPS are a fixed function of the schedule key (by default a hash mapped to
/// [1, 101)), optionally after a delay; it counts calls per schedule.</summary>
sealed class FakeEvaluator(Func<Nest, double>? gflops = null, TimeSpan? delay = null) : IEvaluator
{
    readonly Func<Nest, double> f = gflops ?? Hashed;

    public Dictionary<string, int> Calls { get; } = [];
    public int Total => Calls.Values.Sum();

    public Evaluated Evaluate(Nest nest)
    {
        Calls[nest.ScheduleKey] = Calls.GetValueOrDefault(nest.ScheduleKey) + 1;
        if (delay is { } d) Thread.Sleep(d);
        return new Evaluated(f(nest), 1e-3, false);
    }

    /// <summary>1 + (FNV-1a of the schedule key mod 10000) / 100: stable across runs and processes, no cursor.</summary>
    public static double Hashed(Nest nest)
    {
        uint h = 2166136261;
        foreach (char c in nest.ScheduleKey) h = (h ^ c) * 16777619;
        return 1 + h % 10000 / 100.0;
    }
}

/// <summary>A <see cref="FakeEvaluator"/> whose quick measurements lie: <see cref="Evaluate"/> reports <paramref name="quick"/>,
/// while <see cref="Fastest"/> answers from <paramref name="truth"/>, as a careful side-by-side timing would. It records the
/// candidates it was asked about.</summary>
sealed class ConfirmingFakeEvaluator(Func<Nest, double> quick, Func<Nest, double> truth) : IConfirmingEvaluator
{
    readonly FakeEvaluator inner = new(quick);

    public List<IReadOnlyList<Nest>> Asked { get; } = [];

    public Evaluated Evaluate(Nest nest) => inner.Evaluate(nest);

    /// <summary>The time each call was given.</summary>
    public List<TimeSpan?> Within { get; } = [];

    public int Fastest(IReadOnlyList<Nest> candidates, TimeSpan? within = null)
    {
        Asked.Add(candidates);
        Within.Add(within);
        return candidates.Select((n, i) => (truth(n), i)).Max().i;
    }
}
