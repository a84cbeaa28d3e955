using System.Collections.Immutable;
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
/// <param name="Lowering">A convolution's lowering (<see cref="ConvLowering"/>: direct or columns), null for other ops.</param>
/// <param name="LoweringNote">When the node had several lowerings: each one's time for the whole node, timed side by side
/// (quickly) to choose the fastest.</param>
sealed record ModelRow(string Node, string Op, string? Spec, bool Tuned, string? Reason, bool Verified, double? Gflops, double? Seconds,
    double? KernelGflops, double? OnnxRuntimeGflops, double? OnnxRuntimeSeconds, string? OnnxRuntimeNote, double? VsOnnxRuntime,
    double? OneDnnGflops, string? OneDnnNote, double? VsOneDnn, string? Schedule, double? MaxError, double? Tolerance, string? ScheduleFrom,
    string? Lowering = null, string? LoweringNote = null)
{
    public static ModelRow NotTuned(OnnxNode node, string reason, string? spec = null) =>
        new(node.Name, node.OpType, spec, false, reason, false, null, null, null, null, null, null, null, null, null, null, null, null, null, null);

    static readonly System.Text.Json.JsonSerializerOptions Style = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>The row of the model's node <paramref name="index"/> as a line of <c>model</c>'s journal.</summary>
    public System.Text.Json.Nodes.JsonObject ToJson(int index)
    {
        var o = System.Text.Json.JsonSerializer.SerializeToNode(this, Style)!.AsObject();
        o["Index"] = index;
        return o;
    }

    /// <summary>The node's index and row of a journal line; a line that is no row is a <see cref="RunJournalError"/>.</summary>
    public static (int Index, ModelRow Row) FromJson(System.Text.Json.Nodes.JsonObject line)
    {
        try { return (line["Index"]!.GetValue<int>(), System.Text.Json.JsonSerializer.Deserialize<ModelRow>(line, Style)!); }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new RunJournalError($"a journal line is no row of model ({e.Message}); the journal is damaged (delete it to start the run over)", e);
        }
    }
}

