using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Export;

/// <summary>An exported kernel: the C99 source and header of one function
/// <c>void NAME(float *restrict out, const float *restrict in0, const float *restrict in1)</c>, and what the export
/// did differently from the JIT (<see cref="Notes"/>).</summary>
public sealed record CSource(string Name, string Header, string Code, IReadOnlyList<string> Notes);

/// <summary>
/// Writes a schedule as C: the JIT's lowered program (<see cref="Lowering"/>: counted loops, every tail and unrolled
/// iteration spelled out with constant offsets, the vectorized loop cut into vectors and one masked vector, gathers,
/// blends of fused lanes, lane sums, the output tile held in locals across the reductions) walked op by op, each op one C
/// statement, so the C follows the schedule exactly as the JIT's machine code does; gcc or clang allocate the registers.
/// <list type="bullet">
/// <item>Lowered at the ISA's width (<see cref="Isas.VectorBits"/>: 512 gives 16-, 8- and 4-lane vectors, 256 8 and 4,
/// generic scalars only, a vectorized loop spelled out as scalars as the JIT does without a vector unit).</item>
/// <item>Loops index their pointers from the loop counter (<c>p = base + i * stride</c>) instead of bumping them, so that
/// the parallel loop (<c>p</c>) can run under <c>#pragma omp parallel for</c> when compiled with OpenMP
/// (<c>#ifdef _OPENMP</c>; a plain sequential loop otherwise). Its tail runs after it on the calling thread.</item>
/// <item>The function reads nothing past its inputs: the JIT's whole-vector loads of masked and fused lanes
/// (<see cref="JitOptions.WideInputLoads"/>, <see cref="JitOptions.FuseLanes"/>) read up to a vector past an input's end,
/// which a C caller's buffers need not allow, so a schedule whose lowering does is lowered again without them (a note says so).</item>
/// <item>The JIT's prefetches of an input's next block (<see cref="JitOptions.PrefetchSpreadBytes"/>) are
/// <c>__builtin_prefetch</c> calls, under the same guards on the loops' iterations.</item>
/// <item>A packed input (<c>pack=B</c>) is copied into its packed layout (<see cref="Layout"/>) in a malloc'd buffer at the
/// start of every call, as the JIT copies it in every run, and freed at the end.</item>
/// </list>
/// </summary>
public static partial class CExport
{
    /// <summary>Exports <paramref name="nest"/> as function <paramref name="name"/> for <paramref name="isa"/> (which the caller
    /// has checked this machine takes: <see cref="Isas.Check"/>); <paramref name="machine"/> is the line the comment block
    /// names the machine with.</summary>
    public static CSource Write(Nest nest, string name, Isa isa, string machine, string? headerFile = null)
    {
        ArgumentNullException.ThrowIfNull(nest);
        CheckName(name);
        // this machine's prefetching, as the JIT's; packed inputs copied whole, before the loops (Pack)
        var options = JitOptions.Default with { MaxVectorBits = isa.VectorBits(), PackBlocks = false, ZeroTiles = false };
        var notes = new List<string>();
        var lowered = Lowering.Lower(nest, options);
        if (lowered.ReadsPast > 0)
        {
            notes.Add($"the JIT loads whole vectors reading up to {lowered.ReadsPast} floats past an input's end; lowered without them (masked loads{(lowered.Notes.Any(n => n.Contains("fused", StringComparison.Ordinal)) ? ", no fused lanes" : "")}) so that the function reads only its inputs");
            lowered = Lowering.Lower(nest, options with { WideInputLoads = false, FuseLanes = false });
        }
        notes.AddRange(lowered.Notes);
        if (nest.ParallelLoop >= 0)
            notes.Add($"loop {nest.LoopName(nest.ParallelLoop)} is parallel: under OpenMP (-fopenmp) its iterations are divided among the threads, otherwise it is a sequential loop");
        if (nest.Packed != 0)
            notes.Add($"packed inputs ({nest.PackedNames}) are copied into their layout in a malloc'd buffer at every call, as the JIT packs at every run; should malloc fail, the function returns leaving out as it was");
        var writer = new Writer(nest, isa);
        writer.Program(lowered.Program);
        string signature = Signature(name, "restrict");
        string block = CommentBlock(nest, name, isa, machine, notes);
        var code = new StringBuilder();
        code.Append(block).Append('\n');
        code.Append(CultureInfo.InvariantCulture, $"#include \"{headerFile ?? name + ".h"}\"\n#include <stddef.h>\n");
        if (nest.Packed != 0) code.Append("#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n");
        if (isa != Isa.Generic)
        {
            code.Append("#include <immintrin.h>\n\n");
            code.Append(CultureInfo.InvariantCulture, $"#if {string.Join(" || ", isa.Macros().Select(m => $"!defined({m})"))}\n");
            code.Append(CultureInfo.InvariantCulture, $"#error \"{name}: compile with {isa.CompilerFlags()} (or -march=native on a CPU that has them)\"\n#endif\n");
        }
        code.Append('\n');
        foreach (var helper in writer.Helpers.Order())
            code.Append(CultureInfo.InvariantCulture, $"#ifndef LOOPTUNE_{helper.ToUpperInvariant()}\n#define LOOPTUNE_{helper.ToUpperInvariant()}\n{Helpers[helper]}\n#endif\n");
        if (writer.Helpers.Count > 0) code.Append('\n');
        code.Append(signature).Append("\n{\n").Append(writer.Text).Append("}\n");
        string guard = name.ToUpperInvariant() + "_H";
        string header = $"{block}\n#ifndef {guard}\n#define {guard}\n\n#ifdef __cplusplus\nextern \"C\" {Signature(name, "__restrict")};\n#else\n{signature};\n#endif\n\n#endif\n";
        return new CSource(name, header, code.ToString(), notes);
    }

