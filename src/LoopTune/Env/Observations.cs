using System.Text;
using LoopTune.Ir;

namespace LoopTune.Env;

/// <summary>
/// The tensor observations of a state, each a pure function of the nest (and the recent actions).
/// <para><b>loops_tensor</b>: <see cref="Nest.MaxLoops"/> rows (nest order, outermost first; rows past the last loop are 0)
/// of <see cref="LoopFeatures"/> floats, all in [0, 1]:</para>
/// <code>
///  0 cursor        1 if the cursor is on the loop
///  1 size          log2(size + 1) / 21
///  2 tail          log2(tail + 1) / 21
///  3 reduction     1 if the variable is not in the output
///  4 unrolled      1 if annotated unroll
///  5 vectorized    1 if annotated vectorize
///  6 depth         position / (MaxLoops - 1)
///  7..22 strides   histogram over the three accesses of the step one iteration of this loop moves each tensor
///                  (in a packed input's layout when it is packed, <see cref="Layout"/>):
///                  bucket 0 = does not move, bucket b = 1 + ceil(log2(stride in elements)), capped at 15; sums to 1
/// 23 parallel      1 if annotated parallel (its iterations divided among the threads)
/// </code>
/// <para><b>stride_tensor</b>: <see cref="StrideBuckets"/> floats: how often memory is stepped at each power-of-two stride,
/// over all loops and accesses, weighted by how many times the loop advances; same buckets (capped at 31); sums to 1.</para>
/// <para><b>machine_tensor</b>: <see cref="MachineFeatures"/> floats describing the machine the kernels run on, at the
/// vector width the JIT uses (<see cref="Measure.MachineInfo"/>), so that one policy can serve machines of several kinds:</para>
/// <code>
///  0 lanes         floats per vector / 16
///  1 log lanes     log2(lanes) / 4
///  2 registers     vector registers / 32
///  3 pipes         FMAs of that width started per cycle / 4
///  4 latency       FMA latency in cycles / 8
///  5 accumulators  pipes x latency / 32: independent accumulators a register tile needs
///  6 L1d           log2(KiB) / 10
///  7 L2            log2(KiB) / 14
///  8 L3            log2(KiB) / 20
/// </code>
/// <para><b>prev_actions_tensor</b>: <see cref="PreviousActions"/> x <see cref="Actions.LearnedCount"/> one-hot rows, the most recent
/// action first; rows with no action are 0.</para>
/// </summary>
public static class Observations
{
    public const int LoopFeatures = 24, StrideHistogram = 16, StrideBuckets = 32, PreviousActions = 5, MachineFeatures = 9;

    /// <summary>The machine_tensor of <paramref name="m"/>: [MachineFeatures] (an unknown cache is 0).</summary>
    public static float[] MachineTensor(Measure.MachineInfo m)
    {
        ArgumentNullException.ThrowIfNull(m);
        int lanes = m.Fma.Lanes;
        static float Log(int? kib, float scale) => kib is > 0 and int k ? MathF.Log2(k) / scale : 0;
        return [lanes / 16f, MathF.Log2(lanes) / 4, m.VectorRegisters / 32f, m.FmaPipes / 4f, (float)m.Fma.LatencyCycles / 8, m.Fma.Accumulators / 32f,
            Log(m.Caches.L1dKib, 10), Log(m.Caches.L2Kib, 14), Log(m.Caches.L3Kib, 20)];
    }
    const float SizeScale = 21f;

    /// <summary>The loops_tensor, row-major: [MaxLoops, LoopFeatures].</summary>
    public static float[] LoopsTensor(Nest nest)
    {
        var x = new float[Nest.MaxLoops * LoopFeatures];
        var tensors = nest.Computation.Tensors;
        var strides = Layout.LoopStrides(nest);
        for (int i = 0; i < nest.Count; i++)
        {
            var l = nest[i];
            var row = x.AsSpan(i * LoopFeatures, LoopFeatures);
            row[0] = i == nest.Cursor ? 1 : 0;
            row[1] = MathF.Log2(l.Size + 1) / SizeScale;
            row[2] = MathF.Log2(l.Tail + 1) / SizeScale;
            row[3] = nest.Computation.IsReduction[l.Var] ? 1 : 0;
            row[4] = l.IsUnrolled ? 1 : 0;
            row[5] = l.IsVectorized ? 1 : 0;
            row[6] = i / (float)(Nest.MaxLoops - 1);
            for (int t = 0; t < tensors.Length; t++)
                row[7 + Bucket(strides[t][i], StrideHistogram - 1)] += 1f / tensors.Length;
            row[7 + StrideHistogram] = l.IsParallel ? 1 : 0;
        }
        return x;
    }

    /// <summary>The stride_tensor: [StrideBuckets].</summary>
    public static float[] StrideTensor(Nest nest)
    {
        var x = new double[StrideBuckets];
        double advances = 1, total = 0;
        var strides = Layout.LoopStrides(nest);
        for (int i = 0; i < nest.Count; i++)
        {
            advances *= nest[i].Iterations;
            foreach (var t in strides)
            {
                x[Bucket(t[i], StrideBuckets - 1)] += advances;
                total += advances;
            }
        }
        return [.. x.Select(v => (float)(v / total))];
    }

    /// <summary>The prev_actions_tensor: [PreviousActions, Actions.LearnedCount], most recent first.</summary>
    public static float[] PreviousActionsTensor(IReadOnlyList<LoopAction> history)
    {
        var x = new float[PreviousActions * Actions.LearnedCount];
        for (int r = 0; r < PreviousActions && r < history.Count; r++)
            x[r * Actions.LearnedCount + history[history.Count - 1 - r].Id] = 1;
        return x;
    }

