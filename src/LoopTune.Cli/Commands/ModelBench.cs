using System.Diagnostics;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Models;
using LoopTune.Store;
using Microsoft.ML.OnnxRuntime;

namespace LoopTune.Cli.Commands;

/// <summary>One row of <c>looptune model</c>: a node, tuned (its contraction's schedule, the check, our time and ONNX
/// Runtime's, oneDNN's figure for the kernel) or not (the reason).</summary>
/// <param name="Seconds">Our time for the whole node: <see cref="ContractionOp.Run"/> (the work outside the kernel, then the
/// tuned kernel), median, timed side by side with ONNX Runtime.</param>
/// <param name="Gflops">The node's FLOPs (<see cref="ContractionOp.Flops"/>: a strided convolution's own, not its
/// phase-split contraction's, which counts taps of zeros) over <paramref name="Seconds"/>.</param>
/// <param name="KernelGflops">The tuned kernel alone, from the tuner's final timing (side by side with oneDNN), on the
/// node's FLOPs as <paramref name="Gflops"/>.</param>
/// <param name="VsOnnxRuntime">How many times faster the node ran than ONNX Runtime's (median of the ratios within rounds).</param>
/// <param name="VsOneDnn">How many times faster the kernel ran than oneDNN's call (side by side).</param>
/// <param name="OneDnnNote">Why there is no oneDNN figure.</param>
/// <param name="OnnxRuntimeNote">Why there is no ONNX Runtime figure.</param>
/// <param name="MaxError">The largest |ours - ONNX Runtime's| over the node's output.</param>
/// <param name="Tolerance">The bound <paramref name="MaxError"/> must stay within.</param>
/// <param name="ScheduleFrom">Where the schedule came from: <see cref="ModelBench.FromTuning"/> (tuned for this node),
/// <see cref="ModelBench.FromRecord"/> (this machine's tuning record, verified and re-timed), or the name of the earlier node
/// with the same contraction whose schedule it shares.</param>
sealed record ModelRow(string Node, string Op, string? Spec, bool Tuned, string? Reason, bool Verified, double? Gflops, double? Seconds,
    double? KernelGflops, double? OnnxRuntimeGflops, double? OnnxRuntimeSeconds, string? OnnxRuntimeNote, double? VsOnnxRuntime,
    double? OneDnnGflops, string? OneDnnNote, double? VsOneDnn, string? Schedule, double? MaxError, double? Tolerance, string? ScheduleFrom)
{
    public static ModelRow NotTuned(OnnxNode node, string reason, string? spec = null) =>
        new(node.Name, node.OpType, spec, false, reason, false, null, null, null, null, null, null, null, null, null, null, null, null, null, null);
}

