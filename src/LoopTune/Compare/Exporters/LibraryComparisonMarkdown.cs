using System.Globalization;
using System.Text;

namespace LoopTune.Compare.Exporters;

/// <summary>summary.md of a <see cref="LibraryComparison"/>: how it was run, the geometric means and ratios to the best
/// library, GFLOPS per benchmark, why a library has no figure, and the original paper's TVM and numpy ratios, marked as
/// cited and not measured.</summary>
public static class LibraryComparisonMarkdown
{
    /// <summary>The heading of the cited table; the report says under it that TVM was not measured.</summary>
    public const string PaperHeading = "## Not measured here: the original paper's LoopTune against TVM and numpy";

    /// <summary>Writes the summary; <paramref name="peakGflops"/> is the core's peak, <paramref name="libraries"/> one line per
    /// library (<see cref="Measure.Library.Describe"/>), <paramref name="files"/> the other files of the report.</summary>
    public static string Write(LibraryComparison lc, ComparisonSetup setup, double peakGflops, IEnumerable<string> libraries, IEnumerable<string> files)
    {
        ArgumentNullException.ThrowIfNull(lc);
        ArgumentNullException.ThrowIfNull(setup);
        var c = lc.Comparison;
        var sb = new StringBuilder();
        sb.Append(I($"# LoopTune against the libraries on {setup.Dataset}\n\n"))
          .Append(I($"{c.Benchmarks.Length} benchmarks (the first {c.Benchmarks.Length} of the {setup.Split} split); methods {string.Join(", ", c.Methods)}, "))
          .Append(I($"a budget of {setup.Budget} per search in the {setup.Space} action space, seed {setup.Seed}.\n\n"))
          .Append(string.Concat(setup.MachineLines().Select(l => l + "\n")))
          .Append(I($"- Peak of the core: {peakGflops:F1} GFLOPS (our FMA microkernel).\n"))
          .Append(I($"- Evaluator during the searches: {setup.Evaluator}\n- {setup.Timing}\n"))
          .Append(I($"- Libraries, {(setup.Threads == 1 ? "one thread" : $"{setup.Threads} threads")} each, in this process; each result is checked against the reference before it is timed, and a wrong result is flagged and never timed:\n"));
        foreach (var l in libraries) sb.Append(I($"  - {l}\n"));
        sb.Append("- A matrix product in any layout is one sgemm call of each library with the transposes and leading dimensions it needs; ")
          .Append("a batched product is a loop of sgemm calls over strided pointers, all timed together as one run. A convolution is oneDNN's ")
          .Append("convolution primitive (its own layouts, the reorders outside the timed region) and im2col + sgemm for OpenBLAS and BLIS (im2col timed). ")
          .Append("A contraction none of these express has no library figure, with the reason below.\n")
          .Append("- OpenBLAS is the BLAS that numpy calls for a float32 matmul here: its column stands for numpy.\n");
        int wrong = c.Rows.Count(r => !r.Verified), flagged = lc.Entries.Count(e => e.Status == "wrong result");
        if (wrong > 0) sb.Append(I($"- **{wrong} best schedule(s) FAILED verification** (see results.csv).\n"));
        if (flagged > 0) sb.Append(I($"- **{flagged} library result(s) were WRONG** and were not timed (see below).\n"));

        sb.Append("\n## Summary\n\n| | kind | geomean GFLOPS | % of peak | geomean ratio to the best library | benchmarks measured | mean search s | note |\n|---|---|--:|--:|--:|--:|--:|---|\n");
        foreach (var s in lc.Summaries)
            sb.Append(I($"| {s.Name} | {LibraryComparison.KindName(s.Kind).Replace('_', ' ')} | {Num(s.GeomeanGflops, "F1")} | {Num(s.GeomeanGflops / peakGflops * 100, "F0")}{(s.GeomeanGflops is null ? "" : " %")} | {Ratio(s.GeomeanVsBestLibrary)} | {s.Measured} of {c.Benchmarks.Length} | {Num(s.MeanSeconds, "F1")} | {(s.Kind == EntryKind.Library ? setup.Info?.LibraryNote(s.Name) : null) ?? ""} |\n"));
        sb.Append("\nGeometric means over the benchmarks where the entry has a figure; the ratio to the best library over those where the best library has one too. ")
          .Append("The best library of a benchmark is the fastest library measured on it.\n");

        var names = lc.Names.ToList();
        sb.Append("\n## GFLOPS per benchmark\n\n| benchmark | spec | ").AppendJoin(" | ", names.Select(n => n.Name))
          .Append(" | best method / best library |\n|---|---|").Append(string.Concat(Enumerable.Repeat("--:|", names.Count + 1))).Append('\n');
        foreach (var b in c.Benchmarks)
        {
            var entries = names.Select(n => lc.Entry(b, n.Name)).ToList();
            var bestMethod = entries.Where(e => e.Kind == EntryKind.Method).Max(e => e.VsBestLibrary);
            sb.Append(I($"| {b} | {entries[0].Spec} | ")).AppendJoin(" | ", entries.Select(Cell)).Append(I($" | {Ratio(bestMethod)} |\n"));
        }

        var problems = lc.Entries.Where(e => e.Kind == EntryKind.Library && e.Gflops is null).ToList();
        if (problems.Count > 0)
        {
            sb.Append("\n## Libraries without a figure\n\n");
            foreach (var e in problems)
                sb.Append(I($"- {e.Benchmark}, {e.Name}: **{e.Status}**: {(e.Note.StartsWith(e.Status + ": ", StringComparison.Ordinal) ? e.Note[(e.Status.Length + 2)..] : e.Note)}\n"));
        }
        Paper(sb);
        sb.Append(I($"\nresults.csv has every figure, status, schedule and call; {string.Join(" and ", files)} chart them, with the core's peak and the best library as reference lines.\n"));
        return sb.ToString();
    }

