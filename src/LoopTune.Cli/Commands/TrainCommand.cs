using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using LoopTune.Cli.Plots;
using LoopTune.Cluster;
using LoopTune.Learning;
using LoopTune.Learning.Logging;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune train --dataset NAME|DIR --trainer apex_dqn|ppo [--iter N | --time 30m] [--workers N] [--steps 10]
/// [--eval-size N] [--eval-time 4s] [--eval-every K] [--seed S] --out DIR [--resume] [--set Field=value ...] [--json]</c>:
/// trains a policy on the dataset's train split with one measuring worker per core, checkpoints it, logs its curves
/// (CSV, TensorBoard, PNG) and evaluates it on the test split.</summary>
static class TrainCommand
{
    public static Command Create(Io io)
    {
        var dataset = new Option<string>("--dataset") { Description = "A named dataset (see 'dataset list') or a dataset folder: trains on its train split, evaluates on its test split.", Required = true };
        var trainer = new Option<string>("--trainer") { Description = "The learning algorithm: apex_dqn or ppo.", DefaultValueFactory = _ => "apex_dqn" };
        var iter = new Option<int?>("--iter") { Description = "Stop after this many iterations in all (a resumed run counts those before)." };
        var time = new Option<string?>("--time") { Description = "Stop after this much time, e.g. 30m or 1.5h (default 10m when --iter is not given)." };
        var workers = new Option<int>("--workers") { Description = "Measuring workers, each on its own core (default: every core this process may use).", DefaultValueFactory = _ => 0 };
        var steps = new Option<int>("--steps") { Description = "Actions per episode.", DefaultValueFactory = _ => 10 };
        var evalSize = new Option<int>("--eval-size") { Description = "Test benchmarks in each evaluation, the last ones of the test split (compare-searches reports on the first ones); 0: none.", DefaultValueFactory = _ => 10 };
        var evalTime = new Option<string>("--eval-time") { Description = "The policy's budget per test benchmark in an evaluation.", DefaultValueFactory = _ => "4s" };
        var evalSearch = new Option<bool>("--eval-search") { Description = "Evaluate with the policy-guided search within --eval-time (as 'tune' tunes) instead of the greedy rollout." };
        var evalEvery = new Option<int>("--eval-every") { Description = "Evaluate every K iterations as well as at the end (0: only at the end).", DefaultValueFactory = _ => 0 };
        var checkpoint = new Option<string>("--checkpoint-every") { Description = "Save a checkpoint at least this often (and at the end).", DefaultValueFactory = _ => "60s" };
        var seed = new Option<int>("--seed") { Description = "Seed of every random choice of the run.", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "The run folder: new (or empty), or with --resume an earlier run's.", Required = true };
        var resume = new Option<bool>("--resume") { Description = "Continue the run in --out from its latest checkpoint (after a stop or a kill)." };
        var db = new Option<string?>("--db") { Description = "Measurement store shared by the workers (default: the user's, so schedules timed before are recalled)." };
        var set = new Option<string[]>("--set") { Description = "Override a hyperparameter, e.g. --set LearningRate=1e-4 --set Hidden=[128,128] (JSON values).", AllowMultipleArgumentsPerToken = false };
        var init = new Option<string?>("--init") { Description = "Start from this policy's weights (a run folder, checkpoint or policy file of the same network shape) instead of random ones." };
        var actions = new Option<string>("--actions") { Description = "The action space: cursor (the action table's 18 actions at a cursor: the seed's 17 and pack), loop (a loop and a kernel action per step, no cursor steps, plus sink and hoist) or tile (loop plus register-tile macros: split, sink and vectorize or unroll in one step).", DefaultValueFactory = _ => "tile" };
        var vectorBits = new Option<string?>("--vector-bits") { Description = $"Vector widths to train at, comma-separated (this machine accelerates {string.Join(",", LoopTune.Jit.JitOptions.AcceleratedBits)}); each episode draws one, so one machine teaches several. Default: the widest." };
        var threads = Options.Threads("Threads each measuring worker times its kernels on (an outer loop made parallel: the reward is the speed at that count); workers times threads must fit the cores this process may use; with --cluster, the silos' workers must run at the same count ('looptune silo --threads N')");
        var json = Options.Json();
        var cluster = new ClusterOptions(workersOption: false);
        var command = new Command("train", "Train a policy (Ape-X DQN or PPO) on a dataset, with checkpoints, curves and an evaluation on its test split.")
        {
            dataset, trainer, iter, time, workers, steps, evalSize, evalTime, evalSearch, evalEvery, checkpoint, seed, output, resume, db, set, init, actions, vectorBits, threads, json,
        };
        cluster.Cluster.Description = "Run the actors and evaluations on a cluster's workers, the learner here (apex_dqn only): localhost (a silo in this process with --workers workers), redis://HOST:PORT or postgres://... (silos started with 'looptune silo').";
        foreach (var o in cluster.All) command.Options.Add(o);
        command.SetAction(p => io.Guard(() =>
        {
            var address = cluster.Address(p);
            if (address is not null) ClusterSite.CheckTrainer(p.GetValue(trainer)!); // before joining the cluster
            int perWorker = Options.ApplyThreads(p, threads), cores = WorkerPool.AvailableCores;
            if (perWorker > 1 && (p.GetValue(workers) is > 0 and var asked ? asked : cores / perWorker) * perWorker > cores)
                throw new LoopTuneException($"--threads {perWorker}: {p.GetValue(workers)} workers of {perWorker} threads need {p.GetValue(workers) * perWorker} cores; this process may use {cores}");
            var request = new TrainRequest
            {
                Dataset = p.GetValue(dataset)!, Trainer = p.GetValue(trainer)!, Iterations = p.GetValue(iter),
                Time = p.GetValue(time) is { } t ? Duration.Parse(t, "--time") : p.GetValue(iter) is null ? TimeSpan.FromMinutes(10) : null,
                Workers = p.GetValue(workers) is > 0 and var w ? w : Math.Max(1, cores / perWorker),
                Steps = p.GetValue(steps), EvalSize = p.GetValue(evalSize), EvalTime = Duration.Parse(p.GetValue(evalTime), "--eval-time"), EvalEvery = p.GetValue(evalEvery),
                CheckpointSeconds = Duration.Parse(p.GetValue(checkpoint), "--checkpoint-every").TotalSeconds, Seed = p.GetValue(seed), Out = p.GetValue(output)!,
                Resume = p.GetValue(resume), Db = p.GetValue(db), Set = ParseSet(p.GetValue(set)), Init = p.GetValue(init), Actions = p.GetValue(actions)!,
                VectorBits = ParseWidths(p.GetValue(vectorBits)), EvalSearch = p.GetValue(evalSearch),
            };
            if (address is not null && request.VectorBits is { Length: > 0 }) throw new LoopTuneException("--vector-bits: a cluster's workers train at their own machine's width; leave it out with --cluster");
            using var cancel = new CancellationTokenSource();
            using var signals = Options.StopOnSignal(io, cancel, "...");
            var observer = new Observer(io);
            (string, PolicyEvaluation?) Train(Func<TrainRequest, ITrainingSite>? site) => observer.Run(o => Training.Run(request, o, cancel.Token, site));
            var (folder, eval) = address is null ? Train(null)
                : cluster.WithSession(io, p, address, session => Train(q => new ClusterSite(session.Connection, q)), p.GetValue(workers) is > 0 and var lw ? lw : null);
            var rows = TrainingLog.ReadCsv(Path.Combine(folder, "metrics.csv"));
            var charts = TrainingCharts.Write(rows, Path.Combine(folder, "charts"));
            if (p.GetValue(json)) io.Stdout.WriteLine(Json(folder, observer, eval, charts).ToJsonString(Options.JsonStyle));
            else Print(io.Out, folder, observer, eval, charts);
            return Program.Ok;
        }));
        return command;
    }

