using System.Collections.Immutable;

namespace LoopTune.Ir;

/// <summary>The rules an action can break; <see cref="Rule.None"/> means the action is legal.</summary>
public enum Rule : byte
{
    None,
    /// <summary>up / swap_up at the outermost loop.</summary>
    NoLoopAbove,
    /// <summary>down / swap_down at the innermost loop.</summary>
    NoLoopBelow,
    /// <summary>A swap of two loops over the same variable (their order is fixed by the splits).</summary>
    SameVariable,
    /// <summary>A swap that would move the vectorized loop away from the innermost position.</summary>
    VectorizedMustStayInnermost,
    /// <summary>split / merge of an unrolled or vectorized loop, unroll of a vectorized loop, vectorize of an unrolled one.</summary>
    Annotated,
    /// <summary>split_N of a loop with fewer than N iterations.</summary>
    SplitTooLarge,
    /// <summary>A split that would make more than <see cref="Nest.MaxLoops"/> loops.</summary>
    TooManyLoops,
    /// <summary>merge of a loop that has no enclosing loop over the same variable.</summary>
    NothingToMerge,
    /// <summary>vectorize of a loop that is not the innermost.</summary>
    NotInnermost,
    /// <summary>unroll of a loop with more than <see cref="Transforms.MaxUnroll"/> iterations.</summary>
    UnrollTooLarge,
    /// <summary>pack at a loop whose variable indexes every input: no input is reused across its iterations.</summary>
    NothingToPack,
    /// <summary>pack of an input with an affine index such as <c>h+r</c> (<see cref="Nest.IsPackable"/>).</summary>
    NotPackable,
    /// <summary>parallel of a loop over a reduction variable: threads would add into the same outputs.</summary>
    ParallelReduction,
    /// <summary>parallel of a loop when another loop of the nest is parallel already.</summary>
    SecondParallel,
    /// <summary>An action that would leave the parallel loop inside an unrolled or vectorized loop: parallel under one,
    /// unroll of a loop around the parallel one, a swap that puts an unrolled loop around it.</summary>
    ParallelInsideSpelledOut,
    /// <summary>parallel taken by a search or policy whose kernels run on one thread: a rule of the learned spaces
    /// (<c>Env.Moves.Enabled</c>), not of the nest, so <see cref="Transforms.Check"/> never returns it.</summary>
    OneThread,
}

/// <summary>
/// The schedule primitives, as pure functions of the nest. Each acts on the loop under the cursor and
/// either returns a new nest or throws the one <see cref="ScheduleError"/> that names the loop, the action
/// and the rule broken. <see cref="Check"/> applies the same rules without throwing; the action mask is built from it.
/// </summary>
public static class Transforms
{
    /// <summary>Most iterations (size, plus one for a tail) a loop may have to be unrolled.</summary>
    public const int MaxUnroll = 64;

    /// <summary>Applies <paramref name="action"/> to the loop under the cursor, or throws the rule it breaks.</summary>
    public static Nest Apply(Nest nest, LoopAction action)
    {
        var rule = Check(nest, action);
        if (rule != Rule.None) throw ScheduleError.Create(nest, action, rule);
        int c = nest.Cursor;
        return action.Kind switch
        {
            ActionKind.Up => nest.With(nest.Loops, c - 1),
            ActionKind.Down => nest.With(nest.Loops, c + 1),
            ActionKind.SwapUp => Swap(nest, c - 1),
            ActionKind.SwapDown => Swap(nest, c),
            ActionKind.Split => Split(nest, action.Factor),
            ActionKind.Merge => Merge(nest),
            ActionKind.Unroll => Toggle(nest, Annotation.Unroll),
            ActionKind.Vectorize => Toggle(nest, Annotation.Vectorize),
            ActionKind.Pack => Pack(nest),
            ActionKind.Parallel => Toggle(nest, Annotation.Parallel),
            _ => throw new ArgumentOutOfRangeException(nameof(action)),
        };
    }

    /// <summary>Applies the actions in order; a broken rule throws, naming the failing step (1-based) in <see cref="ScheduleError.Step"/>.</summary>
    public static Nest ApplyAll(Nest nest, IEnumerable<LoopAction> actions)
    {
        int step = 0;
        foreach (var a in actions)
        {
            step++;
            try { nest = Apply(nest, a); }
            catch (ScheduleError e) { e.Step = step; throw; }
        }
        return nest;
    }

