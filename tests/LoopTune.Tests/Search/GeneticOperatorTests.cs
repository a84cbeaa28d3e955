using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Search;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Search;

/// <summary>Crossover and mutation of the genetic search never produce an illegal action sequence.</summary>
public sealed class GeneticOperatorTests
{
    const int MaxGenes = 12;

    /// <summary>A random gene list, legal or not: random variables, ranks (some past the loops there are) and actions.</summary>
    static Genome RandomParent(ActionSpace space, Nest start, Random rng)
    {
        if (rng.Next(2) == 0) return Genome.Random(space, start, rng, rng.Next(MaxGenes + 1));
        var genes = Enumerable.Range(0, rng.Next(2 * MaxGenes)).Select(_ => space == ActionSpace.Cursor
            ? new Gene(-1, 0, rng.Next(space.Count))
            : new Gene(rng.Next(start.Computation.Vars.Length), rng.Next(3), rng.Next(space.PerLoop)));
        return Genome.Build(space, start, genes, MaxGenes);
    }

    static void AssertLegal(ActionSpace space, Nest start, Genome g)
    {
        var nest = start;
        foreach (var a in g.Actions)
        {
            Assert.True(Transforms.IsLegal(nest, a), $"{a.Name} is illegal in {nest}");
            nest = Transforms.Apply(nest, a);
        }
        Assert.Equal(g.Result, nest);
        Assert.InRange(g.Genes.Length, 0, MaxGenes);
        Assert.Equal(g.Genes.Length, g.Ids.Length);
        var replayed = g.Ids.Aggregate(start, (n, id) => space.Apply(n, id).Result); // the ids replay in the space
        Assert.Equal(g.Result, replayed);
        Assert.Equal(g, Genome.Build(space, start, g.Genes, MaxGenes)); // rebuilding keeps every gene
    }

    [Theory]
    [InlineData("mm", 1, "loop")]
    [InlineData("mm", 2, "tile")]
    [InlineData("conv", 3, "tile")]
    [InlineData("other", 4, "loop")]
    [InlineData("mm", 5, "cursor")]
    public void CrossoverAndMutationKeepSequencesLegal(string kind, int seed, string spaceName)
    {
        var space = ActionSpace.Get(spaceName);
        var rng = new Random(seed);
        for (int i = 0; i < 200; i++)
        {
            var start = Nest.Initial(RandomSchedules.Of(kind, rng));
            var (a, b) = (RandomParent(space, start, rng), RandomParent(space, start, rng));
            AssertLegal(space, start, a);
            AssertLegal(space, start, b);
            var child = Genome.Crossover(space, start, a, b, rng, MaxGenes);
            AssertLegal(space, start, child);
            AssertLegal(space, start, Genome.Mutate(space, start, child, rng, MaxGenes));
            AssertLegal(space, start, Genome.Mutate(space, start, a, rng, MaxGenes));
        }
    }

    static int Edit(string action) => Moves.KernelActions.IndexOf(Actions.Get(action));

    [Fact]
    public void GenesNameLoopsByVariableAndRank()
    {
        var space = ActionSpace.Loop;
        var start = Nest.Initial(Computation.Matmul(64, 64, 64));
        var g = Genome.Build(space, start, [new Gene(1, 0, Edit("split_16")), new Gene(1, 1, Edit("swap_down")), new Gene(1, 1, Edit("vectorize"))], MaxGenes);
        Assert.Equal("m:64 n:4 k:64 n:16v", g.Result.ScheduleKey);
        Assert.Equal("split_16@n swap_down@n' vectorize@n'", g.Describe(space, start.Computation));
        Assert.Equal("down,split_16,down,swap_down,vectorize", string.Join(",", g.Actions.Select(a => a.Name)));
        // a gene whose loop does not exist (n'' here) is dropped, the rest apply
        var h = Genome.Build(space, start, [new Gene(1, 2, Edit("unroll")), .. g.Genes], MaxGenes);
        Assert.Equal(g.Genes.AsEnumerable(), h.Genes.AsEnumerable());
    }
}