/// <summary>The work of <c>looptune model</c>: each distinct contraction tuned once with <c>tune</c>'s default search
/// (<see cref="TuneCommand.Tune"/>: the policy-guided search, then the best schedule verified and timed next to the peers), then
/// every node run with its schedule, checked against ONNX Runtime running that node alone, and timed side by side with it.
/// With a <paramref name="store"/>, a contraction with a tuning record of this machine is not searched: the record's schedule
/// is parsed, verified and timed next to oneDNN as after a search (<see cref="KernelReport.Run(Nest, MeasureOptions, bool, double?)"/>),
/// quickly (<see cref="RecallTiming"/>);
/// a record that no longer parses or fails verification is reported on <paramref name="warn"/> and the contraction tuned
/// again. Every tuned contraction's verified schedule is put as its record (replacing the old one); <paramref name="retune"/>
/// ignores the records. With <paramref name="coldWeights"/>, each contraction whose operand is a constant of the model (its
/// <see cref="ContractionOp.ConstantOperand"/>, the weights) is searched, confirmed and timed with that operand cold
/// (<see cref="TimingContext"/>), as a forward pass reads it, and its records (and the choice among lowerings) are those of
/// that context, apart from the hot ones.</summary>
sealed class ModelBench(string budget, MeasureOptions timing, Action<string> progress, MeasurementStore? store = null, bool retune = false,
    Action<string>? warn = null, bool coldWeights = false)
{
    /// <summary>What the caches hold when <paramref name="op"/>'s kernel is tuned and timed: its constant operand cold with
    /// cold weights, else hot.</summary>
    TimingContext Context(ContractionOp op) => coldWeights ? new(op.ConstantOperand) : TimingContext.Hot;

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

    /// <summary>Every node of <paramref name="model"/>, in order. The rows of <paramref name="kept"/> (by node index: an
    /// earlier, interrupted run's) are not run again, their schedules only compiled for <see cref="Chosen"/>; each new row
    /// goes to <paramref name="finished"/> as soon as it is made. <paramref name="stop"/> is looked at before each node: when
    /// it is set, the run ends there with an <see cref="OperationCanceledException"/>.</summary>
    public IReadOnlyList<ModelRow> Run(OnnxModel model, IReadOnlyDictionary<int, ModelRow>? kept = null, Action<int, ModelRow>? finished = null,
        CancellationToken stop = default)
    {
        var shapes = ShapeInference.Infer(model);
        var clock = Stopwatch.StartNew();
        var rows = new List<ModelRow>();
        for (int i = 0; i < model.Nodes.Length; i++)
        {
            var ways = ModelLowering.Alternatives(model, shapes, model.Nodes[i]);
            var ops = ways.OfType<ContractionOp>().ToImmutableArray();
            if (kept?.GetValueOrDefault(i) is { } done)
            {
                Restore(ops, done);
                rows.Add(done);
                continue;
            }
            stop.ThrowIfCancellationRequested();
            string what = ways[0] switch
            {
                NotTuned n => $"not tuned: {n.Reason}",
                _ when choices.ContainsKey(Key(ops)) || tuned.ContainsKey(ops[0].Contraction.Text) => $"reusing the schedule of an earlier node for {ops[0].Contraction.Text}",
                _ when ops.Length > 1 => $"choosing among {ops.Length} lowerings of {ways[0].Node.OpType}: {string.Join(" or ", ops.Select(o => o.Contraction.Text))}",
                _ when Record(ops[0]) is not null => $"recalling the record of {ways[0].Node.OpType} {ops[0].Contraction.Text}",
                _ => $"tuning {ways[0].Node.OpType} {ops[0].Contraction.Text}",
            };
            progress($"[{clock.Elapsed.TotalSeconds,6:F1}s] {i + 1}/{model.Nodes.Length} {model.Nodes[i].Name} {what}");
            rows.Add(ways[0] is NotTuned refused ? ModelRow.NotTuned(refused.Node, refused.Reason) : Node(model, shapes, ops, i));
            finished?.Invoke(i, rows[^1]);
        }
        return rows;
    }

    /// <summary>Puts a kept row's kernel in <see cref="Chosen"/>: its lowering's contraction (<see cref="ModelRow.Spec"/>)
    /// with its schedule, compiled (it was verified when the row was made).</summary>
    void Restore(ImmutableArray<ContractionOp> ways, ModelRow row)
    {
        if (!row.Tuned || row.Schedule is null || ways.FirstOrDefault(w => w.Contraction.Text == row.Spec) is not { } op) return;
        var kernel = Kernel.Compile(Nest.Parse(op.Contraction, row.Schedule));
        kernel.Threads = RunThreads.Default;
        chosen[op.Node] = new ChosenKernel(op, kernel);
    }

    /// <summary>The lowering chosen for each set of alternatives (<see cref="Key"/>): its index and how it was chosen.</summary>
    readonly Dictionary<string, (int Index, string? Note)> choices = new(StringComparer.Ordinal);

    static string Key(ImmutableArray<ContractionOp> ways) => string.Join(" | ", ways.Select(w => w.Contraction.Text));

    /// <summary>A way's kernel before the choice: its verified report when it was tuned (in this run or earlier), else its
    /// record's schedule compiled but not yet verified (<see cref="Settle"/> verifies the one chosen).</summary>
    sealed record Candidate(ContractionOp Op, Nest Nest, Kernel Kernel, KernelReport? Report);

    ModelRow Node(OnnxModel model, ModelShapes shapes, ImmutableArray<ContractionOp> ways, int index)
    {
        var feeds = ModelRunner.RandomFeeds(model, shapes, ways[0].Node, new Random(index + 1));
        ContractionOp op;
        string? choice = null;
        try
        {
            int best;
            var pool = ModelRunner.BlockedPoolAfter(model, shapes, ways[0].Node);
            (best, choice) = Choose(ways, feeds, pool, pool is null ? ModelRunner.EpilogueAfter(model, shapes, ways[0].Node) : default);
            op = ways[best];
        }
        catch (LoopTuneException e)
        {
            return ModelRow.NotTuned(ways[0].Node, $"the tuner refused it: {e.Message}", ways[0].Contraction.Text);
        }
        var c = op.Contraction;
        var (report, first) = tuned[c.Text];
        string from = first == op.Node.Name ? (recalled.Contains(c.Text) ? FromRecord : FromTuning) : first;
        string key = c.AsConv() is null ? "onednn" : "onednn_conv";
        var onednn = report.Peers.FirstOrDefault(p => p.Key == key);
        double? vsOneDnn = onednn is { Gflops: > 0 } ? report.RatioTo(key) : null;
        string? oneDnnNote = onednn is null ? "no oneDNN peer" : onednn.Gflops is null ? onednn.Problem : null;

        chosen[op.Node] = new ChosenKernel(op, report.Kernel);
        var ours = new float[c.Output.Length];
        op.Run(report.Kernel, feeds, ours);
        OnnxRuntimeNode? ort = null;
        string? ortNote = null;
        double? maxError = null, tolerance = null;
        bool verified = report.Verification.Passed;
        try
        {
            ort = new OnnxRuntimeNode(SingleNodeModel.Of(model, shapes, op.Node), feeds, RunThreads.Default);
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
                report.Nest.Serialize(), maxError, tolerance, from, (op as ConvOp)?.LoweringName, choice);
        }
        finally { ort?.Dispose(); }
    }

    /// <summary>Which of the node's lowerings serves it: the one chosen for an earlier node with the same ones; or the one
    /// this machine's store recorded as chosen (a choice record, <see cref="MeasurementStore.TryGetChoice"/>), its kernel
    /// alone recalled; or the fastest whole node of all of them, each kernel recalled or tuned (<see cref="Fastest"/>), the
    /// choice then recorded. The chosen one's kernel is verified (<see cref="Settle"/>). Returns its index and how it was
    /// chosen.</summary>
    (int Index, string? Note) Choose(ImmutableArray<ContractionOp> ways, Dictionary<string, float[]> feeds, (Pool2d Pool, bool Relu)? pool,
        (bool Residual, bool Relu) epilogue)
    {
        // nodes of one contraction share a choice when their epilogues match (ResNet's first and second convolutions of a block differ)
        string key = Key(ways) + (epilogue.Residual ? " | + residual" : "") + (epilogue.Relu ? " | relu" : "");
        if (choices.TryGetValue(key, out var known)) return known;
        (int, string?) picked;
        int recorded = -1;
        TuningRecord? record = null;
        // a choice is kept under the timing context of the node's first lowering (its kernels were tuned in their own)
        if (ways.Length > 1 && !retune && store is not null && store.TryGetChoice(key, Context(ways[0]), out record))
            recorded = ways.IndexOf(ways.FirstOrDefault(w => w.Contraction.Text == record.Schedule)!);
        if (ways.Length == 1)
        {
            Settle(Prepare(ways[0]));
            picked = (0, null);
        }
        else if (recorded >= 0)
        {
            Settle(Prepare(ways[recorded]));
            picked = (recorded, $"{record!.Method} (recorded {record.TunedAt:yyyy-MM-dd HH:mm} UTC)");
        }
        else
        {
            var candidates = ways.Select(w => Prepare(w)).ToList();
            int best = Fastest(candidates, feeds, pool, epilogue, out var note, out double seconds);
            Settle(candidates[best]);
            store?.PutChoice(key, Context(ways[0]), new TuningRecord(ways[best].Contraction.Text, $"fastest of {ways.Length}: {note}", budget, ways[best].Flops / seconds / 1e9, DateTime.UtcNow));
            picked = (best, $"fastest of {ways.Length}: {note}");
        }
        choices[key] = picked;
        return picked;
    }

    /// <summary>This machine's tuning record of the op's contraction in its timing context, unless --retune; null when none.</summary>
    TuningRecord? Record(ContractionOp op) =>
        !retune && store is not null && store.TryGetRecord(op.Contraction, RunThreads.Default, Context(op), out var record) ? record : null;

    /// <summary>The way's kernel: known from an earlier node, or its tuning record's (compiled, verified later if chosen), or
    /// a search's (verified, timed, and recorded).</summary>
    Candidate Prepare(ContractionOp op, Nest? rival = null)
    {
        var c = op.Contraction;
        if (tuned.TryGetValue(c.Text, out var known)) return new(op, known.Report.Nest, known.Report.Kernel, known.Report);
        if (Record(op) is { } record)
        {
            try
            {
                var nest = Nest.Parse(c, record.Schedule);
                if (op.ParallelOver is { } over && Transforms.Parallelize(nest, RunThreads.Default, over).ScheduleKey != nest.ScheduleKey)
                    throw new ArgumentException($"its parallel loop is not over {over}, as the kernels of a pass in blocks are now split");
                var kernel = Kernel.Compile(nest);
                kernel.Threads = RunThreads.Default; // records are kept per thread count (the store's runtime key)
                return new(op, nest, kernel, null);
            }
            catch (Exception e) when (e is LoopTuneException or ArgumentException)
            {
                warn?.Invoke($"warning: the tuning record of {c.Text} ({record.Schedule}) is unusable ({e.Message}); tuning it again");
            }
        }
        var report = Search(op, rival);
        return new(op, report.Nest, report.Kernel, report);
    }

    /// <summary>Tunes the way's contraction with the default search; its verified schedule becomes its record.</summary>
    KernelReport Search(ContractionOp op, Nest? rival = null)
    {
        var c = op.Contraction;
        var pol = Policy(c);
        var search = TuneCommand.Method(pol, budget, 1, out var limit);
        // tuning cold, the hot record (a schedule the search may not reach within its budget) is timed cold beside its best
        var hot = HotRecord(op);
        // with cold weights the kernels are ranked as a forward pass compiles them: prefetching the next block of weights
        // (ContractionOp.PrefetchBlockBytes); on ResNet-18's 512-channel layers a tile that prefetches ran 1.23-1.28 ms in
        // the pass where the tiles ranked above it without prefetching ran 1.42-1.53
        var jit = coldWeights && ContractionOp.PrefetchBlockBytes > 0 ? JitOptions.Default with { PrefetchBlockBytes = ContractionOp.PrefetchBlockBytes } : null;
        var (result, final, _, _) = PolicyTuning.Tune(search, pol, c, limit, timing, OneDnn, null, Context(op), [.. new[] { hot, rival }.OfType<Nest>()], jit, op.ParallelOver);
        bool Is(Nest? n) => n is not null && PolicyTuning.Answers(n, final.Nest, RunThreads.Default, op.ParallelOver);
        string method = Is(hot) ? $"{result.Method}, beaten by the hot record"
            : Is(rival) ? $"{result.Method}, beaten by the node's schedule in blocks" : PolicyTuning.MethodOf(result, final.Nest, RunThreads.Default, op.ParallelOver);
        if (store is not null && final.Verification.Passed)
            store.PutRecord(c, RunThreads.Default, Context(op), new TuningRecord(final.Nest.Serialize(), method, budget, final.Gflops, DateTime.UtcNow));
        tuned[c.Text] = (final, op.Node.Name);
        Searched++;
        return final;
    }

    /// <summary>With cold weights, the schedule of <paramref name="op"/>'s hot tuning record when there is one that parses
    /// (<see cref="PolicyTuning.Tune"/>'s rival), with --retune too (it replaces the cold records, never the hot ones); else
    /// null.</summary>
    Nest? HotRecord(ContractionOp op)
    {
        if (!coldWeights || Context(op).IsHot || store is null || !store.TryGetRecord(op.Contraction, RunThreads.Default, TimingContext.Hot, out var record)) return null;
        try { return Nest.Parse(op.Contraction, record.Schedule); }
        catch (Exception e) when (e is LoopTuneException or ArgumentException) { return null; }
    }

    /// <summary>The blocks of channels a forward pass with its activations in blocks is tried in (<see cref="Linked"/>), the
    /// likeliest first: the two the most convolutions lowered in blocks chose in their own tuning (<see cref="Chosen"/>; of
    /// two as common, the wider), else the widest of <see cref="ConvOp.Blocks"/> dividing the most convolutions' channels;
    /// none when no convolution has one. The block decides much: on the Zen 5, ResNet-18's pass at two threads ran 1.04x
    /// ONNX Runtime in blocks of 32 (the nodes' most common choice), 0.85-0.90x in 64 and 0.92-0.94x in 16, so the passes
    /// are timed, not the rule trusted.</summary>
    public IReadOnlyList<int> LinkedBlocks(OnnxModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var picked = chosen.Values.Select(k => k.Op).OfType<ConvOp>().Where(o => o.Lowering == ConvLowering.Blocked)
            .GroupBy(o => o.ChannelBlock).OrderByDescending(g => g.Count()).ThenByDescending(g => g.Key).Select(g => g.Key).Take(2).ToList();
        if (picked.Count > 0) return picked;
        var convs = chosen.Values.Select(k => k.Op).OfType<ConvOp>().ToList();
        return [.. convs.SelectMany(o => ConvOp.Blocks(o.OutputShape[1])).GroupBy(b => b).OrderByDescending(g => g.Count()).ThenByDescending(g => g.Key).Select(g => (int)g.Key).Take(1)];
    }

    /// <summary>Each convolution of <paramref name="model"/> lowered <see cref="ConvLowering.BlockedInput"/> in blocks of
    /// <paramref name="block"/> (those it divides), with its kernel: recalled from this machine's tuning record (verified)
    /// or tuned as any contraction is (each distinct one once, its record kept); for a forward pass whose activations stay in
    /// blocks (<see cref="ModelRunner.Build(OnnxModel, ModelShapes, IReadOnlyDictionary{OnnxNode, ChosenKernel}, IReadOnlyDictionary{OnnxNode, ChosenKernel}?)"/>).</summary>
    public IReadOnlyDictionary<OnnxNode, ChosenKernel> Linked(OnnxModel model, int block, Action<string> progress)
    {
        ArgumentNullException.ThrowIfNull(model);
        var shapes = ShapeInference.Infer(model);
        var linked = new Dictionary<OnnxNode, ChosenKernel>();
        if (block < 2) return linked;
        foreach (var node in model.Nodes.Where(n => n.OpType == "Conv"))
        {
            if (ConvOp.LowerBlockedInput(model, shapes, node, block) is not ConvOp op) continue;
            var c = op.Contraction;
            if (!tuned.ContainsKey(c.Text)) progress($"  {node.Name}: {(Record(op) is not null ? "recalling" : "tuning")} its input in blocks of {block}, {c.Text}");
            try
            {
                // the node's own blocked schedule, its channels in blocks, is a rival of the search
                var rival = chosen.TryGetValue(node, out var own) && own.Op is ConvOp { Lowering: ConvLowering.Blocked } ? op.InBlocks(own.Kernel.Nest) : null;
                var candidate = Prepare(op, rival);
                Settle(candidate);
            }
            catch (LoopTuneException e)
            {
                progress($"  {node.Name}: not in blocks ({e.Message})");
                continue;
            }
            linked[node] = new ChosenKernel(op, tuned[c.Text].Report.Kernel);
        }
        return linked;
    }

    /// <summary>How a recalled kernel is timed alone next to oneDNN (<see cref="Settle"/>): <see cref="MeasureOptions.Quick"/>,
    /// 0.04 s of samples each rather than 0.2. Its node is then timed next to ONNX Runtime's at full length, the figure the
    /// report compares; at full length both timings took 9.5 of a recalled ResNet-18 run's 16-17 s on the Zen 5 (the issue
    /// asks a second run for under 15).</summary>
    MeasureOptions RecallTiming => MeasureOptions.Quick;

    /// <summary>The chosen way's verified report in <see cref="tuned"/>: a recalled schedule verified and timed as after a
    /// search (<see cref="KernelReport.Run(Nest, MeasureOptions, bool, double?)"/>, quickly: <see cref="RecallTiming"/>), or
    /// tuned again when it fails (warned).</summary>
    void Settle(Candidate chosen)
    {
        var c = chosen.Op.Contraction;
        if (chosen.Report is not null) return;
        KernelReport report;
        using (var buffers = new KernelTiming.Workspace(c, 1, Context(chosen.Op))) // timed as it was tuned: hot, or its weights cold
            report = KernelReport.Run(chosen.Nest, RecallTiming, OneDnn, null, buffers);
        if (report.Verification.Passed)
        {
            tuned[c.Text] = (report, chosen.Op.Node.Name);
            recalled.Add(c.Text);
            Recalled++;
            return;
        }
        warn?.Invoke($"warning: the tuning record of {c.Text} ({chosen.Nest.Serialize()}) fails verification ({report.Verification.Problem}); tuning it again");
        Search(chosen.Op);
    }

    /// <summary>Contractions whose schedule came from a tuning record.</summary>
    readonly HashSet<string> recalled = new(StringComparer.Ordinal);

    /// <summary>The index of the fastest of several lowerings of one node, each whole node (<see cref="ContractionOp.Run"/>)
    /// timed side by side with the others on the same inputs, quickly, twice, each taking the faster of its two medians;
    /// <paramref name="note"/> tells those times. One quick timing after one warm-up run sometimes read a lowering at two
    /// to three times its speed (ResNet-18's first 56x56 layer: blocked 3.59 ms, direct 2.92, where they run 1.24-1.38 ms),
    /// which chose the im2col lowering, 0.2-0.3 ms slower in each of four layers of the pass. With the MaxPool that alone
    /// reads the node's output (<paramref name="pool"/>, <see cref="ModelRunner.BlockedPoolAfter"/>), each is timed as a forward pass runs it,
    /// with the pool: a blocked lowering's output pooled as its kernel left it (<see cref="ConvOp.RunBlocked"/>,
    /// <see cref="Pool2d.RunBlocked"/>), the others' written back and pooled (ResNet-18's stem on the Zen 5: blocked
    /// 1.70-1.73 ms as a node, the direct one 1.55-1.56, where the blocked kernel alone ran 1.19). Otherwise each runs with
    /// the epilogue the pass gives the node (<see cref="ModelRunner.EpilogueAfter"/>: a residual added, a Relu), which a
    /// blocked lowering does in its write-back and the others in a pass over the output of their own.</summary>
    int Fastest(List<Candidate> candidates, Dictionary<string, float[]> feeds, (Pool2d Pool, bool Relu)? pool, (bool Residual, bool Relu) epilogue,
        out string note, out double seconds)
    {
        var outputs = candidates.Select(k => new float[k.Op.Contraction.Output.Length]).ToList();
        float[]? residual = epilogue.Residual ? new float[outputs[0].Length] : null;
        if (residual is not null) Reference.FillUniform(residual, new Random(3));
        var after = new Epilogue(residual, epilogue.Relu);
        var runs = candidates.Select((k, i) => pool is { } p ? WithPool(k, feeds, outputs[i], p) : () => k.Op.Run(k.Kernel, feeds, outputs[i], after)).ToArray();
        for (int warm = 0; warm < WarmRuns; warm++)
            foreach (var run in runs) run();
        var times = Enumerable.Repeat(double.PositiveInfinity, runs.Length).ToArray();
        using (ThreadPinning.Pin())
            for (int round = 0; round < 2; round++)
            {
                var t = Timing.MeasureTogether(runs, [.. candidates.Select(k => k.Op.Flops)], MeasureOptions.Quick);
                for (int i = 0; i < runs.Length; i++) times[i] = Math.Min(times[i], t.Measurements[i].MedianSeconds);
            }
        int best = Enumerable.Range(0, candidates.Count).MinBy(i => times[i]);
        seconds = times[best];
        note = string.Join(", ", candidates.Select((k, i) => FormattableString.Invariant(
            $"{(k.Op as ConvOp)?.LoweringName ?? k.Op.Contraction.Text} {times[i] * 1e3:F3} ms"))) + (pool is not null ? ", each with the MaxPool after it"
            : after.None ? "" : $", each with its epilogue ({(epilogue.Residual ? "the residual added" : "")}{(epilogue.Residual && epilogue.Relu ? ", " : "")}{(epilogue.Relu ? "the Relu" : "")})");
        return best;
    }

    /// <summary>A run of the candidate's node then the pool that reads it, as <see cref="ModelRunner"/> runs them: a blocked
    /// convolution's output pooled in its kernel's layout, any other written back (with the Relu, if any, done where it is
    /// written) and pooled.</summary>
    static Action WithPool(Candidate k, Dictionary<string, float[]> feeds, float[] output, (Pool2d Pool, bool Relu) after)
    {
        var (pool, relu) = after;
        var (rows, columns) = pool.Output;
        int planes = checked((int)(output.Length / (k.Op.OutputShape[^1] * k.Op.OutputShape[^2])));
        var y = new float[planes * rows * columns];
        if (k.Op is ConvOp { Lowering: ConvLowering.Blocked } blocked)
            return () =>
            {
                var (x, start, e) = blocked.RunBlocked(k.Kernel, feeds, output);
                pool.RunBlocked(x, start, planes / e, e, y, relu, RunThreads.Default);
            };
        return () =>
        {
            k.Op.Run(k.Kernel, feeds, output, new Epilogue(null, relu));
            pool.Run(output, y, RunThreads.Default);
        };
    }

    /// <summary>Runs of each lowering before <see cref="Fastest"/> times them.</summary>
    const int WarmRuns = 3;

    /// <summary>Ours and ONNX Runtime's runs of the same work (<paramref name="flops"/>) timed side by side on the pinned
    /// core (<see cref="Timing.MeasureTogether"/>: one run of each per round, medians), and how many times faster ours
    /// ran (the median of the ratios within rounds).</summary>
    internal static (Measurement Mine, Measurement Theirs, double Ratio) SideBySide(Action ours, Action theirs, double flops, MeasureOptions timing)
    {
        using var pin = ThreadPinning.Pin();
        Action[] runs = [ours, theirs];
        // at N threads, in turns: ours and ONNX Runtime's pool each on the team's cores (KernelReport.TakeTurns)
        using var turns = KernelReport.TakeTurns(RunThreads.Default, pin, runs);
        var t = Timing.MeasureTogether(runs, [flops, flops], timing, turns is null ? null : turns.Before);
        return (t.Measurements[0], t.Measurements[1], t.Ratio(0, 1));
    }

    /// <summary>oneDNN alone next to a node's kernel: the report's one library column (OpenBLAS and BLIS, im2col or not,
    /// took some 8 s of a ResNet-18 run and were never shown).</summary>
    static IReadOnlyList<PreparedPeer> OneDnn(Computation c, int threads) => KernelReport.PreparePeers(c, key => key.StartsWith("onednn", StringComparison.Ordinal), threads);

    Policy Policy(Computation c)
    {
        string path = Learning.Policy.Choose("default", c);
        if (!policies.TryGetValue(path, out var pol)) policies[path] = pol = Learning.Policy.Load(path);
        return pol;
    }
}