    /// <summary>The function's declaration, with <paramref name="restrict"/> on every pointer.</summary>
    static string Signature(string name, string restrict) =>
        $"void {name}(float *{restrict} out, const float *{restrict} in0, const float *{restrict} in1)";

    /// <summary>A C function name: an identifier, not a keyword. A <see cref="LoopTuneException"/> otherwise.</summary>
    public static string CheckName(string name) =>
        Identifier().IsMatch(name) && !Keywords.Contains(name) ? name
            : throw new LoopTuneException($"--name {name}: not a C function name (letters, digits and _, not starting with a digit, not a keyword)");

    /// <summary>The default function name for an output file: its stem, with every character that cannot be in a C name
    /// made an underscore (<c>out/mm-256.c</c>: <c>mm_256</c>).</summary>
    public static string NameFor(string path)
    {
        var stem = Regex.Replace(Path.GetFileNameWithoutExtension(path), "[^A-Za-z0-9_]", "_");
        if (stem.Length == 0 || char.IsDigit(stem[0]) || Keywords.Contains(stem)) stem = "lt_" + stem;
        return stem;
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex Identifier();

    static readonly HashSet<string> Keywords = [.. ("auto break case char const continue default do double else enum extern float for goto if inline int long " +
        "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while _Bool _Complex _Imaginary main").Split(' ')];

    static string CommentBlock(Nest nest, string name, Isa isa, string machine, List<string> notes)
    {
        var c = nest.Computation;
        string[] roles = ["out", "in0", "in1"];
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"/* {name}: exported by LoopTune for .NET (looptune export)\n *\n");
        sb.Append(CultureInfo.InvariantCulture, $" * spec      {c.Text}{(c.Shorthand is { } s ? $"  ({s})" : "")}\n");
        for (int t = 0; t < 3; t++)
        {
            var tensor = c.Tensors[t];
            sb.Append(CultureInfo.InvariantCulture, $" *   {roles[t]} = {tensor.Name}: [{string.Join("][", tensor.Shape)}] floats, row-major{(t == 0 ? ", accumulated into (out += ...: clear it first for a plain product)" : "")}\n");
        }
        sb.Append(CultureInfo.InvariantCulture, $" * schedule  {nest.ScheduleKey}\n");
        foreach (var line in nest.ToTree(showCursor: false).TrimEnd().Split('\n')) sb.Append(" *   ").Append(line.TrimEnd()).Append('\n');
        sb.Append(CultureInfo.InvariantCulture, $" * machine   {machine}\n");
        sb.Append(CultureInfo.InvariantCulture, $" * isa       {isa.Name()}: {(isa == Isa.Generic ? "plain C99, no intrinsics" : $"compile with {isa.CompilerFlags()}, e.g. gcc -O3 -march=native")}\n");
        sb.Append(" * buffers   out, in0 and in1 must not overlap; nothing outside them is read or written\n");
        foreach (var n in notes) sb.Append(" * note      ").Append(n).Append('\n');
        sb.Append(" */\n");
        return sb.ToString();
    }

