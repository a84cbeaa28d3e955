using System.CommandLine;
using System.Diagnostics;
using LoopTune.Measure;
using LoopTune.Models;
using LoopTune.Search;
using LoopTune.Store;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune model PATH.onnx|resnet18 [--budget 1s] [--out DIR] [--quick] [--retune] [--db PATH] [--run] [--resume] [--json]</c>: every
/// Conv, Gemm and MatMul of the model lowered to a contraction; each distinct contraction tuned once by <c>tune</c>'s default
/// search, or its schedule recalled from this machine's tuning record in the store (verified and re-timed), with its weights
/// cold (--weights, the default) or hot (<see cref="Measure.TimingContext"/>), each with records of its own; every
/// node then run with its schedule, checked against ONNX Runtime running that node alone and timed side by side with it
/// (<see cref="ModelBench"/>); with --run, the whole forward pass with those kernels checked against ONNX Runtime's and timed
/// next to it (<see cref="ModelEndToEnd"/>); the report (<see cref="ModelReport"/>) written atomically into --out. Each
/// node's row goes to the journal in --out as it is made (<see cref="RunJournal"/>): --resume after a stop or a kill runs
/// only the nodes it lacks.</summary>
static class ModelCommand
{
    /// <summary>The models known by name: the NuGet package that holds each, its version, and the file in it.</summary>
    public static readonly IReadOnlyDictionary<string, (string Package, string Version, string File)> Known =
        new Dictionary<string, (string, string, string)>(StringComparer.OrdinalIgnoreCase)
        {
            ["resnet18"] = ("Microsoft.ML.DnnImageFeaturizer.ResNet18", "0.24.0", "tools/DnnImageModels/ResNet18Onnx/ResNet18.onnx"),
        };

    /// <summary>The models known by name that are written here, with seeded random weights (<see cref="SyntheticResNet"/>),
    /// where no package serves the trained one: their speed is the real model's, their outputs are not; the file's name
    /// in the data folder's <c>models</c> folder, and its bytes.</summary>
    public static readonly IReadOnlyDictionary<string, (string File, Func<byte[]> Write)> Synthetic =
        new Dictionary<string, (string, Func<byte[]>)>(StringComparer.OrdinalIgnoreCase)
        {
            ["resnet50"] = ("resnet50-random-weights.onnx", () => SyntheticResNet.Bottleneck(SyntheticResNet.ResNet50)),
        };

    static IEnumerable<string> Names => Known.Keys.Concat(Synthetic.Keys);

