using System.Collections.Immutable;
using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Search;

/// <summary>
/// One gene of a <see cref="Genome"/>: apply edit <paramref name="Edit"/> of a space (<see cref="ActionSpace.EditOf"/>) to
/// a loop named by its variable and its rank among that variable's loops, outermost first: (m, 0) is m, (m, 1) is m' (the
/// first split's inner loop). Naming loops this way, not by position, keeps a gene's meaning when the genes before it
/// change, which is what crossover does: "swap_down m'" still moves m' after a different prefix. In the cursor space,
/// whose ids name no loop, <paramref name="Var"/> is -1 and the edit is the action at the cursor.
/// </summary>
public readonly record struct Gene(int Var, int Rank, int Edit)
{
    /// <summary>The loop this gene acts on in <paramref name="nest"/>, or -1 when the nest has no such loop.</summary>
    public int LoopIn(Nest nest)
    {
        for (int i = 0, seen = 0; i < nest.Count; i++)
            if (nest[i].Var == Var && seen++ == Rank) return i;
        return -1;
    }

    /// <summary>The id of this gene in <paramref name="nest"/>, or -1 when its loop is not there.</summary>
    public int IdIn(ActionSpace space, Nest nest) => Var < 0 ? Edit : LoopIn(nest) is var loop and >= 0 ? space.IdOf(loop, Edit) : -1;

    /// <summary>The gene of id <paramref name="id"/> in <paramref name="nest"/>.</summary>
    public static Gene At(ActionSpace space, Nest nest, int id)
    {
        if (space.LoopOf(id) is not int loop) return new Gene(-1, 0, id);
        int rank = 0;
        for (int i = 0; i < loop; i++) if (nest[i].Var == nest[loop].Var) rank++;
        return new Gene(nest[loop].Var, rank, space.EditOf(id));
    }
}

/// <summary>
/// An individual of <see cref="GeneticSearch"/>: a list of genes and what replaying them from the start in a space gives.
/// Legal by construction: <see cref="Build"/> replays the genes in order and keeps a gene only if its loop exists and its
/// id is legal there; a gene that fails is dropped, the rest go on from the state before it. So <see cref="Ids"/> always
/// replays from the start to <see cref="Result"/> (and <see cref="Actions"/> are the seed's actions they stand for), and
/// crossover and mutation, which only recombine gene lists and rebuild, can never produce an illegal sequence.
/// </summary>
public sealed record Genome(ImmutableArray<Gene> Genes, ImmutableArray<int> Ids, ImmutableArray<LoopAction> Actions, Nest Result)
{
    /// <summary>Same genes, same ids, same actions, same nest (the arrays are compared element by element).</summary>
    public bool Equals(Genome? other) =>
        other is not null && Genes.SequenceEqual(other.Genes) && Ids.SequenceEqual(other.Ids) && Actions.SequenceEqual(other.Actions) && Result.Equals(other.Result);

    public override int GetHashCode() => HashCode.Combine(Genes.Length, Actions.Length, Result);

    /// <summary>Replays <paramref name="genes"/> from <paramref name="start"/> in <paramref name="space"/>, dropping the genes
    /// that do not apply, and keeping at most <paramref name="maxGenes"/>.</summary>
    public static Genome Build(ActionSpace space, Nest start, IEnumerable<Gene> genes, int maxGenes)
    {
        var kept = ImmutableArray.CreateBuilder<Gene>();
        var ids = ImmutableArray.CreateBuilder<int>();
        var actions = ImmutableArray.CreateBuilder<LoopAction>();
        var nest = start;
        foreach (var g in genes)
        {
            if (kept.Count >= maxGenes) break;
            int id = g.IdIn(space, nest);
            if (id < 0 || space.TryApply(nest, id) is not { } m) continue;
            kept.Add(g);
            ids.Add(id);
            actions.AddRange(m.Actions);
            nest = m.Result;
        }
        return new Genome(kept.ToImmutable(), ids.ToImmutable(), actions.ToImmutable(), nest);
    }

    /// <summary>The genes of a sequence of ids, or null when one of them is illegal where it lands.</summary>
    public static List<Gene>? ToGenes(ActionSpace space, Nest nest, IEnumerable<int> ids)
    {
        var genes = new List<Gene>();
        foreach (int id in ids)
        {
            if (space.TryApply(nest, id) is not { } m) return null;
            genes.Add(Gene.At(space, nest, id));
            nest = m.Result;
        }
        return genes;
    }

    /// <summary>A genome of up to <paramref name="length"/> random legal ids from <paramref name="start"/>, drawn with
    /// <see cref="ActionSpace.RandomMove"/>, or with the cheaper <see cref="ActionSpace.SampleMove"/> when
    /// <paramref name="sample"/> (the same distribution, other random numbers).</summary>
    public static Genome Random(ActionSpace space, Nest start, Random rng, int length, bool sample = false)
    {
        var genes = new List<Gene>();
        var nest = start;
        for (int i = 0; i < length && Move(space, nest, rng, sample) is { } m; i++)
        {
            genes.Add(Gene.At(space, nest, m.Id));
            nest = m.Result;
        }
        return Build(space, start, genes, length);
    }

    /// <summary>One-point crossover with a cut in each parent: the genes of <paramref name="a"/> before its cut, then those
    /// of <paramref name="b"/> from its cut on, rebuilt (so legal). The cuts are uniform over every gene boundary.</summary>
    public static Genome Crossover(ActionSpace space, Nest start, Genome a, Genome b, Random rng, int maxGenes)
    {
        int i = rng.Next(a.Genes.Length + 1), j = rng.Next(b.Genes.Length + 1);
        return Build(space, start, a.Genes.Take(i).Concat(b.Genes.Skip(j)), maxGenes);
    }

    /// <summary>
    /// One random mutation, rebuilt (so legal): insert a random legal id at a random place, delete a gene, replace a gene
    /// by a random legal id from the state before it, or truncate after a random gene. Insert and replace draw the id from
    /// the state the genes before that place reach, so they are legal there when drawn.
    /// </summary>
    public static Genome Mutate(ActionSpace space, Nest start, Genome g, Random rng, int maxGenes, bool sample = false)
    {
        var genes = g.Genes.ToList();
        int op = genes.Count == 0 ? 0 : rng.Next(4);
        int at = rng.Next(genes.Count + (op == 0 ? 1 : 0));
        switch (op)
        {
            case 0 or 2:
                var before = Build(space, start, genes.Take(at), maxGenes).Result;
                if (Move(space, before, rng, sample) is not { } m) break;
                var gene = Gene.At(space, before, m.Id);
                if (op == 0) genes.Insert(at, gene);
                else genes[at] = gene;
                break;
            case 1:
                genes.RemoveAt(at);
                break;
            default:
                genes.RemoveRange(at + 1, genes.Count - at - 1);
                break;
        }
        return Build(space, start, genes, maxGenes);
    }

    static (int Id, IReadOnlyList<LoopAction> Actions, Nest Result)? Move(ActionSpace space, Nest nest, Random rng, bool sample) =>
        sample ? space.SampleMove(nest, rng) : space.RandomMove(nest, rng);

    /// <summary>The genes as text, e.g. <c>split_16@n tile_vec_16@n'</c> (the cursor space: the actions).</summary>
    public string Describe(ActionSpace space, Computation c) =>
        string.Join(" ", Genes.Select(g => g.Var < 0 ? space.Describe(g.Edit) : $"{space.Describe(space.IdOf(0, g.Edit)).Split('@')[0]}@{c.Vars[g.Var]}{new string('\'', g.Rank)}"));
}
