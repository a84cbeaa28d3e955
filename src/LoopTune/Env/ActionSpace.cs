using System.Globalization;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;

namespace LoopTune.Env;

/// <summary>
/// The design space: how an action id maps to an edit of a nest. One space is shared by the environment
/// (<see cref="LoopTuneEnv"/>), every search, every policy and training; reports name it. Three parameterisations:
/// <code>
/// | name   | ids                          | one id does                                                  |
/// |--------|------------------------------|--------------------------------------------------------------|
/// | cursor | 19, the action table's first | one action at the cursor (up/down move it; the seed's env)  |
/// |        | (Actions.LearnedCount)       |                                                              |
/// | loop   | 10 loops x 19 = 190          | walk the cursor to loop id / 19, then edit id % 19:          |
/// |        |                              | 0-14 one of the seed's kernel actions (swap_up, swap_down,   |
/// |        |                              | split_2..1024, merge, unroll, vectorize); 15 sink: swap_down |
/// |        |                              | until the loop is innermost or cannot go further; 16 hoist:  |
/// |        |                              | swap_up likewise; 17 pack; 18 parallel                       |
/// | tile   | 10 loops x 30 = 300          | the loop space's first 17 edits, then 8 register-tile macros:|
/// |        |                              | 17-19 tile_vec_8/16/32: split_N, sink the new inner loop,    |
/// |        |                              | vectorize it; 20-22 tile_unroll_2/4/8: split_N, sink the new |
/// |        |                              | inner loop, unroll it; 23 sink_vec; 24 sink_unroll; then 3   |
/// |        |                              | cache-blocking macros: 25-27 block_l1/l2/l3; 28 pack;        |
/// |        |                              | 29 parallel                                                  |
/// </code>
/// <para><b>parallel</b> (in every space) divides the loop's iterations among the threads the command's kernels run on
/// (<c>--threads</c>); it is legal only at more than one thread (<see cref="Moves.Enabled"/>), and under the rules of
/// <see cref="Transforms"/> (an output variable's loop, outside every unrolled or vectorized loop, one per nest). A
/// schedule without one is timed at N threads with the loop <see cref="Transforms.Parallelize"/> picks, so a policy's
/// parallel@i pays when its loop beats that rule's.</para>
/// New edits go at the end of a loop's ids, so that a policy trained before them keeps its ids (<c>Policy</c> widens it).
/// The loop space has no cursor steps: every id changes the kernel, so an episode of 10 ids is 10 real edits. It is
/// the seed's environment seen through <see cref="Moves"/> plus two macros of repeated swaps: every id stands for a
/// sequence of the seed's actions, legal under the same rules. Sink and hoist let a loop reach the innermost place in one
/// step, where the swaps one by one earn nothing until the loop gets there (a convolution's w: three swaps at the same
/// speed, then vectorize for 50x). A register tile (a few unrolled loops over vectors, innermost) is 8-12 of the seed's
/// actions, and none of them pays before the last: <c>h:32 f:8 c:16 r:3 s:3 f:4u w:2u w:16v</c>, 97 % of the peak on a
/// convolution, is three tile macros from the initial nest. The tile space makes each of those one step.
/// <para><b>block_lN@i</b> blocks loop i for cache level N of the machine (<see cref="CacheSizes"/>): split_B, then
/// swap_up of the new outer loop as far as it goes. B is the largest power of two below the loop's size for which the
/// loops from the new inner loop inward touch at most half the level's capacity (<see cref="Footprint.Bytes"/>). It
/// requires a loop that is not unrolled or vectorized, a level whose size the machine reports, and a loop whose own
/// footprint does not already fit (blocking it would change nothing). On mm 1024^3 with 48 KiB L1d:</para>
/// <code>
/// before (block_l1@2)                                   after: B = 128 (B x 32 + 8 x B + 8 x 32 floats &lt;= 24 KiB)
/// n:32 m:128 k:1024 m:8u n:2u n:16v                     k:8 n:32 m:128 k:128 m:8u n:2u n:16v
/// </code>
/// <para>The tile space of another machine (<see cref="TileFor"/>) sizes its blocks from that machine's caches; the
/// ids and their meanings are the same.</para>
/// <para>Ids of the loop spaces are (loop, edit) pairs: <see cref="LoopOf"/>, <see cref="EditOf"/>, <see cref="IdOf"/>.
/// The cursor space's ids name no loop.</para>
/// </summary>
public abstract class ActionSpace
{
    public static readonly ActionSpace Cursor = new CursorSpace(), Loop = new LoopSpace("loop", null), Tile = TileFor(CacheSizes.Current);

