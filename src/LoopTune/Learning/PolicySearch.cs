using System.Collections.Immutable;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Search;

namespace LoopTune.Learning;

/// <summary>
/// The policy as a method of <c>compare-searches</c>: a greedy masked rollout of <see cref="Policy.EpisodeLength"/> actions
/// (every new kernel on the way is timed, and the fastest is the answer); then, while the budget lasts and
/// <paramref name="topK"/> is above 1, rollouts that leave the greedy path once, at the state and to the policy's
/// next-ranked action, in the order of the policy's preference (a search guided by the policy's top k).
/// </summary>
public sealed class PolicySearch(Policy policy, int topK = 1) : ISearch
{
    public string Name => topK > 1 ? "policy_top" + topK : "policy";
    public string Description => topK > 1
        ? $"the trained policy's greedy rollout, then rollouts branching once to its top {topK} actions while the budget lasts ({policy.Source})"
        : $"greedy masked rollout of the trained policy, {policy.EpisodeLength} actions ({policy.Source})";

    public SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed)
    {
        var run = new SearchRun(Name, start, evaluator, budget, seed);
        var greedy = Follow(run, run.Root, [], 0, null);
        if (topK > 1)
        {
            // branch points: (step, rank) by rank first, so every state's second choice comes before any third
            for (int rank = 1; rank < topK && !run.Exhausted; rank++)
                for (int step = 0; step < greedy.Count && !run.Exhausted; step++)
                    Follow(run, run.Root, greedy.Take(step).ToList(), step, rank);
        }
        return run.Finish();
    }

    /// <summary>Replays <paramref name="prefix"/>, takes the policy's action of rank <paramref name="branchRank"/> at step
    /// <paramref name="branchStep"/> (null: greedy all the way), then continues greedily to the episode's end. Returns the
    /// actions taken.</summary>
    List<int> Follow(SearchRun run, SearchState root, List<int> prefix, int branchStep, int? branchRank)
    {
        var state = root;
        var history = new List<LoopAction>();
        var taken = new List<int>();
        for (int s = 0; s < policy.EpisodeLength; s++)
        {
            var mask = Transforms.Mask(state.Nest);
            int a;
            if (s < prefix.Count) a = prefix[s];
            else
            {
                var ranked = policy.Rank(policy.Observe(state.Nest, history, s), mask);
                int r = s == branchStep && branchRank is int k ? k : 0;
                if (r >= ranked.Length) return taken;
                a = ranked[r];
            }
            var action = Actions.All[a];
            var next = Transforms.Apply(state.Nest, action);
            var reached = next.ScheduleKey == state.Nest.ScheduleKey
                ? state with { Nest = next, Path = state.Path.Add(action) }
                : run.Reach(state.Path.Add(action), next, state, action.Name);
            if (reached is null) return taken;
            history.Add(action);
            taken.Add(a);
            state = reached;
        }
        return taken;
    }
}
