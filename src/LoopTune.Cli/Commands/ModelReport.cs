using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using LoopTune.Compare.Exporters;
using LoopTune.Measure;
using ScottPlot;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune model --json</c>: the model, where the report is, a row per node and the totals.</summary>
/// <param name="OpsSeconds">The sum of our times of the tuned nodes.</param>
/// <param name="ContractionsRecalled">Distinct contractions whose schedule came from this machine's tuning record.</param>
/// <param name="ContractionsTuned">Distinct contractions searched in this run (their records written).</param>
/// <param name="Seconds">Wall time of the whole run, from the start of the command to the report.</param>
/// <param name="Store">The measurement store holding the tuning records.</param>
/// <param name="OnnxruntimeOpsSeconds">The sum of ONNX Runtime's times of the same nodes; null when it has no time for one of them.</param>
/// <param name="EndToEnd">The whole forward pass against ONNX Runtime's (<c>--run</c>), else null.</param>
/// <param name="Weights">How the kernels were tuned and their figures (kernel_gflops, and the oneDNN ratio, oneDNN's own
/// data hot) timed: <c>cold</c> (the weights read cold) or <c>hot</c> (<c>--weights</c>). The nodes' side-by-side times
/// with ONNX Runtime are hot for both.</param>
sealed record ModelJson(string Model, string Out, IReadOnlyList<string> Files, string Budget, IReadOnlyList<ModelOpJson> Ops, double OpsSeconds,
    double? OnnxruntimeOpsSeconds, double? VsOnnxruntime, int Tuned, int NotTuned, bool Verified, int ContractionsRecalled, int ContractionsTuned, double Seconds, string? Store, JsonObject Machine,
    EndToEndJson? EndToEnd = null, string Weights = "hot");

/// <summary>A <see cref="ModelRow"/> in <see cref="ModelJson"/>.</summary>
sealed record ModelOpJson(string Node, string Op, string? Spec, bool Tuned, string? Reason, bool Verified, double? Gflops, double? Seconds,
    double? KernelGflops, double? OnnxruntimeGflops, double? OnnxruntimeSeconds, string? OnnxruntimeNote, double? VsOnnxruntime,
    double? OnednnGflops, string? OnednnNote, double? VsOnednn, string? Schedule, double? MaxError, double? Tolerance, string? ScheduleFrom,
    string? Lowering, string? LoweringNote);

[JsonSerializable(typeof(ModelJson))]
sealed partial class ModelJsonContext : JsonSerializerContext;

/// <summary>The report of <c>looptune model</c>: results.csv (a row per node), summary.md (the machine, the table, the
/// totals, the nodes not tuned), report.json (what --json prints) and node_seconds.png (per-node time, ours and ONNX
/// Runtime's).</summary>
static class ModelReport
{
    public const string Csv = "results.csv", Summary = "summary.md", Json = "report.json", Chart = "node_seconds.png", PassChart = "pass_nodes.png";

    static readonly ModelJsonContext Context = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    /// <summary>The totals: our seconds over the tuned nodes, ONNX Runtime's over the same ones (null if one lacks it).</summary>
    public static (double Ours, double? OnnxRuntime) Totals(IReadOnlyList<ModelRow> rows)
    {
        var timed = rows.Where(r => r.Tuned && r.Seconds is not null).ToList();
        double ours = timed.Sum(r => r.Seconds!.Value);
        double? ort = timed.All(r => r.OnnxRuntimeSeconds is not null) ? timed.Sum(r => r.OnnxRuntimeSeconds!.Value) : null;
        return (ours, ort);
    }

    public static ModelJson ToJson(string model, string folder, string budget, IReadOnlyList<ModelRow> rows, int recalled = 0, int searched = 0,
        double seconds = 0, string? store = null, EndToEndJson? endToEnd = null, string weights = "hot")
    {
        var (ours, ort) = Totals(rows);
        return new ModelJson(model, folder, endToEnd is null ? [Csv, Summary, Json, Chart] : [Csv, Summary, Json, Chart, PassChart], budget,
            [.. rows.Select(r => new ModelOpJson(r.Node, r.Op, r.Spec, r.Tuned, r.Reason, r.Verified, r.Gflops, r.Seconds, r.KernelGflops,
                r.OnnxRuntimeGflops, r.OnnxRuntimeSeconds, r.OnnxRuntimeNote, r.VsOnnxRuntime, r.OneDnnGflops, r.OneDnnNote, r.VsOneDnn,
                r.Schedule, r.MaxError, r.Tolerance, r.ScheduleFrom, r.Lowering, r.LoweringNote))],
            ours, ort, ort is > 0 && ours > 0 ? ort / ours : null, rows.Count(r => r.Tuned), rows.Count(r => !r.Tuned),
            rows.Where(r => r.Tuned).All(r => r.Verified), recalled, searched, seconds, store, Machine.Current.ToJson(), endToEnd, weights);
    }

