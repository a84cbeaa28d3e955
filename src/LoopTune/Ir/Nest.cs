using System.Collections.Immutable;
using System.Text;

namespace LoopTune.Ir;

/// <summary>What the code generator is asked to do with a loop: spell it out, make it SIMD lanes, or divide its iterations
/// among threads (<see cref="Transforms"/>' <c>parallel</c>).</summary>
public enum Annotation : byte { None, Unroll, Vectorize, Parallel }

/// <summary>
/// One loop of a nest: it runs <see cref="Size"/> full iterations of its inner step (the extent of the next
/// loop of the same variable further in, or 1), then, if <see cref="Tail"/> &gt; 0, one partial iteration
/// covering <see cref="Tail"/> elements. A loop over inner step I covers Size*I + Tail elements.
/// </summary>
public readonly record struct Loop(int Var, int Size, int Tail = 0, Annotation Annotation = Annotation.None)
{
    public bool IsUnrolled => Annotation == Annotation.Unroll;
    public bool IsVectorized => Annotation == Annotation.Vectorize;
    public bool IsParallel => Annotation == Annotation.Parallel;

    /// <summary>Unrolled or vectorized: an annotation that changes the code inside the loop (not <see cref="IsParallel"/>).</summary>
    public bool IsSpelledOut => Annotation is Annotation.Unroll or Annotation.Vectorize;

    /// <summary>Iterations the loop runs: its size, and one more for a tail.</summary>
    public int Iterations => Size + (Tail > 0 ? 1 : 0);
}

/// <summary>
/// A schedule: an ordered loop nest (outermost first) over the variables of a computation, and a cursor
/// on one loop. Immutable; the transforms in <see cref="Transforms"/> return new nests.
/// Invariants (checked on construction): the loops of each variable cover exactly its size; the innermost
/// loop of a variable has tail 0; every tail is smaller than its loop's inner step; at most
/// <see cref="MaxLoops"/> loops; a vectorized loop is the innermost loop of the nest; a packed input is indexed by plain,
/// distinct variables (<see cref="IsPackable"/>); at most one loop is parallel, over an output variable, outside every
/// unrolled or vectorized loop (<see cref="ParallelLoop"/>).
/// <para>An input may be <b>packed</b> (<see cref="Packed"/>, the <c>pack</c> action): the kernel then reads a copy of it,
/// made in every run (whole before the loops, or a block at a time in them: <see cref="Layout.BlockLevel"/>) and counted
/// in its time, whose elements lie in the order the nest's loops visit them:
/// one iteration of the innermost loop that moves the input steps one element, one of the next loop out steps over
/// everything the loops inside it cover, and so on, as BLIS packs its panels. A column of <c>B[k,n]</c> read 4 KiB
/// apart becomes a run of consecutive lines.</para>
/// </summary>
public sealed class Nest : IEquatable<Nest>
{
    /// <summary>Most loops a nest may have (as in the original LoopTune).</summary>
    public const int MaxLoops = 10;

    readonly int[] innerStep;

    public Nest(Computation computation, ImmutableArray<Loop> loops, int cursor, int packed = 0)
    {
        Computation = computation;
        Loops = loops;
        Cursor = cursor;
        Packed = packed;
        innerStep = new int[loops.Length];
        Validate();
    }

    public Computation Computation { get; }
    public ImmutableArray<Loop> Loops { get; }
    public int Cursor { get; }
    public int Count => Loops.Length;

    /// <summary>The position of the parallel loop, whose iterations a kernel divides among its threads; -1 when none is.</summary>
    public int ParallelLoop { get; private set; } = -1;

    /// <summary>Where the run of unrolled and vectorized loops at the bottom of the nest starts, the register tile's loops
    /// (<see cref="Count"/> when the innermost loop is counted).</summary>
    public int SpelledOutFrom
    {
        get
        {
            int top = Count;
            while (top > 0 && Loops[top - 1].IsSpelledOut) top--;
            return top;
        }
    }
    public Loop this[int i] => Loops[i];

    /// <summary>The packed inputs as bits: 1 &lt;&lt; t for tensor t of <see cref="Computation.Tensors"/> (1 the left input,
    /// 2 the right); 0 when none is.</summary>
    public int Packed { get; }