    public static Command Create(Io io)
    {
        var model = new Argument<string>("model") { Description = $"An .onnx file, or a model known by name ({string.Join(", ", Known.Keys)}: restored from NuGet on first use; {string.Join(", ", Synthetic.Keys)}: its layers with seeded random weights, written into the data folder on first use, as fast as the trained model, its outputs not a classifier's)." };
        var budget = new Option<string>("--budget") { Description = "Time allowed to the search of each distinct contraction (0: the policy's greedy rollout alone).", DefaultValueFactory = _ => "1s" };
        var outDir = new Option<string>("--out") { Description = "The report folder (results.csv, summary.md, report.json, node_seconds.png); replaced when the report is complete.", DefaultValueFactory = _ => "model-report" };
        var quick = new Option<bool>("--quick") { Description = "Shorter timing (less precise)." };
        var retune = new Option<bool>("--retune") { Description = "Ignore the tuning records: tune every contraction and replace its record." };
        var db = SearchCommand.DbOption();
        var run = new Option<bool>("--run") { Description = "Then run the whole forward pass with the tuned kernels (BatchNormalization folded into the convolutions), check its output against ONNX Runtime's on the same input and time both side by side." };
        var weights = new Option<string>("--weights")
        {
            Description = "What the caches hold when each contraction is tuned and timed: cold (the default: its constant operand, the weights, read from one of many copies in turn, together twice the last-level cache, as a forward pass reads them) or hot (the same buffers every run, as the other commands tune). Each has its own tuning records.",
            DefaultValueFactory = _ => "cold",
        };
        weights.AcceptOnlyFromAmong("cold", "hot");
        var activations = new Option<string>("--activations")
        {
            Description = "With --run, how the forward pass holds its activations between convolutions: fastest (the default: both passes run, checked and timed side by side, the faster kept), blocks (in blocks of channels, read in place and stored by the kernels, each convolution tuned in that lowering too), or nchw (padded copies and write-backs; nothing more tuned).",
            DefaultValueFactory = _ => "fastest",
        };
        activations.AcceptOnlyFromAmong("fastest", "blocks", "nchw");
        var threads = Options.Threads("Threads each contraction is tuned and run on (an outer loop made parallel), and ONNX Runtime and oneDNN are given; in the forward pass the work around each kernel (padded copies, write-backs with the fused Add and Relu) the MaxPool and AveragePool nodes and a GlobalAveragePool of activations in blocks run on as many, the other operators (an unfused Relu, Add or BatchNormalization, a GlobalAveragePool of NCHW planes) on one");
        var json = Options.Json();
        var resume = Options.Resume();
        var command = new Command("model", "Tune every Conv, Gemm and MatMul of an ONNX model (each distinct shape once; a convolution in each of its lowerings, the fastest kept), check each node against ONNX Runtime running it alone, and time them side by side, with oneDNN.")
        {
            model, budget, outDir, quick, retune, db, run, weights, activations, threads, json, resume,
        };
        command.SetAction(p => io.Guard(() =>
        {
            var wall = Stopwatch.StartNew();
            Options.ApplyThreads(p, threads);
            string b = p.GetValue(budget)!;
            if (!TuneCommand.RolloutOnly(b)) _ = SearchBudget.Parse(b); // bad budgets before anything runs
            string path = Locate(p.GetValue(model)!, io.Stderr);
            var onnx = OnnxModel.Load(path);
            if (p.GetValue(run)) ModelEndToEnd.Check(onnx); // an op the forward pass cannot run refuses before anything is tuned
            var report = new ComparisonJob.ReportFolder(p.GetValue(outDir)!);
            // the forward pass's kernels prefetch blocks of weights that fit this machine's L1d (none when it is unknown)
            ContractionOp.PrefetchBlockBytes = (Machine.Current.Caches.L1dKib ?? 0) * 1024;
            try
            {
                using var store = new MeasurementStore(p.GetValue(db));
                var timing = p.GetValue(quick) ? MeasureOptions.Quick : MeasureOptions.Default;
                var settings = Options.JournalSettings(new Dictionary<string, string>
                {
                    ["model"] = Path.GetFullPath(path), ["nodes"] = $"{onnx.Nodes.Length}", ["--budget"] = b, ["--quick"] = p.GetValue(quick) ? "yes" : "no",
                    ["--retune"] = p.GetValue(retune) ? "yes" : "no", ["--db"] = store.Path, ["--weights"] = p.GetValue(weights)!,
                });
                using var journal = report.OpenJournal("model", settings, p.GetValue(resume));
                var kept = journal.Kept.Select(ModelRow.FromJson).ToDictionary(k => k.Index, k => k.Row);
                bool cold = p.GetValue(weights) == "cold";
                var bench = new ModelBench(b, timing, io.Stderr.WriteLine, store, p.GetValue(retune), io.Stderr.WriteLine, cold);
                var rows = Options.Journaled(io, journal, onnx.Nodes.Length, Options.ResumeCommand(p, resume), "the node under way is finished first",
                    stop => bench.Run(onnx, kept, (i, r) => journal.Append(r.ToJson(i)), stop));
                journal.Dispose();
                EndToEndJson? e2e = null;
                if (p.GetValue(run))
                {
                    // the convolutions again with their activations in blocks, in each likely block: more passes, the fastest kept
                    string held = p.GetValue(activations)!;
                    var linked = new List<IReadOnlyDictionary<LoopTune.Models.OnnxNode, ChosenKernel>>();
                    foreach (int block in held == "nchw" ? [] : bench.LinkedBlocks(onnx))
                    {
                        io.Stderr.WriteLine($"the convolutions with their input in blocks of {block} channels, for a pass whose activations stay in blocks:");
                        linked.Add(bench.Linked(onnx, block, io.Stderr.WriteLine));
                    }
                    e2e = ModelEndToEnd.Run(onnx, bench.Chosen, timing, io.Stderr.WriteLine, linked, held == "blocks");
                }
                var result = ModelReport.ToJson(path, report.Target, b, rows, bench.Recalled, bench.Searched, wall.Elapsed.TotalSeconds, store.Path, e2e, p.GetValue(weights)!);
                report.Fill(temp => ModelReport.Write(temp, result, rows, onnx.ToString()));
                report.Commit();
                if (p.GetValue(json)) io.Stdout.WriteLine(ModelReport.Serialize(result));
                else Print(io, result);
                if (!result.Verified)
                {
                    io.Stderr.WriteLine($"internal error: not every tuned node matches ONNX Runtime: {string.Join(", ", rows.Where(r => r.Tuned && !r.Verified).Select(r => r.Node))}");
                    return Program.Failure;
                }
                if (e2e is not null && !ModelEndToEnd.Passed(e2e))
                {
                    io.Stderr.WriteLine(FormattableString.Invariant($"internal error: the forward pass does not match ONNX Runtime's: max |ours - ONNX Runtime's| {e2e.MaxAbsError:G3}, bound {e2e.Bound:G3}{(e2e.FoldsVerified ? "" : "; a folded convolution differs from the convolution followed by its BatchNormalization")}"));
                    return Program.Failure;
                }
                return Program.Ok;
            }
            finally { report.Abandon(); }
        }));
        return command;
    }

