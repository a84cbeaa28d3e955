using System.CommandLine;
using System.Text.Json.Nodes;
using LoopTune.Datasets;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Models;
using LoopTune.Search;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune tune --spec "&lt;spec&gt;" | --bench FILE [--policy PATH|default] [--steps N] [--top-k K] [--budget 1s]
/// [--vector-bits N] [--json] [--quick] [--no-peers]</c>: the policy searches for a schedule of the computation within the
/// budget (<see cref="PolicyGuidedSearch"/>, after its greedy rollout; with --top-k K, rollouts branching to its next K-1
/// choices instead; with --budget 0, the greedy rollout alone), timing each new kernel; the best schedule is then verified
/// and re-timed next to the peak and the peers.</summary>
static class TuneCommand
{
    public static Command Create(Io io)
    {
        var spec = new Option<string?>("--spec") { Description = "The computation: \"mm M N K\", \"conv C H W F R S\" (\"conv C H W F R S E\": output channels in blocks of E, innermost) or a contraction." };
        var bench = new Option<string?>("--bench") { Description = "A benchmark file (one written by 'dataset gen')." };
        var policy = new Option<string>("--policy") { Description = "The policy: default (the shipped one for the computation: conv for a convolution, default otherwise), a shipped policy's name, a policy .safetensors, a checkpoint folder or a training run folder.", DefaultValueFactory = _ => "default" };
        var steps = new Option<int?>("--steps") { Description = "Actions in the rollout (default: the episode length the policy was trained with)." };
        var topK = new Option<int>("--top-k") { Description = "With K above 1: after the greedy rollout, branch once to each of the policy's next K-1 choices while the budget lasts (policy_topK), instead of the policy-guided best-first search.", DefaultValueFactory = _ => 1 };
        var budget = new Option<string>("--budget") { Description = "Time allowed to the search and its measurements (0: the policy's greedy rollout alone).", DefaultValueFactory = _ => "1s" };
        var bits = Options.VectorBits();
        var quick = new Option<bool>("--quick") { Description = "Shorter final timing (less precise)." };
        var noPeers = new Option<bool>("--no-peers") { Description = "Do not time OpenBLAS, BLIS and oneDNN." };
        var threads = Options.Threads("Threads every schedule is timed on, with an outer loop made parallel (the outermost that divides evenly among them), and each peer library is given");
        var json = Options.Json();
        var command = new Command("tune", "Let a trained policy schedule a computation, then verify and time the result next to OpenBLAS and the peak.")
        {
            spec, bench, policy, steps, topK, budget, quick, noPeers, bits, threads, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            Options.ApplyVectorBits(p, bits);
            Options.ApplyThreads(p, threads);
            var computation = (p.GetValue(spec), p.GetValue(bench)) switch
            {
                ({ } s, null) => Computation.Parse(s),
                (null, { } b) => Benchmark.ReadFile(b).Computation,
                (null, null) => throw new LoopTuneException("give the computation with --spec \"mm 128 128 128\" or --bench FILE"),
                _ => throw new LoopTuneException("give either --spec or --bench, not both"),
            };
            if (p.GetValue(topK) < 1) throw new LoopTuneException($"--top-k {p.GetValue(topK)}: at least 1");
            if (p.GetValue(steps) is < 1) throw new LoopTuneException($"--steps {p.GetValue(steps)}: at least 1");
            var pol = Policy.Load(Policy.Choose(p.GetValue(policy)!, computation));
            if (p.GetValue(steps) is int n) pol = pol.WithEpisodeLength(n);
            var search = Method(pol, p.GetValue(budget)!, p.GetValue(topK), out var limit);
            var (result, e, policySeconds, measureSeconds) = Tune(search, pol, computation, limit, p.GetValue(quick) ? MeasureOptions.Quick : MeasureOptions.Default, !p.GetValue(noPeers));
            if (p.GetValue(json))
            {
                var o = RunCommand.ToJson(e, result.Actions);
                o["method"] = PolicyTuning.MethodOf(result, e.Nest, e.Kernel.Threads);
                // the actions replay to the search's best; the schedule is the answer, another when a rival beat it (method)
                o["search_schedule"] = result.Best.Serialize();
                o["parallel"] = PolicyTuning.ParallelBy(result, e.Nest, e.Kernel.Threads) is { } by
                    ? new JsonObject { ["loop"] = e.Nest.LoopName(e.Nest.ParallelLoop), ["position"] = e.Nest.ParallelLoop, ["by"] = by }
                    : null;
                o["steps"] = new JsonArray([.. result.Ids.Select(i => JsonValue.Create(pol.Space.Describe(i)))]);
                o["action_space"] = result.Space;
                o["policy"] = pol.Source;
                o["policy_seconds"] = policySeconds;
                o["measure_seconds"] = measureSeconds;
                o["measured"] = result.Measured;
                o["start_gflops"] = result.BaseGflops;
                o["start_estimated"] = result.BaseEstimated;
                o["search_estimates"] = result.Estimates;
                o["search_gflops"] = result.BestGflops;
                o["evaluations"] = result.Evaluations;
                o["machine"] = Machine.Current.ToJson();
                io.Stdout.WriteLine(o.ToJsonString(Options.JsonStyle));
            }
            else Print(io.Out, e, result, pol, policySeconds, measureSeconds);
            if (!e.Verification.Passed) io.Stderr.WriteLine($"internal error: the kernel is wrong: {e.Verification.Problem}");
            return e.Verification.Passed ? Program.Ok : Program.Failure;
        }));
        return command;
    }

    /// <inheritdoc cref="PolicyTuning.RolloutOnly"/>
    internal static bool RolloutOnly(string budget) => PolicyTuning.RolloutOnly(budget);

    /// <inheritdoc cref="PolicyTuning.Method"/>
    internal static ISearch Method(Policy pol, string budget, int topK, out SearchBudget limit) => PolicyTuning.Method(pol, budget, topK, out limit);

    /// <summary>The default tuner (<see cref="PolicyTuning.Tune"/>), its final timing next to the peers or none.</summary>
    internal static (SearchResult Result, KernelReport Final, double PolicySeconds, double MeasureSeconds) Tune(ISearch search, Policy pol, Computation computation,
        SearchBudget limit, MeasureOptions timing, bool peers) => Tune(search, pol, computation, limit, timing, peers ? KernelReport.PreparePeers : null);

    /// <inheritdoc cref="PolicyTuning.Tune"/>
    internal static (SearchResult Result, KernelReport Final, double PolicySeconds, double MeasureSeconds) Tune(ISearch search, Policy pol, Computation computation,
        SearchBudget limit, MeasureOptions timing, PeerPreparation? preparePeers) =>
        PolicyTuning.Tune(search, pol, computation, limit, timing, preparePeers);

    internal static void Print(IAnsiConsole o, KernelReport e, SearchResult r, Policy pol, double policySeconds, double measureSeconds)
    {
        var c = e.Nest.Computation;
        o.MarkupLineInterpolated($"[bold]{c}[/]  ({c.Text}, {c.Flops / 1e9:G4} GFLOP), tuned by {PolicyTuning.MethodOf(r, e.Nest, e.Kernel.Threads)} with the policy {pol.Source}");
        o.MarkupLineInterpolated($"[grey]on {Machine.Current.Describe()}[/]");
        o.WriteLine();
        o.Write(new Text(e.Nest.ToTree()));
        o.WriteLine();
        var t = new Table().Border(TableBorder.None).HideHeaders().AddColumn("").AddColumn("");
        // a rival that beat the search's best was not reached by these actions
        t.AddRow(PolicyTuning.Answers(r.Best, e.Nest, e.Kernel.Threads) ? "actions" : "search's actions", Markup.Escape(string.Join(",", r.Actions.Select(a => a.Name))));
        t.AddRow("schedule", Markup.Escape(e.Nest.Serialize()));
        if (e.Kernel.Threads > 1)
            t.AddRow("parallel", PolicyTuning.ParallelBy(r, e.Nest, e.Kernel.Threads) switch
            {
                null => "none: no loop may be parallel, the kernel runs on one thread",
                var by => Markup.Escape($"loop {e.Nest.LoopName(e.Nest.ParallelLoop)} (position {e.Nest.ParallelLoop}), ") + (by == "search"
                    ? "taken by the search (the parallel action)"
                    : $"added by the rule: the outermost loop that keeps the {e.Kernel.Threads} threads busy (the search took no parallel action)"),
            });
        t.AddRow("time", $"{policySeconds * 1e3:F1} ms in the policy and the search, {measureSeconds * 1e3:F1} ms measuring {r.Measured} kernel(s)");
        t.AddRow("verified", e.Verification.Passed ? "[green]yes[/]" : $"[red]NO[/]: {Markup.Escape(e.Verification.Problem ?? "")}");
        t.AddRow("speed", $"[bold]{e.Gflops:F1} GFLOPS[/]{RunCommand.Estimate(e)}, {e.FractionOfPeak:P0} of the {e.PeakGflops:F1} GFLOPS peak{RunCommand.PeakOf(e)}{(e.Kernel.Threads > 1 ? $" on {e.Kernel.Threads} threads" : "")}; unscheduled {r.BaseGflops:F1}{(r.BaseEstimated ? " (estimated from a slice)" : "")} ({e.Gflops / r.BaseGflops:F1}x)");
        if (r.Estimates > 0) t.AddRow("estimates", $"{r.Estimates} of the {r.Evaluations} kernels the search measured ran too long to time whole: timed on slices (the first iterations of the outermost loop) and scaled");
        o.Write(t);
        if (e.Peers.Count > 0)
        {
            o.WriteLine();
            o.Write(RunCommand.PeerTable(e.Gflops, e.Peers));
        }
        if (BlockedHint(c) is { } hint)
        {
            o.WriteLine();
            o.MarkupLineInterpolated($"[grey]{hint}[/]");
        }
    }

    /// <summary>For a convolution in the plain layout, the same one with its output channels in blocks of this machine's
    /// vectors (<see cref="BlockedSpec"/>), the layout oneDNN's convolution is timed in; null otherwise.</summary>
    internal static string? BlockedHint(Computation c) =>
        c.AsConv() is { } conv && BlockedSpec(conv) is { } blocked
            ? $"hint: \"{blocked}\" computes the output channels in blocks of {ConvOp.Block(conv.F)}, innermost (the layout oneDNN's convolution is timed in), so a kernel vectorizes along the channels whatever the image's width; tune it with --spec \"{blocked}\""
            : null;

    /// <summary><paramref name="conv"/> with its output channels in blocks of this machine's vectors (<see cref="ConvOp.Block"/>),
    /// as <c>conv C H W F R S E</c>; null when no block divides its channels.</summary>
    internal static string? BlockedSpec(ConvShape conv) => ConvOp.Block(conv.F) is var e and > 0 ? $"{conv} {e}" : null;
}
