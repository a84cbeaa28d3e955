using System.Globalization;
using LoopTune.Ir;

namespace LoopTune.Env;

/// <summary>
/// The design space: how an action id maps to an edit of a nest. One space is shared by the environment
/// (<see cref="LoopTuneEnv"/>), every search, every policy and training; reports name it. Three parameterisations:
/// <code>
/// | name   | ids                          | one id does                                                  |
/// |--------|------------------------------|--------------------------------------------------------------|
/// | cursor | 17, the seed's action table  | one action at the cursor (up/down move it; the seed's env)   |
/// | loop   | 10 loops x 17 = 170          | walk the cursor to loop id / 17, then edit id % 17:          |
/// |        |                              | 0-14 one kernel action (swap_up, swap_down, split_2..1024,   |
/// |        |                              | merge, unroll, vectorize); 15 sink: swap_down until the loop |
/// |        |                              | is innermost or cannot go further; 16 hoist: swap_up likewise|
/// | tile   | 10 loops x 25 = 250          | the loop space's 17 edits, then 8 register-tile macros:      |
/// |        |                              | 17-19 tile_vec_8/16/32: split_N, sink the new inner loop,    |
/// |        |                              | vectorize it; 20-22 tile_unroll_2/4/8: split_N, sink the new |
/// |        |                              | inner loop, unroll it; 23 sink_vec; 24 sink_unroll           |
/// </code>
/// The loop space has no cursor steps: every id changes the kernel, so an episode of 10 ids is 10 real edits. It is
/// the seed's environment seen through <see cref="Moves"/> plus two macros of repeated swaps: every id stands for a
/// sequence of the seed's actions, legal under the same rules. Sink and hoist let a loop reach the innermost place in one
/// step, where the swaps one by one earn nothing until the loop gets there (a convolution's w: three swaps at the same
/// speed, then vectorize for 50x). A register tile (a few unrolled loops over vectors, innermost) is 8-12 of the seed's
/// actions, and none of them pays before the last: <c>h:32 f:8 c:16 r:3 s:3 f:4u w:2u w:16v</c>, 97 % of the peak on a
/// convolution, is three tile macros from the initial nest. The tile space makes each of those one step.
/// <para>Ids of the loop spaces are (loop, edit) pairs: <see cref="LoopOf"/>, <see cref="EditOf"/>, <see cref="IdOf"/>.
/// The cursor space's ids name no loop.</para>
/// </summary>
public abstract class ActionSpace
{
    public static readonly ActionSpace Cursor = new CursorSpace(), Loop = new LoopSpace("loop", false), Tile = new LoopSpace("tile", true);

    public static IReadOnlyList<string> Names { get; } = ["cursor", "loop", "tile"];

    /// <summary>The space called <paramref name="name"/>; a <see cref="LoopTuneException"/> naming the valid ones otherwise.</summary>
    public static ActionSpace Get(string name) => name switch
    {
        "cursor" => Cursor,
        "loop" => Loop,
        "tile" => Tile,
        _ => throw new LoopTuneException($"unknown action space '{name}'; the action spaces are: {string.Join(", ", Names)}"),
    };

    public abstract string Name { get; }
    public abstract int Count { get; }

    /// <summary>Ids per loop in a loop space (the cursor space: <see cref="Count"/>, as its ids name no loop).</summary>
    public abstract int PerLoop { get; }

    /// <summary>Entry i is true when id i is legal in <paramref name="nest"/>.</summary>
    public abstract bool[] Mask(Nest nest);

    /// <summary>The seed's actions that id <paramref name="id"/> stands for in <paramref name="nest"/> and the nest they
    /// lead to, or null when the id is illegal there.</summary>
    public abstract (IReadOnlyList<LoopAction> Actions, Nest Result)? TryApply(Nest nest, int id);

    /// <summary><see cref="TryApply"/> of a legal id; an illegal one is an <see cref="InvalidOperationException"/>.</summary>
    public (IReadOnlyList<LoopAction> Actions, Nest Result) Apply(Nest nest, int id) =>
        TryApply(nest, id) ?? throw new InvalidOperationException($"action {Describe(id)} is not legal in {nest.Serialize()}");

