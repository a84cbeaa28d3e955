using System.Collections.Immutable;

namespace LoopTune.Search;

/// <summary>
/// The searches by name, each with its default hyperparameters:
/// <code>
/// | name      | what                                                                        |
/// |-----------|-----------------------------------------------------------------------------|
/// | random    | random rollouts of 10 legal moves from the start until the budget ends      |
/// | greedy1   | take the best single move while it gains more than 2 %                      |
/// | greedy2   | the same, 2 moves ahead (second moves from 4 first ones, best of each kind) |
/// | beam_bfs  | breadth-first beam: the 4 fastest states per level, 10 levels               |
/// | beam_dfs  | depth-first into the 4 fastest children of each state, 10 moves deep        |
/// | genetic   | 24 move sequences, tournament, 4 random immigrants, repaired crossover      |
/// | cost_model| 1024 candidates a round scored by the cost model, the top 8 measured        |
/// </code>
/// A move walks the cursor to any loop and applies one kernel-changing action there (<see cref="Moves"/>).
/// </summary>
public static class Searches
{
    static readonly ImmutableArray<Func<ISearch>> Factories =
    [
        () => new RandomSearch(), () => new GreedySearch(new GreedyOptions(Lookahead: 1)), () => new GreedySearch(new GreedyOptions(Lookahead: 2, Width: 4)),
        () => new BeamBfsSearch(), () => new BeamDfsSearch(), () => new GeneticSearch(), () => new CostModelSearch(),
    ];

    /// <summary>Every search's name, in the order the reports list them.</summary>
    public static ImmutableArray<string> Names { get; } = [.. Factories.Select(f => f().Name)];

    /// <summary>A new instance of the search called <paramref name="name"/>; a <see cref="SearchError"/> listing the valid
    /// names otherwise.</summary>
    public static ISearch Get(string name)
    {
        int i = Names.IndexOf(name?.Trim() ?? "");
        return i >= 0 ? Factories[i]() : throw new SearchError($"unknown search method '{name}'; the methods are: {string.Join(", ", Names)}");
    }
}
