using System.Globalization;
using System.Text;
using LoopTune.Jit;
using LoopTune.Measure;
using LoopTune.Models;

namespace LoopTune.Cli.Commands;

/// <summary><c>end_to_end</c> of <c>looptune model --run --json</c>: the whole forward pass, ours against ONNX Runtime's.</summary>
/// <param name="OursMs">Our forward pass (<see cref="ModelRunner.Run"/>), median ms, timed side by side with ONNX Runtime's.</param>
/// <param name="OnnxruntimeMs">ONNX Runtime's session on the whole model (one thread, sequential, all graph optimizations), median ms.</param>
/// <param name="VsOnnxruntime">How many times faster ours ran (the median of the ratios within rounds).</param>
/// <param name="MaxAbsError">The largest |ours - ONNX Runtime's| over the output.</param>
/// <param name="MaxRelativeError">The same over the largest |ONNX Runtime's| (the norm-wise relative error).</param>
/// <param name="Bound">What <paramref name="MaxAbsError"/> must stay within: <see cref="ModelEndToEnd.RelativeBound"/> x max(1, max |ONNX Runtime's|).</param>
/// <param name="Output">The graph output compared (the first).</param>
/// <param name="Seed">The seed of the input (<see cref="Reference.FillUniform"/>, uniform in [-1, 1]).</param>
/// <param name="FoldedBatchNorms">BatchNormalizations folded into the convolution before them.</param>
/// <param name="FoldsVerified">Whether every folded convolution matched the convolution followed by its BatchNormalization.</param>
/// <param name="Rounds">Rounds of the side-by-side timing.</param>
/// <param name="ByOp">Where our pass spends its time, by operator (<see cref="ModelRunner.Profile"/>), the slowest first.</param>
/// <param name="ByNode">The same by node, in the pass's order, each with ONNX Runtime's time for the same node within its
/// own pass (its profiler's) where its optimized graph has a node doing it.</param>
/// <param name="OnnxruntimeProfiledMs">The sum of ONNX Runtime's nodes in its profile (its pass without the session's own
/// work), median ms per node.</param>
/// <param name="OnnxruntimeOther">ONNX Runtime's profiled nodes that do nothing of ours (its layout reorders), with their times.</param>
/// <param name="Activations">How the pass timed holds its activations between convolutions: <c>NCHW</c> (each convolution
/// reads a padded copy and writes NCHW back), or <c>blocks of B</c> (<see cref="ModelRunner.BlockedValues"/>: read in place,
/// stored by the kernels); of the two passes, the faster one side by side (or as <c>--activations</c> says).</param>
/// <param name="BlocksVsNchw">How many times faster the fastest pass in blocks ran than the NCHW one, side by side (to
/// choose); null when no convolution could keep its activations in blocks.</param>
/// <param name="LinkedConvolutions">The convolutions that read and store blocks in that pass.</param>
/// <param name="BlocksTried">Every pass in blocks tried (<see cref="ModelBench.LinkedBlocks"/>: the two blocks the nodes'
/// own tuning chose most), each against the NCHW pass.</param>
sealed record EndToEndJson(double OursMs, double OnnxruntimeMs, double VsOnnxruntime, double MaxAbsError, double MaxRelativeError, double Bound,
    bool WithinBound, string Output, int Seed, int FoldedBatchNorms, bool FoldsVerified, int Rounds, IReadOnlyList<OpTimeJson> ByOp,
    IReadOnlyList<NodeTimeJson> ByNode, double? OnnxruntimeProfiledMs = null, IReadOnlyList<NodeTimeJson>? OnnxruntimeOther = null,
    string Activations = "NCHW", double? BlocksVsNchw = null, int LinkedConvolutions = 0, IReadOnlyList<BlockTrialJson>? BlocksTried = null);

/// <summary>One pass in blocks that <c>model --run</c> tried: its block of channels, how many times faster it ran than the
/// NCHW pass side by side, and its linked convolutions.</summary>
sealed record BlockTrialJson(int Block, double VsNchw, int LinkedConvolutions);

