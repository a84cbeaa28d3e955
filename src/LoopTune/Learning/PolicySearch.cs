using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Search;

namespace LoopTune.Learning;

/// <summary>
/// The policy as a method of <c>compare-searches</c>: a greedy masked rollout of <see cref="Policy.EpisodeLength"/> choices
/// (every new kernel on the way is timed, and the fastest is the answer); then, while the budget lasts and
/// <paramref name="topK"/> is above 1, rollouts that leave the greedy path once, at one state and to the policy's
/// next-ranked choice there, in the order of the policy's preference (a search guided by the policy's top k).
/// The policy may depend on the computation (<see cref="Policy.Choose"/>: "default" is the convolution policy for a convolution).
/// </summary>
public sealed class PolicySearch(Func<Computation, Policy> choose, string source, int topK = 1) : ISearch
{
    public PolicySearch(Policy policy, int topK = 1) : this(_ => policy, policy.Source, topK) { }

    public string Name => topK > 1 ? "policy_top" + topK : "policy";
    public string Description => topK > 1
        ? $"the trained policy's greedy rollout, then rollouts branching once to its top {topK} choices while the budget lasts ({source})"
        : $"greedy masked rollout of the trained policy ({source})";

    public SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed)
    {
        ArgumentNullException.ThrowIfNull(start);
        var policy = choose(start.Computation);
        var run = new SearchRun(Name, start, evaluator, budget, seed);
        var greedy = Follow(policy, run, [], 0, null);
        // branch points by rank first, so every state's second choice comes before any third
        for (int rank = 1; rank < topK && !run.Exhausted; rank++)
            for (int step = 0; step < greedy.Count && !run.Exhausted; step++)
                Follow(policy, run, greedy.Take(step).ToList(), step, rank);
        return run.Finish();
    }

    /// <summary>Replays the policy's choices <paramref name="prefix"/>, takes its choice of rank <paramref name="branchRank"/>
    /// at step <paramref name="branchStep"/> (null: greedy all the way), then continues greedily to the episode's end.
    /// Returns the choices taken.</summary>
    static List<int> Follow(Policy policy, SearchRun run, List<int> prefix, int branchStep, int? branchRank)
    {
        var state = run.Root;
        var history = new List<LoopAction>();
        var taken = new List<int>();
        for (int s = 0; s < policy.EpisodeLength; s++)
        {
            int id;
            if (s < prefix.Count) id = prefix[s];
            else
            {
                var ranked = policy.Rank(state.Nest, history, s);
                int r = s == branchStep && branchRank is int k ? k : 0;
                if (r >= ranked.Length) return taken;
                id = ranked[r];
            }
            var (actions, next) = policy.Space.Apply(state.Nest, id);
            var path = state.Path.AddRange(actions);
            var reached = next.ScheduleKey == state.Nest.ScheduleKey
                ? state with { Nest = next, Path = path }
                : run.Reach(path, next, state, string.Join(",", actions.Select(a => a.Name)));
            if (reached is null) return taken;
            history.AddRange(actions);
            taken.Add(id);
            state = reached;
        }
        return taken;
    }
}
