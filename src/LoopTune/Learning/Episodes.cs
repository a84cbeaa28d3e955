using System.Globalization;
using System.Text.Json.Nodes;
using LoopTune.Learning.Nn;

namespace LoopTune.Learning;

/// <summary>The figures of finished episodes in one iteration, for the curves.</summary>
sealed class EpisodeStats
{
    readonly List<double> returns = [], finals = [], bests = [], starts = [];

    public void Add(double totalReward, double finalScore, double bestScore, double startScore)
    {
        returns.Add(totalReward);
        finals.Add(finalScore);
        bests.Add(bestScore);
        starts.Add(startScore);
    }

    /// <summary>Adds this iteration's episodes to <paramref name="to"/>.</summary>
    public void CopyTo(EpisodeStats to)
    {
        for (int i = 0; i < returns.Count; i++) to.Add(returns[i], finals[i], bests[i], starts[i]);
    }

    /// <summary>The episodes' (returns, final scores, best scores, first scores).</summary>
    public (double[], double[], double[], double[]) Columns() => ([.. returns], [.. finals], [.. bests], [.. starts]);

    public void AddTo(IDictionary<string, double> values)
    {
        values["episodes"] = returns.Count;
        if (returns.Count == 0) return;
        values["episode_reward"] = returns.Average();
        values["gflops"] = finals.Average();
        values["gflops_best"] = bests.Average();
        values["gflops_start"] = starts.Average();
    }
}

/// <summary>An actor's running episode: the sum of rewards and the first, last and best scores.</summary>
sealed class EpisodeTracker
{
    double total, start, best;

    public void Reset(TimeStep t) => (total, start, best) = (0, t.Score, t.Score);

    /// <summary>Adds a step; when it ends the episode, records it in <paramref name="stats"/>.</summary>
    public void Step(TimeStep t, EpisodeStats stats)
    {
        total += t.Reward;
        best = Math.Max(best, t.Score);
        if (t.Done) stats.Add(total, t.Score, best, start);
    }
}

/// <summary>What every actor of a learner has: its environment, its random generator and its running episode. The
/// episode starts when the actor next acts after none is under way (a restore ends the one in flight).</summary>
abstract class EpisodeActor(IRlEnv env, Rng rng)
{
    readonly EpisodeTracker episode = new();
    TimeStep? now;

    public IRlEnv Env => env;
    public Rng Rng => rng;

    /// <summary>The state the actor acts from next, or null between episodes.</summary>
    protected TimeStep? Now => now;

    /// <summary>Whether an episode is under way; setting false makes the next step start a new one (a restore does).</summary>
    public bool InFlight
    {
        get => now is not null;
        set { if (!value) now = null; }
    }

    /// <summary>The state to act from: the running episode's, or the first of a new one.</summary>
    protected TimeStep Current()
    {
        if (now is { } s) return s;
        s = env.Reset(rng);
        episode.Reset(s);
        OnNewEpisode();
        return (now = s).Value;
    }

    /// <summary>Called when an episode starts, before its first action.</summary>
    protected virtual void OnNewEpisode() { }

    /// <summary>Takes <paramref name="action"/>; an episode that ends here is recorded in <paramref name="stats"/>.</summary>
    protected TimeStep Advance(int action, EpisodeStats stats)
    {
        var t = env.Step(action);
        episode.Step(t, stats);
        now = t.Done ? null : t;
        return t;
    }
}

static class Batch
{
    /// <summary>Row <paramref name="i"/> of something.</summary>
    public delegate ReadOnlySpan<float> RowOf(int i);

    /// <summary>Rows <paramref name="rows"/> of <paramref name="source"/>(i) stacked into a matrix.</summary>
    public static Matrix Stack(IReadOnlyList<int> rows, RowOf source, int width)
    {
        Matrix? m = null;
        return Stack(rows, source, width, ref m);
    }

    /// <summary>The same, into <paramref name="buffer"/> when it has the shape (else into a new matrix kept there).</summary>
    public static Matrix Stack(IReadOnlyList<int> rows, RowOf source, int width, ref Matrix? buffer)
    {
        if (buffer is null || buffer.Rows != rows.Count || buffer.Cols != width) buffer = new Matrix(rows.Count, width);
        for (int r = 0; r < rows.Count; r++) source(rows[r]).CopyTo(buffer.Row(r));
        return buffer;
    }
}

/// <summary>The parts of a checkpoint every trainer has: Adam's moments, the counters, the random generators.</summary>
static class Checkpointing
{
    /// <summary>The optimizer tensors among a checkpoint's tensors.</summary>
    public static NamedTensor[] AdamState(IReadOnlyList<NamedTensor> tensors) =>
        [.. tensors.Where(t => t.Name.EndsWith(".adam_m", StringComparison.Ordinal) || t.Name.EndsWith(".adam_v", StringComparison.Ordinal))];

    /// <summary>The state every trainer saves; the trainer adds its own fields.</summary>
    public static JsonObject Common(int iterations, long envSteps, long adamSteps, Rng learner, IEnumerable<Rng> actors) => new()
    {
        ["iterations"] = iterations, ["env_steps"] = envSteps, ["adam_steps"] = adamSteps, ["learner_rng"] = learner.State.ToString(CultureInfo.InvariantCulture),
        ["actor_rngs"] = new JsonArray([.. actors.Select(r => (JsonNode)r.State.ToString(CultureInfo.InvariantCulture))]),
    };

    /// <summary>Puts back what <see cref="Common"/> saved into <paramref name="learner"/> and <paramref name="actors"/>;
    /// returns (iterations, env steps).</summary>
    public static (int Iterations, long EnvSteps) Restore(JsonObject state, Rng learner, IReadOnlyList<Rng> actors)
    {
        learner.State = ulong.Parse((string)state["learner_rng"]!, CultureInfo.InvariantCulture);
        var rngs = state["actor_rngs"]!.AsArray();
        if (rngs.Count != actors.Count)
            throw new LoopTuneException($"the checkpoint has {rngs.Count} actors and this run {actors.Count}: resume with the same --workers");
        for (int i = 0; i < actors.Count; i++) actors[i].State = ulong.Parse((string)rngs[i]!, CultureInfo.InvariantCulture);
        return ((int)state["iterations"]!, (long)state["env_steps"]!);
    }
}