/// <summary>The time of one operator's nodes in our forward pass: the sum of each node's median, in ms, and its share of
/// the sum over all nodes.</summary>
sealed record OpTimeJson(string Op, double Ms, double Share);

/// <summary>One node's median time within our forward pass, in ms; for a contraction its kernel's time and the work
/// around it (the padded copy, the write-back, the epilogue), medians of the same passes (so they need not add up to
/// <paramref name="Ms"/> exactly); and ONNX Runtime's time for the same work within its own pass (its profiler's median,
/// summed over its nodes that do it), null when none of its nodes does.</summary>
sealed record NodeTimeJson(string Node, string Op, double Ms, double? KernelMs = null, double? AroundKernelMs = null, double? OnnxruntimeMs = null);

/// <summary><c>looptune model --run</c>: the model's forward pass (<see cref="ModelRunner"/>) with the op and kernel the bench
/// chose for each contraction, on a deterministic input, checked against ONNX Runtime running the whole model on the same
/// input and timed side by side with it (<see cref="ModelBench.SideBySide"/>).</summary>
static class ModelEndToEnd
{
    /// <summary>Our output may differ from ONNX Runtime's by this much times max(1, max |theirs|): ten times a single
    /// node's bound (<see cref="ModelBench.RelativeTolerance"/>), for some twenty layers whose rounding differences add up
    /// (ResNet-18 measured about 1e-6 relative; see the README).</summary>
    public const double RelativeBound = 1e-3;

    /// <summary>Passes each node is timed over in our profile and in ONNX Runtime's (its median per node; ONNX Runtime's
    /// first, checked, run is one more).</summary>
    public const int ProfilePasses = 9;

    /// <summary>Runs of each pass before the two are timed side by side to choose one.</summary>
    const int ChoiceWarmRuns = 40;

    /// <summary>The seed of the input.</summary>
    public const int Seed = 19;

    /// <summary>Why <c>--run</c> cannot run <paramref name="model"/> (an <see cref="OnnxError"/> naming the first node it
    /// cannot run), checked before anything is tuned.</summary>
    public static void Check(OnnxModel model)
    {
        var problems = ModelRunner.Unsupported(model, ShapeInference.Infer(model));
        if (problems.Count > 0)
            throw new OnnxError(model.Source, $"--run cannot run node {problems[0]}{(problems.Count > 1 ? $" (and {problems.Count - 1} more node(s))" : "")}");
    }