    static void Print(Io io, ModelJson r)
    {
        io.Stdout.WriteLine($"{Path.GetFileName(r.Model)}: {r.Tuned} node(s) tuned, {r.NotTuned} not; on {Machine.Current.Describe()}");
        foreach (var o in r.Ops.Where(o => o.Tuned))
            io.Stdout.WriteLine(FormattableString.Invariant($"  {o.Node,-24} {o.Op,-5} {o.Lowering,-8} {o.Gflops,8:F1} GFLOPS {o.Seconds * 1e3,9:F3} ms   ONNX Runtime {(o.OnnxruntimeSeconds is { } s ? $"{s * 1e3,9:F3} ms" : o.OnnxruntimeNote)}   {(o.Verified ? "verified" : "NOT verified")}"));
        io.Stdout.WriteLine(FormattableString.Invariant($"total of the tuned nodes: ours {r.OpsSeconds * 1e3:F3} ms, ONNX Runtime {(r.OnnxruntimeOpsSeconds is { } t ? $"{t * 1e3:F3} ms" : "n/a")}"));
        if (r.EndToEnd is { } e2e) io.Stdout.WriteLine(ModelEndToEnd.Line(e2e));
        io.Stdout.WriteLine(FormattableString.Invariant($"{r.ContractionsRecalled} distinct contraction(s) recalled from tuning records, {r.ContractionsTuned} tuned, with {r.Weights} weights; {r.Seconds:F1} s"));
        io.Stdout.WriteLine($"report: {r.Out}");
    }

    /// <summary>The file of <paramref name="model"/>: a known name's file in the NuGet package cache (restored first when
    /// missing), else the path as given (<see cref="OnnxModel.Load"/> names it if it is no model). A name that is neither
    /// a known model nor a file is an <see cref="OnnxError"/> naming it.</summary>
    internal static string Locate(string model, TextWriter log)
    {
        if (File.Exists(model) || Directory.Exists(model)) return model;
        if (Known.TryGetValue(model, out var known)) return Restore(model, known.Package, known.Version, known.File, log);
        if (Synthetic.TryGetValue(model, out var synthetic)) return Written(model, synthetic.File, synthetic.Write, log);
        bool looksLikePath = model.Contains('/', StringComparison.Ordinal) || model.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);
        throw new OnnxError(model, looksLikePath
            ? "no such file"
            : $"unknown model name (known: {string.Join(", ", Names)}), and no file of that name");
    }

    /// <summary>The synthetic model's file in the data folder, written (atomically) when it is not there yet.</summary>
    static string Written(string name, string file, Func<byte[]> write, TextWriter log)
    {
        string path = Path.Combine(DataFolder.Root, "models", file);
        if (File.Exists(path)) return path;
        log.WriteLine($"{name}: writing its layers with seeded random weights into {path} (first use; its speed is the trained model's, its outputs are not)");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.WriteBytes(path, write());
        return path;
    }

    /// <summary>The NuGet package cache: $NUGET_PACKAGES, else ~/.nuget/packages.</summary>
    static string PackageRoot => Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } root
        ? root
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>The file in the package, restored by <c>dotnet restore</c> of a temporary project with a PackageDownload of it
    /// when the cache lacks it.</summary>
    static string Restore(string name, string package, string version, string file, TextWriter log)
    {
        string path = Path.Combine(PackageRoot, package.ToLowerInvariant(), version, file);
        if (File.Exists(path)) return path;
        log.WriteLine($"{name}: restoring {package} {version} into {PackageRoot} (first use)");
        string folder = Directory.CreateTempSubdirectory("looptune-restore-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(folder, "restore.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
                  <ItemGroup><PackageDownload Include="{package}" Version="[{version}]" /></ItemGroup>
                </Project>
                """);
            string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host
                : Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";
            var start = new ProcessStartInfo(dotnet, ["restore", Path.Combine(folder, "restore.csproj")])
            {
                RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = folder,
            };
            string output;
            int code;
            try
            {
                using var process = Process.Start(start)!;
                var err = process.StandardError.ReadToEndAsync();
                output = process.StandardOutput.ReadToEnd() + err.Result;
                process.WaitForExit();
                code = process.ExitCode;
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new OnnxError(name, $"cannot run '{dotnet} restore' to fetch {package} {version}: {e.Message}", e);
            }
            if (!File.Exists(path))
            {
                string tail = string.Join(" / ", output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(3));
                throw new OnnxError(name, $"restoring {package} {version} failed (dotnet restore exit {code}; {path} is missing): {tail}");
            }
            return path;
        }
        finally
        {
            try { Directory.Delete(folder, recursive: true); }
            catch (IOException) { /* best effort */ }
        }
    }
}
