using System.Globalization;
using System.Text;

namespace LoopTune.Search;

/// <summary>A state a search evaluated: its schedule (<see cref="Ir.Nest.ScheduleKey"/>) and GFLOPS, numbered in the
/// order the search evaluated it (the start is 0).</summary>
public sealed record SearchNode(int Id, string Schedule, double Gflops);

/// <summary>How a search got from one evaluated state to another: the actions in between (cursor moves included).</summary>
public sealed record SearchEdge(int From, int To, string Actions);

/// <summary>
/// The states a search evaluated (nodes, one per schedule) and the steps it took between them (edges labelled with
/// the actions), exportable as Graphviz DOT with the start, the best state and the best path marked.
/// </summary>
public sealed class SearchTree
{
    readonly Dictionary<string, SearchNode> byKey = [];
    readonly HashSet<(int, int)> linked = [];

    /// <summary>The nodes in evaluation order.</summary>
    public List<SearchNode> Nodes { get; } = [];

    /// <summary>The edges in the order the search took them; at most one per pair of nodes.</summary>
    public List<SearchEdge> Edges { get; } = [];

    /// <summary>The schedule of the best state, once the search has finished.</summary>
    public string? Best { get; internal set; }

    /// <summary>The schedules along the best path, from the start, once the search has finished.</summary>
    public IReadOnlyList<string> BestPath { get; internal set; } = [];

    /// <summary>The node of <paramref name="schedule"/>, or null.</summary>
    public SearchNode? Find(string schedule) => byKey.GetValueOrDefault(schedule);

    internal SearchNode Add(string schedule, double gflops)
    {
        if (byKey.TryGetValue(schedule, out var node)) return node;
        node = new SearchNode(Nodes.Count, schedule, gflops);
        Nodes.Add(node);
        return byKey[schedule] = node;
    }

    internal void Link(string from, string to, string actions)
    {
        if (from == to || !byKey.TryGetValue(from, out var a) || !byKey.TryGetValue(to, out var b) || !linked.Add((a.Id, b.Id))) return;
        Edges.Add(new SearchEdge(a.Id, b.Id, actions));
    }

    /// <summary>Graphviz DOT: one box per state (schedule and GFLOPS), the start in blue, the best state and the path to it
    /// in red, edges labelled with their actions.</summary>
    public string ToDot(string name = "search")
    {
        var onPath = new HashSet<int>(BestPath.Select(Find).OfType<SearchNode>().Select(n => n.Id));
        var sb = new StringBuilder().Append("digraph \"").Append(Escape(name)).Append("\" {\n")
            .Append("  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n  edge [fontname=\"monospace\", fontsize=10];\n");
        foreach (var n in Nodes)
        {
            string style = n.Id == 0 ? ", color=blue, style=bold" : n.Schedule == Best ? ", color=red, style=bold" : onPath.Contains(n.Id) ? ", color=red" : "";
            sb.Append(CultureInfo.InvariantCulture, $"  n{n.Id} [label=\"{Escape(n.Schedule)}\\n{n.Gflops:F2} GFLOPS\"{style}];\n");
        }
        var pathEdges = new HashSet<(int, int)>(BestPath.Zip(BestPath.Skip(1)).Select(p => (Find(p.First)?.Id ?? -1, Find(p.Second)?.Id ?? -1)));
        foreach (var e in Edges)
            sb.Append($"  n{e.From} -> n{e.To} [label=\"{Escape(e.Actions)}\"{(pathEdges.Contains((e.From, e.To)) ? ", color=red, penwidth=2" : "")}];\n");
        return sb.Append("}\n").ToString();
    }

    static string Escape(string s) => s.Replace("\\", "\\\\").Replace("\"", "\\\"");
}