    /// <summary>The tile space with blocks sized for <paramref name="caches"/> (<see cref="Tile"/>: this machine's).</summary>
    public static ActionSpace TileFor(CacheSizes caches) => new LoopSpace("tile", caches ?? throw new ArgumentNullException(nameof(caches)));

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

    /// <summary>The edit that applies <paramref name="action"/> (one of <see cref="Moves.KernelActions"/>; in the cursor space
    /// any action) at a loop, or -1 when the space has none.</summary>
    public abstract int EditOf(LoopAction action);

    /// <summary>The edit of block_l<paramref name="level"/> (see the class comment) at a loop, or -1 when the space has no
    /// cache-blocking macros (the cursor and loop spaces) or none for that level.</summary>
    public virtual int BlockEdit(int level) => -1;

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

    /// <summary>A legal id of <paramref name="nest"/> drawn uniformly, as <see cref="RandomMove"/> draws it, by rejection: ids
    /// drawn uniformly from the whole space until one applies (at most <paramref name="tries"/>, then <see cref="RandomMove"/>).
    /// One or a few applications instead of the mask's one per id: what a search that breeds thousands of candidates a
    /// round draws its moves with. Another stream of random numbers than <see cref="RandomMove"/>'s.</summary>
    public (int Id, IReadOnlyList<LoopAction> Actions, Nest Result)? SampleMove(Nest nest, Random rng, int tries = 64)
    {
        ArgumentNullException.ThrowIfNull(rng);
        for (int t = 0; t < tries; t++)
        {
            int id = rng.Next(Count);
            if (TryApply(nest, id) is { } m) return (id, m.Actions, m.Result);
        }
        return RandomMove(nest, rng);
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
        public override int Count => Actions.LearnedCount;
        public override int PerLoop => Actions.LearnedCount;
        public override bool[] Mask(Nest nest)
        {
            var mask = Transforms.Mask(nest)[..Count];
            for (int id = 0; id < Count; id++) mask[id] &= Moves.Enabled(Actions.All[id]);
            return mask;
        }

        public override (IReadOnlyList<LoopAction>, Nest)? TryApply(Nest nest, int id) =>
            id >= 0 && id < Count && Moves.Enabled(Actions.All[id]) && Transforms.IsLegal(nest, Actions.All[id]) ? ([Actions.All[id]], Transforms.Apply(nest, Actions.All[id])) : null;

        public override string Describe(int id) => Actions.All[id].Name;

        public override int EditOf(LoopAction action) => action.Id;
    }

    sealed class LoopSpace(string name, CacheSizes? caches) : ActionSpace
    {
        /// <summary>The seed's kernel actions, edits 0 to Kernel - 1; the actions added since (pack, parallel) are the last edits.</summary>
        static readonly LoopAction[] Seed = [.. Moves.KernelActions.Where(a => a.Id < Actions.SeedCount)], Added = [.. Moves.KernelActions.Except(Seed)];
        static readonly int Kernel = Seed.Length;
        static readonly LoopAction SwapDown = Actions.Get("swap_down"), SwapUp = Actions.Get("swap_up"), Down = Actions.Get("down"),
            Vectorize = Actions.Get("vectorize"), Unroll = Actions.Get("unroll");
        /// <summary>Each macro: its name, the split it starts with (none for sink_*) and the annotation it ends with.</summary>
        static readonly (string Name, LoopAction? Split, LoopAction Annotation)[] Macros =
        [
            ("tile_vec_8", Actions.Get("split_8"), Vectorize), ("tile_vec_16", Actions.Get("split_16"), Vectorize), ("tile_vec_32", Actions.Get("split_32"), Vectorize),
            ("tile_unroll_2", Actions.Get("split_2"), Unroll), ("tile_unroll_4", Actions.Get("split_4"), Unroll), ("tile_unroll_8", Actions.Get("split_8"), Unroll),
            ("sink_vec", null, Vectorize), ("sink_unroll", null, Unroll),
        ];

