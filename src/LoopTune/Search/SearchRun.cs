using System.Collections.Immutable;
using System.Diagnostics;
using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Search;

/// <summary>A state a search holds: a nest, the legal actions from the start that reach it, and its GFLOPS.</summary>
public sealed record SearchState(Nest Nest, ImmutableArray<LoopAction> Path, double Gflops)
{
    /// <summary>The nest's schedule key (what the kernel depends on).</summary>
    public string Key => Nest.ScheduleKey;
}

/// <summary>
/// The bookkeeping every search shares for one run: the seeded random generator, the budget (clock and evaluation count),
/// one evaluator call per distinct schedule (later visits are answered from this run's memory and not counted), the best
/// state so far, and the search tree. Searches only decide which moves to try.
/// </summary>
public sealed class SearchRun
{
    readonly IEvaluator evaluator;
    readonly Stopwatch clock = Stopwatch.StartNew();
    readonly Dictionary<string, double> memory = [];
    readonly List<SearchState> leaders = [];

    /// <summary>How many of the fastest states a run's end times again side by side, when its evaluator can
    /// (<see cref="IConfirmingEvaluator"/>).</summary>
    public const int Finalists = 3;

    /// <summary>Starts a run: evaluates <paramref name="start"/> (one evaluation, whatever the budget).</summary>
    public SearchRun(string method, Nest start, IEvaluator evaluator, SearchBudget budget, int seed)
    {
        ArgumentNullException.ThrowIfNull(start);
        this.evaluator = evaluator ?? throw new ArgumentNullException(nameof(evaluator));
        (Method, Budget, Rng) = (method, budget.Validate(), new Random(seed));
        double gflops = Measure(start);
        Root = Best = new SearchState(start, [], gflops);
        Lead(Root);
    }

    public string Method { get; }
    public SearchBudget Budget { get; }

    /// <summary>The run's only source of randomness, seeded from the run's seed.</summary>
    public Random Rng { get; }

    /// <summary>The start state (path empty).</summary>
    public SearchState Root { get; }

    /// <summary>The fastest state seen so far (the earliest one on a tie).</summary>
    public SearchState Best { get; private set; }

    /// <summary>Calls made to the evaluator so far.</summary>
    public int Evaluations { get; private set; }

    /// <summary>Of those, the ones the evaluator timed now.</summary>
    public int Measured { get; private set; }

    public SearchTree Tree { get; } = new();

    /// <summary>Wall-clock seconds since the run started.</summary>
    public double Seconds => clock.Elapsed.TotalSeconds;

    /// <summary>True once the time is up or the evaluation limit is reached: no new schedule can be evaluated. With a
    /// confirming evaluator the time is up <see cref="Reserve"/> early, so that the end's side-by-side timing of the finalists
    /// fits in the budget too.</summary>
    public bool Exhausted => Evaluations >= (Budget.MaxEvaluations ?? int.MaxValue) || clock.Elapsed >= Budget.Time - Reserve;

    /// <summary>The time kept for <see cref="Finish"/>'s timing of the finalists: 1.5 times their sampling time
    /// (<see cref="LoopTune.Measure.MeasureOptions.Confirm"/>), at most a quarter of the budget; none without a confirming evaluator.</summary>
    public TimeSpan Reserve => evaluator is IConfirmingEvaluator
        ? TimeSpan.FromSeconds(Math.Min(1.5 * Finalists * LoopTune.Measure.MeasureOptions.Confirm.MinSeconds, Budget.Time.TotalSeconds / 4))
        : TimeSpan.Zero;

    /// <summary>True when <paramref name="nest"/>'s schedule was evaluated in this run.</summary>
    public bool Knows(Nest nest) => memory.ContainsKey(nest.ScheduleKey);

    /// <summary>The GFLOPS of a schedule already evaluated in this run, or null.</summary>
    public double? Known(Nest nest) => memory.TryGetValue(nest.ScheduleKey, out var g) ? g : null;

    /// <summary>Takes <paramref name="move"/> from <paramref name="from"/>: the state it leads to, evaluated (from this run's
    /// memory when the schedule was seen before), or null when that needs a new evaluation and the budget is spent.</summary>
    public SearchState? Step(SearchState from, Move move) => Reach(from.Path.AddRange(move.Actions), move.Result, from, move.ToString());