    /// <summary>The rule <paramref name="action"/> would break on this nest, or <see cref="Rule.None"/>.</summary>
    public static Rule Check(Nest nest, LoopAction action)
    {
        int c = nest.Cursor, last = nest.Count - 1;
        var loop = nest[c];
        switch (action.Kind)
        {
            case ActionKind.Up: return c == 0 ? Rule.NoLoopAbove : Rule.None;
            case ActionKind.Down: return c == last ? Rule.NoLoopBelow : Rule.None;
            case ActionKind.SwapUp:
                if (c == 0) return Rule.NoLoopAbove;
                if (nest[c - 1].Var == loop.Var) return Rule.SameVariable;
                if (loop.IsVectorized) return Rule.VectorizedMustStayInnermost;
                return loop.IsUnrolled && nest[c - 1].IsParallel ? Rule.ParallelInsideSpelledOut : Rule.None;
            case ActionKind.SwapDown:
                if (c == last) return Rule.NoLoopBelow;
                if (nest[c + 1].Var == loop.Var) return Rule.SameVariable;
                if (nest[c + 1].IsVectorized) return Rule.VectorizedMustStayInnermost;
                return loop.IsParallel && nest[c + 1].IsUnrolled ? Rule.ParallelInsideSpelledOut : Rule.None;
            case ActionKind.Split:
                if (loop.Annotation != Annotation.None) return Rule.Annotated;
                if (nest.Count >= Nest.MaxLoops) return Rule.TooManyLoops;
                return loop.Size < action.Factor ? Rule.SplitTooLarge : Rule.None;
            case ActionKind.Merge:
                int p = nest.PreviousOfVar(c);
                if (p < 0) return Rule.NothingToMerge;
                return loop.Annotation != Annotation.None || nest[p].Annotation != Annotation.None ? Rule.Annotated : Rule.None;
            case ActionKind.Unroll:
                if (loop.IsUnrolled) return Rule.None;
                if (loop.Annotation != Annotation.None) return Rule.Annotated;
                if (loop.Iterations > MaxUnroll) return Rule.UnrollTooLarge;
                return nest.ParallelLoop > c ? Rule.ParallelInsideSpelledOut : Rule.None;
            case ActionKind.Vectorize:
                if (loop.IsVectorized) return Rule.None;
                if (loop.Annotation != Annotation.None) return Rule.Annotated;
                return c != last ? Rule.NotInnermost : Rule.None;
            case ActionKind.Parallel: return CheckParallel(nest);
            case ActionKind.Pack:
                int reused = Reused(nest);
                if (reused == 0) return Rule.NothingToPack;
                return Enumerable.Range(1, 2).Any(t => (reused >> t & 1) != 0 && !Nest.IsPackable(nest.Computation.Tensors[t])) ? Rule.NotPackable : Rule.None;
            default: throw new ArgumentOutOfRangeException(nameof(action));
        }
    }

    /// <summary>
    /// The rules of parallel (see <see cref="Toggle"/>): removing it is always legal; adding it requires a loop that is not
    /// annotated, over an output variable, no other parallel loop in the nest, and no unrolled or vectorized loop around it.
    /// </summary>
    static Rule CheckParallel(Nest nest)
    {
        int c = nest.Cursor;
        var loop = nest[c];
        if (loop.IsParallel) return Rule.None;
        if (loop.Annotation != Annotation.None) return Rule.Annotated;
        if (nest.Computation.IsReduction[loop.Var]) return Rule.ParallelReduction;
        if (nest.ParallelLoop >= 0) return Rule.SecondParallel;
        return nest.Loops.Take(c).Any(l => l.IsSpelledOut) ? Rule.ParallelInsideSpelledOut : Rule.None;
    }

    public static bool IsLegal(Nest nest, LoopAction action) => Check(nest, action) == Rule.None;

