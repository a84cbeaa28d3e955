using System.CommandLine;
using System.Text.Json.Nodes;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune run "&lt;spec&gt;" [--actions a,b,c] [--json] [--quick] [--threads N]</c>: apply the actions, print the
/// tree, verify the kernel against the reference, and time it next to the peak and the peers.</summary>
static class RunCommand
{
    public static Command Create(Io io)
    {
        var spec = new Argument<string>("spec") { Description = "The computation: \"mm M N K\", \"conv C H W F R S\" (\"conv C H W F R S E\": output channels in blocks of E, innermost), or a contraction such as \"C[m,n] += A[m,k] * B[k,n] m=128 n=64 k=32\"." };
        var actions = new Option<string?>("--actions", "-a") { Description = "Comma-separated actions applied in order to the initial nest, e.g. split_4,down,vectorize." };
        var schedule = new Option<string?>("--schedule", "-s") { Description = "A schedule as the reports print it, e.g. \"f:8 h:32 c:16 r:3 s:3 f:4u w:16v\" (loops outermost first; u unrolled, v vectorized), instead of --actions." };
        var quick = new Option<bool>("--quick") { Description = "Shorter timing (less precise)." };
        var noPeers = new Option<bool>("--no-peers") { Description = "Do not time the peer libraries (OpenBLAS, BLIS, oneDNN; oneDNN's convolution and im2col + OpenBLAS for a convolution; ONNX Runtime's one-node model for both)." };
        var threads = Options.Threads("Threads the kernel's parallel loop (p in the schedule, e.g. \"m:128p ...\") is divided among, and each peer library is given");
        var json = Options.Json();
        var command = new Command("run", "Schedule a computation, compile it, verify it and measure it against the peak and the peers.")
        {
            spec, actions, schedule, quick, noPeers, threads, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            int n = Options.ApplyThreads(p, threads);
            var computation = Computation.Parse(p.GetValue(spec)!);
            var list = Actions.ParseList(p.GetValue(actions));
            var sched = p.GetValue(schedule);
            if (sched is not null && list.Length > 0) throw new LoopTuneException("give --actions or --schedule, not both");
            // a schedule without a cursor gets one on its outermost loop
            var nest = sched is null ? Transforms.ApplyAll(Nest.Initial(computation), list)
                : Nest.Parse(computation, sched.StartsWith('>') || sched.Contains(" >", StringComparison.Ordinal) ? sched : ">" + sched);
            var e = KernelReport.Run(nest, p.GetValue(quick) ? MeasureOptions.Quick : MeasureOptions.Default, p.GetValue(noPeers) ? null : KernelReport.PreparePeers, null, null, n);
            if (p.GetValue(json)) io.Stdout.WriteLine(ToJson(e, list).ToJsonString(Options.JsonStyle));
            else Print(io.Out, e);
            if (!e.Verification.Passed) io.Stderr.WriteLine($"internal error: the kernel is wrong: {e.Verification.Problem}");
            return e.Verification.Passed ? Program.Ok : Program.Failure;
        }));
        return command;
    }

    internal static JsonObject ToJson(KernelReport e, IEnumerable<LoopAction> actions) => new()
    {
        ["spec"] = e.Nest.Computation.ToString(),
        ["computation"] = e.Nest.Computation.Text,
        ["actions"] = new JsonArray([.. actions.Select(a => JsonValue.Create(a.Name))]),
        ["schedule"] = e.Nest.Serialize(),
        ["tree"] = e.Nest.ToTree(),
        ["verified"] = e.Verification.Passed,
        ["max_error"] = e.Verification.MaxError,
        ["tolerance"] = e.Verification.Tolerance,
        ["gflops"] = e.Gflops,
        ["estimated"] = e.Estimated,
        ["checked_elements"] = e.Verification.Checked,
        ["best_gflops"] = e.Measurement.BestGflops,
        ["runtime_s"] = e.Measurement.MedianSeconds,
        ["samples"] = e.Measurement.Samples,
        ["compile_ms"] = e.Kernel.CompileTime.TotalMilliseconds,
        ["threads"] = e.Kernel.Threads,
        ["peak_gflops"] = e.PeakGflops,
        ["fraction_of_peak"] = e.FractionOfPeak,
        ["peers"] = PeersJson(e.Peers),
        ["peer_problems"] = PeerProblemsJson(e.Peers),
        ["peer_calls"] = new JsonObject(e.Peers.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)(p.Via is { } v ? JsonValue.Create(v) : null)))),
        ["peer_estimated"] = new JsonObject(e.Peers.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Estimated)))),
        ["ratios"] = new JsonObject(e.Peers.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)(e.RatioTo(p.Key) is double r ? JsonValue.Create(r) : null)))),
        ["notes"] = new JsonArray([.. e.Kernel.Notes.Select(n => JsonValue.Create(n))]),
        ["machine"] = Machine.Current.ToJson(),
    };

    /// <summary>{"openblas": GFLOPS or null, "blis": ..., "onednn": ...}</summary>
    internal static JsonObject PeersJson(IEnumerable<PeerResult> peers) =>
        new(peers.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)(p.Gflops is double g ? JsonValue.Create(g) : null))));

    /// <summary>{"openblas": null when measured, else why not ("wrong result: ...", "library not found: ...")}</summary>
    internal static JsonObject PeerProblemsJson(IEnumerable<PeerResult> peers) =>
        new(peers.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)(p.Gflops is null ? JsonValue.Create(p.Problem ?? "not measured") : null))));

    static void Print(IAnsiConsole o, KernelReport e)
    {
        var c = e.Nest.Computation;
        o.MarkupLineInterpolated($"[bold]{c}[/]  ({c.Text}, {c.Flops / 1e9:G4} GFLOP)");
        o.MarkupLineInterpolated($"[grey]on {Machine.Current.Describe()}[/]");
        o.WriteLine();
        o.Write(new Text(e.Nest.ToTree()));
        o.WriteLine();
        var t = new Table().Border(TableBorder.None).HideHeaders().AddColumn("").AddColumn("");
        t.AddRow("schedule", Markup.Escape(e.Nest.Serialize()));
        t.AddRow("verified", e.Verification.Passed
            ? $"[green]yes[/] (max relative error {e.Verification.MaxError:E1}, tolerance {e.Verification.Tolerance:E1}, {Markup.Escape(e.Verification.Describe(c.Output.Length))})"
            : $"[red]NO[/]: {Markup.Escape(e.Verification.Problem ?? "")}");
        t.AddRow("compile", $"{e.Kernel.CompileTime.TotalMilliseconds:F2} ms");
        t.AddRow("threads", Threads(e));
        t.AddRow("runtime", $"{e.Measurement.MedianSeconds * 1e3:F4} ms median of {e.Measurement.Samples} samples");
        t.AddRow("speed", $"[bold]{e.Gflops:F1} GFLOPS[/] (best {e.Measurement.BestGflops:F1}), {e.FractionOfPeak:P0} of the {e.PeakGflops:F1} GFLOPS peak{PeakOf(e)}{Estimate(e)}");
        foreach (var note in e.Kernel.Notes) t.AddRow("note", Markup.Escape(note));
        o.Write(t);
        if (e.Peers.Count > 0)
        {
            o.WriteLine();
            o.Write(PeerTable(e.Gflops, e.Peers));
        }
    }

    /// <summary>" of one core" when the kernel ran on more threads than one (the peak is one core's), else nothing.</summary>
    internal static string PeakOf(KernelReport e) => e.Kernel.Threads > 1 && e.Nest.ParallelLoop >= 0 ? $" of one core ({e.Gflops / (e.PeakGflops * e.Kernel.Threads):P0} of {e.Kernel.Threads} cores' peaks)" : "";

    /// <summary>How many threads the kernel ran on, and why only one when its nest has no parallel loop.</summary>
    static string Threads(KernelReport e) => e.Kernel.Threads == 1 ? "1"
        : e.Nest.ParallelLoop < 0 ? $"1 (asked for {e.Kernel.Threads}: no loop is parallel; mark one with p, e.g. {Markup.Escape(e.Nest.Computation.Vars[0])}:...p)"
        : $"{e.Kernel.Threads}, dividing loop {Markup.Escape(e.Nest.LoopName(e.Nest.ParallelLoop))}; each peer library on {e.Kernel.Threads} too, timed in turns";

    /// <summary>", estimated from a slice ..." when the kernel ran too long to time whole, else nothing.</summary>
    internal static string Estimate(KernelReport e) => e.Estimated
        ? $" [yellow](estimated from a slice: a whole run would last more than {KernelReport.MaxRunSeconds:0.#} s; checked on {Markup.Escape(e.Verification.Describe(e.Nest.Computation.Output.Length))}, timed side by side with the libraries' runs)[/]"
        : "";

    internal static Table PeerTable(double gflops, IEnumerable<PeerResult> peers)
    {
        var t = new Table().AddColumn("peer").AddColumn(new TableColumn("GFLOPS").RightAligned()).AddColumn(new TableColumn("ours / peer").RightAligned());
        foreach (var p in peers)
            t.AddRow((p.Via is { } via ? $"{p.Key} [grey]({Markup.Escape(via)})[/]" : p.Key)
                + (Machine.Current.LibraryNote(p.Key) is { } note ? $" [yellow]{Markup.Escape(note)}[/]" : ""), p.Gflops is double g ? $"{g:F1}"
                : p.Status == PeerStatus.WrongResult ? $"[red]WRONG, not timed[/]: {Markup.Escape(p.Problem ?? "")}"
                : $"[grey]n/a: {Markup.Escape(p.Problem ?? "")}[/]", p.Gflops is double h ? $"{gflops / h:F2}x" : "");
        return t;
    }
}
