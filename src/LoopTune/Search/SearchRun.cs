using System.Collections.Immutable;
using System.Diagnostics;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Search;

/// <summary>A state a search holds: the environment's state there (the nest, the seed's actions and the space's ids from
/// the start that reach it, its speed) and the state's key in the search's space (<see cref="ActionSpace.StateKey"/>).</summary>
public sealed record SearchState(EnvState At, string Key)
{
    public Nest Nest => At.Nest;

    /// <summary>The seed's legal actions from the start.</summary>
    public ImmutableArray<LoopAction> Path => At.History;

    /// <summary>The ids of the space from the start.</summary>
    public ImmutableArray<int> Ids => At.Ids;

    public double Gflops => At.Speed.Gflops;
}

/// <summary>
/// The bookkeeping every search shares for one run: the environment it steps (<see cref="LoopTuneEnv"/> in the run's
/// <see cref="Space"/>; a search branches by restoring a state it reached), the seeded random generator, the budget (clock
/// and evaluation count), one evaluator call per distinct schedule (later visits are answered from this run's memory and
/// not counted), the best state so far, and the search tree. Searches only decide which ids to try.
/// </summary>
public sealed class SearchRun
{
    readonly IEvaluator evaluator;
    readonly Stopwatch clock = StartClock();
    readonly Dictionary<string, double> memory = [];
    readonly List<SearchState> leaders = [];
    readonly LoopTuneEnv env;

    /// <summary>The run's clock, started once the code generator is warm (<see cref="Kernel.WarmUp"/>: the first kernel a
    /// process compiles would otherwise spend some 50 ms of the budget compiling LoopTune's own code).</summary>
    static Stopwatch StartClock()
    {
        Kernel.WarmUp();
        return Stopwatch.StartNew();
    }

    /// <summary>How many of the fastest states a run's end times again side by side, when its evaluator can
    /// (<see cref="IConfirmingEvaluator"/>).</summary>
    public const int Finalists = 3;

    /// <summary>Starts a run in <paramref name="space"/> (default: <see cref="ActionSpace.Tile"/>): evaluates
    /// <paramref name="start"/> (one evaluation, whatever the budget). A policy's run gives its episode length and
    /// machine_tensor, so that the environment's observations are the ones the policy was trained on.</summary>
    public SearchRun(string method, Nest start, IEvaluator evaluator, SearchBudget budget, int seed, ActionSpace? space = null,
        int episodeLength = MaxDepth, float[]? machine = null)
    {
        ArgumentNullException.ThrowIfNull(start);
        this.evaluator = evaluator ?? throw new ArgumentNullException(nameof(evaluator));
        (Method, Budget, Rng, Space) = (method, budget.Validate(), new Random(seed), space ?? ActionSpace.Tile);
        env = new LoopTuneEnv(new Memo(this), 1, episodeLength, Space, machine);
        env.Restore(new EnvState(start, [], [], new Evaluated(Measure(start), 0, false)));
        Root = Best = new SearchState(env.Snapshot, Space.StateKey(start));
        Lead(Root);
    }

    /// <summary>The longest path of a search's environment (the searches stop far earlier).</summary>
    public const int MaxDepth = 1000;

    public string Method { get; }
    public SearchBudget Budget { get; }

    /// <summary>The design space the run's ids belong to.</summary>
    public ActionSpace Space { get; }

    /// <summary>The environment the run steps, standing at the last state stepped to or restored (a policy reads its
    /// observation there).</summary>
    public LoopTuneEnv Env => env;

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

    /// <summary>True once the time is up or the evaluation limit is reached: no new schedule can be evaluated. The time is
    /// up when a new evaluation, taking as long as this run's have on average, would end past the budget (on a large
    /// problem one takes a tenth of a second or more: a probe, a slice, a packed copy of a large input), and with a
    /// confirming evaluator <see cref="Reserve"/> early, so that the end's side-by-side timing of the finalists fits in
    /// the budget too.</summary>
    public bool Exhausted => Evaluations >= (Budget.MaxEvaluations ?? int.MaxValue) || clock.Elapsed + MeanEvaluation >= Budget.Time - Reserve;