    static readonly Dictionary<string, string> Helpers = new()
    {
        ["keep"] = "/* holds a loaded operand in a register: gcc otherwise folds its load into every multiply-add that uses it, loading it\n   once per use, which makes a register tile load-bound (0.75x on mm 256 256 256) */\n" +
                   "#if defined(__GNUC__)\n#define lt_keep(x) __asm__(\"\" : \"+v\"(x))\n#else\n#define lt_keep(x) ((void)0)\n#endif",
        ["fma"] = "static inline float lt_fmaf(float a, float b, float c) { return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c))); }",
        ["sum16"] = "static inline float lt_sum16(__m512 v) { return _mm512_reduce_add_ps(v); }",
        ["sum4"] = "static inline float lt_sum4(__m128 v) { __m128 h = _mm_add_ps(v, _mm_movehl_ps(v, v)); return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1))); }",
        ["sum8"] = "static inline float lt_sum8(__m256 v) { __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); __m128 h = _mm_add_ps(x, _mm_movehl_ps(x, x)); return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1))); }",
    };

    /// <summary>Writes the lowered program as the function's body. Values (operand loads, blends, accumulators) are the
    /// emitter's locals: declared once at the top (and again inside the parallel loop, for those it writes, so that each
    /// OpenMP thread has its own); pointers are declared in the loop that moves them.</summary>
    sealed class Writer
    {
        readonly Nest nest;
        readonly Isa isa;
        readonly StringBuilder body = new();
        readonly SortedSet<string> masks = new(StringComparer.Ordinal);
        readonly string[] current = ["out", "in0", "in1"];
        int indent = 1;

        public Writer(Nest nest, Isa isa) => (this.nest, this.isa) = (nest, isa);

        public SortedSet<string> Helpers { get; } = new(StringComparer.Ordinal);
        public string Text { get; private set; } = "";

        public void Program(List<Op> program)
        {
            var (outside, _) = Uses(program, false);
            if (isa != Isa.Generic) CountUses(program, new(), new(ReferenceEqualityComparer.Instance));
            indent = 1;
            Pack();
            Block(program);
            Free();
            var top = new StringBuilder();
            foreach (var m in masks) top.Append("    ").Append(m).Append('\n');
            Declare(top, outside, 1);
            Text = top.Append(body).ToString();
        }

        /// <summary>The values to declare at the level of <paramref name="ops"/> (<c>Outside</c>: referenced there, or read in
        /// a parallel loop without being written in it) and those written in it (<c>Inside</c>, when
        /// <paramref name="inParallel"/>: the parallel loop's body, where each OpenMP thread declares its own).</summary>
        static (HashSet<Value> Outside, HashSet<Value> Inside) Uses(List<Op> ops, bool inParallel)
        {
            HashSet<Value> outside = [], inside = [];
            Walk(ops);
            return (outside, inside);

            void Walk(List<Op> list)
            {
                foreach (var op in list)
                {
                    if (op is LoopOp { Parallel: true } p && !inParallel)
                    {
                        outside.UnionWith(Uses(p.Body, true).Outside);
                        Walk(p.After);
                        continue;
                    }
                    if (op is LoopOp l)
                    {
                        Walk(l.Body);
                        Walk(l.After);
                        continue;
                    }
                    var (written, read) = op switch
                    {
                        LoadOp x => ((Value?)x.Dst, Array.Empty<Value>()),
                        BlendOp b => (b.Dst, [b.A, b.B]),
                        FmaOp f => (f.Acc, [f.A, f.B, f.Acc]),
                        TileLoadOp t => (t.Acc.Value, []),
                        TileStoreOp t => (null, [t.Acc.Value]),
                        PrefetchOp => (null, []),
                        _ => throw new InvalidOperationException($"unknown op {op}"),
                    };
                    foreach (var r in read)
                        if (!inParallel || !inside.Contains(r)) outside.Add(r);
                    if (written is { } w) (inParallel ? inside : outside).Add(w);
                }
            }
        }

