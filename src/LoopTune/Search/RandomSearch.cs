using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Search;

/// <summary>Hyperparameters of <see cref="RandomSearch"/>.</summary>
/// <param name="Depth">Moves per rollout (each a cursor walk plus one kernel-changing action).</param>
/// <param name="MaxIdleRollouts">Stop after this many rollouts in a row found no new schedule (the space is used up).</param>
public sealed record RandomOptions(int Depth = 10, int MaxIdleRollouts = 1000);

/// <summary>
/// <c>random</c>: rollouts of <see cref="RandomOptions.Depth"/> random legal moves from the start (each move drawn
/// uniformly from the legal ids of the state reached), every state along the way
/// evaluated, until the budget ends; the fastest state seen wins.
/// </summary>
public sealed class RandomSearch(RandomOptions? options = null) : ISearch
{
    public RandomOptions Options { get; } = options ?? new();
    public string Name => "random";
    public string Description => $"random rollouts of {Options.Depth} legal moves from the start until the budget ends";

    public SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed, ActionSpace space)
    {
        var run = new SearchRun(Name, start, evaluator, budget, seed, space);
        for (int idle = 0; idle < Options.MaxIdleRollouts && !run.Exhausted;)
        {
            int before = run.Evaluations;
            if (!Rollout(run)) break;
            idle = run.Evaluations == before ? idle + 1 : 0;
        }
        return run.Finish();
    }

    /// <summary>One rollout; false when the budget ran out during it.</summary>
    bool Rollout(SearchRun run)
    {
        var state = run.Root;
        for (int d = 0; d < Options.Depth; d++)
        {
            if (run.Space.RandomMove(state.Nest, run.Rng) is not { } move) return true;
            if (run.Step(state, move.Id) is not { } next) return false;
            state = next;
        }
        return true;
    }
}
