using System.Collections.Immutable;

namespace LoopTune.Ir;

/// <summary>One batch loop of a <see cref="GemmForm"/>: a variable that indexes the output and both inputs, and how far one
/// step of it moves in each (in floats).</summary>
public readonly record struct GemmBatch(string Var, int Size, long StrideC, long StrideA, long StrideB);

/// <summary>
/// A contraction written as BLAS's row-major <c>C = op(A) op(B) + C</c> (<c>cblas_sgemm(CblasRowMajor, ...)</c> with
/// alpha = beta = 1): op(A) is M x K, op(B) K x N, C M x N with leading dimensions <see cref="Lda"/>, <see cref="Ldb"/>,
/// <see cref="Ldc"/>; <see cref="TransA"/> means A is stored K x M (so op(A) = A^T), likewise <see cref="TransB"/>. A is the
/// left input when <see cref="ALeft"/>, else the right one (the product commutes, so an output transposed against the
/// inputs swaps them). <see cref="Batch"/> lists the loops around the call: one sgemm per batch index, at pointers
/// advanced by the batch strides. Variables of size 1 address nothing and are ignored; a group of variables with one role
/// (for instance two reduction variables) counts as one dimension when it is contiguous in every tensor it indexes.
/// <see cref="Classify"/> finds the form, or says in one line why there is none.
/// <code>
/// C[m,n] += A[m,k] * B[n,k]       -> sgemm N,T   M=m N=n K=k lda=k ldb=k ldc=n
/// C[b,m,n] += A[b,m,k] * B[b,k,n] -> b x sgemm N,N, pointers advanced by m*n, m*k, k*n
/// C[n,m] += A[m,k] * B[k,n]       -> sgemm T,T with B as BLAS's A (C^T = B^T A^T)
/// </code>
/// </summary>
public sealed record GemmForm(bool ALeft, int M, int N, int K, bool TransA, bool TransB, int Lda, int Ldb, int Ldc, ImmutableArray<GemmBatch> Batch)
{
    /// <summary>How many sgemm calls one run of the contraction is: the product of the batch sizes (1 without a batch).</summary>
    public long Calls => Batch.Aggregate(1L, (p, b) => p * b.Size);

    /// <summary>The call in words, e.g. <c>sgemm N,T</c> or <c>8 x sgemm N,N (batch b)</c>.</summary>
    public string Describe()
    {
        string call = $"sgemm {(TransA ? 'T' : 'N')},{(TransB ? 'T' : 'N')}";
        return Batch.IsEmpty ? call : $"{Calls} x {call} (batch {string.Join(",", Batch.Select(b => b.Var))})";
    }

    /// <summary>Equal when every field is, the batch loops compared element by element.</summary>
    public bool Equals(GemmForm? other) => other is not null && ToString() == other.ToString() && Batch.SequenceEqual(other.Batch);

    /// <inheritdoc/>
    public override int GetHashCode() => ToString().GetHashCode(StringComparison.Ordinal);

    /// <inheritdoc/>
    public override string ToString() => $"{Describe()} M={M} N={N} K={K} lda={Lda} ldb={Ldb} ldc={Ldc}{(ALeft ? "" : ", A is the right input")}";

    /// <summary>The BLAS form of <paramref name="c"/>, or null and one line saying why it has none (an affine index, a
    /// reduction over an index of one operand only, no unit stride, ...).</summary>
    public static (GemmForm? Form, string? Reason) Classify(Computation c)
    {
        ArgumentNullException.ThrowIfNull(c);
        try { return (new Classifier(c).Form(), null); }
        catch (NoGemm e) { return (null, e.Message); }
    }

    sealed class NoGemm(string reason) : Exception(reason);

    /// <summary>One role's variables fused into one dimension: its size and its stride in each of the three tensors
    /// (0 where it does not index; a size of 1 means the dimension is absent and its strides are free).</summary>
    readonly record struct Dim(int Size, long O, long L, long R, string Names);

    sealed class Classifier(Computation c)
    {
        readonly int[] live = [.. Enumerable.Range(0, c.Vars.Length).Where(v => c.Sizes[v] > 1)];

