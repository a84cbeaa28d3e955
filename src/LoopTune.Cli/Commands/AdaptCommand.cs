using System.CommandLine;
using System.Text.Json.Nodes;
using LoopTune.Learning;
using LoopTune.Measure;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune adapt [--time 20m] [--dataset NAME|DIR ...] [--workers N] [--resume] [--vector-bits N] [--json]</c>:
/// continues training the default policies on this machine (<see cref="Adaptation"/>: Ape-X from their weights, their own
/// action space, pinned workers, a progress bar) and saves them in the data folder under the machine's key, where
/// <c>--policy default</c> then finds them. Ctrl+C or SIGTERM stops after the current iteration with a checkpoint;
/// <c>--resume</c> continues a stopped or killed adaptation for the time it had left.</summary>
static class AdaptCommand
{
    public static Command Create(Io io)
    {
        var time = new Option<string>("--time") { Description = "The whole adaptation's time, shared equally by the policies (e.g. 10m, 1h).", DefaultValueFactory = _ => "20m" };
        var datasets = new Option<string[]>("--dataset")
        {
            Description = $"A named dataset or a dataset folder, once per policy: a convolution dataset adapts the conv policy, any other the default one. Default: {string.Join(" and ", AdaptRequest.DefaultDatasets)}.",
            AllowMultipleArgumentsPerToken = false,
        };
        var workers = new Option<int>("--workers") { Description = "Measuring workers, each pinned to its own core (default: every core this process may use but one, which the learner keeps).", DefaultValueFactory = _ => 0 };
        var resume = new Option<bool>("--resume") { Description = "Continue an adaptation of this machine that was stopped or killed, for the time it had left." };
        var seed = new Option<int>("--seed") { Description = "Seed of every random choice.", DefaultValueFactory = _ => 0 };
        var bits = Options.VectorBits();
        var threads = Options.Threads("Threads each measuring worker times its kernels on (an outer loop made parallel), so the policies adapt to rewards at that count and are kept apart from those adapted at one; workers times threads must fit the cores this process may use (the learner updates while the workers idle, between their rounds)");
        var json = Options.Json();
        var command = new Command("adapt", "Adapt the default policies to this machine: continue their training here and save them where '--policy default' finds them.")
        {
            time, datasets, workers, resume, seed, bits, threads, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            Options.ApplyVectorBits(p, bits);
            var limit = Duration.Parse(p.GetValue(time), "--time");
            int t = Options.ApplyThreads(p, threads), cores = WorkerPool.AvailableCores;
            int w = p.GetValue(workers) is not 0 and var n ? n : Math.Max(1, (cores - 1) / t);
            if (w * t > cores)
                throw new LoopTuneException($"--threads {t}: {w} worker(s) of {t} threads need {w * t} cores; this process may use {cores}");
            var request = new AdaptRequest(p.GetValue(datasets) ?? [], limit, w, p.GetValue(resume), p.GetValue(seed));
            var machine = Machine.Current;
            io.Stderr.WriteLine($"adapting to {machine.Describe()}");
            using var cancel = new CancellationTokenSource();
            using var signals = Options.StopOnSignal(io, cancel, "; 'looptune adapt --resume' continues");
            var adapted = WithBars(io, request, cancel.Token);
            if (p.GetValue(json)) io.Stdout.WriteLine(Json(adapted, machine).ToJsonString(Options.JsonStyle));
            else Print(io.Out, adapted, machine);
            return Program.Ok;
        }));
        return command;
    }

    /// <summary>Runs the adaptation with a Spectre bar per policy on a terminal, plain lines on stderr otherwise.</summary>
    static IReadOnlyList<AdaptedPolicy> WithBars(Io io, AdaptRequest request, CancellationToken cancel)
    {
        if (io.Stderr != Console.Error || Console.IsErrorRedirected)
            return Adaptation.Run(request, name => new TrainCommand.Observer(io, name), cancel);
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        IReadOnlyList<AdaptedPolicy> result = [];
        console.Progress().AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx => result = Adaptation.Run(request, name =>
            {
                var task = ctx.AddTask(name).MaxValue(1);
                return new TrainCommand.Observer(io, name)
                {
                    Bar = (f, text) =>
                    {
                        task.Value = f;
                        task.Description = Markup.Escape($"{name}: {text}");
                    },
                };
            }, cancel));
        return result;
    }

    static JsonObject Json(IReadOnlyList<AdaptedPolicy> adapted, MachineInfo machine) => new()
    {
        ["machine"] = machine.ToJson(),
        ["policies"] = new JsonArray([.. adapted.Select(a => (JsonNode)new JsonObject
        {
            ["name"] = a.Name, ["dataset"] = a.Dataset, ["policy"] = a.PolicyFile, ["from"] = a.From, ["run"] = a.RunFolder, ["seconds"] = a.Seconds,
            ["eval"] = a.Eval is { } e ? new JsonObject
            {
                ["benchmarks"] = e.Rows.Count, ["geomean_gflops"] = e.GeomeanGflops, ["peak_fraction"] = e.PeakFraction, ["mean_seconds"] = e.MeanSeconds,
            } : null,
        })]),
    };

    static void Print(IAnsiConsole o, IReadOnlyList<AdaptedPolicy> adapted, MachineInfo machine)
    {
        var t = new Table().AddColumn("policy").AddColumn("dataset").AddColumn(new TableColumn("minutes").RightAligned()).AddColumn("last evaluation").AddColumn("saved as");
        foreach (var a in adapted)
            t.AddRow(a.Name, Markup.Escape(a.Dataset), $"{a.Seconds / 60:F1}",
                a.Eval is { } e ? $"{e.GeomeanGflops:F1} GFLOPS, {e.PeakFraction:P0} of the peak" : "", Markup.Escape(a.PolicyFile));
        o.Write(t);
        o.MarkupLineInterpolated($"'--policy default' now uses these on this kind of machine ({machine.Slug}).");
    }
}
