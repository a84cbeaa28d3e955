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
/// </summary>
public abstract class ActionSpace
{
    public static readonly ActionSpace Cursor = new CursorSpace(), Loop = new LoopSpace();

    public static IReadOnlyList<string> Names { get; } = ["cursor", "loop"];

    /// <summary>The space called <paramref name="name"/>; a <see cref="LoopTuneException"/> naming the valid ones otherwise.</summary>
    public static ActionSpace Get(string name) => name switch
    {
        "cursor" => Cursor,
        "loop" => Loop,
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

    sealed class LoopSpace : ActionSpace
    {
        static readonly int Kernel = Moves.KernelActions.Length, PerLoop = Kernel + 2;
        static readonly LoopAction SwapDown = Actions.Get("swap_down"), SwapUp = Actions.Get("swap_up");

        public override string Name => "loop";
        public override int Count => Nest.MaxLoops * PerLoop;

        public override bool[] Mask(Nest nest)
        {
            var mask = new bool[Count];
            for (int loop = 0; loop < nest.Count; loop++)
                for (int k = 0; k < PerLoop; k++)
                    mask[loop * PerLoop + k] = Edit(nest, loop, k) is not null;
            return mask;
        }

        public override (IReadOnlyList<LoopAction>, Nest) Apply(Nest nest, int id) =>
            (id / PerLoop < nest.Count ? Edit(nest, id / PerLoop, id % PerLoop) : null)
            ?? throw new InvalidOperationException($"action {Describe(id)} is not legal in {nest.Serialize()}");

        /// <summary>Edit <paramref name="k"/> at <paramref name="loop"/>: the seed's actions and the result, or null when illegal.</summary>
        static (IReadOnlyList<LoopAction>, Nest)? Edit(Nest nest, int loop, int k)
        {
            if (k < Kernel) return Moves.Make(nest, loop, Moves.KernelActions[k]) is { } m ? (m.Actions, m.Result) : null;
            var swap = k == Kernel ? SwapDown : SwapUp;
            var at = Moves.AtLoop(nest, loop);
            if (!Transforms.IsLegal(at, swap)) return null;
            var actions = new List<LoopAction>(Moves.Walk(nest.Cursor, loop));
            while (Transforms.IsLegal(at, swap))
            {
                at = Transforms.Apply(at, swap);
                actions.Add(swap);
            }
            return (actions, at);
        }

        public override string Describe(int id) =>
            (id % PerLoop) switch { var k when k < Kernel => Moves.KernelActions[k].Name, var k when k == Kernel => "sink", _ => "hoist" } + $"@{id / PerLoop}";
    }
}

/// <summary>
/// The loop-nest task in the <see cref="ActionSpace.Loop"/> parameterisation: an episode is <c>episodeLength</c> edits,
/// each walking the cursor to a loop and changing the kernel there; reward and observation as in
/// <see cref="LoopTuneTask"/> (ΔGFLOPS / peak; the seed's tensors, whose previous actions are the seed's actions taken).
/// </summary>
public sealed class LoopMoveTask(Env.IEvaluator evaluator, double peakGflops, IReadOnlyList<Computation> benchmarks, int episodeLength = 10) : IRlEnv, IDisposable
{
    readonly List<LoopAction> history = [];
    Nest? nest;
    double gflops;
    int steps;

    public IReadOnlyList<Computation> Benchmarks { get; } = benchmarks.Count > 0 ? benchmarks : throw new ArgumentException("a task needs at least one benchmark", nameof(benchmarks));
    public int ObservationSize => ObservationEncoder.Size;
    public int ActionCount => ActionSpace.Loop.Count;

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
        var (actions, next) = ActionSpace.Loop.Apply(now, action);
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
        var mask = ActionSpace.Loop.Mask(n);
        if (!done && !mask.Contains(true)) done = true; // nothing legal is left: the episode ends here
        return new(ObservationEncoder.Encode(new Env.Observation(n, default, history), steps, episodeLength), mask, reward, done, gflops);
    }

    public void Dispose()
    {
        if (evaluator is IDisposable d) d.Dispose();
    }
}