        /// <summary>The cache levels the block macros size their blocks for, in id order.</summary>
        static readonly int[] Levels = [1, 2, 3];

        readonly int perLoop = Kernel + 2 + (caches is null ? 0 : Macros.Length + Levels.Length) + Added.Length;

        int FirstAdded => perLoop - Added.Length;

        public override int EditOf(LoopAction action) =>
            Array.IndexOf(Seed, action) is var k and >= 0 ? k : Array.IndexOf(Added, action) is var a and >= 0 ? FirstAdded + a : -1;

        public override int BlockEdit(int level) =>
            caches is null || Array.IndexOf(Levels, level) is not (var i and >= 0) ? -1 : Kernel + 2 + Macros.Length + i;

        public override string Name => name;
        public override int Count => Nest.MaxLoops * perLoop;
        public override int PerLoop => perLoop;

        /// <summary>Whether each edit is legal, without building the nests the seed's actions, sink and hoist would make
        /// (their legality is decided at the loop alone; the macros that split are still built): the mask is asked for at
        /// every step of every actor, and building every legal edit's nest made 140 KB of garbage a step on the matmuls.</summary>
        public override bool[] Mask(Nest nest)
        {
            var mask = new bool[Count];
            var sunk = new Dictionary<int, Nest?>();
            for (int loop = 0; loop < nest.Count; loop++)
            {
                var at = Moves.AtLoop(nest, loop);
                for (int k = 0; k < perLoop; k++)
                    mask[loop * perLoop + k] = k < Kernel || k >= FirstAdded ? Moves.IsLegalAt(at, k < Kernel ? Seed[k] : Added[k - FirstAdded])
                        : k - Kernel < 2 ? Transforms.IsLegal(at, k == Kernel ? SwapDown : SwapUp)
                        : k - Kernel - 2 < Macros.Length ? MacroLegal(nest, at, loop, Macros[k - Kernel - 2], sunk)
                        : Edit(nest, loop, k) is not null;
                sunk.Clear();
            }
            return mask;
        }

        /// <summary>Whether a tile or sink macro applies at <paramref name="loop"/>, deciding its last action without making
        /// its nest; the nests sunk so far at this loop are in <paramref name="sunk"/> by split (tile_vec_8 and
        /// tile_unroll_8 share one, as sink_vec and sink_unroll do).</summary>
        static bool MacroLegal(Nest nest, Nest at, int loop, (string Name, LoopAction? Split, LoopAction Annotation) macro, Dictionary<int, Nest?> sunk)
        {
            int key = macro.Split?.Id ?? -1;
            if (!sunk.TryGetValue(key, out var s)) sunk[key] = s = Sunk(at, loop, macro.Split, null);
            return s is not null && Annotates(nest, s, macro.Annotation);
        }

        public override (IReadOnlyList<LoopAction>, Nest)? TryApply(Nest nest, int id) =>
            id >= 0 && id < Count && id / perLoop < nest.Count ? Edit(nest, id / perLoop, id % perLoop) : null;

        /// <summary>Edit <paramref name="k"/> at <paramref name="loop"/>: the seed's actions and the result, or null when illegal.</summary>
        (IReadOnlyList<LoopAction>, Nest)? Edit(Nest nest, int loop, int k)
        {
            if (k < Kernel || k >= FirstAdded) return Moves.Make(nest, loop, k < Kernel ? Seed[k] : Added[k - FirstAdded]) is { } m ? (m.Actions, m.Result) : null;
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
            if (k - Kernel - 2 >= Macros.Length) return Block(nest, loop, Levels[k - Kernel - 2 - Macros.Length]);
            var (_, split, annotation) = Macros[k - Kernel - 2];
            var actions = new List<LoopAction>(Moves.Walk(nest.Cursor, loop));
            if (Sunk(at, loop, split, actions) is not { } sunk || !Annotates(nest, sunk, annotation)) return null;
            if (Annotated(sunk, annotation)) return (actions, sunk); // the macro keeps the annotation (the action would toggle it off)
            actions.Add(annotation);
            return (actions, Transforms.Apply(sunk, annotation));
        }

