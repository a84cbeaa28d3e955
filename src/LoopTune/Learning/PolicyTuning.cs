using System.Diagnostics;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Search;

namespace LoopTune.Learning;

/// <summary>The default tuner: a policy's search of a computation's schedule within a budget, then its best schedule
/// verified and re-timed. <c>looptune tune</c>, <c>model</c> and <c>demo</c> run it, and so does the library's
/// <c>LoopTune.Tuner</c>; it lives here, not in the command line, so that a program using the library tunes as the tool does.</summary>
public static class PolicyTuning
{
    /// <summary>True for a budget of 0 (<c>0</c>, <c>0s</c>, <c>0ms</c>): the policy's greedy rollout alone.</summary>
    public static bool RolloutOnly(string budget)
    {
        ArgumentNullException.ThrowIfNull(budget);
        return budget.Trim() is "0" or "0s" or "0ms";
    }

    /// <summary>The search a tune runs: the greedy rollout alone for a budget of 0, policy_topK for <paramref name="topK"/>
    /// above 1, else the policy-guided best-first search; and its budget (a <see cref="SearchError"/> for a bad one).</summary>
    public static ISearch Method(Policy pol, string budget, int topK, out SearchBudget limit)
    {
        if (RolloutOnly(budget))
        {
            limit = SearchBudget.Seconds(60); // the rollout ends after the policy's episode, far sooner
            return new PolicySearch(pol, 1);
        }
        limit = SearchBudget.Parse(budget);
        return topK > 1 ? new PolicySearch(pol, topK) : new PolicyGuidedSearch(pol);
    }

    /// <summary>The policy's search on <paramref name="computation"/> (pinned, a fresh evaluator: every kernel it needs is
    /// compiled and timed now), then its best schedule verified and re-timed with <paramref name="timing"/>, next to the
    /// peers of <paramref name="preparePeers"/> (none when null); with the seconds spent in the policy and the search, and
    /// in measuring kernels. At N threads (<paramref name="threads"/>, default <see cref="Jit.RunThreads.Default"/>) each
    /// schedule is timed with the parallel loop
    /// <see cref="Ir.Transforms.Parallelize"/> gives it (over <paramref name="parallelOver"/> where that variable's loop
    /// qualifies), and so is the result. In a cold <paramref name="context"/> (one
    /// operand cold, <see cref="TimingContext"/>) every timing of the search, its finalists' side-by-side confirmation and
    /// the final timing read that operand cold (the peers, with data of their own, run hot). The search, the rivals and the
    /// side-by-side compile with <paramref name="jit"/> (<see cref="Jit.JitOptions.Default"/> when null: a forward pass's
    /// prefetching kernels are ranked as they will run); the final timing with the default. <paramref name="rivals"/>
    /// (schedules of the computation known from elsewhere: a hot record when tuning cold) are evaluated before the search,
    /// and the two fastest by those figures and the first timed side by side with its best after it
    /// (<see cref="KernelEvaluator.Fastest"/>, in the same context), and the fastest is the
    /// one verified and timed: a search whose budget did not reach a schedule known to be good does not lose it. The
    /// machine's own tiles of the computation (<see cref="CacheBlockedTiles"/>: a register tile, and the reduction blocked
    /// for each cache level, sized from <see cref="Machine.Current"/>) are rivals too, as a search seldom reaches a
    /// cache-blocked schedule by itself (the conv policy was trained before the block edits, the seed's power-of-two
    /// splits cannot make a 7-row tile of a 14-pixel row, and a block pays only once the tile around it is right). With
    /// rivals their evaluations get the first half of <see cref="RivalShare"/> of the budget's time, the search what is
    /// left but the second half, the side-by-side timing the rest (without time left, their figures decide).</summary>
    public static (SearchResult Result, KernelReport Final, double PolicySeconds, double MeasureSeconds) Tune(ISearch search, Policy pol, Computation computation,
        SearchBudget limit, MeasureOptions timing, PeerPreparation? preparePeers, int? threads = null, TimingContext context = default,
        IReadOnlyList<Nest>? rivals = null, Jit.JitOptions? jit = null, string? parallelOver = null)
    {
        ArgumentNullException.ThrowIfNull(search);
        ArgumentNullException.ThrowIfNull(pol);
        pol.WarmUp();
        _ = Machine.Current; // measured (once per machine) before the clock starts
        using var evaluator = new KernelEvaluator(MeasureOptions.Env, null, jit) { Threads = threads ?? Jit.RunThreads.Default, Context = context, ParallelOver = parallelOver };
        var buffers = evaluator.Prepare(computation); // the buffers and the code that times kernels too: the budget is for measuring schedules
        var timed = new TimedEvaluator(evaluator);
        SearchResult result;
        Nest best;
        double searchMeasuring;
        List<Nest> others = [.. (rivals ?? []).Concat(CacheBlockedTiles.For(computation, Machine.Current)).Where(r => r.Computation.Equals(computation))];
        using (ThreadPinning.Pin())
        {
            (result, best, searchMeasuring, _, _) = WithRivals(search, computation, timed, limit, 0, pol.Space, others);
        }
        // at N threads (RunThreads) the best schedule is run as the evaluator timed it: with its parallel loop
        return (result, KernelReport.Run(evaluator.AsRun(best), timing, preparePeers, null, buffers, evaluator.Threads), result.Seconds - searchMeasuring, timed.Seconds);
    }

