using LoopTune.Ir;

namespace LoopTune.Models;

/// <summary>
/// Builds the text of a contraction from named variables and three tensors whose dims are affine sums of them, then
/// leaves out what does not change the memory: a variable of size 1 (a batch of one, a 1x1 kernel, a row vector) is
/// dropped from every index, and a dim left with no variable (size 1) is dropped, so long as every tensor keeps a dim.
/// </summary>
sealed class ContractionText
{
    readonly List<(string Name, long Size)> vars = [];
    readonly List<(string Name, List<List<(long Coefficient, string Var)>> Dims)> tensors = [];

    public ContractionText Var(string name, long size)
    {
        vars.Add((name, size));
        return this;
    }

    /// <summary>A tensor; each dim is a list of terms, e.g. <c>[(2, "h"), (1, "r")]</c> for <c>2*h+r</c>; an empty dim is
    /// one of size 1 (a broadcast dim). Output first, then left, then right.</summary>
    public ContractionText Tensor(string name, params List<(long, string)>[] dims)
    {
        tensors.Add((name, [.. dims]));
        return this;
    }

    public Computation Build()
    {
        var dropped = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, size) in vars.Where(v => v.Size == 1))
        {
            dropped.Add(name);
            if (tensors.Any(t => !t.Dims.Any(d => d.Any(term => !dropped.Contains(term.Var))))) dropped.Remove(name);
        }
        string Render((string Name, List<List<(long Coefficient, string Var)>> Dims) t)
        {
            var dims = t.Dims.Select(d => d.Where(term => !dropped.Contains(term.Var)).ToList()).Where(d => d.Count > 0)
                .Select(d => string.Join("+", d.Select(term => term.Coefficient == 1 ? term.Var : $"{term.Coefficient}*{term.Var}")));
            return $"{t.Name}[{string.Join(",", dims)}]";
        }
        string sizes = string.Join(" ", vars.Where(v => !dropped.Contains(v.Name)).Select(v => $"{v.Name}={v.Size}"));
        return Computation.Parse($"{Render(tensors[0])} += {Render(tensors[1])} * {Render(tensors[2])} {sizes}");
    }

    /// <summary>A dim indexed by one variable.</summary>
    public static List<(long, string)> D(string var) => [(1, var)];
    /// <summary>A dim of size 1 that no variable indexes.</summary>
    public static List<(long, string)> One() => [];
}
