using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Search;

namespace LoopTune.Learning;

/// <summary>
/// The policy as a method of <c>compare-searches</c>: a greedy masked rollout of <see cref="Policy.EpisodeLength"/> choices
/// through the environment of the policy's space (every new kernel on the way is timed, and the fastest is the answer); then,
/// while the budget lasts and <paramref name="topK"/> is above 1, rollouts that leave the greedy path once, at one state
/// and to the policy's next-ranked choice there, in the order of the policy's preference (a search guided by the policy's
/// top k). The policy may depend on the computation (<see cref="Policy.Choose"/>: "default" is the convolution policy for
/// a convolution). Its observations carry <paramref name="machine"/>'s tensor (default: this machine's at the JIT's width).
/// </summary>
public sealed class PolicySearch(Func<Computation, Policy> choose, string source, int topK = 1, Func<float[]>? machine = null) : ISearch
{
    public PolicySearch(Policy policy, int topK = 1) : this(_ => policy, policy.Source, topK) { }

    /// <summary>The machine_tensor of this machine at the JIT's vector width (<see cref="Measure.Machine.Current"/>).</summary>
    public static float[] ThisMachine() => Observations.MachineTensor(Measure.Machine.Current);

    public string Name => topK > 1 ? "policy_top" + topK : "policy";
    public string Description => topK > 1
        ? $"the trained policy's greedy rollout, then rollouts branching once to its top {topK} choices while the budget lasts ({source})"
        : $"greedy masked rollout of the trained policy ({source})";

    /// <summary>Runs in the policy's own space, whatever <paramref name="space"/> the other methods use.</summary>
    public SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed, ActionSpace space)
    {
        ArgumentNullException.ThrowIfNull(start);
        var policy = choose(start.Computation);
        var run = new SearchRun(Name, start, evaluator, budget, seed, policy.Space, policy.EpisodeLength, (machine ?? ThisMachine)());
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
        var taken = new List<int>();
        for (int s = 0; s < policy.EpisodeLength; s++)
        {
            int id;
            if (s < prefix.Count) id = prefix[s];
            else
            {
                run.Env.Restore(state.At);
                var ranked = policy.Rank(run.Env);
                int r = s == branchStep && branchRank is int k ? k : 0;
                if (r >= ranked.Length) return taken;
                id = ranked[r];
            }
            if (run.Step(state, id) is not { } next) return taken;
            taken.Add(id);
            state = next;
        }
        return taken;
    }
}