    /// <summary>Whether tensor <paramref name="t"/> (an index into <see cref="Computation.Tensors"/>) is read from a packed copy.</summary>
    public bool IsPacked(int t) => (Packed >> t & 1) != 0;

    /// <summary>Whether input <paramref name="t"/> can be packed: every index is one variable with coefficient 1, each variable
    /// once (so that its elements and the values of its variables match one to one). <c>B[k,n]</c> can;
    /// <c>I[c,h+r,w+s]</c> cannot.</summary>
    public static bool IsPackable(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        return t.Index.All(d => d.Length == 1 && d[0].Coefficient == 1) && t.Index.Select(d => d[0].Var).Distinct().Count() == t.Index.Length;
    }

    /// <summary>The starting schedule: one loop per variable, output variables in order, then reductions; cursor on the outermost loop.</summary>
    public static Nest Initial(Computation c) =>
        new(c, [.. Enumerable.Range(0, c.Vars.Length).Select(v => new Loop(v, c.Sizes[v]))], 0);

    /// <summary>Elements one iteration of loop <paramref name="i"/> covers: the extent of the next loop of the same variable further in, or 1.</summary>
    public int InnerStep(int i) => innerStep[i];

    /// <summary>Elements loop <paramref name="i"/> covers in a full context: Size * InnerStep + Tail.</summary>
    public int Extent(int i) => Loops[i].Size * innerStep[i] + Loops[i].Tail;

    /// <summary>Index of the next loop further in with the same variable, or -1.</summary>
    public int NextOfVar(int i)
    {
        for (int j = i + 1; j < Loops.Length; j++) if (Loops[j].Var == Loops[i].Var) return j;
        return -1;
    }

    /// <summary>Index of the nearest enclosing loop with the same variable, or -1.</summary>
    public int PreviousOfVar(int i)
    {
        for (int j = i - 1; j >= 0; j--) if (Loops[j].Var == Loops[i].Var) return j;
        return -1;
    }

    /// <summary>The loop's display name: the variable, primed once per enclosing loop of the same variable (m, m', m'').</summary>
    public string LoopName(int i)
    {
        int primes = 0;
        for (int j = 0; j < i; j++) if (Loops[j].Var == Loops[i].Var) primes++;
        return Computation.Vars[Loops[i].Var] + new string('\'', primes);
    }

    public Nest With(ImmutableArray<Loop> loops, int cursor) => new(Computation, loops, cursor, Packed);

    /// <summary>The same loops and cursor with the inputs <paramref name="packed"/> packed (bits as <see cref="Packed"/>).</summary>
    public Nest WithPacked(int packed) => new(Computation, Loops, Cursor, packed);

    void Validate()
    {
        var c = Computation;
        if (Loops.Length == 0 || Loops.Length > MaxLoops) throw Invalid($"a nest has 1 to {MaxLoops} loops, not {Loops.Length}");
        if (Cursor < 0 || Cursor >= Loops.Length) throw Invalid($"cursor {Cursor} is outside the nest of {Loops.Length} loops");
        Span<int> covered = stackalloc int[c.Vars.Length]; // every nest a mask tries is validated: no garbage for it
        for (int i = Loops.Length - 1; i >= 0; i--)
        {
            var l = Loops[i];
            if (l.Var < 0 || l.Var >= c.Vars.Length) throw Invalid($"loop {i} has no variable {l.Var}");
            innerStep[i] = covered[l.Var] == 0 ? 1 : covered[l.Var];
            if (l.Size < 1 || l.Tail < 0 || l.Tail >= innerStep[i])
                throw Invalid($"loop {i} ({c.Vars[l.Var]}) has size {l.Size} and tail {l.Tail}; the size must be >= 1 and the tail below its inner step {innerStep[i]}");
            if (l.IsVectorized && i != Loops.Length - 1) throw Invalid($"loop {i} ({c.Vars[l.Var]}) is vectorized but not innermost");
            covered[l.Var] = Extent(i);
        }
        ValidateParallel();
        for (int v = 0; v < covered.Length; v++)
            if (covered[v] != c.Sizes[v])
                throw Invalid($"the loops over '{c.Vars[v]}' cover {covered[v]} elements, not its size {c.Sizes[v]}");
        if ((Packed & ~6) != 0) throw Invalid($"packed bits {Packed}: only the inputs (bits 1 and 2) can be packed");
        for (int t = 1; t < 3; t++)
            if (IsPacked(t) && !IsPackable(c.Tensors[t]))
                throw Invalid($"input {c.Tensors[t].Name} cannot be packed: an index is not one plain variable");
    }

