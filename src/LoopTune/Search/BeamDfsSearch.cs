using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Search;

/// <summary>
/// <c>beam_dfs</c>: depth-first. At each state every legal move is evaluated, and the search descends into the
/// <see cref="BeamOptions.Width"/> fastest children (by measured GFLOPS), fastest first, down to
/// <see cref="BeamOptions.Depth"/> moves; a state is expanded at most once. It follows the greedy path to the full depth
/// first, then backtracks into the runners-up, until the tree (Width^Depth states) or the budget is used up.
/// </summary>
public sealed class BeamDfsSearch(BeamOptions? options = null) : ISearch
{
    public BeamOptions Options { get; } = Beam.Check(options ?? new());
    public string Name => "beam_dfs";
    public string Description => $"depth-first into the {Options.Width} fastest children of each state, {Options.Depth} moves deep";

    public SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed, ActionSpace space)
    {
        var run = new SearchRun(Name, start, evaluator, budget, seed, space);
        Expand(run, run.Root, 0, []);
        return run.Finish();
    }

    /// <summary>Expands <paramref name="state"/> at <paramref name="depth"/>; false once the budget is spent.</summary>
    bool Expand(SearchRun run, SearchState state, int depth, HashSet<string> expanded)
    {
        if (depth >= Options.Depth || !expanded.Add(state.Key)) return true;
        var children = new List<SearchState>();
        foreach (var move in run.Expand(state))
        {
            if (run.Step(state, move.Id) is not { } child) return false;
            if (!expanded.Contains(child.Key)) children.Add(child);
        }
        foreach (var child in Beam.Fastest(children, Options.Width))
            if (run.Exhausted || !Expand(run, child, depth + 1, expanded)) return false;
        return true;
    }
}