    /// <summary>
    /// The parallel loop a tuner working at <paramref name="threads"/> threads gives a schedule (<c>Jit.RunThreads</c>), as
    /// Ansor's sketch rules annotate an outer spatial loop parallel instead of searching for it: of the loops where
    /// parallel is legal (<see cref="CheckParallel"/>: over an output variable, outside every unrolled or vectorized loop),
    /// the outermost whose iterations keep the threads at least 90 % busy in static chunks (t / (ceil(t / N) * N): 2 or 9
    /// iterations on 2 threads, not 3), else the one that keeps them busiest (outermost first), needing 2 iterations at
    /// least. The nest itself for one thread, when it has a parallel loop already, or when no loop qualifies; the cursor
    /// stays where it was.
    /// <code>
    /// before (2 threads)               after
    /// for m in 64                      for m in 64 parallel
    ///   for n in 16                      for n in 16
    ///     for k in 512                     for k in 512
    ///       for m' in 8 unroll               for m' in 8 unroll
    ///         for n' in 32 vectorize           for n' in 32 vectorize
    /// </code>
    /// With <paramref name="prefer"/> (a variable of the computation), the outermost loop over it that keeps the threads at
    /// least 90 % busy is the parallel one, in place of any the nest has: a forward pass whose activations stay in blocks
    /// splits each kernel's rows between the threads, so that a thread reads mostly the rows its own producer wrote
    /// (<c>ContractionOp.ParallelOver</c>). Without such a loop, the rule above.
    /// </summary>
    public static Nest Parallelize(Nest nest, int threads, string? prefer = null)
    {
        ArgumentNullException.ThrowIfNull(nest);
        if (threads <= 1) return nest;
        if (prefer is not null && nest.Computation.Vars.IndexOf(prefer) is int v and >= 0)
        {
            var plain = nest.ParallelLoop >= 0 ? Annotate(nest, nest.ParallelLoop, Annotation.None) : nest;
            for (int i = 0; i < plain.Count; i++)
                if (plain[i].Var == v && Busy(plain, i, threads) >= 0.9) return Annotate(plain, i, Annotation.Parallel);
        }
        if (nest.ParallelLoop >= 0) return nest;
        int best = -1;
        double busiest = 0;
        for (int i = 0; i < nest.Count; i++)
        {
            double busy = Busy(nest, i, threads);
            if (busy >= 0.9) return Annotate(nest, i, Annotation.Parallel);
            if (busy > busiest) (best, busiest) = (i, busy);
        }
        return best < 0 ? nest : Annotate(nest, best, Annotation.Parallel);
    }

    /// <summary>The share of <paramref name="threads"/> threads kept busy by loop <paramref name="i"/>'s iterations in static
    /// chunks, t / (ceil(t / N) * N); 0 when the loop may not be parallel or has fewer than 2 iterations.</summary>
    static double Busy(Nest nest, int i, int threads)
    {
        int t = nest[i].Iterations;
        if (t < 2 || CheckParallel(nest.With(nest.Loops, i)) != Rule.None) return 0;
        return t / (Math.Ceiling(t / (double)threads) * threads);
    }

    static Nest Annotate(Nest nest, int loop, Annotation a) => nest.With(nest.Loops.SetItem(loop, nest[loop] with { Annotation = a }), nest.Cursor);

    /// <summary>The legal-action mask: entry i is true when <c>Actions.All[i]</c> breaks no rule.</summary>
    public static bool[] Mask(Nest nest)
    {
        var mask = new bool[Actions.Count];
        for (int i = 0; i < mask.Length; i++) mask[i] = Check(nest, Actions.All[i]) == Rule.None;
        return mask;
    }

    /// <summary>
    /// swap: exchange loops <paramref name="upper"/> and upper+1; the cursor follows the loop it was on.
    /// <code>
    /// before (swap_down on n)     after
    /// for m in 64                 for m in 64
    ///   for n in 64  &lt;-            for k in 64
    ///     for k in 64                 for n in 64  &lt;-
    /// </code>
    /// Requires: a neighbour on that side, over a different variable; the vectorized loop stays innermost.
    /// </summary>
    static Nest Swap(Nest nest, int upper)
    {
        var b = nest.Loops.ToBuilder();
        (b[upper], b[upper + 1]) = (b[upper + 1], b[upper]);
        return nest.With(b.MoveToImmutable(), nest.Cursor == upper ? upper + 1 : upper);
    }

    /// <summary>
    /// split_N: the loop becomes an outer loop of Extent/(N*I) iterations (tail Extent mod N*I) over a new
    /// inner loop of N iterations (tail 0), placed right below it. The cursor stays on the outer loop.
    /// <code>
    /// before (split_16 on n, n = 100)     after
    /// for n in 100  &lt;-                    for n in 6 tail 4  &lt;-
    ///   for k in 64                         for n' in 16
    ///                                         for k in 64
    /// </code>
    /// Requires: the loop is not annotated, has at least N iterations, and the nest has fewer than MaxLoops loops.
    /// </summary>
    static Nest Split(Nest nest, int factor)
    {
        int c = nest.Cursor, step = nest.InnerStep(c), extent = nest.Extent(c);
        var loop = nest[c];
        var b = nest.Loops.ToBuilder();
        b[c] = loop with { Size = extent / (factor * step), Tail = extent % (factor * step) };
        b.Insert(c + 1, new Loop(loop.Var, factor));
        return nest.With(b.ToImmutable(), c);
    }

