using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Search;

/// <summary>Hyperparameters of <see cref="GeneticSearch"/>.</summary>
/// <param name="Population">Individuals per generation.</param>
/// <param name="Elite">The fastest individuals copied unchanged into the next generation.</param>
/// <param name="Tournament">Individuals drawn per parent selection; the fastest of them is the parent.</param>
/// <param name="MaxGenes">Most genes (moves) per individual.</param>
/// <param name="InitialGenes">Random moves per individual of the first generation (1 to this many).</param>
/// <param name="CrossoverRate">Chance that a child is a crossover of two parents rather than a copy of one.</param>
/// <param name="MutationRate">Chance that a child is mutated; a child whose schedule was already seen is mutated again (up to
/// <see cref="MaxRetries"/> mutations in all) so that generations keep exploring.</param>
/// <param name="MaxRetries">Most mutations per child.</param>
/// <param name="MaxIdleGenerations">Stop after this many generations in a row found no new schedule.</param>
/// <param name="Immigrants">New random individuals (like the first generation's) in every generation, so that the population
/// keeps meeting other regions of the space instead of converging on the first basin it finds (without them, 2 of 9 runs on
/// three mm64_256_16_range benchmarks stayed near 40 GFLOPS with k vectorized; with 4, none of 9 did).</param>
public sealed record GeneticOptions(int Population = 24, int Elite = 2, int Tournament = 3, int MaxGenes = 12, int InitialGenes = 6,
    double CrossoverRate = 0.7, double MutationRate = 0.5, int MaxRetries = 4, int MaxIdleGenerations = 50, int Immigrants = 4);

/// <summary>
/// <c>genetic</c>: a population of move sequences (<see cref="Genome"/>), fitness = measured GFLOPS of the schedule the
/// sequence reaches. The first generation is the start plus random sequences; each next one keeps the
/// <see cref="GeneticOptions.Elite"/> fastest, adds <see cref="GeneticOptions.Immigrants"/> new random individuals, and fills
/// up with children of tournament-selected parents: one-point crossover, then mutation (insert, delete or replace a move, or
/// truncate). Children are rebuilt by replaying their genes
/// and dropping the ones that are illegal where they land, so every individual is a legal action sequence.
/// </summary>
public sealed class GeneticSearch(GeneticOptions? options = null) : ISearch
{
    public GeneticOptions Options { get; } = Check(options ?? new());
    public string Name => "genetic";
    public string Description => $"population {Options.Population} of move sequences (up to {Options.MaxGenes}), tournament {Options.Tournament}, elite {Options.Elite}, {Options.Immigrants} immigrants, repaired crossover and mutation";

    sealed record Individual(Genome Genome, SearchState State);

    public SearchResult Run(Nest start, IEvaluator evaluator, SearchBudget budget, int seed, ActionSpace space)
    {
        var run = new SearchRun(Name, start, evaluator, budget, seed, space);
        var population = new List<Individual> { new(Genome.Build(space, start, [], Options.MaxGenes), run.Root) };
        while (population.Count < Options.Population)
        {
            var g = Genome.Random(space, start, run.Rng, 1 + run.Rng.Next(Options.InitialGenes));
            if (Evaluate(run, g, run.Root, "random") is not { } s) return run.Finish();
            population.Add(new(g, s));
        }
        for (int idle = 0; idle < Options.MaxIdleGenerations && !run.Exhausted;)
        {
            int before = run.Evaluations;
            if (Next(run, start, population) is not { } next) break;
            population = next;
            idle = run.Evaluations == before ? idle + 1 : 0;
        }
        return run.Finish();
    }

    /// <summary>The next generation, or null when the budget ended while making it.</summary>
    List<Individual>? Next(SearchRun run, Nest start, List<Individual> population)
    {
        var ranked = population.OrderByDescending(i => i.State.Gflops).ToList();
        var next = ranked.Take(Options.Elite).ToList();
        for (int i = 0; i < Options.Immigrants && next.Count < Options.Population; i++)
        {
            var g = Genome.Random(run.Space, start, run.Rng, 1 + run.Rng.Next(Options.InitialGenes));
            if (Evaluate(run, g, run.Root, "random") is not { } s) return null;
            next.Add(new(g, s));
        }
        while (next.Count < Options.Population)
        {
            var a = Select(run.Rng, population);
            bool cross = run.Rng.NextDouble() < Options.CrossoverRate;
            var child = cross ? Genome.Crossover(run.Space, start, a.Genome, Select(run.Rng, population).Genome, run.Rng, Options.MaxGenes) : a.Genome;
            bool mutate = run.Rng.NextDouble() < Options.MutationRate;
            // mutate once if drawn, and again while the child is a schedule already seen, at most MaxRetries mutations in all
            for (int t = 0; t < Options.MaxRetries && ((mutate && t == 0) || run.Knows(child.Result)); t++)
                child = Genome.Mutate(run.Space, start, child, run.Rng, Options.MaxGenes);
            if (Evaluate(run, child, a.State, cross ? "crossover" : "mutation") is not { } s) return null;
            next.Add(new(child, s));
        }
        return next;
    }

    Individual Select(Random rng, List<Individual> population)
    {
        var best = population[rng.Next(population.Count)];
        for (int i = 1; i < Options.Tournament; i++)
        {
            var other = population[rng.Next(population.Count)];
            if (other.State.Gflops > best.State.Gflops) best = other;
        }
        return best;
    }

    static SearchState? Evaluate(SearchRun run, Genome g, SearchState parent, string how) => run.Reach(g.Ids, g.Actions, g.Result, parent, how);

    static GeneticOptions Check(GeneticOptions o) =>
        o.Population >= 2 && o.Elite >= 0 && o.Elite < o.Population && o.Tournament >= 1 && o.MaxGenes >= 1 && o.InitialGenes >= 1 && o.MaxRetries >= 1 && o.Immigrants >= 0
            ? o : throw new SearchError($"bad genetic options: {o}");
}