    NestFormatError Invalid(string problem) => new(problem);

    /// <summary>At most one parallel loop, over an output variable, with no unrolled or vectorized loop around it (the rules
    /// of <c>parallel</c>; <see cref="Parse"/> reports them as that action's <see cref="ScheduleError"/>s).</summary>
    void ValidateParallel()
    {
        for (int i = 0; i < Loops.Length; i++)
        {
            if (!Loops[i].IsParallel) continue;
            if (ParallelLoop >= 0) throw Invalid($"loops {ParallelLoop} and {i} are both parallel; a nest has at most one parallel loop");
            if (Computation.IsReduction[Loops[i].Var]) throw Invalid($"loop {i} ({LoopName(i)}) is parallel over the reduction variable '{Computation.Vars[Loops[i].Var]}'");
            if (Enumerable.Range(0, i).FirstOrDefault(j => Loops[j].IsSpelledOut, -1) is var j and >= 0)
                throw Invalid($"loop {i} ({LoopName(i)}) is parallel inside the {(Loops[j].IsUnrolled ? "unrolled" : "vectorized")} loop {j}");
            ParallelLoop = i;
        }
    }

    /// <summary>The letter of <paramref name="a"/> in the compact form (u, v, p); 0 for none.</summary>
    public static char Letter(Annotation a) => a switch { Annotation.Unroll => 'u', Annotation.Vectorize => 'v', Annotation.Parallel => 'p', _ => '\0' };

    /// <summary>The word of <paramref name="a"/> in the tree (unroll, vectorize, parallel); empty for none.</summary>
    public static string Word(Annotation a) => a == Annotation.None ? "" : a.ToString().ToLowerInvariant();

    // ---- text forms ---------------------------------------------------------------------------

    /// <summary>
    /// Compact form, one token per loop, outermost first: <c>name:size[+tail][u|v|p]</c> (unrolled, vectorized, parallel),
    /// the cursor's loop prefixed with '&gt;', then <c>pack=</c> and the packed inputs' names when there are any.
    /// Example: <c>m:64p n:8 &gt;k:256 m:4u n:2u n:16v pack=B</c>. <see cref="Parse"/> inverts it exactly.
    /// </summary>
    public string Serialize() => Serialize(withCursor: true);

    /// <summary>The compact form without the cursor: what the kernel depends on, so equal keys mean equal kernels.
    /// Measurements are stored under it.</summary>
    public string ScheduleKey => Serialize(withCursor: false);