        public GemmForm Form()
        {
            foreach (var t in c.Tensors) CheckIndices(t);
            var batch = new List<int>();
            var (ol, or, lr) = (new List<int>(), new List<int>(), new List<int>());
            foreach (int v in live)
            {
                bool o = c.Output.VarStrides[v] != 0, l = c.Left.VarStrides[v] != 0, r = c.Right.VarStrides[v] != 0;
                var list = (o, l, r) switch
                {
                    (true, true, true) => batch,
                    (true, true, false) => ol,
                    (true, false, true) => or,
                    (false, true, true) => lr,
                    (true, false, false) => throw new NoGemm($"{c.Vars[v]} indexes the output {c.Output.Name} but neither input (a broadcast)"),
                    _ => throw new NoGemm($"a reduction over an index of one operand only: {c.Vars[v]} indexes {(l ? c.Left : c.Right).Name} alone"),
                };
                list.Add(v);
            }
            Dim rows = Fuse(ol, "output"), cols = Fuse(or, "output"), k = Fuse(lr, "reduction");
            bool aLeft;
            if (cols.Size == 1 || cols.O == 1) aLeft = true;
            else if (rows.Size == 1 || rows.O == 1) (aLeft, rows, cols) = (false, cols, rows);
            else
            {
                string inner = live.Where(v => c.Output.VarStrides[v] == 1).Select(v => c.Vars[v]).FirstOrDefault() ?? "?";
                throw new NoGemm($"the output {c.Output.Name}'s innermost index {inner} is a batch index (it indexes both inputs): BLAS needs unit-stride output columns");
            }
            var (a, b) = aLeft ? (c.Left, c.Right) : (c.Right, c.Left);
            long Stride(Dim d, Tensor t) => ReferenceEquals(t, c.Left) ? d.L : d.R;
            var (transA, lda) = Operand(a, rows.Size, k.Size, Stride(rows, a), Stride(k, a), rows.Names, k.Names);
            var (transB, ldb) = Operand(b, k.Size, cols.Size, Stride(k, b), Stride(cols, b), k.Names, cols.Names);
            long ldc = rows.Size == 1 ? cols.Size : rows.O;
            if (ldc < cols.Size) throw new NoGemm($"rows of the output {c.Output.Name} overlap (stride {ldc} < {cols.Size})");
            var loops = batch.Select(v => new GemmBatch(c.Vars[v], c.Sizes[v], c.Output.VarStrides[v], a.VarStrides[v], b.VarStrides[v]));
            return new GemmForm(aLeft, rows.Size, cols.Size, k.Size, transA, transB, lda, ldb, checked((int)ldc), [.. loops]);
        }

        /// <summary>Rejects an affine index over two live variables and a variable indexing two dimensions of one tensor.</summary>
        void CheckIndices(Tensor t)
        {
            var seen = new HashSet<int>();
            foreach (var dim in t.Index)
            {
                var terms = dim.Where(x => c.Sizes[x.Var] > 1).ToList();
                if (terms.Count > 1)
                    throw new NoGemm($"an affine index {string.Join("+", terms.Select(Render))} in {t.Name} (overlapping windows, as in a convolution)");
                if (terms.Count == 1 && !seen.Add(terms[0].Var))
                    throw new NoGemm($"{c.Vars[terms[0].Var]} indexes two dimensions of {t.Name} (a diagonal)");
            }
        }

        string Render(Term x) => x.Coefficient == 1 ? c.Vars[x.Var] : $"{x.Coefficient}*{c.Vars[x.Var]}";

        /// <summary>The variables of one role as one dimension: ordered by stride, each step of the outer one must be a
        /// whole run of the inner one in every tensor they index.</summary>
        Dim Fuse(List<int> vars, string role)
        {
            if (vars.Count == 0) return new Dim(1, 0, 0, 0, "");
            var tensors = c.Tensors.Where(t => t.VarStrides[vars[0]] != 0).ToList();
            var order = vars.OrderByDescending(v => tensors[0].VarStrides[v]).ToList();
            foreach (var t in tensors)
                for (int i = 0; i + 1 < order.Count; i++)
                    if (t.VarStrides[order[i]] != t.VarStrides[order[i + 1]] * c.Sizes[order[i + 1]])
                        throw new NoGemm($"the {role} indices {string.Join(", ", order.Select(v => c.Vars[v]))} are not one contiguous dimension of {t.Name}");
            int inner = order[^1];
            long size = order.Aggregate(1L, (p, v) => p * c.Sizes[v]);
            return new Dim(checked((int)size), c.Output.VarStrides[inner], c.Left.VarStrides[inner], c.Right.VarStrides[inner],
                string.Join(",", order.Select(v => c.Vars[v])));
        }

        /// <summary>An operand op(X) of rows x cols with these strides: not transposed when its columns have unit stride
        /// (leading dimension = row stride), transposed when its rows do; a dimension of size 1 fits either way.</summary>
        static (bool Trans, int Ld) Operand(Tensor x, int rows, int cols, long rowStride, long colStride, string rowNames, string colNames)
        {
            long ld;
            bool trans;
            if (cols == 1 || colStride == 1) (trans, ld) = (false, rows == 1 ? cols : rowStride);
            else if (rows == 1 || rowStride == 1) (trans, ld) = (true, cols == 1 ? rows : colStride);
            else throw new NoGemm($"{x.Name} has unit stride along neither {rowNames} nor {colNames}: BLAS needs one of them contiguous");
            long least = trans ? rows : cols;
            if (ld < least) throw new NoGemm($"rows of {x.Name} overlap (stride {ld} < {least})");
            return (trans, checked((int)ld));
        }
    }
}
