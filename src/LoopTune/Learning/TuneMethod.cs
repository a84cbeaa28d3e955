using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Search;

namespace LoopTune.Learning;

/// <summary>
/// What <c>looptune tune</c> does, as a method of the comparisons (<c>--methods tune</c>): the machine's own tiles
/// (<see cref="CacheBlockedTiles"/>) evaluated first, then the policy-guided search (<paramref name="search"/>), then the
/// fastest of its best, the two best tiles and the first timed side by side (<see cref="PolicyTuning.WithRivals"/>), all
/// within the budget. <c>policy_search</c> is the search alone: on the Zen 3 the first 10 test products of <c>mm64_256_16_range</c>
/// came out at 0.88x the best library with it and at 1.01x with <c>tune</c>. The answer's actions are the search's when
/// the search's best won, none when a tile did (a tile is built, not reached by actions).
/// </summary>
public sealed class TuneMethod(PolicyGuidedSearch search) : ISearch
{
    public const string MethodName = "tune";

    public string Name => MethodName;

    public string Description => $"what `looptune tune` does: the machine's own tiles, then {search.Description}, the fastest of them timed side by side";

    public SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed, ActionSpace space)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(evaluator);
        var c = start.Computation;
        var tiles = CacheBlockedTiles.For(c, Machine.Current);
        var (result, best, _, rivals, seconds) = PolicyTuning.WithRivals(search, c, evaluator, budget, seed, space, tiles);
        bool searched = best.ScheduleKey == result.Best.ScheduleKey;
        return result with
        {
            Method = Name,
            Best = best,
            BestGflops = searched ? result.BestGflops : rivals.First(r => r.Nest.ScheduleKey == best.ScheduleKey).Gflops,
            Actions = searched ? result.Actions : [],
            Evaluations = result.Evaluations + rivals.Count,
            Measured = result.Measured + rivals.Count,
            Seconds = seconds,
            BestEstimated = searched && result.BestEstimated,
        };
    }
}