    TimeSpan measuring, longest;
    int timed;

    /// <summary>What a variant of the finish is expected to cost, to be started only when the time left covers it: the
    /// longest new evaluation of the run so far, at least twice the mean (a variant of a large problem, a blocked or packed
    /// form timed on a slice after a probe, took 0.1-0.15 s where the search's evaluations averaged 0.03 s, and four of
    /// them ran a 0.9 s search to 1.2 s when judged by the mean).</summary>
    TimeSpan VariantCost => TimeSpan.FromTicks(Math.Max(2 * MeanEvaluation.Ticks, longest.Ticks));

    /// <summary>The mean time of this run's new evaluations after the start's (zero before the first). The start's is
    /// left out: it pays for the evaluator's buffers (200 MB filled for a 4096^3 matmul, 0.4 s here) once.</summary>
    TimeSpan MeanEvaluation => timed == 0 ? TimeSpan.Zero : measuring / timed;

    /// <summary>The time kept for <see cref="Finish"/>'s timing of the finalists and the layout variants of the fastest: 1.5 times their sampling time
    /// (<see cref="LoopTune.Measure.MeasureOptions.Confirm"/>), at most a quarter of the budget; none without a confirming evaluator.</summary>
    public TimeSpan Reserve => evaluator is IConfirmingEvaluator
        ? TimeSpan.FromSeconds(Math.Min(1.5 * (Finalists + (Space.LoopOf(0) is null ? 0 : LayoutVariantsKept + BlockLevels.Length)) * LoopTune.Measure.MeasureOptions.Confirm.MinSeconds, Budget.Time.TotalSeconds / 4))
        : TimeSpan.Zero;

    /// <summary>The cache levels whose blocking of the fastest finalist a finish tries (<see cref="BlockVariants"/>).</summary>
    static readonly int[] BlockLevels = [1, 2, 3];

    /// <summary>Most layout variants of the fastest finalist a loop space's finish adds (<see cref="LayoutVariants"/>: one
    /// per set of inputs a <c>pack</c> edit toggles, at most two, as there are two inputs).</summary>
    const int LayoutVariantsKept = 2;

    /// <summary>True when <paramref name="nest"/>'s schedule was evaluated in this run.</summary>
    public bool Knows(Nest nest) => memory.ContainsKey(nest.ScheduleKey);

    /// <summary>The GFLOPS of a schedule already evaluated in this run, or null.</summary>
    public double? Known(Nest nest) => memory.TryGetValue(nest.ScheduleKey, out var g) ? g : null;

    /// <summary>The legal ids of <paramref name="state"/> that lead to new states, with what they do (<see cref="ActionSpace.Expand"/>).</summary>
    public List<(int Id, IReadOnlyList<LoopAction> Actions, Nest Result)> Expand(SearchState state) => Space.Expand(state.Nest);

    /// <summary>Steps the environment from <paramref name="from"/> by id <paramref name="id"/> (legal there): the state it
    /// leads to, evaluated (from this run's memory when the schedule was seen before) and linked to it in the tree; null
    /// when that needs a new evaluation and the budget is spent.</summary>
    public SearchState? Step(SearchState from, int id)
    {
        var (_, result) = Space.Apply(from.Nest, id);
        if (!memory.ContainsKey(result.ScheduleKey) && Exhausted) return null;
        env.Restore(from.At);
        env.Step(id);
        var state = new SearchState(env.Snapshot, Space.StateKey(env.State));
        Tree.Link(from.Nest.ScheduleKey, state.Nest.ScheduleKey, Space.Describe(id));
        if (state.Gflops > Best.Gflops) Best = state;
        Lead(state);
        return state;
    }

