using LoopTune.Ir;
using LoopTune.Search;

namespace LoopTune.Learning;

/// <summary>
/// How a policy's action ids map to edits of a nest. Two parameterisations, stored with every policy:
/// <code>
/// | name   | ids                          | one id does                                                  |
/// |--------|------------------------------|--------------------------------------------------------------|
/// | cursor | 17, the seed's action table  | one action at the cursor (up/down move it; the seed's env)   |
/// | loop   | 10 loops x 17 = 170          | walk the cursor to loop id / 17, then edit id % 17:          |
/// |        |                              | 0-14 one kernel action (swap_up, swap_down, split_2..1024,   |
/// |        |                              | merge, unroll, vectorize); 15 sink: swap_down until the loop |
/// |        |                              | is innermost or cannot go further; 16 hoist: swap_up likewise|
/// </code>
/// The loop space has no cursor steps: every id changes the kernel, so an episode of 10 ids is 10 real edits. It is
/// the seed's environment seen through <see cref="Moves"/> (the searches' unit) plus two macros of repeated swaps:
/// every id stands for a sequence of the seed's actions, legal under the same rules. Sink and hoist let a loop reach
/// the innermost place in one step, where the swaps one by one earn nothing until the loop gets there (a convolution's
/// w: three swaps at the same speed, then vectorize for 50x).
/// <code>
/// | tile   | 10 loops x 25 = 250          | the loop space's 17 edits, then 8 register-tile macros:      |
/// |        |                              | 17-19 tile_vec_8/16/32: split_N, sink the new inner loop,    |
/// |        |                              | vectorize it; 20-22 tile_unroll_2/4/8: split_N, sink the new |
/// |        |                              | inner loop, unroll it; 23 sink_vec; 24 sink_unroll           |
/// </code>
/// A register tile (a few unrolled loops over vectors, innermost) is 8-12 of the seed's actions, and none of them pays
/// before the last: <c>h:32 f:8 c:16 r:3 s:3 f:4u w:2u w:16v</c>, 97 % of the peak on a convolution, is three tile
/// macros from the initial nest. The tile space makes each of those one step.
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

    /// <summary>Entry i is true when id i is legal in <paramref name="nest"/>.</summary>
    public abstract bool[] Mask(Nest nest);

    /// <summary>The seed's actions that id <paramref name="id"/> stands for in <paramref name="nest"/>, and the nest they lead to.</summary>
    public abstract (IReadOnlyList<LoopAction> Actions, Nest Result) Apply(Nest nest, int id);

    /// <summary>What id <paramref name="id"/> does, for people.</summary>
    public abstract string Describe(int id);

    sealed class CursorSpace : ActionSpace
    {
        public override string Name => "cursor";
        public override int Count => Actions.Count;
        public override bool[] Mask(Nest nest) => Transforms.Mask(nest);
        public override (IReadOnlyList<LoopAction>, Nest) Apply(Nest nest, int id) => ([Actions.All[id]], Transforms.Apply(nest, Actions.All[id]));
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

        public override bool[] Mask(Nest nest)
        {
            var mask = new bool[Count];
            for (int loop = 0; loop < nest.Count; loop++)
                for (int k = 0; k < perLoop; k++)
                    mask[loop * perLoop + k] = Edit(nest, loop, k) is not null;
            return mask;
        }

        public override (IReadOnlyList<LoopAction>, Nest) Apply(Nest nest, int id) =>
            (id / perLoop < nest.Count ? Edit(nest, id / perLoop, id % perLoop) : null)
            ?? throw new InvalidOperationException($"action {Describe(id)} is not legal in {nest.Serialize()}");

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
        } + $"@{id / perLoop}";
    }
}

/// <summary>
/// The loop-nest task in the <see cref="ActionSpace.Loop"/> parameterisation: an episode is <c>episodeLength</c> edits,
/// each walking the cursor to a loop and changing the kernel there; reward and observation as in
/// <see cref="LoopTuneTask"/> (ΔGFLOPS / peak; the seed's tensors, whose previous actions are the seed's actions taken).
/// </summary>
public sealed class LoopMoveTask(Env.IEvaluator evaluator, double peakGflops, IReadOnlyList<Computation> benchmarks, int episodeLength = 10,
    ActionSpace? space = null) : IRlEnv, IDisposable
{
    readonly ActionSpace space = space is null || space == ActionSpace.Loop || space == ActionSpace.Tile ? space ?? ActionSpace.Loop
        : throw new ArgumentException($"a loop-move task acts in the loop or tile space, not '{space.Name}'", nameof(space));
    readonly List<LoopAction> history = [];
    Nest? nest;
    double gflops;
    int steps;

    public IReadOnlyList<Computation> Benchmarks { get; } = benchmarks.Count > 0 ? benchmarks : throw new ArgumentException("a task needs at least one benchmark", nameof(benchmarks));
    public int ObservationSize => ObservationEncoder.Size;
    public int ActionCount => space.Count;

    public TimeStep Reset(Rng rng) => Reset(Benchmarks[rng.Next(Benchmarks.Count)]);

    public TimeStep Reset(Computation benchmark)
    {
        (nest, steps) = (Nest.Initial(benchmark), 0);
        history.Clear();
        gflops = evaluator.Evaluate(nest).Gflops;
        return Observe(0);
    }

    public TimeStep Step(int action)
    {
        var now = nest ?? throw new InvalidOperationException("call Reset before Step");
        if (steps >= episodeLength) throw new InvalidOperationException($"the episode ended after {episodeLength} steps; call Reset");
        var (actions, next) = space.Apply(now, action);
        double before = gflops;
        gflops = evaluator.Evaluate(next).Gflops;
        (nest, steps) = (next, steps + 1);
        history.AddRange(actions);
        return Observe((gflops - before) / peakGflops);
    }

    TimeStep Observe(double reward)
    {
        var n = nest!;
        bool done = steps >= episodeLength;
        var mask = space.Mask(n);
        if (!done && !mask.Contains(true)) done = true; // nothing legal is left: the episode ends here
        return new(ObservationEncoder.Encode(new Env.Observation(n, default, history), steps, episodeLength), mask, reward, done, gflops);
    }

    public void Dispose()
    {
        if (evaluator is IDisposable d) d.Dispose();
    }
}
