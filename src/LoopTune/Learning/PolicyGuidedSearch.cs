using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Search;

namespace LoopTune.Learning;

/// <summary>Hyperparameters of <see cref="PolicyGuidedSearch"/>.</summary>
/// <param name="Branching">How many of the policy's choices of a state the search may try (its top k): the rest are left
/// out, which is what keeps the search narrow in a space of a few hundred legal ids per state.</param>
/// <param name="RankPenalty">Without values (a PPO policy's logits), the promise of a state's choice of rank r is the
/// state's GFLOPS times (1 - RankPenalty x r).</param>
public sealed record PolicySearchOptions(int Branching = 5, double RankPenalty = 0.05);

/// <summary>
/// <c>policy_search</c>: a best-first search in the policy's space, ordered by what the policy expects, with real
/// measurements. It starts with the policy's greedy rollout (so it is never worse than that rollout), then, while the
/// budget lasts, takes the most promising (state, choice) pair of all the states measured so far: a DQN policy's Q-value
/// is its estimate of the reward still to come, so a choice's promise is the state's measured GFLOPS plus the peak times
/// Q(state, choice): the GFLOPS the policy expects to end at by taking it. Each state offers only its top
/// <see cref="PolicySearchOptions.Branching"/> choices, one at a time (the next one is queued when one is taken), and no
/// path is longer than the policy's episode. A state measured slower than expected sinks in the queue by itself, where a
/// rollout (<see cref="PolicySearch"/>'s <c>policy_topK</c>) would follow it to the end of an episode regardless. The
/// finalists timed side by side at the end include the greedy rollout's best state.
/// </summary>
public sealed class PolicyGuidedSearch(Func<Computation, Policy> choose, string source, PolicySearchOptions? options = null, Func<float[]>? machine = null,
    Func<double>? peak = null) : ISearch
{
    public PolicyGuidedSearch(Policy policy, PolicySearchOptions? options = null) : this(_ => policy, policy.Source, options) { }

    public PolicySearchOptions Options { get; } = options is null or { Branching: >= 1, RankPenalty: >= 0 } ? options ?? new()
        : throw new SearchError($"bad policy search options: {options}");

    public const string MethodName = "policy_search";

    public string Name => MethodName;
    public string Description =>
        $"best-first search over the trained policy's top {Options.Branching} choices per state, ordered by measured GFLOPS plus the policy's expected gain, after its greedy rollout ({source})";

    /// <summary>Runs in the policy's own space, whatever <paramref name="space"/> the other methods use.</summary>
    public SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed, ActionSpace space)
    {
        ArgumentNullException.ThrowIfNull(start);
        var policy = choose(start.Computation);
        var run = new SearchRun(Name, start, evaluator, budget, seed, policy.Space, policy.EpisodeLength, (machine ?? PolicySearch.ThisMachine)());
        double scale = policy.Shape.Kind == "dqn" ? (peak ?? (() => Measure.Machine.Current.PeakGflops))() : 0;
        var queue = new PriorityQueue<(SearchState State, int[] Choices, float[] Scores, int Rank), double>();
        var expanded = new HashSet<string>();

        // the greedy rollout first, queueing each state's other choices on the way
        var state = run.Root;
        var greedyBest = run.Root;
        for (int step = 0; step < policy.EpisodeLength; step++)
        {
            var (choices, scores) = Rank(policy, run, state);
            if (choices.Length == 0 || !expanded.Add(state.Key)) break;
            Queue(queue, state, choices, scores, 1, scale);
            if (run.Step(state, choices[0]) is not { } next) return run.Finish(greedyBest);
            state = next;
            if (state.Gflops > greedyBest.Gflops) greedyBest = state;
        }
        if (state.Ids.Length < policy.EpisodeLength && expanded.Add(state.Key) && Rank(policy, run, state) is var (cs, ss) && cs.Length > 0)
            Queue(queue, state, cs, ss, 0, scale);

        // then the most promising choice of all, one at a time
        while (!run.Exhausted && queue.TryDequeue(out var item, out _))
        {
            var (from, choices, scores, rank) = item;
            Queue(queue, from, choices, scores, rank + 1, scale);
            if (run.Step(from, choices[rank]) is not { } child) break;
            if (child.Ids.Length >= policy.EpisodeLength || !expanded.Add(child.Key)) continue;
            var (cc, cs2) = Rank(policy, run, child);
            Queue(queue, child, cc, cs2, 0, scale);
        }
        return run.Finish(greedyBest);
    }

    /// <summary>The legal choices of <paramref name="state"/>, best first, at most <see cref="PolicySearchOptions.Branching"/>,
    /// with the policy's scores.</summary>
    (int[] Choices, float[] Scores) Rank(Policy policy, SearchRun run, SearchState state)
    {
        run.Env.Restore(state.At);
        var x = run.Env.Encode();
        var mask = run.Env.ActionMask();
        var scores = policy.Network.Scores(Net.Row(x)).Row(0).ToArray();
        var ranked = Enumerable.Range(0, scores.Length).Where(a => mask[a]).OrderByDescending(a => scores[a]).ThenBy(a => a).Take(Options.Branching).ToArray();
        return (ranked, [.. ranked.Select(a => scores[a])]);
    }

    /// <summary>Queues choice <paramref name="rank"/> of <paramref name="state"/> (if it has one) by its promise: measured
    /// GFLOPS plus <paramref name="scale"/> (the peak) times its Q-value, or the GFLOPS less a penalty per rank without values.
    /// The queue takes the lowest first, so the promise goes in negated.</summary>
    void Queue(PriorityQueue<(SearchState, int[], float[], int), double> queue, SearchState state, int[] choices, float[] scores, int rank, double scale)
    {
        if (rank >= choices.Length) return;
        double promise = scale > 0 ? state.Gflops + scale * scores[rank] : state.Gflops * (1 - Options.RankPenalty * rank);
        queue.Enqueue((state, choices, scores, rank), -promise);
    }
}