    /// <summary>Puts the environment at the state that <paramref name="ids"/> (legal from the start, standing for the seed's
    /// <paramref name="actions"/>) lead to, <paramref name="nest"/>, evaluated once (from this run's memory when seen before)
    /// and linked to <paramref name="parent"/> in the tree by an edge labelled <paramref name="label"/>: how a genome is
    /// reached, without evaluating the states on its way. Null when that needs a new evaluation and the budget is spent.</summary>
    public SearchState? Reach(ImmutableArray<int> ids, ImmutableArray<LoopAction> actions, Nest nest, SearchState parent, string label) =>
        !memory.ContainsKey(nest.ScheduleKey) && Exhausted ? null : Place(ids, actions, nest, parent, label);

    SearchState Place(ImmutableArray<int> ids, ImmutableArray<LoopAction> actions, Nest nest, SearchState parent, string label)
    {
        double gflops = memory.TryGetValue(nest.ScheduleKey, out double g) ? g : Measure(nest);
        env.Restore(new EnvState(nest, actions, ids, new Evaluated(gflops, 0, false)));
        var state = new SearchState(env.Snapshot, Space.StateKey(nest));
        Tree.Link(parent.Nest.ScheduleKey, nest.ScheduleKey, label);
        if (state.Gflops > Best.Gflops) Best = state;
        Lead(state);
        return state;
    }

    /// <summary>The run's evaluator seen through its memory: a schedule evaluated before is answered from it, uncounted.</summary>
    sealed class Memo(SearchRun run) : IEvaluator
    {
        public Evaluated Evaluate(Nest nest) =>
            run.memory.TryGetValue(nest.ScheduleKey, out double g) ? new Evaluated(g, 0, true) : new Evaluated(run.Measure(nest), 0, false);
    }

    /// <summary>
    /// The layout variants of the fastest finalist (a postprocessor, as MetaSchedule's layout rewrite): the schedules one <c>pack</c>
    /// edit away in a loop space, one per distinct result, each measured once, in the time kept for the finish (never past
    /// the budget's time or evaluation limit). Packing pays only where an input is read far apart (a large
    /// matmul's <c>B</c>, 4 KiB down k) and costs a copy everywhere, so whether it pays is measured, not guessed; a
    /// search or policy that packs on its own has its packed states among the finalists already.
    /// </summary>
    IEnumerable<SearchState> LayoutVariants(SearchState state)
    {
        int edit = Space.LoopOf(0) is null ? -1 : Space.EditOf(Actions.Get("pack"));
        return edit < 0 ? [] : Variants(state, Enumerable.Range(0, state.Nest.Count).Select(loop => Space.IdOf(loop, edit)));
    }

    /// <summary>
    /// The cache-blocking variants of the fastest finalist (a postprocessor, as <see cref="LayoutVariants"/>): for each cache
    /// level, block_lN (<see cref="ActionSpace.BlockEdit"/>) at the innermost loop where it applies, the loop whose
    /// footprint first passes the level's share: the classic place to tile for that level. Each distinct result is measured
    /// once, in the time kept for the finish (never past the budget). A space without the macros has none. A loop whose
    /// footprint fits has no blocking, so a small problem spends nothing here; a large one is where a policy's rollout may
    /// end unblocked: on mm 3072 1024 1536, <c>n:32 m:1+1024 m:256 k:96 k:16 m:8u n:32v</c> read A (18 MiB) once per
    /// 32 columns and ran at 74 GFLOPS (0.43x oneDNN), block_l1 at its k:96 (<c>k:12 n:32 m:1+1024 m:256 k:8 k:16 m:8u
    /// n:32v</c>) at 141 (0.85x), side by side.
    /// </summary>
    IEnumerable<SearchState> BlockVariants(SearchState state) =>
        Variants(state, BlockLevels.Select(Space.BlockEdit).Where(edit => edit >= 0)
            .Select(edit => Enumerable.Range(0, state.Nest.Count).Reverse().Select(loop => Space.IdOf(loop, edit))
                .FirstOrDefault(id => Space.TryApply(state.Nest, id) is not null, -1))
            .Where(id => id >= 0));