    /// <summary>--vector-bits 128,256,512 as widths this machine accelerates (null when not given); anything else is bad input.</summary>
    internal static int[]? ParseWidths(string? text)
    {
        if (text is null) return null;
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new LoopTuneException("--vector-bits: give widths such as 512 or 256,512");
        return [.. parts.Select(x => int.TryParse(x, CultureInfo.InvariantCulture, out int b) ? LoopTune.Jit.JitOptions.CheckVectorBits(b)
            : throw new LoopTuneException($"--vector-bits '{x}': a width in bits, such as 256"))];
    }

    /// <summary>--set Field=value pairs as a JSON object (the value is JSON; a bare word is a string).</summary>
    static JsonObject? ParseSet(string[]? pairs)
    {
        if (pairs is null || pairs.Length == 0) return null;
        var o = new JsonObject();
        foreach (var pair in pairs)
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0) throw new LoopTuneException($"--set '{pair}': give Field=value, e.g. LearningRate=1e-4");
            string key = pair[..eq].Trim(), value = pair[(eq + 1)..].Trim();
            JsonNode? node;
            try { node = JsonNode.Parse(value); }
            catch (System.Text.Json.JsonException) { node = JsonValue.Create(value); }
            o[key] = node;
        }
        return o;
    }

    /// <summary>Shows progress (a Spectre bar on a terminal, a line every 10 s otherwise, both on stderr) and keeps the last figures.</summary>
    internal sealed class Observer(Io io, string? label = null) : ITrainingObserver
    {
        readonly Stopwatch clock = Stopwatch.StartNew();
        readonly Stopwatch sinceLine = Stopwatch.StartNew();
        Action<double, string>? bar;

        /// <summary>Where progress goes when a caller draws the bars (<c>adapt</c>'s one per policy); null: lines on stderr.</summary>
        internal Action<double, string>? Bar { set => bar = value; }

        public string? ResumedFrom { get; private set; }
        public string? LastCheckpoint { get; private set; }
        public IReadOnlyDictionary<string, double> Last { get; private set; } = new Dictionary<string, double>();
        public (int Iterations, long Steps) Count { get; private set; }
        public IReadOnlyList<string> Workers { get; private set; } = [];
        public string Trainer { get; private set; } = "";

        public T Run<T>(Func<ITrainingObserver, T> body)
        {
            if (io.Stderr != Console.Error || Console.IsErrorRedirected) return body(this);
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
            T result = default!;
            console.Progress().AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("training").MaxValue(1);
                    bar = (f, text) =>
                    {
                        task.Value = f;
                        task.Description = Markup.Escape(text);
                    };
                    result = body(this);
                });
            return result;
        }

        public void Started(string runFolder, ITrainer trainer, string? resumedFrom, IReadOnlyList<string> workers)
        {
            (ResumedFrom, Workers, Trainer, Count, RunFolder) = (resumedFrom, workers, trainer.Name, (trainer.Iterations, trainer.EnvSteps), runFolder);
            io.Stderr.WriteLine($"{(label is null ? "" : label + ": ")}{trainer.Name}: run folder {runFolder}; workers: {string.Join(", ", workers)}"
                + (resumedFrom is null ? "" : $"; resumed from {resumedFrom} (iteration {trainer.Iterations}, {trainer.EnvSteps} env steps)"));
        }

        public void Iteration(ITrainer trainer, IReadOnlyDictionary<string, double> values, double fractionDone)
        {
            (Last, Count) = (values, (trainer.Iterations, trainer.EnvSteps));
            string text = $"iter {trainer.Iterations}, {trainer.EnvSteps} steps" + Show(values, "episode_reward", "reward {0:F3}") + Show(values, "gflops", ", {0:F1} GFLOPS")
                + Show(values, "loss", ", loss {0:G3}") + Show(values, "env_steps_per_s", ", {0:F0} steps/s");
            if (bar is not null) bar(fractionDone, text);
            else if (sinceLine.Elapsed.TotalSeconds >= 10)
            {
                io.Stderr.WriteLine($"[{clock.Elapsed.TotalSeconds,7:F0}s {fractionDone,4:P0}] {(label is null ? "" : label + ": ")}{text}");
                sinceLine.Restart();
            }
        }

        static string Show(IReadOnlyDictionary<string, double> v, string key, string format) =>
            v.TryGetValue(key, out var x) ? ", " + string.Format(CultureInfo.InvariantCulture, format, x).TrimStart(',', ' ') : "";

        /// <summary>Keeps the charts as fresh as the checkpoint, so a run that is killed still has them.</summary>
        public void Checkpoint(string folder)
        {
            LastCheckpoint = folder;
            if (RunFolder is { } run && File.Exists(Path.Combine(run, "metrics.csv")))
                TrainingCharts.Write(TrainingLog.ReadCsv(Path.Combine(run, "metrics.csv")), Path.Combine(run, "charts"));
        }

        string? RunFolder { get; set; }

        public void Evaluated(PolicyEvaluation result) =>
            io.Stderr.WriteLine($"{(label is null ? "" : label + ": ")}evaluation: {result.Rows.Count} test benchmarks, geomean {result.GeomeanGflops:F1} GFLOPS ({result.PeakFraction:P0} of the peak), {result.GeomeanSpeedup:F2}x over unscheduled, {result.MeanSeconds:F2} s each");
    }

    static JsonObject Json(string folder, Observer o, PolicyEvaluation? eval, IReadOnlyList<string> charts) => new()
    {
        ["run"] = folder, ["trainer"] = o.Trainer, ["iterations"] = o.Count.Iterations, ["env_steps"] = o.Count.Steps,
        ["workers"] = new JsonArray([.. o.Workers.Select(c => (JsonNode)c)]), ["resumed_from"] = o.ResumedFrom, ["checkpoint"] = o.LastCheckpoint,
        ["policy"] = o.LastCheckpoint is { } c ? Path.Combine(c, Policy.FileName) : null,
        ["last"] = new JsonObject([.. o.Last.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))]),
        ["eval"] = eval is null ? null : new JsonObject
        {
            ["benchmarks"] = eval.Rows.Count, ["geomean_gflops"] = eval.GeomeanGflops, ["geomean_speedup"] = eval.GeomeanSpeedup,
            ["peak_fraction"] = eval.PeakFraction, ["mean_seconds"] = eval.MeanSeconds,
        },
        ["charts"] = new JsonArray([.. charts.Select(x => (JsonNode)x)]),
    };

    static void Print(IAnsiConsole o, string folder, Observer obs, PolicyEvaluation? eval, IReadOnlyList<string> charts)
    {
        var t = new Table().AddColumn("").AddColumn("");
        t.AddRow("trainer", obs.Trainer);
        t.AddRow("iterations", $"{obs.Count.Iterations} ({obs.Count.Steps} environment steps)");
        t.AddRow("workers", string.Join(", ", obs.Workers));
        foreach (var key in new[] { "episode_reward", "gflops", "loss", "epsilon_max", "entropy", "env_steps_per_s" })
            if (obs.Last.TryGetValue(key, out var v)) t.AddRow($"last {key}", v.ToString("G4", CultureInfo.InvariantCulture));
        if (eval is not null)
            t.AddRow("evaluation", $"{eval.Rows.Count} test benchmarks: geomean {eval.GeomeanGflops:F1} GFLOPS, {eval.PeakFraction:P0} of the peak, {eval.GeomeanSpeedup:F2}x over unscheduled, {eval.MeanSeconds:F2} s each");
        t.AddRow("policy", Markup.Escape(obs.LastCheckpoint is { } c ? Path.Combine(c, Policy.FileName) : "(none)"));
        t.AddRow("curves", Markup.Escape($"metrics.csv, tb/, {string.Join(", ", charts.Select(Path.GetFileName))}"));
        o.Write(t);
        o.MarkupLineInterpolated($"run folder: [bold]{folder}[/]");
    }
}
