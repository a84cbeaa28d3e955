using System.CommandLine;
using System.Text.Json.Nodes;
using LoopTune.Datasets;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune dataset gen|merge|list|show</c>: generate benchmark sets, merge them, list the named ones, and read
/// one benchmark under a list of actions (the original's reader).</summary>
static class DatasetCommand
{
    public static Command Create(Io io) => new("dataset", "Generate, list and inspect benchmark datasets (sets of computations with a train/test split).")
    {
        Gen(io), Merge(io), List(io), Show(io),
    };

    static Command Merge(Io io)
    {
        var parts = new Argument<string[]>("datasets") { Description = "Two or more named datasets or dataset folders of one kind.", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "Folder to write (must not exist, or be empty).", Required = true };
        var json = Options.Json();
        var command = new Command("merge", "Write one dataset holding the benchmarks of several, each keeping its train/test split (a shape tested by any is tested).")
        {
            parts, output, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            var loaded = p.GetValue(parts)!.Select(Dataset.Load).ToList();
            var (generator, manifest) = DatasetGenerator.Merge([.. loaded.Select(d => (d.Name, DatasetGenerator.Of(d), d.Manifest))]);
            var folder = p.GetValue(output)!;
            generator.Write(folder, manifest);
            if (p.GetValue(json)) io.Stdout.WriteLine(GenJson(folder, manifest).ToJsonString(Options.JsonStyle));
            else io.Out.MarkupLineInterpolated($"wrote {manifest.Benchmarks.Length} {manifest.Kind} benchmarks of {string.Join(" + ", loaded.Select(d => d.Name))} to [bold]{Path.GetFullPath(folder)}[/] ({manifest.Train.Length} train, {manifest.Test.Length} test)");
            return Program.Ok;
        }));
        return command;
    }

    static Command Gen(Io io)
    {
        var kind = new Option<string>("--kind") { Description = "What to generate: mm (matrix products) or conv (convolutions).", DefaultValueFactory = _ => "mm" };
        kind.AcceptOnlyFromAmong("mm", "conv");
        var dimA = new Option<string?>("--dimA") { Description = "mm: sizes of A as m,k. Each dimension is a size (64), a range start:end:step (64:256:16, end included) or a list a|b|c." };
        var dimB = new Option<string?>("--dimB") { Description = "mm: sizes of B as k,n, same syntax. k takes the sizes dimA and dimB agree on." };
        var channels = new Option<string?>("--channels") { Description = "conv: input channels C, same syntax." };
        var image = new Option<string?>("--image") { Description = "conv: image sizes H[,W]; one spec means square images." };
        var filters = new Option<string?>("--filters") { Description = "conv: output channels F." };
        var kernel = new Option<string?>("--kernel") { Description = "conv: kernel sizes R[,S]; one spec means square kernels (default 3)." };
        var output = new Option<string>("--out") { Description = "Folder to write (must not exist, or be empty).", Required = true };
        var split = new Option<double>("--split") { Description = "Fraction of the benchmarks in the training set.", DefaultValueFactory = _ => 0.8 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the train/test shuffle (SplitMix64).", DefaultValueFactory = _ => 0UL };
        var json = Options.Json();
        var command = new Command("gen", "Write one benchmark file per computation and a manifest.json with a seeded train/test split.")
        {
            kind, dimA, dimB, channels, image, filters, kernel, output, split, seed, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            bool mm = p.GetValue(kind) == "mm";
            RejectOthers(p, mm ? "mm" : "conv", mm ? [channels, image, filters, kernel] : [dimA, dimB]);
            var generator = mm ? DatasetGenerator.Matmul(p.GetValue(dimA), p.GetValue(dimB))
                               : DatasetGenerator.Conv(p.GetValue(channels), p.GetValue(image), p.GetValue(filters), p.GetValue(kernel));
            var folder = p.GetValue(output)!;
            var manifest = generator.Write(folder, p.GetValue(split), p.GetValue(seed));
            if (p.GetValue(json)) io.Stdout.WriteLine(GenJson(folder, manifest).ToJsonString(Options.JsonStyle));
            else io.Out.MarkupLineInterpolated($"wrote {manifest.Benchmarks.Length} {manifest.Kind} benchmarks to [bold]{Path.GetFullPath(folder)}[/] ({manifest.Train.Length} train, {manifest.Test.Length} test, seed {manifest.Seed})");
            return Program.Ok;
        }));
        return command;
    }

    static void RejectOthers(ParseResult p, string kind, Option<string?>[] others)
    {
        foreach (var o in others)
            if (p.GetResult(o) is not null) throw new DatasetSpecError($"{o.Name} does not apply to --kind {kind}");
    }

    static JsonObject GenJson(string folder, DatasetManifest m) => new()
    {
        ["out"] = Path.GetFullPath(folder), ["kind"] = m.Kind, ["count"] = m.Benchmarks.Length,
        ["train"] = m.Train.Length, ["test"] = m.Test.Length, ["seed"] = m.Seed, ["split"] = m.Split,
    };

    static Command List(Io io)
    {
        var json = Options.Json();
        var command = new Command("list", "List the named datasets, whether they are generated yet, and their sizes.") { json };
        command.SetAction(p => io.Guard(() =>
        {
            var rows = NamedDataset.All.Select(ListRow).ToList();
            if (p.GetValue(json)) io.Stdout.WriteLine(new JsonObject { ["datasets"] = new JsonArray([.. rows]) }.ToJsonString(Options.JsonStyle));
            else io.Out.Write(ListTable(rows));
            return Program.Ok;
        }));
        return command;
    }

    static JsonObject ListRow(NamedDataset d)
    {
        var manifest = d.Manifest();
        return new JsonObject
        {
            ["name"] = d.Name, ["kind"] = manifest.Kind, ["count"] = manifest.Benchmarks.Length, ["train"] = manifest.Train.Length,
            ["test"] = manifest.Test.Length, ["generated"] = d.IsGenerated, ["folder"] = d.Folder, ["description"] = d.Description,
        };
    }

    static Table ListTable(IEnumerable<JsonObject> rows)
    {
        var t = new Table().AddColumn("name").AddColumn("kind").AddColumn(new TableColumn("benchmarks").RightAligned())
            .AddColumn(new TableColumn("train").RightAligned()).AddColumn(new TableColumn("test").RightAligned()).AddColumn("generated").AddColumn("what");
        foreach (var r in rows)
            t.AddRow(Cells(r, "name", "kind", "count", "train", "test").Append(r["generated"]!.GetValue<bool>() ? "yes" : "no (on first use)").Append(Markup.Escape(r["description"]!.ToString())).ToArray());
        return t;
    }

    static IEnumerable<string> Cells(JsonObject row, params string[] keys) => keys.Select(k => Markup.Escape(row[k]!.ToString()));

    static Command Show(Io io)
    {
        var bench = new Option<string>("--bench") { Description = "A benchmark file (one written by 'dataset gen').", Required = true };
        var actions = new Option<string?>("--actions", "-a") { Description = "Comma-separated actions applied in order, e.g. split_4,down,vectorize." };
        var json = Options.Json();
        var command = new Command("show", "Apply actions to a benchmark one at a time and show the tree and the GFLOPS (quick timing, verified) after each.")
        {
            bench, actions, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            var b = Benchmark.ReadFile(p.GetValue(bench)!);
            var list = Actions.ParseList(p.GetValue(actions));
            var nests = Steps(b.Computation, list);
            var measured = new Dictionary<string, ShownStep>(); // a cursor move keeps the kernel: show its figures again
            var steps = nests.Select((n, i) => measured.TryGetValue(n.ScheduleKey, out var same)
                ? same with { Index = i, Action = list[i - 1].Name, Nest = n }
                : measured[n.ScheduleKey] = Step(n, i == 0 ? null : list[i - 1].Name, i)).ToList();
            if (p.GetValue(json)) io.Stdout.WriteLine(ShowJson(b, steps).ToJsonString(Options.JsonStyle));
            else PrintSteps(io.Out, b, steps);
            var wrong = steps.FirstOrDefault(s => !s.Verification.Passed);
            if (wrong is not null) io.Stderr.WriteLine($"internal error: step {wrong.Index} produced a wrong kernel: {wrong.Verification.Problem}");
            return wrong is null ? Program.Ok : Program.Failure;
        }));
        return command;
    }

    /// <summary>The initial nest and the nest after each action; an illegal action throws before anything is measured.</summary>
    static List<Nest> Steps(Computation c, IReadOnlyList<LoopAction> actions)
    {
        var nest = Nest.Initial(c);
        Transforms.ApplyAll(nest, actions); // names the failing step
        var nests = new List<Nest> { nest };
        foreach (var a in actions) nests.Add(nest = Transforms.Apply(nest, a));
        return nests;
    }

    sealed record ShownStep(int Index, string? Action, Nest Nest, Verification Verification, Measurement Measurement, bool Estimated);

    /// <summary>One step verified and timed as <c>run</c> does it, without the peers: a kernel too slow to run whole is
    /// estimated and checked on a slice.</summary>
    static ShownStep Step(Nest nest, string? action, int index)
    {
        var e = KernelReport.Run(nest, MeasureOptions.Quick, peers: false);
        return new ShownStep(index, action, nest, e.Verification, e.Measurement, e.Estimated);
    }

    static JsonObject ShowJson(Benchmark b, IEnumerable<ShownStep> steps) => new()
    {
        ["bench"] = b.Name, ["spec"] = b.Computation.ToString(), ["computation"] = b.Computation.Text,
        ["steps"] = new JsonArray([.. steps.Select(s => new JsonObject
        {
            ["step"] = s.Index, ["action"] = s.Action, ["schedule"] = s.Nest.Serialize(), ["tree"] = s.Nest.ToTree(),
            ["gflops"] = s.Measurement.Gflops, ["estimated"] = s.Estimated, ["verified"] = s.Verification.Passed,
        })]),
    };

    static void PrintSteps(IAnsiConsole o, Benchmark b, IEnumerable<ShownStep> steps)
    {
        o.MarkupLineInterpolated($"[bold]{b.Name}[/]: {b.Computation} ({b.Computation.Text})");
        foreach (var s in steps)
        {
            o.WriteLine();
            string check = s.Verification.Passed ? "verified" : $"WRONG: {s.Verification.Problem}";
            string estimated = s.Estimated ? " (estimated from a slice)" : "";
            o.MarkupLineInterpolated($"[yellow]{s.Index,2}. {s.Action ?? "(start)"}[/]  [bold]{s.Measurement.Gflops:F1} GFLOPS[/]{estimated}, {check}");
            o.Write(new Text(s.Nest.ToTree()));
        }
    }
}
