using System.Collections.Immutable;
using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Env;

/// <summary>One step of a search: walk the cursor to a loop (up / down, which change no kernel and so cost no
/// evaluation), then apply one action that changes the kernel. <see cref="Actions"/> is that whole legal sequence and
/// <see cref="Result"/> the nest it leads to.</summary>
public readonly record struct Move(ImmutableArray<LoopAction> Actions, Nest Result)
{
    /// <summary>The kernel-changing action at the end.</summary>
    public LoopAction Action => Actions[^1];

    /// <summary>The actions as text, e.g. <c>down,down,split_4</c>.</summary>
    public override string ToString() => string.Join(",", Actions.Select(a => a.Name));
}

/// <summary>
/// The moves the searches take. The action table mixes cursor moves, which leave the kernel as it is
/// (<see cref="ChangesKernel"/> is false: same <see cref="Nest.ScheduleKey"/>), with actions that change it. Evaluating
/// after a cursor move wastes a measurement, and a search that only looks at the loop under the cursor never reaches
/// the others (the original's greedy searches had that flaw). So a search step is a <see cref="Move"/>: the cursor
/// walks to any loop, then one kernel-changing action that <see cref="Transforms.IsLegal"/> allows there is applied.
/// Every move is legal by construction and ends in a new kernel. Splits that would make a one-iteration loop are skipped
/// (<see cref="IsIdleSplit"/>).
/// </summary>
public static class Moves
{
    /// <summary>The actions that change the kernel and the searches take: everything the learned spaces know
    /// (<see cref="Actions.LearnedCount"/>) but up and down; parallel only while <see cref="Enabled"/>.</summary>
    public static ImmutableArray<LoopAction> KernelActions { get; } = [.. Actions.All.Where(a => ChangesKernel(a) && a.Id < Actions.LearnedCount)];

    /// <summary>False for cursor moves (up, down), true for the rest.</summary>
    public static bool ChangesKernel(LoopAction a) => a.Kind is not (ActionKind.Up or ActionKind.Down);

    /// <summary>Whether a search or a policy may take <paramref name="a"/> in this command: every action but parallel
    /// always; parallel only when the command's kernels run on more than one thread (<see cref="RunThreads.Default"/>),
    /// since on one it would change the schedule's text and not its kernel. Every space's mask, every move and the
    /// cursor space's ids follow it, so a search at one thread never spends a measurement on a parallel loop.</summary>
    public static bool Enabled(LoopAction a) => a.Kind != ActionKind.Parallel || RunThreads.Default > 1;

    /// <summary>The up or down actions that take the cursor from loop <paramref name="from"/> to loop <paramref name="to"/>.</summary>
    public static IEnumerable<LoopAction> Walk(int from, int to) =>
        Enumerable.Repeat(Actions.Get(to < from ? "up" : "down"), Math.Abs(to - from));

    /// <summary>The nest with its cursor on loop <paramref name="loop"/>: what <see cref="Walk"/> leads to.</summary>
    public static Nest AtLoop(Nest nest, int loop) => loop == nest.Cursor ? nest : nest.With(nest.Loops, loop);

    /// <summary>The move that walks to <paramref name="loop"/> and applies <paramref name="action"/>, or null when the
    /// action is illegal there (<paramref name="loop"/> past the last loop is clamped to it).</summary>
    public static Move? Make(Nest nest, int loop, LoopAction action)
    {
        loop = Math.Clamp(loop, 0, nest.Count - 1);
        var at = AtLoop(nest, loop);
        if (!IsLegalAt(at, action)) return null;
        return new Move([.. Walk(nest.Cursor, loop), action], Transforms.Apply(at, action));
    }

    /// <summary>Whether <see cref="Make"/> makes a move of <paramref name="action"/> at the cursor of <paramref name="at"/>
    /// (a nest <see cref="AtLoop"/> gave), without building it.</summary>
    public static bool IsLegalAt(Nest at, LoopAction action) =>
        ChangesKernel(action) && Enabled(action) && Transforms.IsLegal(at, action) && !IsIdleSplit(at, action);

    /// <summary>
    /// Every legal move from <paramref name="nest"/> using <paramref name="actions"/> (default <see cref="KernelActions"/>),
    /// one per resulting schedule: when two moves lead to the same kernel the shorter walk is kept. Order: loops by
    /// distance from the cursor (the one above first on a tie), then the action table's order; so the order, and every
    /// search built on it, is deterministic.
    /// </summary>
    public static List<Move> All(Nest nest, IReadOnlyList<LoopAction>? actions = null)
    {
        actions ??= KernelActions;
        var moves = new List<Move>();
        var seen = new HashSet<string>();
        foreach (int loop in ByDistance(nest))
            foreach (var a in actions)
                if (Make(nest, loop, a) is { } m && seen.Add(m.Result.ScheduleKey)) moves.Add(m);
        return moves;
    }

    /// <summary>A move drawn uniformly from every legal (loop, action) pair, or null when there is none.</summary>
    public static Move? Random(Nest nest, Random rng, IReadOnlyList<LoopAction>? actions = null)
    {
        actions ??= KernelActions;
        var legal = new List<(int Loop, LoopAction Action)>();
        for (int loop = 0; loop < nest.Count; loop++)
        {
            var at = AtLoop(nest, loop);
            foreach (var a in actions)
                if (ChangesKernel(a) && Enabled(a) && Transforms.IsLegal(at, a) && !IsIdleSplit(at, a)) legal.Add((loop, a));
        }
        if (legal.Count == 0) return null;
        var (l, action) = legal[rng.Next(legal.Count)];
        return Make(nest, l, action);
    }

    /// <summary>A split by the loop's own size (no tail): the outer loop would run once, which the JIT spells out, so the
    /// kernel would not change; the move would only use up one of the <see cref="Nest.MaxLoops"/> loops. Searches skip it.</summary>
    public static bool IsIdleSplit(Nest nest, LoopAction action) =>
        action.Kind == ActionKind.Split && nest[nest.Cursor].Size == action.Factor && nest[nest.Cursor].Tail == 0;

    static IEnumerable<int> ByDistance(Nest nest)
    {
        yield return nest.Cursor;
        for (int d = 1; d < nest.Count; d++)
        {
            if (nest.Cursor - d >= 0) yield return nest.Cursor - d;
            if (nest.Cursor + d < nest.Count) yield return nest.Cursor + d;
        }
    }
}