        void Declare(StringBuilder sb, IEnumerable<Value> values, int level)
        {
            foreach (var group in values.OrderBy(v => v.Width).ThenBy(v => !v.IsAccumulator).ThenBy(v => v.Depth).ThenBy(v => v.Slot).GroupBy(v => v.Width))
                sb.Append(' ', 4 * level).Append(Type(group.Key)).Append(' ').AppendJoin(", ", group.Select(Name)).Append(";\n");
        }

        /// <summary>Loads of an intrinsics ISA whose value more than one op reads (counted in program order: a value is the
        /// last load that wrote it).</summary>
        readonly HashSet<LoadOp> shared = new(ReferenceEqualityComparer.Instance);

        void CountUses(List<Op> ops, Dictionary<Value, LoadOp> last, Dictionary<LoadOp, int> uses)
        {
            foreach (var op in ops)
            {
                IEnumerable<Value> read = op switch
                {
                    LoopOp l => [],
                    BlendOp b => [b.A, b.B],
                    FmaOp f => [f.A, f.B],
                    _ => [],
                };
                foreach (var r in read)
                    if (last.TryGetValue(r, out var load) && (uses[load] = uses.GetValueOrDefault(load) + 1) > 1) shared.Add(load);
                if (op is LoadOp x) last[x.Dst] = x;
                if (op is LoopOp loop)
                {
                    CountUses(loop.Body, last, uses);
                    CountUses(loop.After, last, uses);
                }
            }
        }

        /// <summary>After a shared load (<see cref="shared"/>): <c>lt_keep</c>, which holds it in a register.</summary>
        string Keep(LoadOp load)
        {
            if (!shared.Contains(load)) return "";
            Helpers.Add("keep");
            return $" lt_keep({Name(load.Dst)});";
        }

        static string Type(int width) => width switch { 1 => "float", 4 => "__m128", 8 => "__m256", _ => "__m512" };
        static string Prefix(int width) => width switch { 4 => "_mm", 8 => "_mm256", _ => "_mm512" };
        static string Name(Value v) => v.IsAccumulator ? $"acc{v.Width}_{v.Slot}" : $"x{v.Width}_{v.Depth}_{v.Slot}";

        void Line(string text) => body.Append(' ', 4 * indent).Append(text).Append('\n');

        void Block(List<Op> ops)
        {
            foreach (var op in ops)
            {
                switch (op)
                {
                    case LoopOp l: Loop(l); break;
                    case LoadOp l: Line($"{Name(l.Dst)} = {Load(l.Tensor, l.Offset, l.Dst.Width, l.LaneStride, l.Lanes)};{Keep(l)}"); break;
                    case BlendOp b: Line($"{Name(b.Dst)} = {Blend(b)};"); break;
                    case FmaOp f: Line(Fma(f)); break;
                    case TileLoadOp t: Line($"{Name(t.Acc.Value)} = {(t.Acc.ReducesLanes ? $"{Prefix(t.Acc.Value.Width)}_setzero_ps()" : Load(0, t.Acc.Offset, t.Acc.Value.Width, t.Acc.LaneStride, t.Acc.Lanes))};"); break;
                    case TileStoreOp t: Store(t.Acc); break;
                    case PrefetchOp p:
                        string call = $"__builtin_prefetch({At(p.Tensor, p.Offset)});";
                        Line(p.Guards is { Length: > 0 } g ? $"if ({string.Join(" && ", g.Select(x => $"i{x.Depth} == {x.Iteration}"))}) {call}" : call);
                        break;
                    default: throw new InvalidOperationException($"unknown op {op}");
                }
            }
        }

