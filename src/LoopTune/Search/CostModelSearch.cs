using System.Diagnostics;
using LoopTune.CostModel;
using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Search;

/// <summary>Hyperparameters of <see cref="CostModelSearch"/>.</summary>
/// <param name="Candidates">Candidates made and scored by the model per round.</param>
/// <param name="MeasurePerRound">Of those, how many are measured at least: the model's top-ranked ones.</param>
/// <param name="MaxMeasurePerRound">Of those, how many are measured at most: where breeding, scoring and refitting a round
/// take longer than measuring its candidates (small kernels), the next round measures more of its top-ranked ones, so that
/// measuring takes about as long as the rest (MetaSchedule measures 64 a round). On the Zen 3's small convolutions a round
/// of 1024 candidates took about 80 ms besides its 8 measurements of about 3 ms.</param>
/// <param name="Population">The best-scored candidates not measured that a round passes on as parents of the next, besides
/// the fastest measured ones (as many again).</param>
/// <param name="InitialRandom">Random sequences the first round's candidates are bred from.</param>
/// <param name="Epsilon">Chance that a measured slot goes to a random candidate instead of the next-best one (MetaSchedule's
/// epsilon-greedy), so that a model that is wrong about a region still gets told.</param>
/// <param name="MaxGenes">Most moves per candidate.</param>
/// <param name="InitialGenes">Random moves per initial sequence (1 to this many).</param>
/// <param name="CrossoverRate">Chance that a child is a crossover of two parents before its mutation.</param>
/// <param name="MaxIdleRounds">Stop after this many rounds in a row measured nothing new (the space is used up).</param>
/// <param name="UseSavedModel">Start from this machine's saved model (<see cref="ScheduleCostModel.DefaultPath"/>) when there
/// is one; without it (or with false) the model learns from this search's measurements alone.</param>
/// <param name="DistinctTiles">A round's measured slots go first to the best-scored candidate of each register tile (the
/// unrolled and vectorized loops at the bottom of the nest: <see cref="TileOf"/>), best first, and only then to the next
/// best of a tile already chosen: the model ranks tiles of one kind against each other less well than it ranks kinds, and
/// eight variants of one tile's outer loops teach the search's correction little.</param>
public sealed record CostModelOptions(int Candidates = 1024, int MeasurePerRound = 8, int Population = 64, int InitialRandom = 256,
    double Epsilon = 0.05, int MaxGenes = 12, int InitialGenes = 6, double CrossoverRate = 0.5, int MaxIdleRounds = 20, bool UseSavedModel = true,
    int MaxMeasurePerRound = 64, bool DistinctTiles = true);

/// <summary>One round of a <see cref="CostModelSearch"/>: every candidate scored (predicted log2 GFLOPS) in the order made, and
/// the ones measured, those chosen by rank (<see cref="Chosen"/>) apart from those drawn at random (<see cref="Explored"/>).</summary>
public sealed record CostModelRound(int Round, IReadOnlyList<(Nest Nest, double Score)> Candidates, IReadOnlyList<Nest> Chosen, IReadOnlyList<Nest> Explored);

/// <summary>
/// <c>cost_model</c>: an evolutionary search in the space scored by a learned cost model, measuring only the most promising
/// few per round, as TVM's MetaSchedule does. Each round breeds <see cref="CostModelOptions.Candidates"/> move sequences
/// (<see cref="Genome"/>: crossover and mutation, repaired to legal sequences) from the fastest schedules measured so far
/// and the best-scored ones of the round before, scores every one with the model (<see cref="OnlineCostModel"/>: this
/// machine's <see cref="ScheduleCostModel"/> when one is saved, plus a correction fitted to this search's own
/// measurements), measures the top-ranked ones it has not measured, the best of each register tile first
/// (<see cref="CostModelOptions.DistinctTiles"/>; <see cref="CostModelOptions.MeasurePerRound"/>, more where
/// the round's other work takes longer than measuring them, up to <see cref="CostModelOptions.MaxMeasurePerRound"/>; each slot
/// a random candidate instead with chance <see cref="CostModelOptions.Epsilon"/>), adds the measurements to the model's rows
/// and refits the correction. Every measurement goes through the run's evaluator, so the measurement store grows too.
/// </summary>
public sealed class CostModelSearch(CostModelOptions? options = null, ScheduleCostModel? model = null) : ISearch
{
    public const string MethodName = "cost_model";