    string Serialize(bool withCursor)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < Loops.Length; i++)
        {
            var l = Loops[i];
            if (i > 0) sb.Append(' ');
            if (withCursor && i == Cursor) sb.Append('>');
            sb.Append(Computation.Vars[l.Var]).Append(':').Append(l.Size);
            if (l.Tail > 0) sb.Append('+').Append(l.Tail);
            if (l.Annotation != Annotation.None) sb.Append(Letter(l.Annotation));
        }
        if (Packed != 0) sb.Append(" pack=").Append(PackedNames);
        return sb.ToString();
    }

    /// <summary>The packed inputs' names, comma-separated (empty when none is).</summary>
    public string PackedNames => string.Join(",", Enumerable.Range(1, 2).Where(IsPacked).Select(t => Computation.Tensors[t].Name));

    /// <summary>Reads the compact form of <see cref="Serialize"/> for the given computation. A parallel loop (<c>p</c>) is
    /// applied as the <c>parallel</c> action on the nest without it, so an illegal one is that action's
    /// <see cref="ScheduleError"/> (on a reduction loop, a second parallel loop, inside an unrolled or vectorized loop).</summary>
    public static Nest Parse(Computation c, string text)
    {
        var tokens = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var loops = ImmutableArray.CreateBuilder<Loop>(tokens.Length);
        int cursor = -1, packed = 0;
        foreach (var raw in tokens)
        {
            var tok = raw;
            if (tok.StartsWith("pack=", StringComparison.Ordinal))
            {
                foreach (var name in tok[5..].Split(','))
                {
                    int t = Enumerable.Range(1, 2).FirstOrDefault(i => c.Tensors[i].Name == name);
                    if (t == 0) throw new NestFormatError($"'{raw}': {name} is not an input of {c}");
                    packed |= 1 << t;
                }
                continue;
            }
            if (tok.StartsWith('>'))
            {
                if (cursor >= 0) throw new NestFormatError($"two cursors in '{text}'");
                cursor = loops.Count;
                tok = tok[1..];
            }
            var annotation = tok.Length == 0 ? Annotation.None : Enum.GetValues<Annotation>().FirstOrDefault(a => a != Annotation.None && Letter(a) == tok[^1]);
            if (annotation != Annotation.None) tok = tok[..^1];
            int colon = tok.IndexOf(':');
            if (colon < 0) throw new NestFormatError($"loop '{raw}' is not name:size[+tail][u|v|p]");
            int v = c.Vars.IndexOf(tok[..colon]);
            if (v < 0) throw new NestFormatError($"loop '{raw}': the computation has no variable '{tok[..colon]}'");
            var parts = tok[(colon + 1)..].Split('+');
            if (parts.Length > 2 || !int.TryParse(parts[0], out int size) || (parts.Length == 2 ? !int.TryParse(parts[1], out int tail) : (tail = 0) != 0))
                throw new NestFormatError($"loop '{raw}' is not name:size[+tail][u|v|p]");
            loops.Add(new Loop(v, size, tail, annotation));
        }
        if (cursor < 0) throw new NestFormatError($"no cursor ('>') in '{text}'");
        var parallel = Enumerable.Range(0, loops.Count).Where(i => loops[i].IsParallel).ToArray();
        foreach (int i in parallel) loops[i] = loops[i] with { Annotation = Annotation.None };
        var nest = new Nest(c, loops.ToImmutable(), cursor, packed);
        foreach (int i in parallel) nest = Transforms.Apply(nest.With(nest.Loops, i), Actions.Get("parallel"));
        return nest.With(nest.Loops, cursor);
    }

    /// <summary>
    /// The readable tree, one line per loop, indented by depth, then the statement:
    /// <code>
    /// for m in 64
    ///   for n in 8  &lt;- cursor
    ///     for m' in 4 unroll
    /// </code>
    /// A tail shows as "tail 3"; annotations as "unroll" / "vectorize" / "parallel"; packed inputs as a last line, <c>packed: B</c>.
    /// </summary>
    public string ToTree(bool showCursor = true)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < Loops.Length; i++)
        {
            var l = Loops[i];
            sb.Append(' ', 2 * i).Append("for ").Append(LoopName(i)).Append(" in ").Append(l.Size);
            if (l.Tail > 0) sb.Append(" tail ").Append(l.Tail);
            if (l.Annotation != Annotation.None) sb.Append(' ').Append(Word(l.Annotation));
            if (showCursor && i == Cursor) sb.Append("  <- cursor");
            sb.Append('\n');
        }
        sb.Append(' ', 2 * Loops.Length).Append(Computation.Statement).Append('\n');
        if (Packed != 0) sb.Append("packed: ").Append(PackedNames).Append('\n');
        return sb.ToString();
    }

    public override string ToString() => Serialize();

    public bool Equals(Nest? other) =>
        other is not null && Cursor == other.Cursor && Packed == other.Packed && Loops.SequenceEqual(other.Loops) && Computation.Equals(other.Computation);

    public override bool Equals(object? obj) => Equals(obj as Nest);

    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(Computation);
        h.Add(Cursor);
        h.Add(Packed);
        foreach (var l in Loops) h.Add(l);
        return h.ToHashCode();
    }
}

/// <summary>A nest that breaks an invariant, or compact text that does not describe a nest.</summary>
public sealed class NestFormatError(string problem) : LoopTuneException($"bad schedule: {problem}");