    /// <summary>Runs, checks and times the forward pass of <paramref name="model"/> with <paramref name="kernels"/>; with
    /// <paramref name="linked"/> (<see cref="ModelBench.Linked"/>, one set of convolutions per block of channels), a pass
    /// per set whose activations stay in blocks between those convolutions, checked too: each timed side by side with the
    /// NCHW pass, the fastest of all (or the fastest in blocks, with <paramref name="forceBlocks"/>) then profiled and timed
    /// against ONNX Runtime's.</summary>
    public static EndToEndJson Run(OnnxModel model, IReadOnlyDictionary<OnnxNode, ChosenKernel> kernels, Measure.MeasureOptions timing, Action<string> progress,
        IReadOnlyList<IReadOnlyDictionary<OnnxNode, ChosenKernel>>? linked = null, bool forceBlocks = false)
    {
        var shapes = ShapeInference.Infer(model);
        var runner = ModelRunner.Build(model, shapes, kernels);
        var nchw = runner;
        var inBlocks = (linked ?? []).Where(l => l.Count > 0).Select(l => (Block: ((ConvOp)l.Values.First().Op).ChannelBlock, Pass: ModelRunner.Build(model, shapes, kernels, l)))
            .Where(p => p.Pass.LinkedConvolutions > 0).ToList();
        var inputs = runner.Inputs.ToList();
        foreach (var pass in inBlocks.Select(b => b.Pass).Prepend(runner))
        {
            var rng = new Random(Seed);
            foreach (var input in inputs) Reference.FillUniform(pass.Value(input), rng);
        }
        string output = runner.Outputs.First();
        long[] Shape(string name) => shapes.Of(name)!.Value.ToArray();
        var bytes = File.ReadAllBytes(model.Source);
        (string, long[])[] shaped = [.. inputs.Select(i => (i, Shape(i)))];
        // one session: profiled first (its profile, ended, leaves the session unprofiled, ONNX Runtime's Profiler), then
        // timed; a second session for the profile took 0.7 s of a recalled ResNet-18 run
        using var ort = new OnnxRuntimeNode(bytes, shaped, output, Shape(output), inputs.ToDictionary(i => i, runner.Value), Jit.RunThreads.Default, profile: true);
        runner.Run();
        ort.Run();
        var error = OutputError.Of(runner.Value(output), ort.Output);
        var tried = new List<BlockTrialJson>();
        (int Block, ModelRunner Pass, double Ratio)? best = null;
        foreach (var (block, pass) in inBlocks)
        {
            pass.Run();
            var blockedError = OutputError.Of(pass.Value(output), ort.Output);
            progress(FormattableString.Invariant($"end to end: the pass with {pass.LinkedConvolutions} convolution(s) reading and storing their activations in blocks of {block} is within {blockedError.MaxAbs:G3} of ONNX Runtime's; timing it beside the NCHW pass"));
            if (blockedError.MaxAbs > error.MaxAbs || !blockedError.Within(RelativeBound)) error = blockedError; // every pass must be right
            // both warmed up first (the code around the kernels, run a few times so far, is compiled again optimized after
            // 30 calls: before that a fresh run's choice read the pass in blocks 0.86x where it ran 1.12x), then timed together
            for (int i = 0; i < ChoiceWarmRuns; i++)
            {
                pass.Run();
                nchw.Run();
            }
            var (_, _, r) = ModelBench.SideBySide(pass.Run, nchw.Run, Math.Max(nchw.Flops, 1), timing);
            tried.Add(new BlockTrialJson(block, r, pass.LinkedConvolutions));
            if (best is null || r > best.Value.Ratio) best = (block, pass, r);
        }
        if (best is { } b && (b.Ratio > 1 || forceBlocks)) runner = b.Pass;
        progress($"end to end: output {output} within {error.MaxAbs:G3} of ONNX Runtime's{(best is { } k ? FormattableString.Invariant($"; the fastest pass in blocks (of {k.Block}) ran {k.Ratio:F2}x the NCHW one: {(ReferenceEquals(runner, nchw) ? "NCHW" : "blocks")} kept") : "")}; profiling both, then timing both");
        IReadOnlyList<NodeTime> profile;
        IReadOnlyList<ProfiledNode> theirProfile;
        using (ThreadPinning.Pin())
        {
            profile = runner.Profile(ProfilePasses);
            for (int i = 0; i < ProfilePasses + 1; i++) ort.Run();
            theirProfile = ort.EndProfiling();
        }
        var (mine, theirs, ratio) = ModelBench.SideBySide(runner.Run, ort.Run, Math.Max(runner.Flops, 1), timing); // the same work: the ratio is of times
        var (matched, other) = Match(profile, theirProfile);
        double total = profile.Sum(p => p.Seconds);
        var byOp = profile.GroupBy(p => p.Op, (op, nodes) => new OpTimeJson(op, nodes.Sum(n => n.Seconds) * 1e3, total > 0 ? nodes.Sum(n => n.Seconds) / total : 0));
        return new EndToEndJson(mine.MedianSeconds * 1e3, theirs.MedianSeconds * 1e3, ratio, error.MaxAbs, error.Relative, error.Bound(RelativeBound),
            error.Within(RelativeBound), output, Seed, runner.Folds.Count, runner.Folds.All(f => f.Passed), mine.Samples,
            [.. byOp.OrderByDescending(o => o.Ms)],
            [.. profile.Select((p, i) => new NodeTimeJson(p.Node, p.Op, p.Seconds * 1e3, p.KernelSeconds * 1e3, p.AroundSeconds * 1e3, matched[i] * 1e3))],
            theirProfile.Sum(n => n.Seconds) * 1e3, [.. other.Select(n => new NodeTimeJson(n.Name, n.Op, n.Seconds * 1e3))],
            ReferenceEquals(runner, nchw) ? "NCHW" : $"blocks of {best!.Value.Block}", best?.Ratio, best?.Pass.LinkedConvolutions ?? 0, tried);
    }