    /// <summary>The original paper's figures, in a table marked as cited.</summary>
    static void Paper(StringBuilder sb) => sb.Append('\n').Append(PaperHeading).Append("\n\n")
        .Append("> **Cited, not measured.** TVM was not run for this report: there is no TVM on these machines (no package of it can be installed here). ")
        .Append("The figures below are the original LoopTune paper's (Grubisic et al., *LoopTune: Optimizing Tensor Computations with Reinforcement Learning*, ")
        .Append("arXiv 2309.01825, 2023), measured on their own AVX2 machine with their loop_tool/LoopNest backend; they are not comparable with the GFLOPS above.\n\n")
        .Append("| original paper: LoopTune against | LoopTune's speedup (their claim) |\n|---|---|\n")
        .Append("| TVM | about 10x (\"an order of magnitude faster code than TVM\") |\n")
        .Append("| MetaSchedule (TVM's auto-scheduler) | 2.8x |\n")
        .Append("| AutoTVM | 1.08x |\n")
        .Append("| numpy | \"consistently performing at the level of\" numpy (abstract); in the comparison stored in the original repository numpy was about 2.9x faster on its two shapes |\n")
        .Append("| LoopNest without a schedule | 3.2x |\n\n")
        .Append("The measured counterpart of the numpy row is the OpenBLAS column above; nothing here stands in for TVM.\n");

    /// <summary>GFLOPS (the best library's with its name), or missing, WRONG, n/a.</summary>
    static string Cell(LibraryEntry e) => e.Gflops is double g
        ? g.ToString("F1", CultureInfo.InvariantCulture) + (e.Kind == EntryKind.BestLibrary ? $" ({e.Note})" : e.Status == "ok" ? "" : " (FAILED verification)")
        : e.Status switch { "missing" => "missing", "wrong result" => "**WRONG**", "none measured" => "", _ => "n/a" };

    static string Ratio(double? r) => r is double x ? x.ToString("F2", CultureInfo.InvariantCulture) + "x" : "";
    static string Num(double? x, string format) => x is double v ? v.ToString(format, CultureInfo.InvariantCulture) : "";
    static string I(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