    /// <summary>The state that <paramref name="path"/> (a legal action sequence from the start) leads to, <paramref name="nest"/>,
    /// evaluated (from this run's memory when the schedule was seen before) and linked to <paramref name="parent"/> in the tree
    /// by an edge labelled <paramref name="label"/>; null when that needs a new evaluation and the budget is spent.</summary>
    public SearchState? Reach(ImmutableArray<LoopAction> path, Nest nest, SearchState parent, string label)
    {
        if (!memory.TryGetValue(nest.ScheduleKey, out double gflops))
        {
            if (Exhausted) return null;
            gflops = Measure(nest);
        }
        var state = new SearchState(nest, path, gflops);
        Tree.Link(parent.Key, state.Key, label);
        if (gflops > Best.Gflops) Best = state;
        Lead(state);
        return state;
    }

    /// <summary>Keeps the <see cref="Finalists"/> fastest distinct schedules seen, fastest first (the earlier on a tie).</summary>
    void Lead(SearchState state)
    {
        if (leaders.Any(l => l.Key == state.Key)) return;
        int at = leaders.FindIndex(l => state.Gflops > l.Gflops);
        leaders.Insert(at < 0 ? leaders.Count : at, state);
        if (leaders.Count > Finalists) leaders.RemoveAt(Finalists);
    }

    double Measure(Nest nest)
    {
        var e = evaluator.Evaluate(nest);
        Evaluations++;
        if (!e.Recalled) Measured++;
        memory[nest.ScheduleKey] = e.Gflops;
        Tree.Add(nest.ScheduleKey, e.Gflops);
        return e.Gflops;
    }

    /// <summary>The result: the best state, the shortest form of its path that <see cref="Shorten"/> finds, the counts and
    /// the time; the tree marks the path the search took to the best state. When the evaluator can
    /// (<see cref="IConfirmingEvaluator"/>), the best state is the fastest of the <see cref="Finalists"/> fastest ones timed
    /// again side by side, after the budget and in the run's time: the fastest of many quick measurements on a noisy machine
    /// is often just the luckiest (the searches' own figure stays the one they measured).</summary>
    public SearchResult Finish()
    {
        // the finalists down to the start, if it is one: the answer is never a state that measured slower than the start
        var finalists = leaders.Take(leaders.FindIndex(l => l.Key == Root.Key) is var r and >= 0 ? r + 1 : leaders.Count).ToList();
        if (evaluator is IConfirmingEvaluator confirming && finalists.Count > 1)
            Best = finalists[confirming.Fastest([.. finalists.Select(l => l.Nest)])];
        Tree.Best = Best.Key;
        Tree.BestPath = PathKeys(Root.Nest, Best.Path);
        var (best, path) = Shorten(Root.Nest, Best.Nest, Best.Path);
        return new SearchResult(Method, Root.Nest, best, Best.Gflops, Root.Gflops, path, Evaluations, Measured, Seconds, Tree);
    }

    /// <summary>
    /// Drops the moves of <paramref name="path"/> that the best schedule does not need: one move, or two (an unroll toggled
    /// twice, a split merged back), whose removal still replays to the same schedule, in one pass from the last move back. Moves are replayed as genes (a loop
    /// named by variable and rank, see <see cref="Gene"/>), so the walks of the later moves are recomputed. Costs no
    /// evaluation: the schedule, hence the kernel, is the same.
    /// </summary>
    public static (Nest Best, ImmutableArray<LoopAction> Path) Shorten(Nest start, Nest best, ImmutableArray<LoopAction> path)
    {
        var genes = ToGenes(start, path);
        for (int i = genes.Count - 1; i >= 0; i--)
            for (int j = i; j < genes.Count; j++)
            {
                var trial = genes.Where((_, k) => k != i && k != j).ToList();
                if (Genome.Build(start, trial, int.MaxValue) is not { } g || g.Genes.Length != trial.Count || g.Result.ScheduleKey != best.ScheduleKey) continue;
                genes = trial;
                break;
            }
        var shortened = Genome.Build(start, genes, int.MaxValue);
        return shortened.Actions.Length < path.Length ? (shortened.Result, shortened.Actions) : (best, path);
    }

    /// <summary>The kernel-changing actions of a legal path as genes.</summary>
    static List<Gene> ToGenes(Nest nest, IEnumerable<LoopAction> path)
    {
        var genes = new List<Gene>();
        foreach (var a in path)
        {
            if (Moves.ChangesKernel(a)) genes.Add(Gene.At(nest, nest.Cursor, a));
            nest = Transforms.Apply(nest, a);
        }
        return genes;
    }

    static List<string> PathKeys(Nest start, IEnumerable<LoopAction> path)
    {
        var keys = new List<string> { start.ScheduleKey };
        foreach (var a in path)
        {
            start = Transforms.Apply(start, a);
            if (keys[^1] != start.ScheduleKey) keys.Add(start.ScheduleKey);
        }
        return keys;
    }
}
