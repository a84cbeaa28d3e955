using System.Collections.Immutable;

namespace LoopTune.Ir;

/// <summary>A single-image convolution, valid padding, stride 1: input C x H x W, F filters of C x R x S, output
/// F x (H-R+1) x (W-S+1); all row-major.</summary>
public readonly record struct ConvShape(int C, int H, int W, int F, int R, int S)
{
    /// <summary>Output height.</summary>
    public int OH => H - R + 1;

    /// <summary>Output width.</summary>
    public int OW => W - S + 1;

    /// <summary>Floating-point operations: 2 per multiply-add.</summary>
    public double Flops => 2.0 * F * OH * OW * C * R * S;

    /// <summary>The canonical computation, <c>conv C H W F R S</c>.</summary>
    public Computation ToComputation() => Computation.Conv(C, H, W, F, R, S);

    /// <summary>The same convolution with its output channels in blocks of <paramref name="block"/>, innermost
    /// (<c>conv C H W F R S E</c>, <see cref="Computation.ConvBlocked"/>).</summary>
    public Computation ToBlocked(int block) => Computation.ConvBlocked(C, H, W, F, R, S, block);

    /// <inheritdoc/>
    public override string ToString() => $"conv {C} {H} {W} {F} {R} {S}";
}

/// <summary>One term of an affine index: <c>Coefficient * variable</c>.</summary>
public readonly record struct Term(int Var, int Coefficient);

/// <summary>A tensor of the contraction and how the loop variables index it. Row-major, float32.</summary>
public sealed class Tensor
{
    internal Tensor(string name, ImmutableArray<ImmutableArray<Term>> index, IReadOnlyList<int> sizes)
    {
        Name = name;
        Index = index;
        Shape = [.. index.Select(dim => dim.Sum(t => t.Coefficient * (sizes[t.Var] - 1)) + 1)];
        var dimStrides = new long[Shape.Length];
        long stride = 1;
        for (int d = Shape.Length - 1; d >= 0; d--) { dimStrides[d] = stride; stride *= Shape[d]; }
        Length = stride;
        var varStrides = new long[sizes.Count];
        for (int d = 0; d < index.Length; d++)
            foreach (var t in index[d]) varStrides[t.Var] += t.Coefficient * dimStrides[d];
        VarStrides = [.. varStrides];
    }

    public string Name { get; }
    /// <summary>Per dimension, the affine sum of variables that indexes it.</summary>
    public ImmutableArray<ImmutableArray<Term>> Index { get; }
    public ImmutableArray<int> Shape { get; }
    /// <summary>Number of floats the tensor holds.</summary>
    public long Length { get; }
    /// <summary>Per loop variable, how many elements one step of that variable moves in this tensor (0: not indexed).</summary>
    public ImmutableArray<long> VarStrides { get; }
}

/// <summary>
/// A tensor contraction <c>Out[..] += Left[..] * Right[..]</c> over named variables with fixed sizes, in float32.
/// Text forms: <c>C[m,n] += A[m,k] * B[k,n] m=128 n=64 k=32</c>, with affine input indices such as
/// <c>I[c,h+r,w+s]</c> or <c>I[c,2*h+r]</c>; and the shorthands <c>mm M N K</c>, <c>conv C H W F R S</c> and
/// <c>conv C H W F R S E</c> (the output channels in blocks of E, innermost: <see cref="ConvBlocked"/>).
/// Output indices are distinct plain variables; variables not in the output are reduction variables.
/// </summary>
public sealed class Computation : IEquatable<Computation>
{
    const long MaxTensorLength = 1L << 28;

    Computation(ImmutableArray<string> vars, ImmutableArray<int> sizes, Tensor output, Tensor left, Tensor right, string? shorthand)
    {
        Vars = vars; Sizes = sizes; Output = output; Left = left; Right = right;
        Tensors = [output, left, right];
        var inOutput = new bool[vars.Length];
        foreach (var dim in output.Index) inOutput[dim[0].Var] = true;
        IsReduction = [.. inOutput.Select(x => !x)];
        Flops = 2.0 * sizes.Aggregate(1.0, (p, s) => p * s);
        Text = Statement + " " + string.Join(" ", vars.Select((v, i) => $"{v}={sizes[i]}"));
        Shorthand = shorthand;
    }