        void Loop(LoopOp loop)
        {
            var saved = (string[])current.Clone();
            string i = $"i{loop.Depth}";
            if (loop.Parallel)
            {
                body.Append("#ifdef _OPENMP\n");
                Line("#pragma omp parallel for schedule(static)");
                body.Append("#endif\n");
            }
            Line($"for (ptrdiff_t {i} = 0; {i} < {loop.Trips}; {i}++) {{");
            indent++;
            Pointers(loop, saved, i);
            if (loop.Parallel)
            {
                var inner = new StringBuilder();
                Declare(inner, Uses(loop.Body, true).Inside, indent);
                body.Append(inner);
            }
            Block(loop.Body);
            indent--;
            Line("}");
            if (loop.After.Count > 0)
            {
                Line("{");
                indent++;
                Pointers(loop, saved, loop.Trips.ToString(CultureInfo.InvariantCulture));
                Block(loop.After);
                indent--;
                Line("}");
            }
            Array.Copy(saved, current, current.Length);
        }

        /// <summary>Declares the pointer of each tensor the loop moves, <paramref name="iteration"/> steps past the enclosing one.</summary>
        void Pointers(LoopOp loop, string[] enclosing, string iteration)
        {
            foreach (var (t, bytes) in loop.Bumps)
            {
                string p = $"p{t}_{loop.Depth}";
                Line($"{(t == 0 ? "float" : "const float")} *{p} = {enclosing[t]} + {iteration} * {bytes / sizeof(float)};");
                current[t] = p;
            }
        }

        string At(int t, long offset) => offset == 0 ? current[t] : $"{current[t]} + {offset}";
        string Element(int t, long offset) => $"{current[t]}[{offset}]";

        /// <summary>A load of <paramref name="width"/> lanes (the first <paramref name="lanes"/> live) <paramref name="stride"/>
        /// elements apart: a scalar, a broadcast (stride 0), a vector load (masked when lanes are missing) or a gather.</summary>
        string Load(int t, long offset, int width, long stride, int lanes)
        {
            if (width == 1) return Element(t, offset);
            string v = Prefix(width);
            if (stride == 0) return $"{v}_set1_ps({Element(t, offset)})";
            if (stride == 1 && lanes == width) return $"{v}_loadu_ps({At(t, offset)})";
            if (stride == 1)
                return isa == Isa.Avx512 ? $"{v}_maskz_loadu_ps({Bits(lanes)}, {At(t, offset)})" : $"{v}_maskload_ps({At(t, offset)}, {Mask(width, lanes)})";
            return $"{v}_setr_ps({string.Join(", ", Enumerable.Range(0, width).Select(i => i < lanes ? Element(t, offset + i * stride) : "0.0f"))})";
        }

        static string Bits(int lanes) => $"0x{(1 << lanes) - 1:x}";

        /// <summary>The AVX mask vector of the first <paramref name="lanes"/> of <paramref name="width"/>, made once at the top.</summary>
        string Mask(int width, int lanes)
        {
            string name = $"mask{width}_{lanes}";
            masks.Add($"const {(width == 8 ? "__m256i" : "__m128i")} {name} = {(width == 8 ? "_mm256" : "_mm")}_setr_epi32({string.Join(", ", Enumerable.Range(0, width).Select(i => i < lanes ? "-1" : "0"))});");
            return name;
        }

        string Blend(BlendOp b) => b.Dst.Width == 16
            ? $"_mm512_mask_blend_ps(0x{b.Mask:x}, {Name(b.A)}, {Name(b.B)})"
            : $"{Prefix(b.Dst.Width)}_blend_ps({Name(b.A)}, {Name(b.B)}, 0x{b.Mask:x})";

