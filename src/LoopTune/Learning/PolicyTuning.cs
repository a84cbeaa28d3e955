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
    /// <see cref="Ir.Transforms.Parallelize"/> gives it, and so is the result. In a cold <paramref name="context"/> (one
    /// operand cold, <see cref="TimingContext"/>) every timing of the search, its finalists' side-by-side confirmation and
    /// the final timing read that operand cold (the peers, with data of their own, run hot). <paramref name="rivals"/>
    /// (schedules of the computation known from elsewhere: a hot record when tuning cold) are timed after the search and
    /// side by side with its best (<see cref="KernelEvaluator.Fastest"/>, in the same context), and the fastest is the
    /// one verified and timed: a search whose budget did not reach a schedule known to be good does not lose it. The
    /// machine's own tiles of the computation (<see cref="CacheBlockedTiles"/>: a register tile, and the reduction blocked
    /// for each cache level, sized from <see cref="Machine.Current"/>) are rivals too, as a search seldom reaches a
    /// cache-blocked schedule by itself (the conv policy was trained before the block edits, the seed's power-of-two
    /// splits cannot make a 7-row tile of a 14-pixel row, and a block pays only once the tile around it is right). With
    /// rivals the search gets all but <see cref="RivalShare"/> of the budget's time, their timing side by side the rest
    /// (without time left, their figures decide).</summary>
    public static (SearchResult Result, KernelReport Final, double PolicySeconds, double MeasureSeconds) Tune(ISearch search, Policy pol, Computation computation,
        SearchBudget limit, MeasureOptions timing, PeerPreparation? preparePeers, int? threads = null, TimingContext context = default,
        IReadOnlyList<Nest>? rivals = null)
    {
        ArgumentNullException.ThrowIfNull(search);
        ArgumentNullException.ThrowIfNull(pol);
        pol.WarmUp();
        _ = Machine.Current; // measured (once per machine) before the clock starts
        using var evaluator = new KernelEvaluator { Threads = threads ?? Jit.RunThreads.Default, Context = context };
        var buffers = evaluator.Prepare(computation); // the buffers too: the budget is for measuring schedules
        var timed = new TimedEvaluator(evaluator);
        SearchResult result;
        Nest best;
        double searchMeasuring;
        List<Nest> others = [.. (rivals ?? []).Concat(CacheBlockedTiles.For(computation, Machine.Current)).Where(r => r.Computation.Equals(computation))];
        // the rivals are timed within the budget: the search gets all but RivalShare of its time when there are any
        var searchLimit = others.Count == 0 ? limit : limit with { Time = limit.Time * (1 - RivalShare) };
        var clock = Stopwatch.StartNew();
        using (ThreadPinning.Pin())
        {
            result = search.Run(Nest.Initial(computation), timed, searchLimit, 0, pol.Space);
            best = result.Best;
            searchMeasuring = timed.Seconds; // the rivals' timing below is measuring too, but outside the search's time
            // each rival evaluated while the budget's time covers one more evaluation as long as the search's took on
            // average (a large problem's are estimates on slices, 0.05-0.1 s each here); the rest are left out
            List<Nest> candidates = [best];
            var each = result.Seconds / Math.Max(1, result.Evaluations);
            foreach (var rival in others)
            {
                if (candidates.Any(n => n.ScheduleKey == rival.ScheduleKey)) continue;
                if (clock.Elapsed.TotalSeconds + each > limit.Time.TotalSeconds) break;
                timed.Evaluate(rival);
                candidates.Add(rival);
            }
            // side by side in what is left of the budget; without time left, their figures decide
            if (candidates.Count > 1) best = candidates[timed.Fastest(candidates, limit.Time - clock.Elapsed)];
        }
        // at N threads (RunThreads) the best schedule is run as the evaluator timed it: with its parallel loop
        return (result, KernelReport.Run(evaluator.AsRun(best), timing, preparePeers, null, buffers, evaluator.Threads), result.Seconds - searchMeasuring, timed.Seconds);
    }

    /// <summary>How <paramref name="final"/> (the answer of <see cref="Tune"/> at <paramref name="threads"/> threads) was
    /// found: the search's method (<see cref="SearchResult.Method"/>) when it is the search's best, else that method
    /// "beaten by the machine's tile" (one of <see cref="CacheBlockedTiles"/>) or "beaten by a rival" (one the caller
    /// gave). What tuning records and reports name.</summary>
    public static string MethodOf(SearchResult result, Nest final, int threads = 1)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(final);
        bool Is(Nest n) => Answers(n, final, threads);
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
    public static bool Answers(Nest schedule, Nest final, int threads)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(final);
        return Transforms.Parallelize(schedule, threads).ScheduleKey == final.ScheduleKey;
    }

    /// <summary>The share of a tune's budget kept from its search for timing the rivals and the machine's tiles
    /// (<see cref="CacheBlockedTiles"/>) beside its best: a tenth, so that the whole stays within the budget where the
    /// rivals of a large problem (estimated on slices, then timed side by side on them) had added a fifth to half of it.</summary>
    public const double RivalShare = 0.1;

    /// <summary>Adds up the time spent in the evaluator (compiling and timing kernels).</summary>
    sealed class TimedEvaluator(KernelEvaluator inner) : IConfirmingEvaluator
    {
        readonly Stopwatch clock = new();
        public double Seconds => clock.Elapsed.TotalSeconds;

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