    /// <summary>The finish's variants of <paramref name="state"/> that <paramref name="ids"/> (of the run's space) lead to,
    /// one per distinct result, an illegal id skipped, each measured in turn while the evaluation limit allows and the time
    /// left covers one (<see cref="VariantCost"/>, or what a variant took if more: a packed copy of a large input makes one
    /// dearer than the average).</summary>
    IEnumerable<SearchState> Variants(SearchState state, IEnumerable<int> ids)
    {
        var seen = new HashSet<string>();
        var cost = VariantCost;
        foreach (int id in ids)
        {
            if (Space.TryApply(state.Nest, id) is not { } m || !seen.Add(m.Result.ScheduleKey)) continue;
            if (Evaluations >= (Budget.MaxEvaluations ?? int.MaxValue) || clock.Elapsed + cost >= Budget.Time) yield break;
            var before = clock.Elapsed;
            var variant = Place(state.Ids.Add(id), state.Path.AddRange(m.Actions), m.Result, state, Space.Describe(id));
            if (clock.Elapsed - before > cost) cost = clock.Elapsed - before;
            yield return variant;
        }
    }

    /// <summary>Keeps the <see cref="Finalists"/> fastest distinct schedules seen, fastest first (the earlier on a tie).</summary>
    void Lead(SearchState state)
    {
        if (leaders.Any(l => l.Nest.ScheduleKey == state.Nest.ScheduleKey)) return;
        int at = leaders.FindIndex(l => state.Gflops > l.Gflops);
        leaders.Insert(at < 0 ? leaders.Count : at, state);
        if (leaders.Count > Finalists) leaders.RemoveAt(Finalists);
    }

    readonly HashSet<string> estimated = [];

    double Measure(Nest nest)
    {
        var before = clock.Elapsed;
        var e = evaluator.Evaluate(nest);
        Evaluations++;
        if (!e.Recalled) Measured++;
        if (!e.Recalled && Evaluations > 1)
        {
            var took = clock.Elapsed - before;
            (timed, measuring, longest) = (timed + 1, measuring + took, took > longest ? took : longest);
        }
        if (e.Estimated) estimated.Add(nest.ScheduleKey);
        memory[nest.ScheduleKey] = e.Gflops;
        Tree.Add(nest.ScheduleKey, e.Gflops);
        return e.Gflops;
    }

    /// <summary>The result: the best state, the shortest form of its path that <see cref="Shorten"/> finds, the counts and
    /// the time; the tree marks the path the search took to the best state. When the evaluator can
    /// (<see cref="IConfirmingEvaluator"/>), the best state is the fastest of the <see cref="Finalists"/> fastest ones timed
    /// again side by side, after the budget and in the run's time: the fastest of many quick measurements on a noisy machine
    /// is often just the luckiest (the searches' own figure stays the one they measured).</summary>
    /// <param name="alsoConsider">States that are finalists whatever their quick figures (a policy search's greedy rollout's best).</param>
    public SearchResult Finish(params SearchState[] alsoConsider)
    {
        // the finalists down to the start, if it is one: the answer is never a state that measured slower than the start
        var finalists = leaders.Take(leaders.FindIndex(l => l.Nest.ScheduleKey == Root.Nest.ScheduleKey) is var r and >= 0 ? r + 1 : leaders.Count).ToList();
        void Add(IEnumerable<SearchState> states)
        {
            foreach (var s in states)
                if (s.Gflops >= Root.Gflops && !finalists.Any(f => f.Nest.ScheduleKey == s.Nest.ScheduleKey)) finalists.Add(s);
        }
        Add(alsoConsider);
        if (evaluator is IConfirmingEvaluator && finalists.Count > 0)
        {
            // blocked for the caches first, then the layouts of whichever is fastest then
            Add(BlockVariants(finalists.MaxBy(f => f.Gflops)!));
            Add(LayoutVariants(finalists.MaxBy(f => f.Gflops)!));
        }
        if (evaluator is IConfirmingEvaluator confirming && finalists.Count > 1)
            Best = finalists[confirming.Fastest([.. finalists.Select(l => l.Nest)], Budget.Time - clock.Elapsed)];
        Tree.Best = Best.Nest.ScheduleKey;
        Tree.BestPath = PathKeys(Root.Nest, Best.Path);
        var (best, ids, path) = Shorten(Space, Root.Nest, Best.Nest, Best.Ids);
        return new SearchResult(Method, Root.Nest, best, Best.Gflops, Root.Gflops, path, Evaluations, Measured, Seconds, Tree, Space.Name, ids)
        {
            BestEstimated = estimated.Contains(best.ScheduleKey), BaseEstimated = estimated.Contains(Root.Nest.ScheduleKey), Estimates = estimated.Count,
        };
    }