    public CostModelOptions Options { get; } = Check(options ?? new());
    public string Name => MethodName;
    public string Description => $"{Options.Candidates} candidates a round bred from the fastest and best-scored, scored by this machine's cost model, its top {Options.MeasurePerRound} to {Options.MaxMeasurePerRound} measured (as long as the rest of the round takes{(Options.DistinctTiles ? "; the best of each register tile first" : "")}), the model refitted";

    /// <summary>Told every round (the tests check which of the scored candidates are measured).</summary>
    public Action<CostModelRound>? Observer { get; init; }

    public SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed, ActionSpace space)
    {
        var (machine, runtime, lanes) = ScheduleCostModel.KeysOf(evaluator);
        var prior = model ?? (Options.UseSavedModel ? ScheduleCostModel.TryLoadDefault(machine, runtime) : null);
        var run = new SearchRun(Name, start, evaluator, budget, seed, space);
        var online = new OnlineCostModel(prior, lanes);
        online.Add(start, run.Root.Gflops);
        var measured = new List<(Genome Genome, double Gflops)> { (Genome.Build(space, start, [], Options.MaxGenes), run.Root.Gflops) };
        var pool = Enumerable.Range(0, Options.InitialRandom).Select(_ => Genome.Random(space, start, run.Rng, 1 + run.Rng.Next(Options.InitialGenes), sample: true)).ToList();
        for (int round = 0, idle = 0, slots = Options.MeasurePerRound; idle < Options.MaxIdleRounds && !run.Exhausted; round++)
        {
            long roundStart = Stopwatch.GetTimestamp();
            var candidates = Breed(run, start, measured, pool);
            if (candidates.Count == 0) break;
            var scores = online.Score([.. candidates.Select(g => g.Result)]);
            var order = Enumerable.Range(0, candidates.Count).OrderByDescending(i => scores[i]).ToList();
            var (chosen, explored) = Choose(run.Rng, Options.DistinctTiles ? Spread(order, candidates) : order, slots);
            bool spent = false;
            int before = run.Evaluations;
            long measureStart = Stopwatch.GetTimestamp();
            foreach (int i in chosen.Concat(explored))
            {
                var g = candidates[i];
                if (run.Reach(g.Ids, g.Actions, g.Result, run.Root, explored.Contains(i) ? "explored" : "cost model") is not { } state)
                {
                    spent = true;
                    break;
                }
                online.Add(g.Result, state.Gflops);
                measured.Add((g, state.Gflops));
            }
            Observer?.Invoke(new CostModelRound(round, [.. candidates.Select((g, i) => (g.Result, scores[i]))],
                [.. chosen.Select(i => candidates[i].Result)], [.. explored.Select(i => candidates[i].Result)]));
            if (spent) break;
            long measureEnd = Stopwatch.GetTimestamp();
            online.Refit();
            var picked = chosen.Concat(explored).ToHashSet();
            pool = [.. order.Where(i => !picked.Contains(i)).Take(Options.Population).Select(i => candidates[i])];
            idle = run.Evaluations == before ? idle + 1 : 0;
            // the next round measures about as long as this one spent on everything else (breeding, scoring, refitting)
            slots = Slots(measureStart - roundStart + Stopwatch.GetTimestamp() - measureEnd, measureEnd - measureStart, run.Evaluations - before);
        }
        return run.Finish();
    }

    /// <summary>Up to <see cref="CostModelOptions.Candidates"/> distinct schedules not measured in this run: the pool itself,
    /// then children of parents drawn from the pool and the fastest measured sequences.</summary>
    List<Genome> Breed(SearchRun run, Nest start, List<(Genome Genome, double Gflops)> measured, List<Genome> pool)
    {
        var parents = measured.OrderByDescending(m => m.Gflops).Take(Options.Population).Select(m => m.Genome).Concat(pool).ToList();
        var seen = new HashSet<string>();
        var candidates = new List<Genome>();
        void Offer(Genome g)
        {
            if (!run.Knows(g.Result) && seen.Add(g.Result.ScheduleKey)) candidates.Add(g);
        }
        foreach (var g in pool) Offer(g);
        for (int attempt = 0; candidates.Count < Options.Candidates && attempt < 4 * Options.Candidates; attempt++)
        {
            var child = parents[run.Rng.Next(parents.Count)];
            if (run.Rng.NextDouble() < Options.CrossoverRate)
                child = Genome.Crossover(run.Space, start, child, parents[run.Rng.Next(parents.Count)], run.Rng, Options.MaxGenes);
            Offer(Genome.Mutate(run.Space, start, child, run.Rng, Options.MaxGenes, sample: true));
        }
        return candidates;
    }

    /// <summary>How many the next round measures: as many as take as long to measure as the round's other work took
    /// (<paramref name="besides"/> ticks, against <paramref name="measuring"/> for <paramref name="measured"/> measurements),
    /// within <see cref="CostModelOptions.MeasurePerRound"/> and <see cref="CostModelOptions.MaxMeasurePerRound"/>.</summary>
    int Slots(long besides, long measuring, int measured)
    {
        if (measured <= 0) return Options.MeasurePerRound;
        double each = Math.Max(measuring, 1) / (double)measured;
        return (int)Math.Clamp(Math.Round(besides / each), Options.MeasurePerRound, Options.MaxMeasurePerRound);
    }

    /// <summary><paramref name="order"/> (best-scored first) with the best of each register tile first (in their order), then
    /// the rest (in theirs) (<see cref="CostModelOptions.DistinctTiles"/>).</summary>
    static List<int> Spread(List<int> order, List<Genome> candidates)
    {
        var seen = new HashSet<string>();
        var (first, rest) = (new List<int>(), new List<int>());
        foreach (int i in order) (seen.Add(TileOf(candidates[i].Result)) ? first : rest).Add(i);
        return [.. first, .. rest];
    }

    /// <summary>The register tile of <paramref name="nest"/>: its innermost unrolled and vectorized loops, named as in the
    /// nest (<c>c':2u h:14u r:3u f:16v</c> of <c>w:6 s:3 c:8 c:2u h:14u r:3u f:16v</c>); empty when it has none.</summary>
    public static string TileOf(Nest nest) => string.Join(' ', Enumerable.Range(nest.SpelledOutFrom, nest.Count - nest.SpelledOutFrom)
        .Select(i => $"{nest.LoopName(i)}:{nest[i].Size}{(nest[i].Tail > 0 ? $"+{nest[i].Tail}" : "")}{Nest.Letter(nest[i].Annotation)}"));

    /// <summary>The candidates to measure, by their index: the <paramref name="slots"/> top-ranked of <paramref name="order"/>
    /// (best first), except that each slot goes to a random candidate instead with chance
    /// <see cref="CostModelOptions.Epsilon"/>.</summary>
    (List<int> Chosen, List<int> Explored) Choose(Random rng, List<int> order, int slots)
    {
        slots = Math.Min(slots, order.Count);
        int explore = 0;
        for (int s = 0; s < slots; s++) if (rng.NextDouble() < Options.Epsilon) explore++;
        var chosen = order.Take(slots - explore).ToList();
        var rest = order.Skip(chosen.Count).ToList();
        var explored = new List<int>();
        for (int e = 0; e < explore && rest.Count > 0; e++)
        {
            int at = rng.Next(rest.Count);
            explored.Add(rest[at]);
            rest.RemoveAt(at);
        }
        return (chosen, explored);
    }

    static CostModelOptions Check(CostModelOptions o) =>
        o.Candidates >= 1 && o.MeasurePerRound >= 1 && o.Population >= 1 && o.InitialRandom >= 1 && o.Epsilon is >= 0 and <= 1 && o.MaxGenes >= 1
            && o.InitialGenes >= 1 && o.CrossoverRate is >= 0 and <= 1 && o.MaxIdleRounds >= 1 && o.MaxMeasurePerRound >= o.MeasurePerRound
            ? o : throw new SearchError($"bad cost_model options: {o}");
}
