using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Search;

/// <summary>Hyperparameters of <see cref="BeamBfsSearch"/> and <see cref="BeamDfsSearch"/>.</summary>
/// <param name="Width">States kept per level (BFS) or children followed per state (DFS).</param>
/// <param name="Depth">Most moves from the start.</param>
public sealed record BeamOptions(int Width = 4, int Depth = 10);

/// <summary>
/// <c>beam_bfs</c>: level by level. Every legal move of every state in the beam is evaluated; the next beam is the
/// <see cref="BeamOptions.Width"/> fastest new states (by measured GFLOPS; the original ranked candidates by action name by
/// mistake), leaving out states that were in an earlier beam. Ends after <see cref="BeamOptions.Depth"/> levels, when no new
/// state is left, or when the budget ends.
/// </summary>
public sealed class BeamBfsSearch(BeamOptions? options = null) : ISearch
{
    public BeamOptions Options { get; } = Beam.Check(options ?? new());
    public string Name => "beam_bfs";
    public string Description => $"breadth-first beam of the {Options.Width} fastest states per level, {Options.Depth} levels";

    public SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed, ActionSpace space)
    {
        var run = new SearchRun(Name, start, evaluator, budget, seed, space);
        var beam = new List<SearchState> { run.Root };
        var visited = new HashSet<string> { run.Root.Key };
        for (int level = 0; level < Options.Depth && beam.Count > 0 && !run.Exhausted; level++)
        {
            var candidates = new Dictionary<string, SearchState>();
            foreach (var state in beam)
                foreach (var move in run.Expand(state))
                {
                    var key = run.Space.StateKey(move.Result);
                    if (visited.Contains(key) || candidates.ContainsKey(key)) continue;
                    if (run.Step(state, move.Id) is not { } child) return run.Finish();
                    candidates[child.Key] = child;
                }
            beam = Beam.Fastest(candidates.Values, Options.Width);
            visited.UnionWith(beam.Select(s => s.Key));
        }
        return run.Finish();
    }
}

/// <summary>What the two beam searches share.</summary>
static class Beam
{
    public static BeamOptions Check(BeamOptions o) =>
        o.Width >= 1 && o.Depth >= 1 ? o : throw new SearchError($"beam width and depth must be at least 1, not {o.Width} and {o.Depth}");

    /// <summary>The <paramref name="width"/> fastest states, the earlier one first on a tie (a stable sort).</summary>
    public static List<SearchState> Fastest(IEnumerable<SearchState> states, int width) =>
        [.. states.OrderByDescending(s => s.Gflops).Take(width)];
}
