using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune bench [--json] [--quick] [--threads 1,2 [--scaling-only]]</c>: the performance report. Every ratio
/// compares figures measured in this run: our kernels against OpenBLAS (and BLIS, oneDNN when installed, and ONNX Runtime)
/// and against the peak of this core; with more thread counts than 1, a scaling table: ours and every library at each
/// count, side by side.</summary>
static class BenchCommand
{
    static readonly (int M, int N, int K)[] Shapes = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (512, 512, 512), (257, 129, 67), (97, 131, 211)];

    /// <summary>The convolutions of the report: the issue's first, a small-C first layer, a deeper 3x3 layer on a 16-wide
    /// image, a pointwise (1x1) layer and a 64-channel 3x3 layer.</summary>
    internal static readonly string[] ConvSpecs =
        ["conv 16 34 34 32 3 3", "conv 3 66 66 32 3 3", "conv 32 18 18 64 3 3", "conv 64 32 32 64 1 1", "conv 64 18 18 64 3 3"];

    /// <summary>The hand schedule of a convolution: this machine's register tile (<see cref="RegisterTile"/>) over output
    /// channels, rows and columns, the reduction around it; but where the output's rows are not whole vectors and the
    /// machine has a tile along the output channels (a window larger than 1x1, a sum of at least 512 steps over at least
    /// 128 pixels: <see cref="CacheBlockedTiles.AlongChannels"/>), that one (on the Zen 5, conv 64 56 56 64 3 3's 54-pixel
    /// rows: 0.93x oneDNN in `bench` against 0.60x, while conv 64 18 18 64 3 3's 16-pixel rows ran 1.01-1.02x with the
    /// register tile, 0.97x along the channels); with the output channels in blocks (<c>conv C H W F R S E</c>), the
    /// machine's first tile for it (<see cref="CacheBlockedTiles"/>: pixels by vectors of channels).</summary>
    public static Nest ConvHandSchedule(Computation c)
    {
        if (c.AsBlockedConv() is not null) return CacheBlockedTiles.For(c, Machine.Current).FirstOrDefault() ?? Nest.Initial(c);
        var conv = c.AsConv() ?? throw new ArgumentException($"{c} is not a convolution", nameof(c));
        if (conv.R * conv.S > 1 && conv.OW % Machine.Current.Fma.Lanes != 0 && CacheBlockedTiles.AlongChannels(c, Machine.Current) is { } channels)
            return channels;
        return RegisterTile.For(Machine.Current).Convolution(conv);
    }

    /// <summary>The problems of the scaling table (<c>--threads 1,2</c>): issue 20's matrix product and convolution, the
    /// convolution also with its output channels in blocks of this machine's vectors (<see cref="TuneCommand.BlockedSpec"/>),
    /// the layout oneDNN's own convolution computes in.</summary>
    internal static string[] ScalingSpecs =>
        ["mm 512 512 512", "conv 64 56 56 64 3 3", .. TuneCommand.BlockedSpec(new ConvShape(64, 56, 56, 64, 3, 3)) is { } blocked ? [blocked] : Array.Empty<string>()];

    public static Command Create(Io io)
    {
        var quick = new Option<bool>("--quick") { Description = "Finish in about a minute (shorter timings, fewer compiles)." };
        var threads = new Option<string>("--threads")
        {
            Description = $"Comma-separated thread counts (1 to {ThreadCountError.Max}, or all) for a scaling table: {string.Join(" and ", ScalingSpecs)}, hand-scheduled with an outer loop made parallel, and every library, at each count, side by side. Default: 1 (no table).",
            DefaultValueFactory = _ => "1",
        };
        var scalingOnly = new Option<bool>("--scaling-only") { Description = "Only the scaling table (give --threads)." };
        var json = Options.Json();
        var command = new Command("bench", "Performance report: unscheduled and hand-scheduled kernels against the peers and the peak; compile latency; scaling with threads.")
        {
            quick, threads, scalingOnly, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            int[] counts = Options.ThreadCounts(p.GetValue(threads));
            bool only = p.GetValue(scalingOnly);
            if (only && counts is [1]) throw new LoopTuneException("--scaling-only needs --threads with the counts to compare, e.g. --threads 1,2");
            return Run(io, p.GetValue(quick), p.GetValue(json), counts is [1] ? [] : counts, only);
        }));
        return command;
    }

    /// <summary>A good schedule written by hand for mm M N K, with this machine's register tile (<see cref="RegisterTile"/>,
    /// sized from its FMA pipes, latency and registers): <c>n m k k'(4u) m'(rows u) n'(width v)</c>, each outer loop with
    /// its tail (<c>n:8 m:32 k:64 k:4u m:8u n:32v</c> for mm 256 on a Zen 5; the 6 x 16 tile of 12 accumulators on an AVX2
    /// machine with 16 registers).</summary>
    public static Nest HandSchedule(int m, int n, int k) => RegisterTile.For(Machine.Current).Matmul(m, n, k);


    static int Run(Io io, bool quick, bool asJson, int[] threadCounts, bool scalingOnly)
    {
        var options = quick ? MeasureOptions.Quick : MeasureOptions.Default;
        var report = new JsonObject();
        var progress = new Progress(io);

        progress.Say("measuring the peak");
        double peak = Peak.MeasureGflops(options);
        report["peak_gflops"] = peak;
        report["machine"] = Machine.Current.ToJson();
        if (threadCounts.Length > 0) report["scaling"] = Scaling(threadCounts, options, peak, progress);
        if (scalingOnly)
        {
            if (asJson) io.Stdout.WriteLine(report.ToJsonString(Options.JsonStyle));
            else PrintScaling(io.Out, report);
            return Verified(io, report["scaling"]!.AsArray());
        }

        var rows = new JsonArray();
        foreach (var (m, n, k) in Shapes)
        {
            progress.Say($"mm {m} {n} {k}");
            var c = Computation.Matmul(m, n, k);
            var initial = KernelReport.Run(Nest.Initial(c), quick && c.Flops > 1e8 ? MeasureOptions.Quick with { MinSamples = 3 } : options, peers: false, peakGflops: peak);
            var hand = KernelReport.Run(HandSchedule(m, n, k), options, peers: true, peakGflops: peak);
            rows.Add(new JsonObject
            {
                ["spec"] = c.ToString(),
                ["unscheduled_gflops"] = initial.Gflops,
                ["hand_gflops"] = hand.Gflops,
                ["hand_schedule"] = hand.Nest.Serialize(),
                ["verified"] = initial.Verification.Passed && hand.Verification.Passed,
                ["hand_fraction_of_peak"] = hand.FractionOfPeak,
                ["peers"] = RunCommand.PeersJson(hand.Peers),
                ["peer_problems"] = RunCommand.PeerProblemsJson(hand.Peers),
                ["hand_vs_openblas"] = hand.RatioTo("openblas"),
                ["hand_vs_onnxruntime"] = hand.RatioTo(OnnxRuntimePeer.KeyName),
                ["speedup_over_unscheduled"] = hand.Gflops / initial.Gflops,
            });
        }
        report["matmul"] = rows;

        var convRows = new JsonArray();
        foreach (var spec in ConvSpecs)
        {
            progress.Say(spec);
            var c = Computation.Parse(spec);
            var initial = KernelReport.Run(Nest.Initial(c), quick ? MeasureOptions.Quick with { MinSamples = 3 } : options, peers: false, peakGflops: peak);
            var hand = KernelReport.Run(ConvHandSchedule(c), options, peers: true, peakGflops: peak);
            convRows.Add(new JsonObject
            {
                ["spec"] = c.ToString(),
                ["unscheduled_gflops"] = initial.Gflops,
                ["hand_gflops"] = hand.Gflops,
                ["hand_schedule"] = hand.Nest.ScheduleKey,
                ["verified"] = initial.Verification.Passed && hand.Verification.Passed,
                ["hand_fraction_of_peak"] = hand.FractionOfPeak,
                ["peers"] = RunCommand.PeersJson(hand.Peers),
                ["peer_problems"] = RunCommand.PeerProblemsJson(hand.Peers),
                ["hand_vs_onednn_conv"] = hand.RatioTo("onednn_conv"),
                ["hand_vs_im2col_openblas"] = hand.RatioTo("im2col_openblas"),
                ["hand_vs_onnxruntime"] = hand.RatioTo(OnnxRuntimePeer.KeyName),
                ["speedup_over_unscheduled"] = hand.Gflops / initial.Gflops,
            });
        }
        report["conv"] = convRows;
        report["timing_note"] = "hand schedule and peers timed side by side (one sample each per round); hand / peer is the median of the within-round ratios";
        report["conv_peers_note"] = "oneDNN convolution: layouts of oneDNN's choosing, reorders outside the timed region; im2col + OpenBLAS: im2col timed; "
            + "onnxruntime: a one-node Conv model, weights an initializer (reordered once at session creation), one thread";

        progress.Say("environment steps");
        var env = EnvSpeed.Measure(episodes: quick ? 10 : 30);
        report["env_cold_steps_per_s"] = env.ColdStepsPerSecond;
        report["env_cold_evaluations_per_s"] = env.ColdEvaluationsPerSecond;
        report["env_warm_steps_per_s"] = env.WarmStepsPerSecond;

        progress.Say("compile latency");
        report["compile"] = CompileLatency(quick ? 300 : 1000, quick ? 1000 : 10000);

        if (asJson) io.Stdout.WriteLine(report.ToJsonString(Options.JsonStyle));
        else Print(io.Out, report);
        return Verified(io, [.. rows, .. convRows, .. report["scaling"]?.AsArray() ?? []]);
    }

    static int Verified(Io io, IEnumerable<JsonNode?> rows)
    {
        bool verified = rows.All(r => r!["verified"]!.GetValue<bool>());
        if (!verified) io.Stderr.WriteLine("internal error: a benchmarked kernel failed verification");
        return verified ? Program.Ok : Program.Failure;
    }

    /// <summary>The scaling table: each of <see cref="ScalingSpecs"/> hand-scheduled (<see cref="HandSchedule"/>,
    /// <see cref="ConvHandSchedule"/>) with the parallel loop a tuner at that count adds (<see cref="Transforms.Parallelize"/>),
    /// at each of <paramref name="counts"/> threads, timed side by side with every library given as many
    /// (<see cref="KernelReport.TimeSideBySide"/>, in turns); the speed-up is over the same run's 1-thread row when there is one.</summary>
    static JsonArray Scaling(int[] counts, MeasureOptions options, double peak, Progress progress)
    {
        var rows = new JsonArray();
        foreach (var spec in ScalingSpecs)
        {
            var c = Computation.Parse(spec);
            var hand = c.Convolution is null ? HandSchedule(c.Sizes[0], c.Sizes[1], c.Sizes[2]) : ConvHandSchedule(c);
            var measured = new List<(int Threads, KernelReport Report)>();
            foreach (int t in counts)
            {
                progress.Say($"{spec} on {t} thread{(t == 1 ? "" : "s")}");
                measured.Add((t, KernelReport.Run(Transforms.Parallelize(hand, t), options, KernelReport.PreparePeers, peak, null, t)));
            }
            double? one = measured.FirstOrDefault(m => m.Threads == 1).Report?.Gflops;
            foreach (var (t, e) in measured)
            {
                var best = e.Peers.Where(p => p.Gflops is not null).MaxBy(p => p.Gflops);
                rows.Add(new JsonObject
                {
                    ["spec"] = c.ToString(),
                    ["threads"] = t,
                    ["schedule"] = e.Nest.ScheduleKey,
                    ["gflops"] = e.Gflops,
                    ["verified"] = e.Verification.Passed,
                    ["peers"] = RunCommand.PeersJson(e.Peers),
                    ["peer_problems"] = RunCommand.PeerProblemsJson(e.Peers),
                    ["best_library"] = best?.Key,
                    ["vs_best_library"] = best is null ? null : e.RatioTo(best.Key),
                    ["speedup_over_1_thread"] = one is double g ? e.Gflops / g : null,
                });
            }
        }
        return rows;
    }

    static void PrintScaling(IAnsiConsole o, JsonObject r)
    {
        if (r["scaling"] is not JsonArray rows) return;
        o.MarkupLineInterpolated($"[bold]scaling with threads[/] on {Machine.Current.Describe()}");
        var keys = rows.SelectMany(x => x!["peers"]!.AsObject().Select(p => p.Key)).Distinct().ToList();
        var t = new Table().AddColumn("problem").AddColumn(new TableColumn("threads").RightAligned()).AddColumn(new TableColumn("ours").RightAligned())
            .AddColumn(new TableColumn("speed-up").RightAligned());
        foreach (var k in keys) t.AddColumn(new TableColumn(k).RightAligned());
        t.AddColumn(new TableColumn("ours / best library").RightAligned());
        foreach (var row in rows)
        {
            string Ratio(string name) => row![name] is JsonNode x ? $"{x.GetValue<double>():F2}x" : "n/a";
            t.AddRow([row!["spec"]!.GetValue<string>(), $"{row["threads"]}", $"{row["gflops"]!.GetValue<double>():F1}", Ratio("speedup_over_1_thread"),
                .. keys.Select(k => PeerCell(row, k)), row["best_library"] is JsonNode b ? $"{Ratio("vs_best_library")} ({b})" : "n/a"]);
        }
        o.Write(t);
        o.MarkupLine("[grey](GFLOPS, medians. At each count our kernel runs its outer loop on that many pinned threads and each library is given as many; they take turns, each after the previous one's threads went idle, so no runtime's waiting threads hold a core another needs. The speed-up is over the 1-thread row of this run.)[/]");
        if (r["scaling"]!.AsArray().Any(x => x!["threads"]!.GetValue<int>() > 1) && CpuTopology.Current.ThreadsPerCore > 1)
            o.MarkupLine("[yellow]This machine runs 2 threads per core: two threads on one core share its FMA units, so expect far less than 2x.[/]");
    }

    /// <summary>Compile times of random legal schedules of mm up to 256^3, plus memory before and after a long run of compiles.</summary>
    static JsonObject CompileLatency(int timed, int total)
    {
        var rng = new Random(7);
        var sizes = new[] { 16, 31, 64, 100, 128, 200, 256 };
        var times = new List<double>();
        long startMemory = 0;
        for (int i = 0; i < total; i++)
        {
            var c = Computation.Matmul(sizes[rng.Next(sizes.Length)], sizes[rng.Next(sizes.Length)], sizes[rng.Next(sizes.Length)]);
            var nest = i % 4 == 0 ? HandSchedule(Math.Max(4, c.Sizes[0]), Math.Max(32, c.Sizes[1]), c.Sizes[2]) : RandomWalk(Nest.Initial(c), rng, 12);
            var kernel = Kernel.Compile(nest);
            if (i < timed) times.Add(kernel.CompileTime.TotalMilliseconds);
            if (i == Math.Min(500, total / 2)) startMemory = WorkingSet();
        }
        times.Sort();
        return new JsonObject
        {
            ["kernels_timed"] = timed,
            ["median_ms"] = times[times.Count / 2],
            ["p95_ms"] = times[(int)(times.Count * 0.95)],
            ["max_ms"] = times[^1],
            ["compiles_in_a_row"] = total,
            ["working_set_mb_midway"] = startMemory / 1e6,
            ["working_set_mb_end"] = WorkingSet() / 1e6,
        };
    }

    static long WorkingSet()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var p = Process.GetCurrentProcess();
        return p.WorkingSet64;
    }

    /// <summary>A random walk of legal actions (the mask decides), as an agent would make.</summary>
    public static Nest RandomWalk(Nest nest, Random rng, int steps)
    {
        for (int i = 0; i < steps; i++)
        {
            var legal = Actions.All.Where(a => Transforms.IsLegal(nest, a)).ToArray();
            nest = Transforms.Apply(nest, legal[rng.Next(legal.Length)]);
        }
        return nest;
    }

    static void Print(IAnsiConsole o, JsonObject r)
    {
        double peak = r["peak_gflops"]!.GetValue<double>();
        o.MarkupLineInterpolated($"[bold]LoopTune bench[/] on {Machine.Current.Describe()}");
        foreach (var l in Machine.Current.Libraries)
            if (Machine.Current.LibraryNote(l.Key) is { } note) o.MarkupLineInterpolated($"[yellow]{l.Key}: {note}[/]");
        o.MarkupLineInterpolated($"peak of one core: [bold]{peak:F1} GFLOPS[/]\n");
        var t = new Table().AddColumn("matmul").AddColumn(new TableColumn("unscheduled").RightAligned()).AddColumn(new TableColumn("hand schedule").RightAligned())
            .AddColumn(new TableColumn("% of peak").RightAligned()).AddColumn(new TableColumn("openblas").RightAligned()).AddColumn(new TableColumn("blis").RightAligned())
            .AddColumn(new TableColumn("onednn").RightAligned()).AddColumn(new TableColumn("onnxruntime").RightAligned()).AddColumn(new TableColumn("hand / openblas").RightAligned());
        foreach (var row in r["matmul"]!.AsArray())
        {
            string Peer(string k) => PeerCell(row!, k);
            t.AddRow(row!["spec"]!.GetValue<string>(), $"{row["unscheduled_gflops"]!.GetValue<double>():F1}", $"{row["hand_gflops"]!.GetValue<double>():F1}",
                $"{row["hand_fraction_of_peak"]!.GetValue<double>():P0}", Peer("openblas"), Peer("blis"), Peer("onednn"), Peer(OnnxRuntimePeer.KeyName),
                row["hand_vs_openblas"] is JsonNode x ? $"{x.GetValue<double>():F2}x" : "n/a");
        }
        o.Write(t);
        o.WriteLine();
        var ct = new Table().AddColumn("convolution").AddColumn(new TableColumn("unscheduled").RightAligned()).AddColumn(new TableColumn("hand schedule").RightAligned())
            .AddColumn(new TableColumn("% of peak").RightAligned()).AddColumn(new TableColumn("onednn conv").RightAligned()).AddColumn(new TableColumn("im2col+openblas").RightAligned())
            .AddColumn(new TableColumn("onnxruntime").RightAligned()).AddColumn(new TableColumn("hand / onednn conv").RightAligned());
        foreach (var row in r["conv"]!.AsArray())
        {
            string Peer(string k) => PeerCell(row!, k);
            ct.AddRow(row!["spec"]!.GetValue<string>(), $"{row["unscheduled_gflops"]!.GetValue<double>():F1}", $"{row["hand_gflops"]!.GetValue<double>():F1}",
                $"{row["hand_fraction_of_peak"]!.GetValue<double>():P0}", Peer("onednn_conv"), Peer("im2col_openblas"), Peer(OnnxRuntimePeer.KeyName),
                row["hand_vs_onednn_conv"] is JsonNode x ? $"{x.GetValue<double>():F2}x" : "n/a");
        }
        o.Write(ct);
        o.MarkupLine("[grey](hand schedules: " + Markup.Escape(string.Join("; ", r["conv"]!.AsArray().Select(x => $"{x!["spec"]}: {x["hand_schedule"]}"))) + ")[/]");
        o.MarkupLine($"[grey]({Markup.Escape(r["conv_peers_note"]!.GetValue<string>())})[/]");
        var c = r["compile"]!;
        o.MarkupLineInterpolated($"\ncompile latency over {c["kernels_timed"]} kernels: median [bold]{c["median_ms"]!.GetValue<double>():F2} ms[/], p95 {c["p95_ms"]!.GetValue<double>():F2} ms, max {c["max_ms"]!.GetValue<double>():F2} ms");
        o.MarkupLineInterpolated($"{c["compiles_in_a_row"]} compiles in a row: working set {c["working_set_mb_midway"]!.GetValue<double>():F0} MB midway, {c["working_set_mb_end"]!.GetValue<double>():F0} MB at the end");
        o.MarkupLineInterpolated($"environment (random episodes on mm 64..256): cold [bold]{r["env_cold_steps_per_s"]!.GetValue<double>():F0} steps/s[/] ({r["env_cold_evaluations_per_s"]!.GetValue<double>():F0} compiled and timed per s), warm [bold]{r["env_warm_steps_per_s"]!.GetValue<double>():F0} steps/s[/]");
        if (r["scaling"] is not null)
        {
            o.WriteLine();
            PrintScaling(o, r);
        }
        o.MarkupLine("(GFLOPS are medians; every figure above was measured in this run, on one pinned core unless a row says more threads. A hand schedule and its peers are timed side by side, one sample of each per round, and a ratio is the median of the ratios within rounds, so a neighbour slowing the core for a while slows both sides of it.)");
    }

    /// <summary>A peer's cell: its GFLOPS, "missing" when its library is not installed, WRONG when its result was wrong
    /// (then it was not timed), n/a otherwise.</summary>
    static string PeerCell(JsonNode row, string key) =>
        row["peers"]?[key] is JsonNode g ? $"{g.GetValue<double>():F1}"
        : row["peer_problems"]?[key]?.GetValue<string>() is not { } problem ? "n/a"
        : problem.StartsWith("wrong result", StringComparison.Ordinal) ? "[red]WRONG[/]"
        : problem.StartsWith("library not found", StringComparison.Ordinal) || problem.StartsWith("symbol", StringComparison.Ordinal) ? "missing" : "n/a";

    /// <summary>Progress lines on stderr, so that stdout stays clean for --json.</summary>
    sealed class Progress(Io io)
    {
        readonly Stopwatch clock = Stopwatch.StartNew();
        public void Say(string what) => io.Stderr.WriteLine($"[{clock.Elapsed.TotalSeconds,5:F1}s] {what}");
    }
}