/// <summary>The work of <c>looptune model</c>: each distinct contraction tuned once with <c>tune</c>'s default search
/// (<see cref="TuneCommand.Tune"/>: the policy-guided search, then the best schedule verified and timed next to the peers), then
/// every node run with its schedule, checked against ONNX Runtime running that node alone, and timed side by side with it.
/// With a <paramref name="store"/>, a contraction with a tuning record of this machine is not searched: the record's schedule
/// is parsed, verified and timed by the same final timing (<see cref="KernelReport.Run(Nest, MeasureOptions, bool, double?)"/>);
/// a record that no longer parses or fails verification is reported on <paramref name="warn"/> and the contraction tuned
/// again. Every tuned contraction's verified schedule is put as its record (replacing the old one); <paramref name="retune"/>
/// ignores the records.</summary>
sealed class ModelBench(string budget, MeasureOptions timing, Action<string> progress, MeasurementStore? store = null, bool retune = false,
    Action<string>? warn = null)
{
    /// <summary><see cref="ModelRow.ScheduleFrom"/> of a node whose contraction was tuned in this run.</summary>
    public const string FromTuning = "tuned";

    /// <summary><see cref="ModelRow.ScheduleFrom"/> of a node whose schedule came from this machine's tuning record.</summary>
    public const string FromRecord = "record";

    /// <summary>Our output may differ from ONNX Runtime's by this much times max(1, the largest |value| of its output) (both
    /// sum in float32, in different orders).</summary>
    public const double RelativeTolerance = 1e-4;

    readonly Dictionary<string, (KernelReport Report, string Node)> tuned = new(StringComparer.Ordinal);
    readonly Dictionary<string, Policy> policies = new(StringComparer.Ordinal);

    /// <summary>The side-by-side timing of each contraction's first node checked against ONNX Runtime, by contraction text.</summary>
    readonly Dictionary<string, (Measurement Mine, Measurement? Theirs, double? Ratio)> timings = [];

    readonly Dictionary<OnnxNode, ChosenKernel> chosen = [];

    /// <summary>The op and kernel each tuned node ran with, by node (of the model given to <see cref="Run"/>): what a forward
    /// pass (<see cref="ModelRunner"/>) runs it with.</summary>
    public IReadOnlyDictionary<OnnxNode, ChosenKernel> Chosen => chosen;

    /// <summary>Distinct contractions whose schedule came from a tuning record.</summary>
    public int Recalled { get; private set; }

    /// <summary>Distinct contractions searched in this run.</summary>
    public int Searched { get; private set; }

    /// <summary>Every node of <paramref name="model"/>, in order.</summary>
    public IReadOnlyList<ModelRow> Run(OnnxModel model)
    {
        var shapes = ShapeInference.Infer(model);
        var lowered = ModelLowering.Lower(model, shapes);
        var clock = Stopwatch.StartNew();
        var rows = new List<ModelRow>();
        for (int i = 0; i < lowered.Length; i++)
        {
            var l = lowered[i];
            string what = l switch
            {
                ContractionOp op when tuned.TryGetValue(op.Contraction.Text, out var t) => $"reusing the schedule of {t.Node} for {op.Contraction.Text}",
                ContractionOp op when !retune && store is not null && store.TryGetRecord(op.Contraction, out _) => $"recalling the record of {l.Node.OpType} {op.Contraction.Text}",
                ContractionOp op => $"tuning {l.Node.OpType} {op.Contraction.Text}",
                NotTuned n => $"not tuned: {n.Reason}",
                _ => "",
            };
            progress($"[{clock.Elapsed.TotalSeconds,6:F1}s] {i + 1}/{lowered.Length} {l.Node.Name} {what}");
            rows.Add(l switch
            {
                ContractionOp op => Node(model, shapes, op, i),
                NotTuned n => ModelRow.NotTuned(n.Node, n.Reason),
                _ => ModelRow.NotTuned(l.Node, "not lowered"),
            });
        }
        return rows;
    }

    ModelRow Node(OnnxModel model, ModelShapes shapes, ContractionOp op, int index)
    {
        var c = op.Contraction;
        string from;
        if (tuned.TryGetValue(c.Text, out var known)) from = known.Node;
        else if (Recall(c) is { } recalled)
        {
            (known, from) = ((recalled, op.Node.Name), FromRecord);
            tuned[c.Text] = known;
            Recalled++;
        }
        else
        {
            try
            {
                var pol = Policy(c);
                var search = TuneCommand.Method(pol, budget, 1, out var limit);
                var (result, final, _, _) = TuneCommand.Tune(search, pol, c, limit, timing, OneDnn);
                known = (final, op.Node.Name);
                if (store is not null && final.Verification.Passed)
                    store.PutRecord(c, new TuningRecord(final.Nest.Serialize(), result.Method, budget, final.Gflops, DateTime.UtcNow));
            }
            catch (LoopTuneException e)
            {
                return ModelRow.NotTuned(op.Node, $"the tuner refused it: {e.Message}", c.Text);
            }
            tuned[c.Text] = known;
            from = FromTuning;
            Searched++;
        }
        var report = known.Report;
        string key = c.AsConv() is null ? "onednn" : "onednn_conv";
        var onednn = report.Peers.FirstOrDefault(p => p.Key == key);
        double? vsOneDnn = onednn is { Gflops: > 0 } ? report.RatioTo(key) : null;
        string? oneDnnNote = onednn is null ? "no oneDNN peer" : onednn.Gflops is null ? onednn.Problem : null;

        var feeds = ModelRunner.RandomFeeds(model, shapes, op.Node, new Random(index + 1));
        chosen[op.Node] = new ChosenKernel(op, report.Kernel);
        var ours = new float[c.Output.Length];
        op.Run(report.Kernel, feeds, ours);
        OnnxRuntimeNode? ort = null;
        string? ortNote = null;
        double? maxError = null, tolerance = null;
        bool verified = report.Verification.Passed;
        try
        {
            ort = new OnnxRuntimeNode(SingleNodeModel.Of(model, shapes, op.Node), feeds);
            using (ThreadPinning.Pin()) ort.Run();
            var error = OutputError.Of(ours, ort.Output);
            (maxError, tolerance) = (error.MaxAbs, error.Bound(RelativeTolerance));
            if (!error.Within(RelativeTolerance))
            {
                verified = false;
                ortNote = $"outputs differ: max |ours - ONNX Runtime's| {maxError:G3} over the bound {tolerance:G3}";
            }
        }
        catch (Exception e) when (e is OnnxRuntimeException or ArgumentException or InvalidOperationException)
        {
            ortNote = $"ONNX Runtime failed on the node: {e.Message.Split('\n')[0]}";
            ort?.Dispose();
            ort = null;
        }
        try
        {
            double flops = op.Flops;
            Measurement mine;
            Measurement? theirs = null;
            double? ratio = null;
            // nodes of one contraction (same shapes, strides and pads) do the same work in the same kernel, and ONNX
            // Runtime's node is the same but for its weights: each is checked, the first one of them timed
            if (ortNote is null && timings.TryGetValue(c.Text, out var shared)) (mine, theirs, ratio) = shared;
            else
            {
                if (ort is not null && ortNote is null)
                {
                    var (m, t, r) = SideBySide(() => op.Run(report.Kernel, feeds, ours), ort.Run, flops, timing);
                    (mine, theirs, ratio) = timings[c.Text] = (m, t, r);
                }
                else using (ThreadPinning.Pin()) mine = Timing.Measure(() => op.Run(report.Kernel, feeds, ours), flops, timing);
            }
            return new ModelRow(op.Node.Name, op.Node.OpType, c.Text, true, null, verified, mine.Gflops, mine.MedianSeconds,
                report.Gflops * flops / c.Flops, theirs?.Gflops, theirs?.MedianSeconds, ortNote, ratio, onednn?.Gflops, oneDnnNote, vsOneDnn,
                report.Nest.Serialize(), maxError, tolerance, from);
        }
        finally { ort?.Dispose(); }
    }

    /// <summary>Ours and ONNX Runtime's runs of the same work (<paramref name="flops"/>) timed side by side on the pinned
    /// core (<see cref="Timing.MeasureTogether"/>: one run of each per round, medians), and how many times faster ours
    /// ran (the median of the ratios within rounds).</summary>
    internal static (Measurement Mine, Measurement Theirs, double Ratio) SideBySide(Action ours, Action theirs, double flops, MeasureOptions timing)
    {
        using var pin = ThreadPinning.Pin();
        var t = Timing.MeasureTogether([ours, theirs], [flops, flops], timing);
        return (t.Measurements[0], t.Measurements[1], t.Ratio(0, 1));
    }

    /// <summary>oneDNN alone next to a node's kernel: the report's one library column (OpenBLAS and BLIS, im2col or not,
    /// took some 8 s of a ResNet-18 run and were never shown).</summary>
    static IReadOnlyList<PreparedPeer> OneDnn(Computation c) => KernelReport.PreparePeers(c, key => key.StartsWith("onednn", StringComparison.Ordinal));

    /// <summary>The final report of the schedule in <paramref name="c"/>'s tuning record (verified and timed as after a
    /// search), or null when there is no record, records are ignored, or the record no longer parses or verifies (warned).</summary>
    KernelReport? Recall(Computation c)
    {
        if (retune || store is null || !store.TryGetRecord(c, out var record)) return null;
        try
        {
            var nest = Nest.Parse(c, record.Schedule);
            var report = KernelReport.Run(nest, timing, OneDnn, null, null);
            if (report.Verification.Passed) return report;
            warn?.Invoke($"warning: the tuning record of {c.Text} ({record.Schedule}) fails verification ({report.Verification.Problem}); tuning it again");
        }
        catch (Exception e) when (e is LoopTuneException or ArgumentException)
        {
            warn?.Invoke($"warning: the tuning record of {c.Text} ({record.Schedule}) is unusable ({e.Message}); tuning it again");
        }
        return null;
    }

    Policy Policy(Computation c)
    {
        string path = Learning.Policy.Choose("default", c);
        if (!policies.TryGetValue(path, out var pol)) policies[path] = pol = Learning.Policy.Load(path);
        return pol;
    }
}