        /// <summary>The nest a macro annotates: <paramref name="split"/> at <paramref name="loop"/> (its cursor there) then the
        /// cursor down to the new inner loop, when the macro splits; then sunk as far as it goes. Null when the split is
        /// illegal. The actions taken are added to <paramref name="actions"/> when given.</summary>
        static Nest? Sunk(Nest at, int loop, LoopAction? split, List<LoopAction>? actions)
        {
            if (split is { } splitN)
            {
                if (!Moves.IsLegalAt(at, splitN)) return null;
                actions?.Add(splitN);
                actions?.Add(Down);
                at = Transforms.Apply(Transforms.Apply(at, splitN), Down);
            }
            Swaps(SwapDown, ref at, actions);
            return at;
        }

        /// <summary>Whether the cursor's loop of <paramref name="sunk"/> already carries <paramref name="annotation"/>'s mark.</summary>
        static bool Annotated(Nest sunk, LoopAction annotation) =>
            sunk[sunk.Cursor].Annotation == (annotation.Kind == ActionKind.Vectorize ? Annotation.Vectorize : Annotation.Unroll);

        /// <summary>Whether a macro whose sunk nest is <paramref name="sunk"/> changes <paramref name="nest"/>'s kernel: by its
        /// annotation, or, when the loop carries it already, by the sink alone.</summary>
        static bool Annotates(Nest nest, Nest sunk, LoopAction annotation) =>
            Annotated(sunk, annotation) ? sunk.ScheduleKey != nest.ScheduleKey : Transforms.IsLegal(sunk, annotation);

        /// <summary>block_l<paramref name="level"/> at <paramref name="loop"/> (see the class comment), or null when illegal.</summary>
        (IReadOnlyList<LoopAction>, Nest)? Block(Nest nest, int loop, int level)
        {
            var at = Moves.AtLoop(nest, loop);
            var l = at[loop];
            int? kib = level switch { 1 => caches!.L1dKib, 2 => caches!.L2Kib, _ => caches!.L3Kib };
            if (kib is not > 0 || l.Annotation != Annotation.None || at.Count >= Nest.MaxLoops) return null;
            long capacity = kib.Value * 1024L / 2;
            if (Footprint.Bytes(at, loop) <= capacity) return null;
            for (int b = 1024; b >= 2; b /= 2)
            {
                // the split's inner loop covers b of this loop's steps: its footprint is known before the split is made
                if (b >= l.Size || Footprint.Bytes(at, loop, l.Var, (long)b * at.InnerStep(loop)) > capacity) continue;
                var split = Actions.Get($"split_{b}");
                var blocked = Transforms.Apply(at, split);
                var actions = new List<LoopAction>(Moves.Walk(nest.Cursor, loop)) { split };
                Swaps(SwapUp, ref blocked, actions);
                return (actions, blocked);
            }
            return null;
        }

        /// <summary>Applies <paramref name="swap"/> as long as it is legal.</summary>
        static void Swaps(LoopAction swap, ref Nest at, List<LoopAction>? actions)
        {
            while (Transforms.IsLegal(at, swap))
            {
                at = Transforms.Apply(at, swap);
                actions?.Add(swap);
            }
        }

        public override string Describe(int id) => (id % perLoop) switch
        {
            var k when k < Kernel => Seed[k].Name,
            var k when k >= FirstAdded => Added[k - FirstAdded].Name,
            var k when k == Kernel => "sink",
            var k when k == Kernel + 1 => "hoist",
            var k when k - Kernel - 2 < Macros.Length => Macros[k - Kernel - 2].Name,
            var k => $"block_l{Levels[k - Kernel - 2 - Macros.Length]}",
        } + "@" + (id / perLoop).ToString(CultureInfo.InvariantCulture);
    }
}
