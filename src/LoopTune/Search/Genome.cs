using System.Collections.Immutable;
using LoopTune.Ir;

namespace LoopTune.Search;

/// <summary>
/// One gene of a <see cref="Genome"/>: apply <paramref name="Action"/> (a kernel-changing action) to a loop named by its
/// variable and its rank among that variable's loops, outermost first: (m, 0) is m, (m, 1) is m' (the first split's
/// inner loop). Naming loops this way, not by position, keeps a gene's meaning when the genes before it change, which is
/// what crossover does: "swap_down m'" still moves m' after a different prefix.
/// </summary>
public readonly record struct Gene(int Var, int Rank, LoopAction Action)
{
    /// <summary>The loop this gene acts on in <paramref name="nest"/>, or -1 when the nest has no such loop.</summary>
    public int LoopIn(Nest nest)
    {
        for (int i = 0, seen = 0; i < nest.Count; i++)
            if (nest[i].Var == Var && seen++ == Rank) return i;
        return -1;
    }

    /// <summary>The gene that applies <paramref name="action"/> to loop <paramref name="loop"/> of <paramref name="nest"/>.</summary>
    public static Gene At(Nest nest, int loop, LoopAction action)
    {
        int rank = 0;
        for (int i = 0; i < loop; i++) if (nest[i].Var == nest[loop].Var) rank++;
        return new Gene(nest[loop].Var, rank, action);
    }
}

/// <summary>
/// An individual of <see cref="GeneticSearch"/>: a list of genes and what replaying them from the start gives. Legal by
/// construction: <see cref="Build"/> replays the genes in order and keeps a gene only if its loop exists and its action is
/// legal there (<see cref="Transforms.IsLegal"/>), walking the cursor to the loop first; a gene that fails is dropped, the
/// rest go on from the state before it. So <see cref="Actions"/> always replays from the start to <see cref="Result"/>, and
/// crossover and mutation, which only recombine gene lists and rebuild, can never produce an illegal sequence.
/// </summary>
public sealed record Genome(ImmutableArray<Gene> Genes, ImmutableArray<LoopAction> Actions, Nest Result)
{
    /// <summary>Same genes, same actions, same nest (the arrays are compared element by element).</summary>
    public bool Equals(Genome? other) =>
        other is not null && Genes.SequenceEqual(other.Genes) && Actions.SequenceEqual(other.Actions) && Result.Equals(other.Result);

    public override int GetHashCode() => HashCode.Combine(Genes.Length, Actions.Length, Result);

    /// <summary>Replays <paramref name="genes"/> from <paramref name="start"/>, dropping the genes that do not apply, and
    /// keeping at most <paramref name="maxGenes"/>.</summary>
    public static Genome Build(Nest start, IEnumerable<Gene> genes, int maxGenes)
    {
        var kept = ImmutableArray.CreateBuilder<Gene>();
        var actions = ImmutableArray.CreateBuilder<LoopAction>();
        var nest = start;
        foreach (var g in genes)
        {
            if (kept.Count >= maxGenes) break;
            int loop = g.LoopIn(nest);
            if (loop < 0 || Moves.Make(nest, loop, g.Action) is not { } move) continue;
            kept.Add(g);
            actions.AddRange(move.Actions);
            nest = move.Result;
        }
        return new Genome(kept.ToImmutable(), actions.ToImmutable(), nest);
    }

    /// <summary>A genome of up to <paramref name="length"/> random legal moves from <paramref name="start"/>.</summary>
    public static Genome Random(Nest start, Random rng, int length)
    {
        var genes = new List<Gene>();
        var nest = start;
        for (int i = 0; i < length && Moves.Random(nest, rng) is { } m; i++)
        {
            genes.Add(Gene.At(nest, TargetLoop(nest, m), m.Action));
            nest = m.Result;
        }
        return Build(start, genes, length);
    }

    /// <summary>One-point crossover with a cut in each parent: the genes of <paramref name="a"/> before its cut, then those
    /// of <paramref name="b"/> from its cut on, rebuilt (so legal). The cuts are uniform over every gene boundary.</summary>
    public static Genome Crossover(Nest start, Genome a, Genome b, Random rng, int maxGenes)
    {
        int i = rng.Next(a.Genes.Length + 1), j = rng.Next(b.Genes.Length + 1);
        return Build(start, a.Genes.Take(i).Concat(b.Genes.Skip(j)), maxGenes);
    }

    /// <summary>
    /// One random mutation, rebuilt (so legal): insert a random legal move at a random place, delete a gene, replace a gene
    /// by a random legal move from the state before it, or truncate after a random gene. Insert and replace draw the move
    /// from the state the genes before that place reach, so they are legal there when drawn.
    /// </summary>
    public static Genome Mutate(Nest start, Genome g, Random rng, int maxGenes)
    {
        var genes = g.Genes.ToList();
        int op = genes.Count == 0 ? 0 : rng.Next(4);
        int at = rng.Next(genes.Count + (op == 0 ? 1 : 0));
        switch (op)
        {
            case 0 or 2:
                var before = Build(start, genes.Take(at), maxGenes).Result;
                if (Moves.Random(before, rng) is not { } m) break;
                var gene = Gene.At(before, TargetLoop(before, m), m.Action);
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
        return Build(start, genes, maxGenes);
    }

    /// <summary>The loop a move acts on: where its walk ends.</summary>
    static int TargetLoop(Nest nest, Move m) =>
        nest.Cursor + m.Actions.Count(a => a.Kind == ActionKind.Down) - m.Actions.Count(a => a.Kind == ActionKind.Up);

    /// <summary>The genes as text, e.g. <c>split_16@n swap_down@n'</c>.</summary>
    public string Describe(Computation c) =>
        string.Join(" ", Genes.Select(g => $"{g.Action.Name}@{c.Vars[g.Var]}{new string('\'', g.Rank)}"));
}