    /// <summary>What id <paramref name="id"/> does, for people: an action name, or <c>name@loop</c> in a loop space.</summary>
    public abstract string Describe(int id);

    /// <summary>The id that <see cref="Describe"/> writes as <paramref name="text"/>; a <see cref="LoopTuneException"/> otherwise.</summary>
    public int Parse(string text)
    {
        for (int id = 0; id < Count; id++)
            if (Describe(id) == text.Trim()) return id;
        throw new LoopTuneException($"'{text}' is not an action of the {Name} space (e.g. {Describe(Count - 1)})");
    }

    /// <summary>The loop id <paramref name="id"/> acts on in a loop space; null in the cursor space.</summary>
    public int? LoopOf(int id) => this is LoopSpace ? id / PerLoop : null;

    /// <summary>The edit of id <paramref name="id"/> (its action in the cursor space).</summary>
    public int EditOf(int id) => id % PerLoop;

    /// <summary>The id of <paramref name="edit"/> at loop <paramref name="loop"/> (the loop is ignored in the cursor space).</summary>
    public int IdOf(int loop, int edit) => this is LoopSpace ? loop * PerLoop + edit : edit;

    /// <summary>What makes two states different to a search in this space: the schedule in the loop spaces (their ids name
    /// loops, so the cursor does not matter), the schedule and the cursor in the cursor space.</summary>
    public string StateKey(Nest nest) => this is LoopSpace ? nest.ScheduleKey : nest.Serialize();

    /// <summary>The legal ids of <paramref name="nest"/>, one per resulting state (<see cref="StateKey"/>; the first one
    /// in order is kept), in a fixed order: in a loop space loops by distance from the cursor (the one above first on a
    /// tie), then the edits in table order; in the cursor space the table's order. What searches expand.</summary>
    public List<(int Id, IReadOnlyList<LoopAction> Actions, Nest Result)> Expand(Nest nest)
    {
        var moves = new List<(int, IReadOnlyList<LoopAction>, Nest)>();
        var seen = new HashSet<string> { StateKey(nest) };
        foreach (int loop in this is LoopSpace ? ByDistance(nest) : [0])
            for (int edit = 0; edit < PerLoop; edit++)
                if (TryApply(nest, IdOf(loop, edit)) is { } m && seen.Add(StateKey(m.Result))) moves.Add((IdOf(loop, edit), m.Actions, m.Result));
        return moves;
    }

    /// <summary>A legal id drawn uniformly, with what it does, or null when none is legal.</summary>
    public (int Id, IReadOnlyList<LoopAction> Actions, Nest Result)? RandomMove(Nest nest, Random rng)
    {
        var mask = Mask(nest);
        int legal = mask.Count(m => m);
        if (legal == 0) return null;
        int pick = rng.Next(legal);
        for (int id = 0; id < mask.Length; id++)
            if (mask[id] && pick-- == 0) return TryApply(nest, id) is { } m ? (id, m.Actions, m.Result) : null;
        return null;
    }

    static IEnumerable<int> ByDistance(Nest nest)
    {
        yield return nest.Cursor;
        for (int d = 1; d < nest.Count; d++)
        {
            if (nest.Cursor - d >= 0) yield return nest.Cursor - d;
            if (nest.Cursor + d < nest.Count) yield return nest.Cursor + d;
        }
    }

    public override string ToString() => Name;

    sealed class CursorSpace : ActionSpace
    {
        public override string Name => "cursor";
        public override int Count => Actions.Count;
        public override int PerLoop => Actions.Count;
        public override bool[] Mask(Nest nest) => Transforms.Mask(nest);

        public override (IReadOnlyList<LoopAction>, Nest)? TryApply(Nest nest, int id) =>
            id >= 0 && id < Count && Transforms.IsLegal(nest, Actions.All[id]) ? ([Actions.All[id]], Transforms.Apply(nest, Actions.All[id])) : null;

        public override string Describe(int id) => Actions.All[id].Name;
    }

