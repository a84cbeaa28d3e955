using System.Collections.Immutable;

namespace LoopTune.Ir;

/// <summary>The kinds of action an agent can take on the loop under the cursor.</summary>
public enum ActionKind : byte { Up, Down, SwapUp, SwapDown, Split, Merge, Unroll, Vectorize, Pack, Parallel }

/// <summary>One entry of the action table: a kind, its split factor (0 unless a split) and its name.</summary>
public readonly record struct LoopAction(int Id, ActionKind Kind, int Factor, string Name)
{
    public override string ToString() => Name;
}

/// <summary>
/// The action vocabulary, built once. Ids are positions in <see cref="All"/> and never change:
/// up, down, swap_up, swap_down, split_2 ... split_1024, merge, unroll, vectorize (the seed's 17), then pack, then parallel
/// (new actions go at the end). The learned action spaces and the observation know the first <see cref="LearnedCount"/>,
/// all of them since parallel joined (a policy saved before it is read with its old ids kept, <c>Policy.Load</c>).
/// </summary>
public static class Actions
{
    public static readonly ImmutableArray<LoopAction> All = Build();
    static readonly Dictionary<string, LoopAction> ByName = All.ToDictionary(a => a.Name);

    public static int Count => All.Length;

    /// <summary>The seed's actions: the first ids of the table (ids 0 to SeedCount - 1); the ones added since follow.</summary>
    public const int SeedCount = 17;

    /// <summary>The actions the environment's spaces and the observation's prev_actions_tensor know: ids 0 to
    /// LearnedCount - 1, the seed's, pack and parallel (19 since parallel was learned; policies saved with 18 are read with
    /// their old ids where they were).</summary>
    public const int LearnedCount = 19;

    static ImmutableArray<LoopAction> Build()
    {
        var list = new List<(ActionKind, int, string)>
        {
            (ActionKind.Up, 0, "up"), (ActionKind.Down, 0, "down"),
            (ActionKind.SwapUp, 0, "swap_up"), (ActionKind.SwapDown, 0, "swap_down"),
        };
        for (int f = 2; f <= 1024; f *= 2) list.Add((ActionKind.Split, f, $"split_{f}"));
        list.Add((ActionKind.Merge, 0, "merge"));
        list.Add((ActionKind.Unroll, 0, "unroll"));
        list.Add((ActionKind.Vectorize, 0, "vectorize"));
        list.Add((ActionKind.Pack, 0, "pack"));
        list.Add((ActionKind.Parallel, 0, "parallel"));
        return [.. list.Select((a, i) => new LoopAction(i, a.Item1, a.Item2, a.Item3))];
    }

    /// <summary>The action with this exact name; an <see cref="UnknownActionError"/> otherwise.</summary>
    public static LoopAction Get(string name) =>
        ByName.TryGetValue(name.Trim(), out var a) ? a : throw new UnknownActionError(name);

    /// <summary>Reads a comma-separated list such as <c>split_4,down,unroll</c>; empty text is an empty list.</summary>
    public static ImmutableArray<LoopAction> ParseList(string? csv) =>
        string.IsNullOrWhiteSpace(csv) ? [] : [.. csv.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Get)];
}

/// <summary>An action name that is not in the table.</summary>
public sealed class UnknownActionError(string name)
    : LoopTuneException($"unknown action '{name}'; the actions are: {string.Join(", ", Actions.All.Select(a => a.Name))}")
{
    public string Name { get; } = name;
}