    /// <summary>ONNX Runtime's profiled nodes laid against the steps of our pass: a node of its optimized graph is one of
    /// ours when it is named after a node or a value that step covers (<see cref="NodeTime.Covers"/>: its fused nodes are
    /// named after their output, with <c>_nchwc</c> appended when it made them in its blocked layout). Returns, per step,
    /// the sum of its nodes' times (null for none), and the nodes that match no step.</summary>
    internal static (double?[] PerStep, IReadOnlyList<ProfiledNode> Other) Match(IReadOnlyList<NodeTime> ours, IReadOnlyList<ProfiledNode> theirs)
    {
        var step = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < ours.Count; i++)
            foreach (var name in ours[i].Covers) step.TryAdd(name, i);
        var sums = new double?[ours.Count];
        var other = new List<ProfiledNode>();
        foreach (var n in theirs)
        {
            string name = n.Name.EndsWith(BlockedSuffix, StringComparison.Ordinal) && !step.ContainsKey(n.Name) ? n.Name[..^BlockedSuffix.Length] : n.Name;
            if (step.TryGetValue(name, out int i)) sums[i] = (sums[i] ?? 0) + n.Seconds;
            else other.Add(n);
        }
        return (sums, other);
    }

    /// <summary>What ONNX Runtime appends to the name of a node it rewrote into its blocked (NCHWc) layout.</summary>
    const string BlockedSuffix = "_nchwc";

    /// <summary>Whether the forward pass is right: within the bound, every fold verified.</summary>
    public static bool Passed(EndToEndJson e) => e.WithinBound && e.FoldsVerified;

    /// <summary>The line <c>looptune model</c> prints for it.</summary>
    public static string Line(EndToEndJson e) => FormattableString.Invariant(
        $"end to end: ours {e.OursMs:F2} ms, ONNX Runtime {e.OnnxruntimeMs:F2} ms ({e.VsOnnxruntime:F2}x), activations in {e.Activations}{(e.BlocksTried is { Count: > 0 } t ? $" (in blocks of {string.Join(", of ", t.Select(b => $"{b.Block} {b.VsNchw:F2}x"))} the NCHW pass)" : "")}; max |ours - ONNX Runtime's| {e.MaxAbsError:G3} (relative {e.MaxRelativeError:G3}), bound {e.Bound:G3}: {(Passed(e) ? "within" : "NOT within")}");

    /// <summary>The "End to end" section of summary.md.</summary>
    public static string Markdown(EndToEndJson e)
    {
        var b = new StringBuilder();
        b.AppendLine("## End to end");
        b.AppendLine();
        b.AppendLine(FormattableString.Invariant($"The whole forward pass on one input (uniform in [-1, 1], seed {e.Seed}): each Conv, Gemm and MatMul with the op and tuned kernel of the table, {e.FoldedBatchNorms} BatchNormalization(s) folded into the convolution before them (each folded convolution checked against the unfolded pair: {(e.FoldsVerified ? "all matched" : "**NOT all matched**")}), Relu, Add, the pools and the rest in plain vectorised C#, every value in an array made once; timed side by side with ONNX Runtime running the whole model (one thread, sequential, all graph optimizations), one run of each per round, medians."));
        b.AppendLine();
        b.AppendLine("| | ours | ONNX Runtime | vs ONNX Runtime | max abs error | max relative error | bound | within |");
        b.AppendLine("|---|---:|---:|---:|---:|---:|---:|---|");
        b.AppendLine(CultureInfo.InvariantCulture, $"| ms per forward pass | {e.OursMs:F3} | {e.OnnxruntimeMs:F3} | {e.VsOnnxruntime:F2}x | {e.MaxAbsError:G3} | {e.MaxRelativeError:G3} | {e.Bound:G3} | {(e.WithinBound ? "yes" : "**NO**")} |");
        b.AppendLine();
        b.AppendLine(e.BlocksVsNchw is not null
            ? FormattableString.Invariant($"Activations between convolutions: in {e.Activations}. Each pass was checked against ONNX Runtime's output and timed side by side with the one in NCHW (padded copies, write-backs); in blocks, its convolutions read their input in place and store their output, with the bias, the fused Add and the Relu, into the next one's padded input: {string.Join("; ", (e.BlocksTried ?? []).Select(t => FormattableString.Invariant($"in blocks of {t.Block} ({t.LinkedConvolutions} convolutions) {t.VsNchw:F2}x")))}. The fastest is the one timed here.")
            : "Activations between convolutions: in NCHW (no convolution could keep them in blocks).");
        b.AppendLine();
        b.AppendLine("Where our pass spends its time (each node timed alone over a few more passes, medians summed by operator):");
        b.AppendLine();
        b.AppendLine("| operator | ms | share |");
        b.AppendLine("|---|---:|---:|");
        foreach (var o in e.ByOp) b.AppendLine(CultureInfo.InvariantCulture, $"| {o.Op} | {o.Ms:F3} | {o.Share:P1} |");
        b.AppendLine();
        b.AppendLine("Node by node, against ONNX Runtime's own profile of its pass (its profiler's median per node of its optimized graph; a node of ours with its folded BatchNormalization and fused Add and Relu against its node doing the same). \"kernel\" and \"around\" split a contraction's time into its kernel and the work around it (the padded copy, the write-back from the kernel's layout, the epilogue):");
        b.AppendLine();
        b.AppendLine("| node | op | ours, ms | kernel | around | ONNX Runtime, ms | ours - ONNX Runtime |");
        b.AppendLine("|---|---|---:|---:|---:|---:|---:|");
        static string Ms(double? v) => v is { } x ? x.ToString("F3", CultureInfo.InvariantCulture) : "";
        foreach (var n in e.ByNode)
            b.AppendLine(CultureInfo.InvariantCulture, $"| {n.Node} | {n.Op} | {n.Ms:F3} | {Ms(n.KernelMs)} | {Ms(n.AroundKernelMs)} | {Ms(n.OnnxruntimeMs)} | {(n.OnnxruntimeMs is { } t ? (n.Ms - t).ToString("+0.000;-0.000", CultureInfo.InvariantCulture) : "")} |");
        foreach (var n in e.OnnxruntimeOther ?? [])
            b.AppendLine(CultureInfo.InvariantCulture, $"| ({n.Node}: ONNX Runtime's only) | {n.Op} | | | | {n.Ms:F3} | |");
        b.AppendLine(CultureInfo.InvariantCulture, $"| **sum** | | {e.ByNode.Sum(n => n.Ms):F3} | {e.ByNode.Sum(n => n.KernelMs ?? 0):F3} | {e.ByNode.Sum(n => n.AroundKernelMs ?? 0):F3} | {Ms(e.OnnxruntimeProfiledMs)} | |");
        b.AppendLine();
        b.AppendLine(CultureInfo.InvariantCulture, $"Output `{e.Output}`; the bound is {RelativeBound:G} x max(1, max |ONNX Runtime's|); the relative error is max |ours - theirs| / max |theirs|; {e.Rounds} rounds.");
        return b.ToString();
    }
}