    /// <summary>The core of <see cref="Tune"/> on any evaluator: <paramref name="rivals"/> evaluated first, in their order,
    /// while the first half of <see cref="RivalShare"/> of the budget's time lasts (a rival is started while the time left
    /// covers one more as long as the last took; the first always: evaluated after the search, they were left out whenever
    /// it ran past its share; mm 128 3072 768's search ended at 0.90 s of 1 s, and the machine's tile that runs 175 GFLOPS
    /// lost to the search's 134 unmeasured), then <paramref name="search"/> in all but the second half, then its best,
    /// the two fastest rivals by their figures (one of a dozen measured once can be high by chance) and the first rival
    /// (measured once in one of this VM's half-speed moments, the machine's first tile of mm 128 2304 768 was left out,
    /// and a tile 0.77x the best library answered) timed side by side in what is left
    /// (<see cref="IConfirmingEvaluator.Fastest"/>; by their figures without one, or without time left).
    /// Returns the search's result, the answer, the seconds the evaluator spent in the search's own evaluations (of a
    /// <c>TimedEvaluator</c>; 0 otherwise), the rivals' figures and the seconds all of it took (the buffers' warm-up aside).</summary>
    internal static (SearchResult Result, Nest Best, double SearchMeasuring, IReadOnlyList<(Nest Nest, double Gflops)> Rivals, double Seconds) WithRivals(ISearch search,
        Computation computation, IEvaluator evaluator, SearchBudget limit, int seed, ActionSpace space, IReadOnlyList<Nest> rivals)
    {
        var timer = evaluator as TimedEvaluator;
        // the buffers warmed by the first rival's kernel before the clock starts: the first evaluation on fresh buffers
        // read about a tenth low, and the first rival is the one the machine's tiles rank first
        if (rivals.Count > 0) (timer?.Inner ?? evaluator as KernelEvaluator)?.WarmBuffers(rivals[0]);
        var clock = Stopwatch.StartNew();
        var figures = new List<(Nest Nest, double Gflops)>();
        TimeSpan rivalsUntil = limit.Time * (RivalShare / 2), last = TimeSpan.Zero;
        foreach (var rival in rivals)
        {
            if (figures.Count > 0 && clock.Elapsed + last > rivalsUntil) break;
            if (figures.Any(f => f.Nest.ScheduleKey == rival.ScheduleKey)) continue;
            var before = clock.Elapsed;
            figures.Add((rival, evaluator.Evaluate(rival).Gflops));
            last = clock.Elapsed - before;
        }
        double rivalSeconds = timer?.Seconds ?? 0;
        var searchLimit = rivals.Count == 0 ? limit : limit with { Time = TimeSpan.FromTicks(Math.Max(0, (limit.Time * (1 - RivalShare / 2) - clock.Elapsed).Ticks)) };
        var result = search.Run(Nest.Initial(computation), evaluator, searchLimit, seed, space);
        double searchMeasuring = (timer?.Seconds ?? 0) - rivalSeconds;
        var best = result.Best;
        List<(Nest Nest, double Gflops)> candidates = [(best, result.BestGflops), .. figures.Where(f => f.Nest.ScheduleKey != best.ScheduleKey).OrderByDescending(f => f.Gflops).Take(2)];
        // the first rival too (a record's, else the machine's first tile): one evaluation in a slow moment drops it otherwise
        if (figures.Count > 0 && candidates.All(c => c.Nest.ScheduleKey != figures[0].Nest.ScheduleKey)) candidates.Add(figures[0]);
        if (candidates.Count > 1)
            best = evaluator is IConfirmingEvaluator confirming ? candidates[confirming.Fastest([.. candidates.Select(x => x.Nest)], limit.Time - clock.Elapsed)].Nest
                : candidates.MaxBy(x => x.Gflops).Nest;
        return (result, best, searchMeasuring, figures, clock.Elapsed.TotalSeconds);
    }