    public ImmutableArray<string> Vars { get; }
    public ImmutableArray<int> Sizes { get; }
    public Tensor Output { get; }
    public Tensor Left { get; }
    public Tensor Right { get; }
    /// <summary>Output, Left, Right: the order the JIT's kernels take their buffers in.</summary>
    public ImmutableArray<Tensor> Tensors { get; }
    public ImmutableArray<bool> IsReduction { get; }
    /// <summary>Floating-point operations: 2 per multiply-add.</summary>
    public double Flops { get; }
    /// <summary>The canonical long form; parsing it gives an equal computation.</summary>
    public string Text { get; }
    /// <summary>"mm 64 80 96" or "conv ..." when built from a shorthand, else null.</summary>
    public string? Shorthand { get; }

    public override string ToString() => Shorthand ?? Text;

    /// <summary>Whether an input is read through sliding windows: one of its indices sums several variables (a
    /// convolution's <c>h+r</c> or <c>2*h+r</c>), whatever the layout of the tensors.</summary>
    public bool HasWindows => Windowed(Left) || Windowed(Right);

    /// <summary>Whether one of <paramref name="t"/>'s indices sums several variables (a window).</summary>
    static bool Windowed(Tensor t) => t.Index.Any(d => d.Length > 1);

    /// <summary>The input that holds a convolution's filters: the one without a window when the other slides one
    /// (<see cref="HasWindows"/>: <c>W</c> of <c>O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s]</c>, whatever the stride or layout);
    /// <c>W</c> of a pointwise convolution built from its shorthand (<c>O[f,p] += I[c,p] * W[f,c]</c>, <see cref="Conv"/>);
    /// null for another contraction without windows, or with windows in both inputs. In a model the filters are constant, and
    /// the libraries lay them out once, before the runs: oneDNN's reorder, ONNX Runtime's prepacking.</summary>
    public Operand? Filters
    {
        get => (Windowed(Left), Windowed(Right)) switch
        {
            (true, false) => Operand.Right,
            (false, true) => Operand.Left,
            _ => Pointwise() is not null ? Operand.Right : null,
        };
    }

    /// <summary>(M, N, K) when this is a row-major matrix product Out[i,j] += Left[i,p] * Right[p,j], else null.</summary>
    public (int M, int N, int K)? AsMatmul()
    {
        static bool Plain(Tensor t, params int[] vars) =>
            t.Index.Length == vars.Length && t.Index.Select((d, i) => d.Length == 1 && d[0].Coefficient == 1 && d[0].Var == vars[i]).All(x => x);
        return Vars.Length == 3 && Plain(Output, 0, 1) && Plain(Left, 0, 2) && Plain(Right, 2, 1) ? (Sizes[0], Sizes[1], Sizes[2]) : null;
    }

    /// <summary>How this is a (batched, transposed) matrix product for BLAS, or null (<see cref="GemmForm.Classify"/> says why).</summary>
    public GemmForm? AsGemm() => GemmForm.Classify(this).Form;

    /// <summary>The image and filter sizes when this is a single-image convolution, valid padding, stride 1:
    /// <c>O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s]</c> (the form <c>conv C H W F R S</c> builds; any variable names, the
    /// two inputs in either order), or the pointwise form <c>conv C H W F 1 1</c> builds (<see cref="Conv"/>), else null.
    /// The pointwise form is a matrix product too, so it is a convolution only when built from that shorthand: the same
    /// contraction parsed from its text (a slice, a record) is a product.</summary>
    public ConvShape? AsConv() => MatchConv(blocked: false)?.Shape ?? Pointwise();