    /// <summary>Bucket of a stride in elements: 0 for no movement, else 1 + ceil(log2 stride), capped.</summary>
    public static int Bucket(long stride, int cap) =>
        stride == 0 ? 0 : Math.Min(cap, 1 + (int)Math.Ceiling(Math.Log2(Math.Abs(stride))));

    /// <summary>
    /// ir_tree: the loop nest as a tree: one node per loop and one for the statement; edges parent to child.
    /// Node features: kind, variable, size, tail, annotation, cursor.
    /// </summary>
    public static Graph IrTree(Nest nest)
    {
        var g = new Graph("ir_tree");
        for (int i = 0; i < nest.Count; i++)
        {
            var l = nest[i];
            g.Node($"L{i}", "loop", Label(nest, i), new()
            {
                ["var"] = nest.Computation.Vars[l.Var], ["size"] = l.Size, ["tail"] = l.Tail,
                ["annotation"] = l.Annotation.ToString().ToLowerInvariant(), ["cursor"] = i == nest.Cursor ? 1 : 0,
                ["reduction"] = nest.Computation.IsReduction[l.Var] ? 1 : 0,
            });
            if (i > 0) g.Edge($"L{i - 1}", $"L{i}", "child");
        }
        g.Node("S", "statement", nest.Computation.Statement, []);
        g.Edge($"L{nest.Count - 1}", "S", "child");
        return g;
    }

    /// <summary>
    /// ir_graph: data flow. Nodes: loops, tensors, and one access per tensor use; edges: loop -> loop (nesting),
    /// loop -> access ("steps", with the stride in elements that one iteration moves that access), access -> tensor
    /// ("reads") for inputs and tensor &lt;- access ("writes") for the output, access -> access ("feeds") from the inputs to the output.
    /// </summary>
    public static Graph IrGraph(Nest nest)
    {
        var g = new Graph("ir_graph");
        var c = nest.Computation;
        var strides = Layout.LoopStrides(nest);
        for (int i = 0; i < nest.Count; i++)
        {
            g.Node($"L{i}", "loop", Label(nest, i), new() { ["size"] = nest[i].Size, ["tail"] = nest[i].Tail, ["cursor"] = i == nest.Cursor ? 1 : 0 });
            if (i > 0) g.Edge($"L{i - 1}", $"L{i}", "nest");
        }
        for (int t = 0; t < c.Tensors.Length; t++)
        {
            var tensor = c.Tensors[t];
            g.Node($"T{t}", "tensor", tensor.Name + (nest.IsPacked(t) ? " (packed)" : ""), new() { ["elements"] = tensor.Length, ["packed"] = nest.IsPacked(t) ? 1 : 0 });
            g.Node($"A{t}", "access", $"{(t == 0 ? "write" : "read")} {tensor.Name}", new() { ["output"] = t == 0 ? 1 : 0 });
            if (t == 0) g.Edge("A0", "T0", "writes");
            else
            {
                g.Edge($"T{t}", $"A{t}", "reads");
                g.Edge($"A{t}", "A0", "feeds");
            }
            for (int i = 0; i < nest.Count; i++)
            {
                long stride = strides[t][i];
                if (stride != 0) g.Edge($"L{i}", $"A{t}", "steps", new() { ["stride"] = stride });
            }
        }
        return g;
    }

    static string Label(Nest nest, int i)
    {
        var l = nest[i];
        var sb = new StringBuilder().Append(nest.LoopName(i)).Append(' ').Append(l.Size);
        if (l.Tail > 0) sb.Append(" tail ").Append(l.Tail);
        if (l.Annotation != Annotation.None) sb.Append(' ').Append(Nest.Word(l.Annotation));
        return sb.ToString();
    }
}

/// <summary>A node of a <see cref="Graph"/>: an id, a kind (loop, statement, tensor, access), a label and features.</summary>
public sealed record GraphNode(string Id, string Kind, string Label, Dictionary<string, object> Features);

/// <summary>A typed edge of a <see cref="Graph"/>, with features such as the stride.</summary>
public sealed record GraphEdge(string From, string To, string Kind, Dictionary<string, object> Features);

/// <summary>A small directed graph with typed nodes and edges and numeric or text features, exportable as Graphviz DOT.</summary>
public sealed class Graph(string name)
{
    public string Name { get; } = name;
    public List<GraphNode> Nodes { get; } = [];
    public List<GraphEdge> Edges { get; } = [];

    internal void Node(string id, string kind, string label, Dictionary<string, object> features) => Nodes.Add(new(id, kind, label, features));
    internal void Edge(string from, string to, string kind, Dictionary<string, object>? features = null) => Edges.Add(new(from, to, kind, features ?? []));

    /// <summary>Graphviz DOT text: loops as boxes, tensors as cylinders, accesses as ellipses, the cursor's loop bold.</summary>
    public string ToDot()
    {
        var sb = new StringBuilder().Append("digraph ").Append(Name).Append(" {\n  node [fontname=\"monospace\"];\n");
        foreach (var n in Nodes)
        {
            string shape = n.Kind switch { "loop" => "box", "tensor" => "cylinder", "statement" => "note", _ => "ellipse" };
            string bold = n.Features.TryGetValue("cursor", out var c) && c is 1 ? ", style=bold, color=red" : "";
            sb.Append($"  {n.Id} [label=\"{Escape(n.Label)}\", shape={shape}{bold}];\n");
        }
        foreach (var e in Edges)
        {
            string label = e.Features.TryGetValue("stride", out var s) ? $"{e.Kind} {s}" : e.Kind;
            sb.Append($"  {e.From} -> {e.To} [label=\"{Escape(label)}\"];\n");
        }
        return sb.Append("}\n").ToString();
    }

    static string Escape(string s) => s.Replace("\\", "\\\\").Replace("\"", "\\\"");
}