    /// <summary>How <paramref name="final"/> (the answer of <see cref="Tune"/> at <paramref name="threads"/> threads) was
    /// found: the search's method (<see cref="SearchResult.Method"/>) when it is the search's best, else that method
    /// "beaten by the machine's tile" (one of <see cref="CacheBlockedTiles"/>) or "beaten by a rival" (one the caller
    /// gave). What tuning records and reports name. <paramref name="parallelOver"/>: the variable the tune made parallel.</summary>
    public static string MethodOf(SearchResult result, Nest final, int threads = 1, string? parallelOver = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(final);
        bool Is(Nest n) => Answers(n, final, threads, parallelOver);
        if (Is(result.Best)) return result.Method;
        return CacheBlockedTiles.For(final.Computation, Machine.Current).Any(Is) ? $"{result.Method}, beaten by the machine's tile" : $"{result.Method}, beaten by a rival";
    }

    /// <summary>Who placed the parallel loop of <paramref name="final"/> (the answer of <see cref="Tune"/> at
    /// <paramref name="threads"/> threads): "search" when the search's best has it as an action took it (parallel is a learned
    /// action above one thread), "rule" when <see cref="Transforms.Parallelize"/> added it to a schedule without one;
    /// null when the answer has none (one thread, or no loop may be parallel).</summary>
    public static string? ParallelBy(SearchResult result, Nest final, int threads)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(final);
        if (final.ParallelLoop < 0) return null;
        return result.Best.ParallelLoop >= 0 && Answers(result.Best, final, threads) ? "search" : "rule";
    }

    /// <summary>Whether <paramref name="final"/> (an answer of <see cref="Tune"/> at <paramref name="threads"/> threads) is
    /// <paramref name="schedule"/> as it was timed: with the parallel loop <see cref="Transforms.Parallelize"/> gives it.</summary>
    public static bool Answers(Nest schedule, Nest final, int threads, string? parallelOver = null)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(final);
        return Transforms.Parallelize(schedule, threads, parallelOver).ScheduleKey == final.ScheduleKey;
    }

    /// <summary>The share of a tune's budget kept from its search for timing the rivals and the machine's tiles
    /// (<see cref="CacheBlockedTiles"/>) beside its best: a fifth, half for evaluating the rivals, half for timing the
    /// fastest beside the search's best, so that the whole stays within the budget where the rivals of a large problem
    /// (estimated on slices, then timed side by side on them) had added a fifth to half of it. On BERT's products a
    /// rival's evaluation takes 4-5 ms once the process's code and the buffers are warm (<see cref="KernelEvaluator.Prepare"/>,
    /// <see cref="KernelEvaluator.WarmBuffers"/>; 60-100 ms for the first before), so the first half, 0.1 s of the default
    /// 1 s, covers the 6-8 that the machine's two register tiles give. Three tenths
    /// gave the search too little on the large products, whose evaluations are slices of 0.05-0.1 s (the first 10 test
    /// products of mm256_4096_log: 0.93-0.98x the best library, against 0.99-1.00x with a fifth).</summary>
    public const double RivalShare = 0.2;

    /// <summary>Adds up the time spent in the evaluator (compiling and timing kernels).</summary>
    sealed class TimedEvaluator(KernelEvaluator inner) : IConfirmingEvaluator
    {
        readonly Stopwatch clock = new();
        public double Seconds => clock.Elapsed.TotalSeconds;

        /// <summary>The evaluator timed.</summary>
        public KernelEvaluator Inner => inner;

        public Evaluated Evaluate(Nest nest) => Timed(() => inner.Evaluate(nest));

        public int Fastest(IReadOnlyList<Nest> candidates, TimeSpan? within = null) => Timed(() => inner.Fastest(candidates, within));

        T Timed<T>(Func<T> f)
        {
            clock.Start();
            try { return f(); }
            finally { clock.Stop(); }
        }
    }
}