        string Fma(FmaOp f)
        {
            string acc = Name(f.Acc), a = Name(f.A), b = Name(f.B);
            if (f.Acc.Width > 1) return $"{acc} = {Prefix(f.Acc.Width)}_fmadd_ps({a}, {b}, {acc});";
            if (isa == Isa.Generic) return $"{acc} += {a} * {b};";
            Helpers.Add("fma");
            return $"{acc} = lt_fmaf({a}, {b}, {acc});";
        }

        void Store(Accumulator a)
        {
            int w = a.Value.Width;
            string acc = Name(a.Value), v = Prefix(w);
            if (a.ReducesLanes)
            {
                Helpers.Add($"sum{w}");
                Line($"{Element(0, a.Offset)} += lt_sum{w}({acc});");
            }
            else if (w == 1) Line($"{Element(0, a.Offset)} = {acc};");
            else if (a.LaneStride == 1 && a.Lanes == w) Line($"{v}_storeu_ps({At(0, a.Offset)}, {acc});");
            else if (a.LaneStride == 1)
                Line(isa == Isa.Avx512 ? $"{v}_mask_storeu_ps({At(0, a.Offset)}, {Bits(a.Lanes)}, {acc});" : $"{v}_maskstore_ps({At(0, a.Offset)}, {Mask(w, a.Lanes)}, {acc});");
            else
            {
                Line($"{{ float lanes[{w}]; {v}_storeu_ps(lanes, {acc});");
                for (int i = 0; i < a.Lanes; i++) Line($"  {Element(0, a.Offset + i * a.LaneStride)} = lanes[{i}];");
                Line("}");
            }
        }

        /// <summary>Copies each packed input into its layout (<see cref="Layout.LoopStrides"/>): element x of a variable lies
        /// at the sum, over the loops of that variable, of its iteration of each loop (x modulo what the loop covers, over
        /// what one iteration covers) times the loop's stride in the copy.</summary>
        void Pack()
        {
            if (nest.Packed == 0) return;
            var c = nest.Computation;
            var strides = Layout.LoopStrides(nest);
            foreach (int t in Enumerable.Range(1, 2).Where(nest.IsPacked))
            {
                var tensor = c.Tensors[t];
                long length = Layout.PackedLength(nest, t);
                string raw = $"pack{t}_raw", copy = $"pack{t}";
                Line($"/* {tensor.Name} packed: {length} floats, 64-byte aligned */");
                Line($"float *{raw} = (float *)malloc({length} * sizeof(float) + 64);");
                Line($"if (!{raw}) return;");
                Line($"float *{copy} = (float *)(((uintptr_t){raw} + 63) & ~(uintptr_t)63);");
                if (length > tensor.Length) Line($"memset({copy}, 0, {length} * sizeof(float));");
                int dims = tensor.Shape.Length;
                string[] terms = new string[dims];
                for (int d = 0; d < dims; d++)
                {
                    int v = tensor.Index[d][0].Var;
                    string x = $"x{d}";
                    Line($"for (ptrdiff_t {x} = 0; {x} < {tensor.Shape[d]}; {x}++) {{");
                    indent++;
                    var parts = Enumerable.Range(0, nest.Count).Where(l => nest[l].Var == v)
                        .Select(l => $"({(nest.PreviousOfVar(l) < 0 ? x : $"{x} % {nest.Extent(l)}")} / {nest.InnerStep(l)}) * {strides[t][l]}");
                    Line($"ptrdiff_t q{d} = {string.Join(" + ", parts)};");
                    terms[d] = $"q{d}";
                }
                long[] dimStrides = new long[dims];
                for (int d = dims - 1, s = 1; d >= 0; s *= tensor.Shape[d], d--) dimStrides[d] = s;
                Line($"{copy}[{string.Join(" + ", terms)}] = in{t - 1}[{string.Join(" + ", Enumerable.Range(0, dims).Select(d => $"x{d} * {dimStrides[d]}"))}];");
                for (int d = 0; d < dims; d++)
                {
                    indent--;
                    Line("}");
                }
                current[t] = copy;
            }
        }

        void Free()
        {
            foreach (int t in Enumerable.Range(1, 2).Where(nest.IsPacked)) Line($"free(pack{t}_raw);");
        }
    }
}