    public static string Serialize(ModelJson report) => JsonSerializer.Serialize(report, Context.ModelJson);

    /// <summary>Writes every file of the report into <paramref name="folder"/>.</summary>
    public static void Write(string folder, ModelJson json, IReadOnlyList<ModelRow> rows, string modelText)
    {
        File.WriteAllText(Path.Combine(folder, Csv), CsvText(rows));
        File.WriteAllText(Path.Combine(folder, Summary), Markdown(json, rows, modelText));
        File.WriteAllText(Path.Combine(folder, Json), Serialize(json));
        Plot(rows, Path.GetFileName(json.Model)).SavePng(Path.Combine(folder, Chart), Math.Max(900, 120 + rows.Count(r => r.Tuned) * 40), 600);
        if (json.EndToEnd is { } e2e) PassPlot(e2e, Path.GetFileName(json.Model)).SavePng(Path.Combine(folder, PassChart), Math.Max(900, 120 + e2e.ByNode.Count * 40), 600);
    }

    static string F(double? v, string format = "G4") => v?.ToString(format, CultureInfo.InvariantCulture) ?? "";

    static string CsvText(IReadOnlyList<ModelRow> rows)
    {
        var b = new StringBuilder("node,op,spec,tuned,reason,verified,gflops,seconds,kernel_gflops,onnxruntime_gflops,onnxruntime_seconds,vs_onnxruntime,onednn_gflops,vs_onednn,schedule,schedule_from,max_error,tolerance,onnxruntime_note,onednn_note,lowering,lowering_note\n");
        foreach (var r in rows)
            b.AppendLine(string.Join(",", ComparisonCsv.Field(r.Node), r.Op, ComparisonCsv.Field(r.Spec), r.Tuned ? "true" : "false", ComparisonCsv.Field(r.Reason),
                r.Tuned ? (r.Verified ? "true" : "false") : "", F(r.Gflops), F(r.Seconds, "G6"), F(r.KernelGflops), F(r.OnnxRuntimeGflops),
                F(r.OnnxRuntimeSeconds, "G6"), F(r.VsOnnxRuntime, "F3"), F(r.OneDnnGflops), F(r.VsOneDnn, "F3"), ComparisonCsv.Field(r.Schedule),
                ComparisonCsv.Field(r.ScheduleFrom), F(r.MaxError, "G3"), F(r.Tolerance, "G3"), ComparisonCsv.Field(r.OnnxRuntimeNote), ComparisonCsv.Field(r.OneDnnNote),
                r.Lowering ?? "", ComparisonCsv.Field(r.LoweringNote)));
        return b.ToString();
    }

    static string Cell(string? s) => (s ?? "").Replace("|", "\\|", StringComparison.Ordinal);

    static string From(string? from) => from switch
    {
        null or ModelBench.FromTuning => "",
        ModelBench.FromRecord => " (record)",
        _ => $" (from {Cell(from)})",
    };

