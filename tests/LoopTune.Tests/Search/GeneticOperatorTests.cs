using LoopTune.Ir;
using LoopTune.Search;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Search;

/// <summary>Crossover and mutation of the genetic search never produce an illegal action sequence.</summary>
public sealed class GeneticOperatorTests
{
    const int MaxGenes = 12;

    /// <summary>A random gene list, legal or not: random variables, ranks (some past the loops there are) and actions.</summary>
    static Genome RandomParent(Nest start, Random rng)
    {
        if (rng.Next(2) == 0) return Genome.Random(start, rng, rng.Next(MaxGenes + 1));
        var genes = Enumerable.Range(0, rng.Next(2 * MaxGenes)).Select(_ =>
            new Gene(rng.Next(start.Computation.Vars.Length), rng.Next(3), Moves.KernelActions[rng.Next(Moves.KernelActions.Length)]));
        return Genome.Build(start, genes, MaxGenes);
    }

    static void AssertLegal(Nest start, Genome g)
    {
        var nest = start;
        foreach (var a in g.Actions)
        {
            Assert.True(Transforms.IsLegal(nest, a), $"{a.Name} is illegal in {nest}");
            nest = Transforms.Apply(nest, a);
        }
        Assert.Equal(g.Result, nest);
        Assert.InRange(g.Genes.Length, 0, MaxGenes);
        Assert.Equal(g.Genes.Length, g.Actions.Count(Moves.ChangesKernel));
        Assert.Equal(g, Genome.Build(start, g.Genes, MaxGenes)); // rebuilding keeps every gene
    }

    [Theory]
    [InlineData("mm", 1)]
    [InlineData("mm", 2)]
    [InlineData("conv", 3)]
    [InlineData("other", 4)]
    public void CrossoverAndMutationKeepSequencesLegal(string kind, int seed)
    {
        var rng = new Random(seed);
        for (int i = 0; i < 400; i++)
        {
            var start = Nest.Initial(RandomSchedules.Of(kind, rng));
            var (a, b) = (RandomParent(start, rng), RandomParent(start, rng));
            AssertLegal(start, a);
            AssertLegal(start, b);
            var child = Genome.Crossover(start, a, b, rng, MaxGenes);
            AssertLegal(start, child);
            AssertLegal(start, Genome.Mutate(start, child, rng, MaxGenes));
            AssertLegal(start, Genome.Mutate(start, a, rng, MaxGenes));
        }
    }

    [Fact]
    public void GenesNameLoopsByVariableAndRank()
    {
        var start = Nest.Initial(Computation.Matmul(64, 64, 64));
        var g = Genome.Build(start, [new Gene(1, 0, Actions.Get("split_16")), new Gene(1, 1, Actions.Get("swap_down")), new Gene(1, 1, Actions.Get("vectorize"))], MaxGenes);
        Assert.Equal("m:64 n:4 k:64 n:16v", g.Result.ScheduleKey);
        Assert.Equal("split_16@n swap_down@n' vectorize@n'", g.Describe(start.Computation));
        Assert.Equal("down,split_16,down,swap_down,vectorize", string.Join(",", g.Actions.Select(a => a.Name)));
        // a gene whose loop does not exist (n'' here) is dropped, the rest apply
        var h = Genome.Build(start, [new Gene(1, 2, Actions.Get("unroll")), .. g.Genes], MaxGenes);
        Assert.Equal(g.Genes.AsEnumerable(), h.Genes.AsEnumerable());
    }
}
