using System.Globalization;
using System.Text;

namespace LoopTune.Compare.Exporters;

/// <summary>summary.md of a <see cref="Comparison"/>: the per-method table, the goals, and GFLOPS per benchmark.</summary>
public static class ComparisonMarkdown
{
    /// <summary>Most seconds greedy2 may take per benchmark.</summary>
    public const double GoalGreedy2Seconds = 5;

    /// <summary>Writes the summary; <paramref name="peakGflops"/> is the measuring core's peak (our FMA microkernel), the
    /// yardstick of kernels no library computes (convolutions here).</summary>
    public static string Write(Comparison c, ComparisonSetup setup, double peakGflops)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"# Searches compared on {setup.Dataset}\n\n");
        sb.Append(CultureInfo.InvariantCulture, $"{c.Benchmarks.Length} benchmarks (the first {c.Benchmarks.Length} of the {setup.Split} split), ")
          .Append(CultureInfo.InvariantCulture, $"{c.Methods.Length} methods in the **{setup.Space}** action space, a budget of {setup.Budget} per search, seed {setup.Seed}.\n\n");
        sb.Append(c.Distributed ? Machines(c) : string.Concat(setup.MachineLines().Select(l => l + "\n")))
          .Append(Invariant($"- Peak: {peakGflops:F1} GFLOPS per core (our FMA microkernel, measured on this machine); \"% of peak\" is a geomean over it.\n"))
          .Append(CultureInfo.InvariantCulture, $"- Evaluator during the searches: {setup.Evaluator}\n- {setup.Timing}\n");
        int wrong = c.Rows.Count(r => !r.Verified);
        sb.Append(wrong == 0 ? "- Every best schedule was verified against the reference.\n" : $"- **{wrong} best schedule(s) FAILED verification** (see results.csv); the summaries count verified schedules only.\n");
        sb.Append("- Every library was timed side by side with the schedules of each benchmark; **the headline is the ratio to the best library of each benchmark** (the fastest one there). OpenBLAS is the BLAS numpy calls: its column stands for numpy.\n\n");
        sb.Append("| method | geomean ratio to the best library | geomean GFLOPS | % of peak | fastest samples: GFLOPS, % of peak | geomean speedup over unscheduled | geomean ratio to OpenBLAS | mean seconds | max seconds | mean evaluations | benchmarks counted |\n")
          .Append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
        foreach (var s in c.Summaries)
            sb.Append(CultureInfo.InvariantCulture,
                $"| {s.Method} | **{Ratio(s.GeomeanVsBestLibrary)}** | {s.GeomeanGflops:F1} | {s.GeomeanGflops / peakGflops * 100:F0} % | {(s.GeomeanBestSampleGflops is double f ? Invariant($"{f:F1}, {f / peakGflops * 100:F0} %") : "")} | {s.GeomeanSpeedup:F2}x | {Ratio(s.GeomeanVsOpenBlas)} | {Num(s.MeanSeconds, "F1")} | {Num(s.MaxSeconds, "F1")} | {Num(s.MeanEvaluations, "F0")} | {s.Counted} |\n");
        sb.Append("\nGFLOPS are medians of the re-timing's samples: what a schedule typically does on this machine. The fastest samples are what it does when nothing slows the core (geomean over the benchmarks of each best schedule's fastest sample); on a core whose other hardware thread a neighbour uses now and then, the two differ most for kernels that load the most.\n");
        sb.Append("\n## Goals\n\n");
        Goals(sb, c, peakGflops);
        var libraries = c.Libraries;
        sb.Append("\n## GFLOPS per benchmark\n\n| benchmark | ").AppendJoin(" | ", [Comparison.Unscheduled, .. c.Methods, .. libraries, Comparison.BestLibrary]).Append(" |\n|---|")
          .Append(string.Concat(Enumerable.Repeat("--:|", c.Methods.Length + libraries.Count + 2))).Append('\n');
        foreach (var b in c.Benchmarks)
        {
            var rows = c.Rows.Where(r => r.Benchmark == b).ToList();
            sb.Append(CultureInfo.InvariantCulture, $"| {b} | {rows[0].BaseGflops:F1} | ")
              .AppendJoin(" | ", c.Methods.Select(m => rows.First(r => r.Method == m) is var row ? row.BestGflops.ToString("F1", CultureInfo.InvariantCulture) + (row.Verified ? "" : " (failed verification)") : ""))
              .Append(libraries.Count == 0 ? "" : " | ").AppendJoin(" | ", libraries.Select(l => Num(rows[0].Peer(l)?.Gflops, "F1")))
              .Append(CultureInfo.InvariantCulture, $" | {(rows[0].BestLibrary is { } best ? Invariant($"{best.Gflops:F1} ({best.Key})") : "")} |\n");
        }
        if (c.Distributed)
        {
            sb.Append("\n## Who measured what\n\n| benchmark | ").AppendJoin(" | ", c.Methods).Append(" |\n|---|")
              .Append(string.Concat(Enumerable.Repeat("---|", c.Methods.Length))).Append('\n');
            foreach (var b in c.Benchmarks)
                sb.Append(CultureInfo.InvariantCulture, $"| {b} | ").AppendJoin(" | ", c.Methods.Select(m => c.Rows.First(r => r.Benchmark == b && r.Method == m).Host)).Append(" |\n");
        }
        sb.Append("\nresults.csv has every run's schedule, actions and evaluation counts")
          .Append(c.Distributed ? " and the host and machine type that measured it" : "")
          .Append("; gflops_by_benchmark.png and time_vs_quality.png chart the tables above.\n");
        return sb.ToString();
    }

    /// <summary>Which machines measured a comparison run on a cluster, and how many rows each.</summary>
    static string Machines(Comparison c)
    {
        var hosts = c.Rows.GroupBy(r => (r.Host, r.Machine)).OrderBy(g => g.Key.Host, StringComparer.Ordinal)
            .Select(g => Invariant($"**{g.Key.Host}** ({g.Key.Machine}) measured {g.Count()} row(s)"));
        int types = c.Rows.Select(r => r.Machine).Distinct().Count();
        return $"- Machines: a cluster; each row (its search, then its best schedule, the unscheduled nest and the libraries re-timed) on one pinned core of one host: {string.Join("; ", hosts)}. "
            + (types == 1 ? "All of one machine type, so the rows compare.\n" : $"{types} machine types: compare rows of one type only.\n");
    }

    static void Goals(StringBuilder sb, Comparison c, double peakGflops)
    {
        var best = c.BestMethod;
        sb.Append(best.GeomeanVsBestLibrary is double r
            ? Invariant($"- Best method: **{best.Method}** at **{r:F2}x the best library** (geometric mean of the ratios per benchmark){(best.GeomeanVsOpenBlas is double o ? Invariant($", {o:F2}x OpenBLAS") : "")}.\n")
            : Invariant($"- Best method: **{best.Method}** at {best.GeomeanGflops:F1} GFLOPS (geometric mean); no library was measured.\n"));
        if (c.Methods.Contains("greedy2"))
        {
            var g = c.Summary("greedy2");
            sb.Append(Invariant($"- greedy2: {g.MeanSeconds:F1} s per benchmark on average, {g.MaxSeconds:F1} s at most; goal under {GoalGreedy2Seconds:F0} s per benchmark: **{(g.MaxSeconds < GoalGreedy2Seconds ? "met" : "not met")}**.\n"));
        }
        Policy(sb, c, peakGflops);
    }

    /// <summary>The learned policy against the best search and the peak (issue 7's goals: at least the best search's geomean
    /// within 0.5 s a benchmark; on convolutions, 60 % of the peak).</summary>
    static void Policy(StringBuilder sb, Comparison c, double peakGflops)
    {
        var policies = c.Summaries.Where(s => s.Method.StartsWith("policy", StringComparison.Ordinal) /* Learning's methods: policy, policy_topK */).ToList();
        var searches = c.Summaries.Where(s => c.Methods.Contains(s.Method) && !policies.Contains(s)).ToList();
        if (policies.Count == 0) return;
        var bestSearch = searches.Count == 0 ? null : searches.MaxBy(s => s.GeomeanGflops);
        foreach (var p in policies)
            sb.Append(Invariant($"- {p.Method}: {p.GeomeanGflops:F1} GFLOPS, {p.GeomeanGflops / peakGflops * 100:F0} % of the peak"))
              .Append(p.GeomeanBestSampleGflops is double f ? Invariant($" ({f / peakGflops * 100:F0} % in the fastest samples)") : "")
              .Append(Invariant($", {p.MeanSeconds ?? 0:F2} s per benchmark on average ({p.MaxSeconds ?? 0:F2} s at most)"))
              .Append(p.GeomeanVsBestLibrary is double lib ? Invariant($"; {lib:F2}x the best library") : "")
            .Append(bestSearch is null ? ".\n" : Invariant($"; {p.GeomeanGflops / bestSearch.GeomeanGflops:F2}x the best search ({bestSearch.Method}, {bestSearch.GeomeanGflops:F1} GFLOPS in {bestSearch.MeanSeconds ?? 0:F1} s).\n"));
    }

    static string Ratio(double? r) => r is double x ? x.ToString("F2", CultureInfo.InvariantCulture) + "x" : "n/a";
    static string Num(double? x, string format) => x is double v ? v.ToString(format, CultureInfo.InvariantCulture) : "";
    static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