    static string Markdown(ModelJson json, IReadOnlyList<ModelRow> rows, string modelText)
    {
        var b = new StringBuilder();
        b.AppendLine(CultureInfo.InvariantCulture, $"# looptune model: {Path.GetFileName(json.Model)}");
        b.AppendLine();
        b.AppendLine(CultureInfo.InvariantCulture, $"Model: `{json.Model}` ({modelText}).");
        b.AppendLine();
        b.AppendLine(CultureInfo.InvariantCulture, $"Machine: {Machine.Current.Describe()} (key `{Machine.Current.Key}`).");
        b.AppendLine();
        b.AppendLine($"Each distinct contraction was tuned once by `tune`'s default search (the policy-guided search, budget {json.Budget} each), or, when this machine has a tuning record of it in the store, its recorded schedule was verified and re-timed without a search (marked \"(record)\"); its schedule serves every node with that contraction. " +
            "**ours** is the whole node (`ContractionOp.Run` into an output array made once: the output's initial value, the padded copy of the input into a buffer kept between runs, then the tuned kernel), timed side by side with **ONNX Runtime** running that node alone " +
            "(a one-node model with the node's attributes and weights, one thread, every graph optimization on), one run of each per round, medians; GFLOPS are the contraction's FLOPs (2 per multiply-add) over that time. " +
            $"Before timing, our output is checked against ONNX Runtime's on random inputs: max |ours - theirs| at most {ModelBench.RelativeTolerance:G} x max(1, max |theirs|); **verified** also needs the kernel's check against the reference. " +
            "**oneDNN** is its convolution primitive or sgemm for the kernel alone (no padding copy), timed side by side with the tuned kernel by the tuner's final timing; **vs oneDNN** compares the kernels. " +
            (json.Weights == "cold" ? "The kernels were tuned, and **kernel GFLOPS** timed, with their weights cold (`--weights cold`: each run reads the next of many copies of the weights, as a forward pass reads them); oneDNN ran on its own data, hot, and the nodes' side-by-side times with ONNX Runtime are hot for both. " : "The kernels were tuned and timed with their weights hot (`--weights hot`). ") +
            "A convolution with a window larger than 1x1 has up to three kinds of **lowering**: *direct* (the windows read in place from a padded copy, column phases for a stride along w), *columns* (a matrix product over a copy of its windows' columns, im2col) and *blocked E* (the output channels in blocks of E, innermost, the weights packed once; one for each block of 4, 2 or 1 vectors that divides the channels); a 1x1 convolution has *columns* (its pixels are the columns) and the blocked ones. Each is tuned, the whole nodes are timed side by side quickly, and the fastest serves the node (their times in results.csv, `lowering_note`).");
        b.AppendLine();
        b.AppendLine("| node | op | lowering | spec | ours GFLOPS | ours ms | ONNX Runtime GFLOPS | ONNX Runtime ms | vs ONNX Runtime | kernel GFLOPS | oneDNN GFLOPS | vs oneDNN | schedule | verified |");
        b.AppendLine("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
        foreach (var r in rows.Where(r => r.Tuned))
            b.AppendLine(CultureInfo.InvariantCulture,
                $"| {Cell(r.Node)} | {r.Op} | {r.Lowering} | `{r.Spec}` | {F(r.Gflops, "F1")} | {F(r.Seconds * 1e3, "F3")} | {(r.OnnxRuntimeGflops is null ? Cell(r.OnnxRuntimeNote) : F(r.OnnxRuntimeGflops, "F1"))} | {F(r.OnnxRuntimeSeconds * 1e3, "F3")} | {F(r.VsOnnxRuntime, "F2")}{(r.VsOnnxRuntime is null ? "" : "x")} | {F(r.KernelGflops, "F1")} | {(r.OneDnnGflops is null ? Cell(r.OneDnnNote) : F(r.OneDnnGflops, "F1"))} | {F(r.VsOneDnn, "F2")}{(r.VsOneDnn is null ? "" : "x")} | `{r.Schedule}`{From(r.ScheduleFrom)} | {(r.Verified ? "yes" : $"**NO** {Cell(r.OnnxRuntimeNote)}")} |");
        b.AppendLine();
        b.AppendLine("## Totals");
        b.AppendLine();
        int tuned = rows.Count(r => r.Tuned);
        b.AppendLine(CultureInfo.InvariantCulture, $"- the {tuned} tuned node(s), ours: {json.OpsSeconds * 1e3:F3} ms");
        b.AppendLine(json.OnnxruntimeOpsSeconds is { } ort
            ? FormattableString.Invariant($"- the same nodes, ONNX Runtime: {ort * 1e3:F3} ms ({json.VsOnnxruntime:F2}x ours)")
            : "- ONNX Runtime: no total (it has no time for some of the tuned nodes; see the table)");
        b.AppendLine(CultureInfo.InvariantCulture, $"- verified: {(json.Verified ? "every tuned node" : "NOT every tuned node")}");
        b.AppendLine(CultureInfo.InvariantCulture, $"- distinct contractions: {json.ContractionsRecalled} recalled from tuning records, {json.ContractionsTuned} tuned{(json.Store is null ? "" : $" (store `{json.Store}`)")}");
        b.AppendLine("- every node is checked against ONNX Runtime; of the nodes of one contraction (same shapes, strides and pads), the first is timed next to ONNX Runtime and the others share its times");
        b.AppendLine(CultureInfo.InvariantCulture, $"- wall time of the run: {json.Seconds:F1} s");
        b.AppendLine();
        if (json.EndToEnd is { } e2e) b.AppendLine(ModelEndToEnd.Markdown(e2e));
        b.AppendLine(CultureInfo.InvariantCulture, $"## Not tuned ({rows.Count(r => !r.Tuned)})");
        b.AppendLine();
        foreach (var r in rows.Where(r => !r.Tuned)) b.AppendLine(CultureInfo.InvariantCulture, $"- {r.Node} ({r.Op}): {r.Reason}");
        b.AppendLine();
        b.AppendLine(CultureInfo.InvariantCulture, $"Chart: [{Chart}]({Chart}) (per-node time, ours and ONNX Runtime's).");
        if (json.EndToEnd is not null) b.AppendLine(CultureInfo.InvariantCulture, $"Chart: [{PassChart}]({PassChart}) (per-node time within the forward pass, ours split into kernel and around it, and ONNX Runtime's from its profile).");
        return b.ToString();
    }

    /// <summary>Each step of the forward pass: ours (a contraction's kernel, with the work around it stacked on it) and ONNX
    /// Runtime's node doing the same in its own pass.</summary>
    static Plot PassPlot(EndToEndJson e, string title)
    {
        var plot = new Plot();
        var bars = new List<Bar>();
        for (int i = 0; i < e.ByNode.Count; i++)
        {
            var n = e.ByNode[i];
            double kernel = n.KernelMs ?? n.Ms;
            bars.Add(new Bar { Position = i * 3, Value = kernel, FillColor = Colors.SteelBlue });
            if (n.AroundKernelMs is { } around) bars.Add(new Bar { Position = i * 3, ValueBase = kernel, Value = kernel + around, FillColor = Colors.LightSteelBlue });
            if (n.OnnxruntimeMs is { } t) bars.Add(new Bar { Position = i * 3 + 1, Value = t, FillColor = Colors.DarkOrange });
        }
        NodeBars(plot, bars, [.. e.ByNode.Select(n => n.Node)], ("ours: kernel (or the whole node)", Colors.SteelBlue),
            ("ours: around the kernel", Colors.LightSteelBlue), ("ONNX Runtime, in its pass (its profiler)", Colors.DarkOrange));
        plot.Axes.Margins(bottom: 0, top: 0.3); // room for the legend above the tallest bars
        plot.YLabel("ms per pass (median)");
        plot.Title($"{title}: the forward pass, node by node");
        return plot;
    }

    /// <summary><paramref name="bars"/> in groups of three positions, one group per node (named under it, slanted), and a
    /// legend of <paramref name="legend"/>.</summary>
    static void NodeBars(Plot plot, List<Bar> bars, string[] nodes, params (string Label, ScottPlot.Color Color)[] legend)
    {
        plot.Add.Bars(bars);
        plot.Axes.Bottom.SetTicks([.. nodes.Select((_, i) => i * 3 + 0.5)], nodes);
        plot.Axes.Bottom.TickLabelStyle.Rotation = 45;
        plot.Axes.Bottom.MinimumSize = 140;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.Margins(bottom: 0);
        foreach (var (label, color) in legend) plot.Legend.ManualItems.Add(new LegendItem { LabelText = label, FillColor = color });
        plot.ShowLegend(Alignment.UpperRight);
    }

    static Plot Plot(IReadOnlyList<ModelRow> rows, string title)
    {
        var plot = new Plot();
        var timed = rows.Where(r => r.Tuned && r.Seconds is not null).ToList();
        var bars = new List<Bar>();
        for (int i = 0; i < timed.Count; i++)
        {
            bars.Add(new Bar { Position = i * 3, Value = timed[i].Seconds!.Value * 1e3, FillColor = Colors.SteelBlue });
            if (timed[i].OnnxRuntimeSeconds is { } s) bars.Add(new Bar { Position = i * 3 + 1, Value = s * 1e3, FillColor = Colors.DarkOrange });
        }
        NodeBars(plot, bars, [.. timed.Select(r => r.Node)], ("ours (whole node)", Colors.SteelBlue), ("ONNX Runtime (the node alone)", Colors.DarkOrange));
        plot.YLabel("ms per run (median)");
        plot.Title($"{title}: time per node");
        return plot;
    }
}