    sealed class LoopSpace(string name, bool macros) : ActionSpace
    {
        static readonly int Kernel = Moves.KernelActions.Length;
        static readonly LoopAction SwapDown = Actions.Get("swap_down"), SwapUp = Actions.Get("swap_up"), Down = Actions.Get("down"),
            Vectorize = Actions.Get("vectorize"), Unroll = Actions.Get("unroll");
        /// <summary>Each macro: its name, the split it starts with (none for sink_*) and the annotation it ends with.</summary>
        static readonly (string Name, LoopAction? Split, LoopAction Annotation)[] Macros =
        [
            ("tile_vec_8", Actions.Get("split_8"), Vectorize), ("tile_vec_16", Actions.Get("split_16"), Vectorize), ("tile_vec_32", Actions.Get("split_32"), Vectorize),
            ("tile_unroll_2", Actions.Get("split_2"), Unroll), ("tile_unroll_4", Actions.Get("split_4"), Unroll), ("tile_unroll_8", Actions.Get("split_8"), Unroll),
            ("sink_vec", null, Vectorize), ("sink_unroll", null, Unroll),
        ];

        readonly int perLoop = Kernel + 2 + (macros ? Macros.Length : 0);

        public override string Name => name;
        public override int Count => Nest.MaxLoops * perLoop;
        public override int PerLoop => perLoop;

        public override bool[] Mask(Nest nest)
        {
            var mask = new bool[Count];
            for (int loop = 0; loop < nest.Count; loop++)
                for (int k = 0; k < perLoop; k++)
                    mask[loop * perLoop + k] = Edit(nest, loop, k) is not null;
            return mask;
        }

        public override (IReadOnlyList<LoopAction>, Nest)? TryApply(Nest nest, int id) =>
            id >= 0 && id < Count && id / perLoop < nest.Count ? Edit(nest, id / perLoop, id % perLoop) : null;

        /// <summary>Edit <paramref name="k"/> at <paramref name="loop"/>: the seed's actions and the result, or null when illegal.</summary>
        static (IReadOnlyList<LoopAction>, Nest)? Edit(Nest nest, int loop, int k)
        {
            if (k < Kernel) return Moves.Make(nest, loop, Moves.KernelActions[k]) is { } m ? (m.Actions, m.Result) : null;
            var at = Moves.AtLoop(nest, loop);
            if (k - Kernel < 2)
            {
                // sink / hoist: the mask asks for every loop, so an illegal one returns before anything is built
                var swap = k == Kernel ? SwapDown : SwapUp;
                if (!Transforms.IsLegal(at, swap)) return null;
                var swaps = new List<LoopAction>(Moves.Walk(nest.Cursor, loop));
                Swaps(swap, ref at, swaps);
                return (swaps, at);
            }
            var (_, split, annotation) = Macros[k - Kernel - 2];
            var actions = new List<LoopAction>(Moves.Walk(nest.Cursor, loop));
            if (split is { } splitN)
            {
                // split_N, then the cursor goes down to the new inner loop
                if (Moves.Make(at, loop, splitN) is not { } m) return null;
                actions.Add(m.Action);
                actions.Add(Down);
                at = Transforms.Apply(m.Result, Down);
            }
            Swaps(SwapDown, ref at, actions);
            if (!Transforms.IsLegal(at, annotation)) return null;
            actions.Add(annotation);
            return (actions, Transforms.Apply(at, annotation));
        }

        /// <summary>Applies <paramref name="swap"/> as long as it is legal.</summary>
        static void Swaps(LoopAction swap, ref Nest at, List<LoopAction> actions)
        {
            while (Transforms.IsLegal(at, swap))
            {
                at = Transforms.Apply(at, swap);
                actions.Add(swap);
            }
        }

        public override string Describe(int id) => (id % perLoop) switch
        {
            var k when k < Kernel => Moves.KernelActions[k].Name,
            var k when k == Kernel => "sink",
            var k when k == Kernel + 1 => "hoist",
            var k => Macros[k - Kernel - 2].Name,
        } + "@" + (id / perLoop).ToString(CultureInfo.InvariantCulture);
    }
}
