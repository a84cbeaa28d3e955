namespace LoopTune.Ir;

/// <summary>
/// An action that breaks a rule of the schedule. One subtype per <see cref="Ir.Rule"/>; the message names
/// the action, the loop under the cursor (by display name and position) and the rule.
/// </summary>
public abstract class ScheduleError(Nest nest, LoopAction action, Rule rule, string why)
    : LoopTuneException($"{action.Name} on loop {nest.LoopName(nest.Cursor)} (position {nest.Cursor}): {why}")
{
    public Nest Nest { get; } = nest;
    public LoopAction Action { get; } = action;
    public Rule Rule { get; } = rule;
    public string LoopName => Nest.LoopName(Nest.Cursor);
    /// <summary>1-based position of the failing action in a sequence, when applied as part of one.</summary>
    public int? Step { get; internal set; }

    public override string Message => Step is int s ? $"step {s}: {base.Message}" : base.Message;

    internal static ScheduleError Create(Nest n, LoopAction a, Rule rule)
    {
        var l = n[n.Cursor];
        return rule switch
        {
            Rule.NoLoopAbove => new NoLoopAboveError(n, a),
            Rule.NoLoopBelow => new NoLoopBelowError(n, a),
            Rule.SameVariable => new SameVariableError(n, a),
            Rule.VectorizedMustStayInnermost => new VectorizedMustStayInnermostError(n, a),
            Rule.Annotated => new AnnotatedLoopError(n, a),
            Rule.SplitTooLarge => new SplitTooLargeError(n, a, l.Size),
            Rule.TooManyLoops => new TooManyLoopsError(n, a),
            Rule.NothingToMerge => new NothingToMergeError(n, a),
            Rule.NotInnermost => new NotInnermostError(n, a),
            Rule.UnrollTooLarge => new UnrollTooLargeError(n, a, l.Iterations),
            Rule.NothingToPack => new NothingToPackError(n, a),
            Rule.NotPackable => new NotPackableError(n, a),
            Rule.ParallelReduction => new ParallelReductionError(n, a),
            Rule.SecondParallel => new SecondParallelError(n, a),
            Rule.ParallelInsideSpelledOut => new ParallelInsideSpelledOutError(n, a),
            Rule.OneThread => new OneThreadParallelError(n, a),
            _ => throw new ArgumentOutOfRangeException(nameof(rule)),
        };
    }
}

public sealed class NoLoopAboveError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.NoLoopAbove, "it is the outermost loop; there is no loop above");

public sealed class NoLoopBelowError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.NoLoopBelow, "it is the innermost loop; there is no loop below");

public sealed class SameVariableError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.SameVariable, "its neighbour loops over the same variable; loops of one variable keep their order");

public sealed class VectorizedMustStayInnermostError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.VectorizedMustStayInnermost, "the swap would move the vectorized loop away from the innermost position");

public sealed class AnnotatedLoopError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.Annotated, a.Kind is ActionKind.Unroll or ActionKind.Vectorize or ActionKind.Parallel
        ? $"the loop is {Past(n[n.Cursor].Annotation)}; remove {Nest.Word(n[n.Cursor].Annotation)} first"
        : "an unrolled, vectorized or parallel loop cannot be split or merged; remove the annotation first")
{
    static string Past(Annotation a) => a switch { Annotation.Unroll => "unrolled", Annotation.Vectorize => "vectorized", _ => Nest.Word(a) };
}

public sealed class SplitTooLargeError(Nest n, LoopAction a, int size)
    : ScheduleError(n, a, Rule.SplitTooLarge, $"the loop has {size} iterations, fewer than the split factor {a.Factor}");

public sealed class TooManyLoopsError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.TooManyLoops, $"the nest already has {Nest.MaxLoops} loops, the most allowed");

public sealed class NothingToMergeError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.NothingToMerge, "no enclosing loop runs over the same variable");

public sealed class NotInnermostError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.NotInnermost, "only the innermost loop can be vectorized");

public sealed class UnrollTooLargeError(Nest n, LoopAction a, int iterations)
    : ScheduleError(n, a, Rule.UnrollTooLarge, $"the loop has {iterations} iterations; at most {Transforms.MaxUnroll} can be unrolled");

public sealed class NothingToPackError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.NothingToPack, $"every input is indexed by '{n.Computation.Vars[n[n.Cursor].Var]}'; pack copies an input the loop reuses, and this loop reuses none");

public sealed class NotPackableError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.NotPackable, $"the input the loop reuses is indexed by an affine sum ({Affine(n)}); only inputs indexed by plain variables can be packed")
{
    static string Affine(Nest n) => string.Join(", ", n.Computation.Tensors.Skip(1).Where(t => !Nest.IsPackable(t)).Select(t => t.Name));
}

public sealed class ParallelReductionError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.ParallelReduction, $"'{n.Computation.Vars[n[n.Cursor].Var]}' is a reduction variable: threads would add into the same outputs; only a loop over an output variable can be parallel");

public sealed class SecondParallelError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.SecondParallel, $"loop {n.LoopName(n.ParallelLoop)} (position {n.ParallelLoop}) is parallel already; a nest has at most one parallel loop");

public sealed class OneThreadParallelError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.OneThread, "the kernels run on one thread (--threads 1), where a parallel loop changes nothing; searches and policies take parallel only at more threads");

public sealed class ParallelInsideSpelledOutError(Nest n, LoopAction a)
    : ScheduleError(n, a, Rule.ParallelInsideSpelledOut, a.Kind switch
    {
        ActionKind.Parallel => "an enclosing loop is unrolled or vectorized; a parallel loop must be outside every unrolled or vectorized loop",
        ActionKind.Unroll => $"the loop encloses the parallel loop {n.LoopName(n.ParallelLoop)}; a parallel loop must be outside every unrolled or vectorized loop",
        _ => $"the swap would put the parallel loop {n.LoopName(n.ParallelLoop)} inside an unrolled loop",
    });