    /// <summary>
    /// Drops the ids of <paramref name="ids"/> that the best schedule does not need: one, or two (an unroll toggled twice, a
    /// split merged back), whose removal still replays to the same schedule, in one pass from the last back. Ids are replayed
    /// as genes (in a loop space a loop named by variable and rank, see <see cref="Gene"/>), so the later ones keep their
    /// loops. Costs no evaluation: the schedule, hence the kernel, is the same. Returns the best nest, the ids and the seed's
    /// actions they stand for.
    /// </summary>
    public static (Nest Best, ImmutableArray<int> Ids, ImmutableArray<LoopAction> Path) Shorten(ActionSpace space, Nest start, Nest best, ImmutableArray<int> ids)
    {
        if (space == ActionSpace.Cursor)
        {
            // the seed's actions are the cursor space's ids: shorten them as loop-space genes (so that dropping a move keeps
            // the later ones on their loops), then spell the result out as the seed's actions again
            var loopIds = new List<int>();
            var n = start;
            foreach (var a in ids.Select(id => Actions.All[id]))
            {
                if (Moves.ChangesKernel(a)) loopIds.Add(ActionSpace.Loop.IdOf(n.Cursor, ActionSpace.Loop.EditOf(a)));
                n = Transforms.Apply(n, a);
            }
            // (a split the loop space skips as idle, which the cursor space allows, leaves the path as it is)
            return ShortenIn(ActionSpace.Loop, start, best, [.. loopIds]) is var (b, loopShort, path) && loopShort.Length < loopIds.Count
                ? (b, [.. path.Select(a => a.Id)], path) : (best, ids, [.. ids.Select(id => Actions.All[id])]);
        }
        return ShortenIn(space, start, best, ids) ?? (best, ids, Replay(space, start, ids));
    }

    /// <summary>The shortening in <paramref name="space"/>, or null when the ids do not replay there (nothing to shorten safely).</summary>
    static (Nest Best, ImmutableArray<int> Ids, ImmutableArray<LoopAction> Path)? ShortenIn(ActionSpace space, Nest start, Nest best, ImmutableArray<int> ids)
    {
        if (Genome.ToGenes(space, start, ids) is not { } genes) return null;
        var full = Genome.Build(space, start, genes, int.MaxValue);
        if (full.Ids.Length != ids.Length || full.Result.ScheduleKey != best.ScheduleKey) return null;
        for (int i = genes.Count - 1; i >= 0; i--)
            for (int j = i; j < genes.Count; j++)
            {
                var trial = genes.Where((_, k) => k != i && k != j).ToList();
                if (Genome.Build(space, start, trial, int.MaxValue) is not { } g || g.Genes.Length != trial.Count || g.Result.ScheduleKey != best.ScheduleKey) continue;
                genes = trial;
                break;
            }
        var shortened = Genome.Build(space, start, genes, int.MaxValue);
        return (shortened.Result, shortened.Ids, shortened.Actions);
    }

    /// <summary>The seed's actions that <paramref name="ids"/> stand for from <paramref name="start"/>.</summary>
    static ImmutableArray<LoopAction> Replay(ActionSpace space, Nest start, IEnumerable<int> ids)
    {
        var actions = ImmutableArray.CreateBuilder<LoopAction>();
        foreach (int id in ids)
        {
            var (a, next) = space.Apply(start, id);
            actions.AddRange(a);
            start = next;
        }
        return actions.ToImmutable();
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
