using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Search;

/// <summary>Hyperparameters of <see cref="GreedySearch"/>.</summary>
/// <param name="Lookahead">How many moves deep each step looks (1 for greedy1, 2 for greedy2).</param>
/// <param name="MinGain">A step is taken only if the best state in reach is faster than the current one by more than this
/// fraction; below it a difference is timing noise, and chasing noise would wander.</param>
/// <param name="MaxSteps">Most steps (a guard; the gain rule ends the search first in practice).</param>
/// <param name="Width">Below the first level, look further only from this many states of the level above (the fastest of
/// each kind of move first, see <see cref="GreedySearch"/>); null looks from all of them. Exhaustive lookahead 2 costs
/// about 30 x 30 evaluations per step, and the first steps are the dearest because kernels near the unscheduled start are
/// slow to time (about 13 ms each on mm 160 224 208): 5 to 10 s per benchmark. From 4 first moves it takes 1 to 5 s.</param>
public sealed record GreedyOptions(int Lookahead = 1, double MinGain = 0.02, int MaxSteps = 100, int? Width = null);

/// <summary>
/// <c>greedy1</c>, <c>greedy2</c>: from the current state, evaluate every state within <see cref="GreedyOptions.Lookahead"/>
/// moves (all legal moves, then all legal moves from each of those, or from <see cref="GreedyOptions.Width"/> of them: the
/// fastest of each kind of move first, so that ten splits do not crowd out the one swap that enables a vectorize); if the
/// fastest of them beats the current state by more than <see cref="GreedyOptions.MinGain"/>, take the first move of the
/// path to it, else stop. In the loop and tile spaces a move names any loop, so every loop is in reach and no evaluation is
/// spent on a cursor move. States seen in an earlier step are not evaluated again.
/// </summary>
public sealed class GreedySearch(GreedyOptions options) : ISearch
{
    public GreedyOptions Options { get; } = options.Lookahead is >= 1 and <= 3 ? options : throw new SearchError($"greedy lookahead must be 1 to 3, not {options.Lookahead}");
    public string Name => $"greedy{Options.Lookahead}";
    public string Description =>
        $"lookahead {Options.Lookahead}{(Options.Width is int w && Options.Lookahead > 1 ? $" (deeper from {w} moves, the fastest of each kind first)" : "")}: first move towards the best state in reach; stop when none is {Options.MinGain:P0} faster";

    public SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed, ActionSpace space)
    {
        var run = new SearchRun(Name, start, evaluator, budget, seed, space);
        var current = run.Root;
        for (int step = 0; step < Options.MaxSteps && !run.Exhausted; step++)
        {
            var (first, best) = Look(run, current, Options.Lookahead);
            if (first is null || best <= current.Gflops * (1 + Options.MinGain)) break;
            current = first;
        }
        return run.Finish();
    }

    /// <summary>Evaluates the states within <paramref name="depth"/> moves of <paramref name="state"/> (below the first level,
    /// only from <see cref="GreedyOptions.Width"/> children, see <see cref="Promising"/>): the child on the way to the fastest state found, and that
    /// state's GFLOPS. Stops early, with what it has, when the budget ends.</summary>
    (SearchState? First, double Best) Look(SearchRun run, SearchState state, int depth)
    {
        var children = new List<SearchState>();
        foreach (var move in run.Expand(state))
        {
            if (run.Step(state, move.Id) is not { } child) break;
            children.Add(child);
        }
        SearchState? first = null;
        double best = double.NegativeInfinity;
        var deeper = depth > 1 ? Promising(run.Space, children, Options.Width ?? int.MaxValue) : [];
        foreach (var child in children)
        {
            double value = deeper.Contains(child) && !run.Exhausted ? Math.Max(child.Gflops, Look(run, child, depth - 1).Best) : child.Gflops;
            if (value > best) (first, best) = (child, value);
        }
        return (first, best);
    }

    /// <summary>The <paramref name="width"/> children to look further from: the fastest child of each kind of move (swap,
    /// split, merge, unroll, vectorize), fastest kind first, then the fastest of the rest. Taking the kinds first keeps the
    /// near-identical variants of one kind (split_2 ... split_128, about equally slow near the start) from crowding out a
    /// move of another kind whose value only shows one move later (a swap that lets the next move vectorize).</summary>
    static HashSet<SearchState> Promising(ActionSpace space, List<SearchState> children, int width)
    {
        var ranked = children.OrderByDescending(c => c.Gflops).ToList();
        var firsts = ranked.GroupBy(c => Kind(space, c.Ids[^1])).Select(g => g.First());
        return [.. firsts.Concat(ranked).Distinct().Take(width)];
    }

    /// <summary>The kind of an id: its name without the loop and the factor (split, tile_vec, swap, sink, ...).</summary>
    static string Kind(ActionSpace space, int id)
    {
        var name = space.Describe(id).Split('@')[0].TrimEnd('0', '1', '2', '3', '4', '5', '6', '7', '8', '9').TrimEnd('_');
        return name is "swap_up" or "swap_down" ? "swap" : name is "up" or "down" ? "cursor" : name;
    }
}