    /// <summary>
    /// merge: remove the loop and widen its nearest enclosing loop over the same variable so that it covers
    /// the same elements (undoes a split). The cursor moves to the widened loop.
    /// <code>
    /// before (merge on n')        after
    /// for n in 6 tail 4           for n in 100  &lt;-
    ///   for n' in 16  &lt;-            for k in 64
    ///     for k in 64
    /// </code>
    /// Requires: an enclosing loop over the same variable; neither loop annotated.
    /// </summary>
    static Nest Merge(Nest nest)
    {
        int c = nest.Cursor, p = nest.PreviousOfVar(c), step = nest.InnerStep(c), extent = nest.Extent(p);
        var b = nest.Loops.ToBuilder();
        b[p] = b[p] with { Size = extent / step, Tail = extent % step };
        b.RemoveAt(c);
        return nest.With(b.ToImmutable(), p);
    }

    /// <summary>The inputs the cursor's loop variable does not index (bits as <see cref="Nest.Packed"/>): the ones every
    /// iteration of the loop reads again.</summary>
    static int Reused(Nest nest)
    {
        int v = nest[nest.Cursor].Var, bits = 0;
        for (int t = 1; t < 3; t++)
            if (nest.Computation.Tensors[t].VarStrides[v] == 0) bits |= 1 << t;
        return bits;
    }

    /// <summary>
    /// pack: toggle packing of the inputs the loop under the cursor reuses (those its variable does not index): packed
    /// when any of them is not, unpacked otherwise. The kernel reads a packed input from a copy laid out in the order its
    /// loops visit it (<see cref="Nest.Packed"/>), made in every run and timed with it. Loops and cursor stay.
    /// <code>
    /// before (pack on m; B[k,n] is reused across m)    after: B is read from a copy laid out as [n:32][k:384][n':32]
    /// for n in 32                                       for n in 32
    ///   for m in 256  &lt;-                                 for m in 256  &lt;-
    ///     for k in 384                                      for k in 384
    ///       for m' in 8 unroll                                for m' in 8 unroll
    ///         for n' in 2 unroll                                for n' in 2 unroll
    ///           for n'' in 16 vectorize                           for n'' in 16 vectorize
    ///                                                   packed: B
    /// </code>
    /// Requires: an input the loop's variable does not index, and each such input indexed by plain, distinct variables.
    /// </summary>
    static Nest Pack(Nest nest)
    {
        int reused = Reused(nest);
        return nest.WithPacked((nest.Packed & reused) == reused ? nest.Packed & ~reused : nest.Packed | reused);
    }

    /// <summary>
    /// unroll / vectorize / parallel: toggle the annotation of the loop. An unrolled loop is fully unrolled by the JIT;
    /// a vectorized loop becomes SIMD lanes (the widest the machine has, narrower vectors for the rest); a parallel loop's
    /// iterations are divided among the threads the kernel is given (<c>Kernel.Threads</c>), in static chunks, each
    /// thread running the loops inside on its own iterations.
    /// <code>
    /// before (parallel on m)          after (the compact form m:16p k:64 m:8u n:64v)
    /// for m in 16  &lt;-                 for m in 16 parallel  &lt;-
    ///   for k in 64                     for k in 64
    ///     for m' in 8 unroll              for m' in 8 unroll
    ///       for n in 64 vectorize           for n in 64 vectorize
    /// </code>
    /// Requires: the loop carries no other annotation; unroll at most <see cref="MaxUnroll"/> iterations and not around
    /// the parallel loop; vectorize only the innermost loop; parallel only a loop over an output variable (a reduction's
    /// terms would be added by several threads into one output), no other parallel loop in the nest, and no unrolled or
    /// vectorized loop around it (the unrolled code would hold one copy of the loop per iteration, each dividing its
    /// iterations again). Removing an annotation is always legal.
    /// </summary>
    static Nest Toggle(Nest nest, Annotation annotation)
    {
        int c = nest.Cursor;
        var b = nest.Loops.ToBuilder();
        b[c] = b[c] with { Annotation = b[c].Annotation == annotation ? Annotation.None : annotation };
        return nest.With(b.MoveToImmutable(), c);
    }
}
