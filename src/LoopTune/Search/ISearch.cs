using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Search;

/// <summary>
/// A schedule search: starting from a nest, it asks <paramref name="evaluator"/> for the speed of legal schedules until
/// its budget ends or it has nothing left to try, and returns the fastest schedule it saw with the actions that reach it.
/// <para>Every search in <see cref="Searches"/> follows the same rules:</para>
/// <list type="bullet">
/// <item>only legal actions, decided by <see cref="Transforms.IsLegal"/> (the mask's rules), never by catching errors;</item>
/// <item>cursor moves (up / down) do not change the kernel, so they are never evaluated: a search reaches a loop by walking
/// the cursor there for free and then changing the kernel (see <see cref="Moves"/>);</item>
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

    /// <summary>Searches from <paramref name="start"/> within <paramref name="budget"/>.</summary>
    SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed);
}