    /// <summary>The convolution <c>conv C H W F 1 1</c> when this was built from that shorthand
    /// (<c>O[f,p] += I[c,p] * W[f,c]</c>, <see cref="Conv"/>), else null.</summary>
    ConvShape? Pointwise()
    {
        if (Shorthand is null || !Shorthand.StartsWith("conv ", StringComparison.Ordinal) || Vars.Length != 3) return null;
        var n = Shorthand[5..].Split(' ').Select(x => int.Parse(x, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        return n.Length == 6 && n[4] == 1 && n[5] == 1 ? new ConvShape(n[0], n[1], n[2], n[3], 1, 1) : null;
    }

    /// <summary>Whether index <paramref name="d"/> is variable <paramref name="v"/> alone.</summary>
    static bool Single(ImmutableArray<Term> d, int v) => d.Length == 1 && d[0].Coefficient == 1 && d[0].Var == v;

    /// <summary>Whether index <paramref name="d"/> is the window <c>a+b</c> (either order).</summary>
    static bool Pair(ImmutableArray<Term> d, int a, int b) =>
        d.Length == 2 && d.All(t => t.Coefficient == 1) && d.Select(t => t.Var).Order().SequenceEqual(new[] { a, b }.Order());

    /// <summary>The image and filter sizes and the block E when this is <see cref="ConvBlocked"/>'s form,
    /// <c>O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e]</c> (f = E*g + e; any variable names, the two inputs in either order),
    /// else null.</summary>
    public (ConvShape Shape, int Block)? AsBlockedConv() => MatchConv(blocked: true);

    /// <summary>The convolution and its block of output channels when this is <c>O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s]</c>
    /// (block 1), or with <paramref name="blocked"/> <c>O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e]</c> (block E, f = E*g + e);
    /// any variable names, the two inputs in either order; else null.</summary>
    (ConvShape Shape, int Block)? MatchConv(bool blocked)
    {
        int extra = blocked ? 1 : 0;
        if (Vars.Length != 6 + extra || Output.Index.Length != 3 + extra) return null;
        int f = Output.Index[0][0].Var, h = Output.Index[1][0].Var, w = Output.Index[2][0].Var, e = blocked ? Output.Index[3][0].Var : -1;
        foreach (var (image, filter) in new[] { (Left, Right), (Right, Left) })
        {
            if (image.Index.Length != 3 || filter.Index.Length != 4 + extra || image.Index[0].Length != 1 || filter.Index.Any(d => d.Length != 1)) continue;
            int c = image.Index[0][0].Var, r = filter.Index[2][0].Var, s = filter.Index[3][0].Var;
            if (!Single(image.Index[0], c) || !Single(filter.Index[0], f) || !Single(filter.Index[1], c) || !Single(filter.Index[2], r)
                || !Single(filter.Index[3], s) || blocked && !Single(filter.Index[4], e)) continue;
            if (new[] { c, r, s }.Distinct().Count() != 3 || !IsReduction[c] || !IsReduction[r] || !IsReduction[s]) continue;
            if (!Pair(image.Index[1], h, r) || !Pair(image.Index[2], w, s)) continue;
            int block = blocked ? Sizes[e] : 1;
            return (new ConvShape(Sizes[c], Sizes[h] + Sizes[r] - 1, Sizes[w] + Sizes[s] - 1, Sizes[f] * block, Sizes[r], Sizes[s]), block);
        }
        return null;
    }

    /// <summary>The convolution this computes, in the plain layout (<see cref="AsConv"/>) or with its output channels
    /// blocked (<see cref="AsBlockedConv"/>), else null: what the convolution peers compute, in their own layouts.</summary>
    public ConvShape? Convolution => AsConv() ?? AsBlockedConv()?.Shape;

    /// <summary>The same contraction with variable <paramref name="var"/> of size <paramref name="size"/> (a slice of it
    /// when smaller); no shorthand, but for a pointwise convolution's output channels (f), whose slice is the pointwise
    /// convolution of that many (<c>conv C H W size 1 1</c>), still a convolution to its peers.</summary>
    public Computation WithSize(int var, int size) =>
        Pointwise() is { } pw && var == 0 ? Conv(pw.C, pw.H, pw.W, size, 1, 1)
        : Parse(Statement + " " + string.Join(" ", Vars.Select((v, i) => $"{v}={(i == var ? size : Sizes[i])}")));

    public bool Equals(Computation? other) => other is not null && other.Text == Text;
    public override bool Equals(object? obj) => Equals(obj as Computation);
    public override int GetHashCode() => Text.GetHashCode(StringComparison.Ordinal);

    /// <summary><c>C[m,n] += A[m,k] * B[k,n]</c>, all row-major.</summary>
    public static Computation Matmul(int m, int n, int k) =>
        Parse($"C[m,n] += A[m,k] * B[k,n] m={m} n={n} k={k}", $"mm {m} {n} {k}");

    /// <summary>One image, valid padding, stride 1: output F x (H-R+1) x (W-S+1). A pointwise convolution (R = S = 1) is
    /// built with the image's pixels as one variable, <c>O[f,p] += I[c,p] * W[f,c]</c> with p = (h, w) flattened: its rows
    /// are contiguous in the output and the image alike, so a kernel may vectorize along all H*W pixels at once, as along
    /// a product's columns, rather than along one row with a tail on each (conv 64 56 56 256 1 1 tuned 0.70x oneDNN with h
    /// and w apart, as <c>mm 256 3136 64</c> 1.008x). The tensors' memory is the same either way; <see cref="AsConv"/>
    /// still gives the convolution, with its H and W, from the shorthand.</summary>
    public static Computation Conv(int c, int h, int w, int f, int r, int s)
    {
        if (r > h || s > w) throw new SpecError($"conv {c} {h} {w} {f} {r} {s}", 5, 1, $"kernel {r}x{s} is larger than the image {h}x{w}");
        string shorthand = $"conv {c} {h} {w} {f} {r} {s}";
        if (r == 1 && s == 1) return Parse($"O[f,p] += I[c,p] * W[f,c] f={f} p={checked(h * w)} c={c}", shorthand);
        return Parse($"O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f={f} h={h - r + 1} w={w - s + 1} c={c} r={r} s={s}", shorthand);
    }

    /// <summary>One image, valid padding, stride 1, the output channels in blocks of <paramref name="block"/>, innermost
    /// (as oneDNN's nChw16c, and the weights alike): <c>O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e]</c> with output
    /// channel f = E*g + e, so a kernel may vectorize along the output channels, whatever the image's width. The input
    /// stays C x H x W.</summary>
    public static Computation ConvBlocked(int c, int h, int w, int f, int r, int s, int block)
    {
        string text = $"conv {c} {h} {w} {f} {r} {s} {block}";
        if (r > h || s > w) throw new SpecError(text, 5, 1, $"kernel {r}x{s} is larger than the image {h}x{w}");
        if (block < 1 || f % block != 0) throw new SpecError(text, 0, text.Length, $"the block E = {block} does not divide the {f} output channels");
        return Parse($"O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g={f / block} h={h - r + 1} w={w - s + 1} e={block} c={c} r={r} s={s}", text);
    }

    public static Computation Parse(string spec) => Parse(spec, null);

    static Computation Parse(string spec, string? shorthand)
    {
        var p = new SpecParser(spec);
        return p.TryShorthand() ?? p.Contraction(shorthand);
    }

    string Render(Tensor t) => $"{t.Name}[{string.Join(",", t.Index.Select(RenderDim))}]";
    string RenderDim(ImmutableArray<Term> dim) => string.Join("+", dim.Select(t => t.Coefficient == 1 ? Vars[t.Var] : $"{t.Coefficient}*{Vars[t.Var]}"));

    /// <summary>The statement alone, e.g. <c>C[m,n] += A[m,k] * B[k,n]</c>.</summary>
    public string Statement => $"{Render(Output)} += {Render(Left)} * {Render(Right)}";

    sealed class SpecParser(string text)
    {
        int pos;
        readonly List<string> vars = [];
        readonly List<int> firstUse = [];

        public Computation? TryShorthand()
        {
            SkipSpace();
            int start = pos;
            if (!char.IsLetter(Peek)) return null;
            string word = Ident();
            int arity = word switch { "mm" => 3, "conv" => 6, _ => -1 };
            if (arity < 0 || Peek == '[') { pos = start; return null; }
            var n = new int[arity + 1];
            var at = new int[arity + 1];
            for (int i = 0; i < arity; i++)
            {
                SkipSpace();
                if (AtEnd) Fail(pos, 1, $"'{word}' needs {arity} sizes ({(arity == 3 ? "M N K" : "C H W F R S, and E for blocks of E output channels")}), got {i}");
                at[i] = pos;
                n[i] = PositiveInt();
            }
            SkipSpace();
            bool blocked = arity == 6 && !AtEnd && char.IsDigit(Peek);
            if (blocked)
            {
                at[6] = pos;
                n[6] = PositiveInt();
                SkipSpace();
                if (n[3] % n[6] != 0) Fail(at[6], Digits(at[6]), $"the block E = {n[6]} does not divide the {n[3]} output channels");
            }
            if (!AtEnd) Fail(pos, text.Length - pos, $"unexpected text after '{word}' with {arity + (blocked ? 1 : 0)} sizes");
            if (arity == 6 && (n[4] > n[1] || n[5] > n[2]))
            {
                int bad = n[4] > n[1] ? 4 : 5;
                Fail(at[bad], Digits(at[bad]), $"kernel {n[4]}x{n[5]} is larger than the image {n[1]}x{n[2]}");
            }
            try { return arity == 3 ? Matmul(n[0], n[1], n[2]) : blocked ? ConvBlocked(n[0], n[1], n[2], n[3], n[4], n[5], n[6]) : Conv(n[0], n[1], n[2], n[3], n[4], n[5]); }
            catch (SpecError e) { throw new SpecError(text, start, text.Length - start, e.Problem); }
        }

        int Digits(int at)
        {
            int end = at;
            while (end < text.Length && char.IsDigit(text[end])) end++;
            return end - at;
        }

        public Computation Contraction(string? shorthand)
        {
            var output = Access();
            Expect("+=");
            var left = Access();
            Expect("*");
            var right = Access();
            var sizes = new int?[vars.Count];
            var sizeAt = new int[vars.Count];
            while (true)
            {
                SkipSeparators();
                if (AtEnd) break;
                int at = pos;
                string name = Ident();
                SkipSpace();
                if (Peek != '=') Fail(pos, 1, $"expected '=' after size name '{name}'");
                pos++;
                SkipSpace();
                int value = PositiveInt();
                int v = vars.IndexOf(name);
                if (v < 0) Fail(at, name.Length, $"size given for '{name}', which no tensor uses");
                if (sizes[v] is not null) Fail(at, name.Length, $"size of '{name}' given twice");
                sizes[v] = value;
                sizeAt[v] = at;
            }
            for (int v = 0; v < vars.Count; v++)
                if (sizes[v] is null) Fail(firstUse[v], vars[v].Length, $"no size given for variable '{vars[v]}' (add {vars[v]}=N)");
            CheckOutput(output);
            var names = new[] { output.Name, left.Name, right.Name };
            if (names.Distinct().Count() < 3) Fail(0, text.Length, "the three tensors need distinct names");

            // Initial loop order: output indices in order, then reduction variables in order of first use.
            var order = output.Index.Select(d => d[0].Var).ToList();
            order.AddRange(Enumerable.Range(0, vars.Count).Where(v => !order.Contains(v)));
            var remap = new int[vars.Count];
            for (int i = 0; i < order.Count; i++) remap[order[i]] = i;
            var sz = order.Select(v => sizes[v]!.Value).ToImmutableArray();
            Tensor Build(RawAccess a)
            {
                var t = new Tensor(a.Name, [.. a.Index.Select(d => d.Select(term => term with { Var = remap[term.Var] }).ToImmutableArray())], sz);
                if (t.Length > MaxTensorLength) Fail(a.At, a.Name.Length, $"tensor {a.Name} would hold {t.Length} floats; at most {MaxTensorLength} are supported");
                return t;
            }
            return new Computation([.. order.Select(v => vars[v])], sz, Build(output), Build(left), Build(right), shorthand);
        }

        sealed record RawAccess(string Name, int At, List<(List<Term> Terms, int At)> Dims)
        {
            public IEnumerable<List<Term>> Index => Dims.Select(d => d.Terms);
        }

        void CheckOutput(RawAccess output)
        {
            var seen = new HashSet<int>();
            foreach (var (terms, at) in output.Dims)
            {
                if (terms.Count != 1 || terms[0].Coefficient != 1)
                    Fail(at, 1, $"output index of {output.Name} must be a single variable");
                if (!seen.Add(terms[0].Var)) Fail(at, vars[terms[0].Var].Length, $"variable '{vars[terms[0].Var]}' indexes output {output.Name} twice");
            }
        }

        RawAccess Access()
        {
            SkipSpace();
            int at = pos;
            if (AtEnd || !IsIdentStart(Peek)) Fail(pos, 1, "expected a tensor name");
            string name = Ident();
            Expect("[");
            var dims = new List<(List<Term>, int)>();
            do dims.Add(IndexExpr()); while (TryTake(','));
            Expect("]");
            return new RawAccess(name, at, dims);
        }

        (List<Term>, int) IndexExpr()
        {
            SkipSpace();
            int at = pos;
            var terms = new List<Term>();
            do
            {
                SkipSpace();
                int coefficient = 1;
                if (char.IsDigit(Peek)) { coefficient = PositiveInt(); Expect("*"); SkipSpace(); }
                if (AtEnd || !IsIdentStart(Peek)) Fail(pos, 1, "expected an index variable");
                int vAt = pos;
                string v = Ident();
                int index = vars.IndexOf(v);
                if (index < 0) { vars.Add(v); firstUse.Add(vAt); index = vars.Count - 1; }
                if (terms.Any(t => t.Var == index)) Fail(vAt, v.Length, $"variable '{v}' appears twice in one index");
                terms.Add(new Term(index, coefficient));
            } while (TryTake('+'));
            return (terms, at);
        }

        int PositiveInt()
        {
            int at = pos;
            while (!AtEnd && char.IsDigit(Peek)) pos++;
            if (at == pos) Fail(at, 1, "expected a positive integer");
            if (!int.TryParse(text.AsSpan(at, pos - at), out int value) || value < 1 || value > 1 << 20)
                Fail(at, pos - at, $"'{text[at..pos]}' is not a size between 1 and {1 << 20}");
            return value;
        }

        string Ident()
        {
            int at = pos;
            while (!AtEnd && (char.IsLetterOrDigit(Peek) || Peek == '_')) pos++;
            return text[at..pos];
        }

        void Expect(string token)
        {
            SkipSpace();
            if (string.CompareOrdinal(text, pos, token, 0, token.Length) != 0)
                Fail(pos, token.Length, AtEnd ? $"expected '{token}' but the spec ended" : $"expected '{token}'");
            pos += token.Length;
        }

        bool TryTake(char c)
        {
            SkipSpace();
            if (Peek != c) return false;
            pos++;
            return true;
        }

        char Peek => AtEnd ? '\0' : text[pos];
        bool AtEnd => pos >= text.Length;
        static bool IsIdentStart(char c) => char.IsLetter(c) || c == '_';
        void SkipSpace() { while (!AtEnd && char.IsWhiteSpace(Peek)) pos++; }
        void SkipSeparators() { while (!AtEnd && (char.IsWhiteSpace(Peek) || Peek is ',' or ';')) pos++; }

        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        void Fail(int at, int length, string problem) => throw new SpecError(text, at, length, problem);
    }
}
