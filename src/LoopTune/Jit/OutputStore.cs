using LoopTune.Ir;

namespace LoopTune.Jit;

/// <summary>
/// Where a kernel compiled with <see cref="Kernel.CompileStore"/> writes its output, and what it does to each output element
/// when it stores it for the last time (the epilogue a forward pass would otherwise run as passes of its own over the output):
/// <list type="table">
/// <item><term><see cref="Strides"/></term><description>The output's element strides per variable of the computation (0 for a
/// summed one): the output written into a view of a larger buffer (a padded copy's interior, a plane of a layout the next
/// operator reads); null: the output tensor's own. No two output elements may share an element of the view.</description></item>
/// <item><term><see cref="Residual"/></term><description>Each element's last store adds the element of a second buffer at the
/// same place in the view (<c>residual</c>, laid out as the output).</description></item>
/// <item><term><see cref="Relu"/></term><description>Each element's last store keeps <c>max(v, 0)</c>, after the residual.</description></item>
/// </list>
/// An element's last store is that of the last iteration of every loop of the sum outside its register tile: where the sum is
/// split around the tile (<c>c:2</c> in <c>g:2 c:2 h:56 w:4 c:32 r:3 s:3 w:14u e:32v</c>), the earlier iterations store partial
/// sums as ever, and the last one, told apart by the loop's counter, stores with the epilogue:
/// <code>
/// O[m,n] += A[m,k] * B[k,n], schedule m:8 k:4 n:2 k:16 m:8u n:32v, Relu:
///   for m, k (4), n: tile = O[m..m+7, n..n+31]; tile += A * B over 16 k; O = k is its last ? max(tile, 0) : tile
/// </code>
/// A vectorized sum (whose lanes add onto the output) has no single last store: refused.
/// </summary>
public sealed record OutputStore(IReadOnlyList<long>? Strides = null, bool Residual = false, bool Relu = false)
{
    /// <summary>Equal when the strides (element by element), the residual and the Relu are.</summary>
    public bool Equals(OutputStore? other) =>
        other is not null && Residual == other.Residual && Relu == other.Relu
        && (Strides is null ? other.Strides is null : other.Strides is not null && Strides.SequenceEqual(other.Strides));

    public override int GetHashCode() => HashCode.Combine(Residual, Relu, Strides is null ? 0 : Strides.Aggregate(17L, (h, x) => h * 31 + x).GetHashCode());

    /// <summary>Whether the last store does anything besides storing.</summary>
    public bool HasEpilogue => Residual || Relu;

    /// <summary>The view's strides for <paramref name="c"/>, checked (an <see cref="ArgumentException"/> naming what is
    /// wrong): one per variable, 0 for a summed one, none negative, and no two output elements at one element of the view
    /// (ordered by stride, each variable's stride passes the span of the smaller ones).</summary>
    public long[] StridesFor(Computation c)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (Strides is null) return [.. c.Output.VarStrides];
        if (Strides.Count != c.Vars.Length)
            throw new ArgumentException($"the output view needs a stride for each of the {c.Vars.Length} variables ({string.Join(",", c.Vars)}), not {Strides.Count}");
        for (int v = 0; v < c.Vars.Length; v++)
            if (Strides[v] < 0 || c.IsReduction[v] && Strides[v] != 0)
                throw new ArgumentException($"the output view's stride for {c.Vars[v]} is {Strides[v]}: strides are >= 0, and 0 for a summed variable");
        long span = 0;
        foreach (int v in Enumerable.Range(0, c.Vars.Length).Where(v => !c.IsReduction[v] && c.Sizes[v] > 1).OrderBy(v => Strides[v]))
        {
            if (Strides[v] <= span) throw new ArgumentException($"the output view's stride for {c.Vars[v]} is {Strides[v]}: output elements would overlap (the variables with smaller strides span {span + 1} elements)");
            span += (c.Sizes[v] - 1) * Strides[v];
        }
        return [.. Strides];
    }

    /// <summary>The floats the output's buffer (and the residual's) must hold from the pointer given to the kernel: one past
    /// the view's last element.</summary>
    public long Length(Computation c)
    {
        var s = StridesFor(c);
        return 1 + Enumerable.Range(0, c.Vars.Length).Sum(v => (c.Sizes[v] - 1) * s[v]);
    }
}

/// <summary>
/// Where a kernel compiled with <see cref="Kernel.CompileStore"/> reads its inputs: each a view of a larger buffer, given by
/// the strides of the input's dimensions (its index positions, outermost first) in elements; null: the input tensor as
/// it is (its dimensions laid out densely, row-major). An input read through a view is read where the view says, as a
/// convolution reads the interior of the padded copy another kernel wrote (the rows of the copy longer than the windows
/// reach), or every second pixel of it from an offset the caller adds to the pointer. A view's input is never packed
/// (<c>pack=</c>: an <see cref="ArgumentException"/>).
/// <code>
/// O[g,h,w,e] += I[d,2*h+r,2*w+s,k] * W[...] h=28 w=28 ..., I in a 58x58 padded copy of 56x56:  Left [58*58*k, 58*k, k, 1]
/// </code>
/// </summary>
public sealed record InputViews(IReadOnlyList<long>? Left = null, IReadOnlyList<long>? Right = null)
{
    /// <summary>The view of input <paramref name="t"/> (1: left, 2: right) as strides per variable of
    /// <paramref name="c"/>, checked (an <see cref="ArgumentException"/>: not one stride per dimension, a negative one);
    /// null when the input has no view.</summary>
    public long[]? VarStridesFor(Computation c, int t)
    {
        ArgumentNullException.ThrowIfNull(c);
        var view = t == 1 ? Left : Right;
        if (view is null) return null;
        var tensor = c.Tensors[t];
        if (view.Count != tensor.Index.Length)
            throw new ArgumentException($"the view of {tensor.Name} needs a stride for each of its {tensor.Index.Length} dimensions, not {view.Count}");
        if (view.Any(s => s < 0)) throw new ArgumentException($"the view of {tensor.Name} has a negative stride: [{string.Join(",", view)}]");
        var strides = new long[c.Vars.Length];
        for (int d = 0; d < tensor.Index.Length; d++)
            foreach (var term in tensor.Index[d]) strides[term.Var] += term.Coefficient * view[d];
        return strides;
    }

    /// <summary>The floats input <paramref name="t"/>'s buffer must hold from the pointer given to the kernel: one past the
    /// last element the view reaches (the input tensor's length without a view).</summary>
    public long Length(Computation c, int t)
    {
        ArgumentNullException.ThrowIfNull(c);
        var view = t == 1 ? Left : Right;
        var tensor = c.Tensors[t];
        return view is null ? tensor.Length : 1 + Enumerable.Range(0, tensor.Index.Length).Sum(d => (tensor.Shape[d] - 1) * view[d]);
    }

    /// <summary>Equal when both views are, element by element.</summary>
    public bool Equals(InputViews? other) => other is not null && Same(Left, other.Left) && Same(Right, other.Right);

    public override int GetHashCode() => HashCode.Combine(Left?.Count, Right?.Count, Left?.FirstOrDefault(), Right?.FirstOrDefault());

    static bool Same(IReadOnlyList<long>? a, IReadOnlyList<long>? b) => a is null ? b is null : b is not null && a.SequenceEqual(b);
}
