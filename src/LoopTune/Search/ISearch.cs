using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Search;

/// <summary>
/// A schedule search: starting from a nest, it asks <paramref name="evaluator"/> for the speed of legal schedules until
/// its budget ends or it has nothing left to try, and returns the fastest schedule it saw with the actions that reach it.
/// <para>Every search in <see cref="Searches"/> follows the same rules:</para>
/// <list type="bullet">
/// <item>only legal actions, decided by <see cref="Transforms.IsLegal"/> (the mask's rules), never by catching errors;</item>
/// <item>every search runs in any <see cref="ActionSpace"/> (the same one the environment, the policies and training use):
/// it expands a state into the ids legal there (<see cref="ActionSpace.Expand"/>) and steps the environment
/// (<see cref="SearchRun.Step"/>), so its result's ids replay to its best schedule through <see cref="LoopTuneEnv"/>;</item>
/// <item>a step that changes no kernel (a cursor move) is never evaluated;</item>
/// <item>a schedule (by <see cref="Nest.ScheduleKey"/>) is evaluated at most once per run;</item>
/// <item>all randomness comes from <c>seed</c>: with a deterministic evaluator and a budget that ends by its evaluation
/// limit (not the clock), the same seed gives the same result.</item>
/// </list>
/// </summary>
public interface ISearch
{
    /// <summary>The name the registry and the command line use, such as <c>greedy2</c>.</summary>
    string Name { get; }

    /// <summary>One line on what the search does, with its hyperparameters.</summary>
    string Description { get; }

    /// <summary>Searches from <paramref name="start"/> in <paramref name="space"/> within <paramref name="budget"/> (a policy's
    /// search acts in its policy's own space).</summary>
    SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed, ActionSpace space);
}

/// <summary>The searches' defaults.</summary>
public static class SearchExtensions
{
    /// <summary>Searches in the tile space (<see cref="ActionSpace.Tile"/>), the default of the command line.</summary>
    public static SearchResult Run(this ISearch search, Nest start, IEvaluator evaluator, SearchBudget budget, int seed) =>
        search.Run(start, evaluator, budget, seed, ActionSpace.Tile);
}
