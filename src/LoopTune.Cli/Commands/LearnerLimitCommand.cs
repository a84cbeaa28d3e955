using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoopTune.Learning;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune learner-limit [--workers 1,2,4,8,16,32,64] [--time 20s] [--worker-rate 125] [--modes async,phased]
/// [--gemm auto,managed] [--dataset NAME] [--actions tile] [--set Field=value ...] [--seed S] [--json]</c>: how many
/// workers one Ape-X learner keeps up with (<see cref="LearnerLimit"/>): simulated workers on one core, the learner on
/// another, a row per worker count, mode and GEMM.</summary>
static class LearnerLimitCommand
{
    public static Command Create(Io io)
    {
        var workers = new Option<string>("--workers") { Description = "Simulated worker counts, comma-separated: a row each.", DefaultValueFactory = _ => "1,2,4,8,16,32,64" };
        var time = new Option<string>("--time") { Description = "Wall time of each row, filling the replay included, before the policy is evaluated.", DefaultValueFactory = _ => "20s" };
        var rate = new Option<double>("--worker-rate") { Description = "Environment steps a second each simulated worker offers (a real worker measured 110-135 cold steps a second on matmuls).", DefaultValueFactory = _ => 125 };
        var modes = new Option<string>("--modes") { Description = "The learner's modes, comma-separated: async (the learner updates while actors act) and/or phased (actors collect, then the learner updates).", DefaultValueFactory = _ => "async,phased" };
        var gemm = new Option<string>("--gemm") { Description = $"The learner's sgemm, comma-separated: {string.Join(", ", NetworkGemm.Choices)}.", DefaultValueFactory = _ => "auto" };
        var dataset = new Option<string>("--dataset") { Description = "A named dataset or folder: episodes draw its train split, the evaluation its test split.", DefaultValueFactory = _ => "mm64_256_16_range" };
        var actions = new Option<string>("--actions") { Description = "The action space: cursor, loop or tile.", DefaultValueFactory = _ => "tile" };
        var set = new Option<string[]>("--set") { Description = "Override an Ape-X hyperparameter, e.g. --set BatchSize=128 (JSON values).", AllowMultipleArgumentsPerToken = false };
        var seed = new Option<int>("--seed") { Description = "Seed of every random choice.", DefaultValueFactory = _ => 0 };
        var json = Options.Json();
        var command = new Command("learner-limit", "Measure how many workers one Ape-X learner keeps up with: simulated workers (a cheap synthetic evaluator, paced to a real worker's step rate) on one core, the learner on another.")
        { workers, time, rate, modes, gemm, dataset, actions, set, seed, json };
        command.SetAction(p => io.Guard(() =>
        {
            var counts = Counts(p.GetValue(workers)!);
            var modeList = List(p.GetValue(modes)!, "--modes", ["async", "phased"]);
            var gemms = List(p.GetValue(gemm)!, "--gemm", NetworkGemm.Choices);
            var request = new LearnerLimitRequest
            {
                Time = Duration.Parse(p.GetValue(time)!, "--time"), StepsPerSecondPerWorker = p.GetValue(rate), Dataset = p.GetValue(dataset)!,
                Actions = p.GetValue(actions)!, Seed = p.GetValue(seed), Set = TrainCommand.ParseSet(p.GetValue(set)),
            };
            var rows = new List<LearnerLimitRow>();
            foreach (int w in counts)
                foreach (string mode in modeList)
                    foreach (string g in gemms)
                    {
                        var set = request.Set?.DeepClone().AsObject() ?? [];
                        (set["Asynchronous"], set["Gemm"]) = (mode == "async", g);
                        var row = LearnerLimit.Run(request with { Set = set }, w);
                        rows.Add(row);
                        io.Stderr.WriteLine(Line(row));
                    }
            if (p.GetValue(json))
                io.Stdout.WriteLine(new JsonObject
                {
                    ["request"] = JsonSerializer.SerializeToNode(request),
                    ["rows"] = JsonSerializer.SerializeToNode(rows),
                }.ToJsonString(Options.JsonStyle));
            else
                Print(io.Out, rows, request);
            return Program.Ok;
        }));
        return command;
    }

    static int[] Counts(string text) =>
        [.. text.Split(',', StringSplitOptions.TrimEntries).Select(x => int.TryParse(x, CultureInfo.InvariantCulture, out int n) && n >= 1 ? n
            : throw new LoopTuneException($"--workers '{x}': a count of workers, at least 1, such as 1,2,4"))];

    static string[] List(string text, string option, IReadOnlyList<string> allowed) =>
        [.. text.Split(',', StringSplitOptions.TrimEntries).Select(x => allowed.Contains(x.ToLowerInvariant()) ? x.ToLowerInvariant()
            : throw new LoopTuneException($"{option} '{x}': expected {string.Join(", ", allowed)}"))];

    static string Mode(LearnerLimitRow r) => r.Asynchronous ? "async" : "phased";

    static string Line(LearnerLimitRow r) => string.Create(CultureInfo.InvariantCulture,
        $"{r.Workers} workers, {Mode(r)}, {r.Gemm}: {r.StepsPerSecond:F0} of {r.OfferedStepsPerSecond:F0} steps/s absorbed, {r.UpdatesPerSecond:F0} updates/s, {r.UpdatesPerStep:F3} updates/step, GC paused {r.GcPauseSeconds / r.LearningSeconds:P1}, evaluation {r.Evaluation:F2}x");

    static void Print(IAnsiConsole console, IReadOnlyList<LearnerLimitRow> rows, LearnerLimitRequest request)
    {
        var t = new Table().AddColumn(new TableColumn("workers").RightAligned()).AddColumn("learner").AddColumn("sgemm")
            .AddColumn(new TableColumn("offered steps/s").RightAligned()).AddColumn(new TableColumn("absorbed steps/s").RightAligned())
            .AddColumn(new TableColumn("updates/s").RightAligned()).AddColumn(new TableColumn("updates/step").RightAligned())
            .AddColumn(new TableColumn("actors waited").RightAligned()).AddColumn(new TableColumn("learner waited").RightAligned())
            .AddColumn(new TableColumn("GC paused").RightAligned()).AddColumn(new TableColumn("evaluation").RightAligned());
        foreach (var r in rows)
            t.AddRow(Cells(r));
        console.Write(t);
        console.MarkupLineInterpolated(CultureInfo.InvariantCulture,
            $"each row {request.Time.TotalSeconds:F0} s of wall time; rates from the first update on; actors waited: each worker's share of that time spent waiting for room in the queue (the learner behind), learner waited: its share spent waiting for experience (asynchronous only); GC paused: the share the garbage collector held every thread of the process, the learner's too; evaluation: the greedy policy's geometric-mean speed-up on the test benchmarks, scored by the synthetic evaluator");
    }

    static string[] Cells(LearnerLimitRow r) =>
    [
        .. new object[] { r.Workers, Mode(r), r.Gemm, $"{r.OfferedStepsPerSecond:F0}", $"{r.StepsPerSecond:F0}", $"{r.UpdatesPerSecond:F0}",
            $"{r.UpdatesPerStep:F3}", r.Asynchronous ? $"{r.ActorWaitSeconds / (r.Workers * r.LearningSeconds):P0}" : "-",
            r.Asynchronous ? $"{r.LearnerWaitSeconds / r.LearningSeconds:P0}" : "-", $"{r.GcPauseSeconds / r.LearningSeconds:P1}", $"{r.Evaluation:F2}x" }
            .Select(o => Markup.Escape(Convert.ToString(o, CultureInfo.InvariantCulture)!)),
    ];
}
