using System.ComponentModel;
using System.Diagnostics;
using System.Text.Json.Nodes;
using LoopTune.Datasets;
using LoopTune.Ir;
using LoopTune.Learning;
using LoopTune.Learning.Logging;
using LoopTune.Learning.Nn;
using LoopTune.Tests.Store;
using LoopTune.Tests.TestUtil;
using Xunit.Abstractions;

namespace LoopTune.Tests.Learning;

/// <summary>A tiny dataset of small matmuls (8..24, so that timing a kernel is cheap) and, on first use, a tiny trained
/// Ape-X DQN run whose policy the policy-reading tests use.</summary>
public sealed class TrainCliData : IDisposable
{
    readonly TempFolder temp = new("looptune-train-cli-data");
    readonly Lazy<string> run;

    public TrainCliData()
    {
        DatasetGenerator.Matmul("8:24:8,8:24:8", "8:24:8,8:24:8").Write(Dataset, 0.8, 0);
        run = new Lazy<string>(() =>
        {
            var folder = temp["run"];
            var (code, _, err) = TestHome.Run(TrainCliTests.Train(Dataset, "apex_dqn", folder, "--iter", "2", "--eval-size", "0"));
            Assert.True(code == 0, err);
            return folder;
        });
    }

    public string Dataset => temp["ds"];

    /// <summary>A finished two-iteration apex_dqn run folder (trained once, then only read).</summary>
    public string Run => run.Value;

    public void Dispose() => temp.Dispose();
}

/// <summary><c>looptune train</c>, <c>looptune tune</c> and <c>compare-searches --methods policy</c> end to end on a tiny
/// dataset: the run folder (checkpoints, curves, evaluation), a policy read back by tune and compare-searches, resumes
/// (also after a kill -9 of a separate process), and bad input.</summary>
[Trait("Category", "Integration")]
public sealed class TrainCliTests(TrainCliData data, ITestOutputHelper output) : IClassFixture<TrainCliData>, IDisposable
{
    static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
    readonly TempFolder temp = new("looptune-train-cli");

    public void Dispose() => temp.Dispose();

    static (int Code, string Out, string Err) Run(params string[] args) => TestHome.Run(args);

    /// <summary>Environment steps per iteration with <see cref="Train"/>'s settings (one worker, one actor).</summary>
    static int StepsPerIteration(string trainer) => trainer == "ppo" ? 8 : 5;

    /// <summary>The arguments of a small, fast training: one worker and one actor, 4-step episodes, a 16x16 network,
    /// 5 (DQN) or 8 (PPO) environment steps per iteration; DQN learns from its 8th transition on.</summary>
    internal static string[] Train(string dataset, string trainer, string folder, params string[] more) =>
    [
        "train", "--dataset", dataset, "--trainer", trainer, "--workers", "1", "--steps", "4", "--out", folder,
        "--set", "Hidden=[16,16]", "--set", "ActorsPerWorker=1",
        .. trainer == "ppo" ? new[] { "--set", "RolloutSteps=8", "--set", "Minibatches=2" }
            : ["--set", "RolloutFragment=5", "--set", "LearningStarts=8", "--set", "BatchSize=8"],
        .. more,
    ];

    static string LatestName(string run) => File.ReadAllText(Path.Combine(run, "checkpoints", "latest")).Trim();

    static JsonObject State(string checkpoint) => JsonNode.Parse(File.ReadAllText(Path.Combine(checkpoint, "state.json")))!.AsObject();

    static bool IsEvalRow(MetricRow r) => r.Values.Count > 0 && r.Values.Keys.All(k => k.StartsWith("eval_", StringComparison.Ordinal));

    static void StrictlyIncreasing(IReadOnlyList<long> steps)
    {
        for (int i = 1; i < steps.Count; i++) Assert.True(steps[i] > steps[i - 1], $"steps {string.Join(",", steps)} do not increase at {i}");
    }

    /// <summary>Checks a complete checkpoint folder: both safetensors files load, state.json parses; returns the state.</summary>
    static JsonObject CompleteCheckpoint(string checkpoint, string trainer)
    {
        foreach (var file in new[] { "model.safetensors", "state.json", "policy.safetensors" })
            Assert.True(File.Exists(Path.Combine(checkpoint, file)), $"{checkpoint} has no {file}");
        var (model, modelMeta) = SafeTensors.Load(Path.Combine(checkpoint, "model.safetensors"));
        Assert.NotEmpty(model);
        Assert.Equal(trainer, modelMeta["looptune.trainer"]);
        var (policy, meta) = SafeTensors.Load(Path.Combine(checkpoint, "policy.safetensors"));
        Assert.NotEmpty(policy);
        Assert.Equal("looptune-policy/1", meta["looptune.format"]);
        var state = State(checkpoint);
        Assert.Equal(trainer, state["trainer"]!.GetValue<string>());
        Assert.Equal(state["iterations"]!.GetValue<int>().ToString(System.Globalization.CultureInfo.InvariantCulture), meta["looptune.iterations"]);
        Assert.Equal(state["env_steps"]!.GetValue<long>().ToString(System.Globalization.CultureInfo.InvariantCulture), meta["looptune.env_steps"]);
        Assert.Equal($"ckpt-{state["iterations"]!.GetValue<int>():D6}", Path.GetFileName(checkpoint));
        return state;
    }

    Task TfEventsCheck(string path, params string[] tags) => TfEvents.Check(path, output, tags);

    // ---- train, tune, resume ----

    [Theory]
    [InlineData("apex_dqn")]
    [InlineData("ppo")]
    public async Task Train_writes_a_complete_run_that_tune_reads_and_a_resume_continues(string trainer)
    {
        int per = StepsPerIteration(trainer);
        var folder = temp["run"];
        var (code, stdout, err) = Run(Train(data.Dataset, trainer, folder, "--iter", "3", "--eval-size", "2", "--eval-time", "1s", "--json"));
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(stdout)!.AsObject();
        Assert.Equal(folder, json["run"]!.GetValue<string>());
        Assert.Equal(trainer, json["trainer"]!.GetValue<string>());
        Assert.Equal(3, json["iterations"]!.GetValue<int>());
        Assert.Equal(3 * per, json["env_steps"]!.GetValue<long>());
        Assert.Null(json["resumed_from"]);
        Assert.Equal(2, json["eval"]!["benchmarks"]!.GetValue<int>());

        // run.json and the checkpoint named by checkpoints/latest
        var run = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "run.json")))!.AsObject();
        Assert.Equal(trainer, run["Trainer"]!.GetValue<string>());
        Assert.Equal("ckpt-000003", LatestName(folder));
        var checkpoint = Path.Combine(folder, "checkpoints", "ckpt-000003");
        Assert.Equal(checkpoint, json["checkpoint"]!.GetValue<string>());
        Assert.Equal(Path.Combine(checkpoint, "policy.safetensors"), json["policy"]!.GetValue<string>());
        var state = CompleteCheckpoint(checkpoint, trainer);
        Assert.Equal((3, 3L * per), (state["iterations"]!.GetValue<int>(), state["env_steps"]!.GetValue<long>()));
        Assert.Equal(new[] { 16, 16 }, state["config"]!["Hidden"]!.AsArray().Select(h => h!.GetValue<int>()));

        // metrics.csv: one row per iteration, then the final evaluation's row at the last step
        var rows = TrainingLog.ReadCsv(Path.Combine(folder, "metrics.csv"));
        var iterationRows = rows.Where(r => !IsEvalRow(r)).ToList();
        Assert.Equal([per, 2L * per, 3L * per], iterationRows.Select(r => r.Step));
        Assert.All(iterationRows, r => Assert.Contains("episode_reward", r.Values.Keys));
        Assert.Equal(4, rows.Count);
        Assert.True(IsEvalRow(rows[^1]), "the last row is not the evaluation's");
        Assert.Equal(3L * per, rows[^1].Step);
        Assert.Equal(json["eval"]!["geomean_gflops"]!.GetValue<double>(), rows[^1].Values["eval_gflops_geomean"]);

        // TensorBoard, charts, eval.json
        var events = Directory.GetFiles(Path.Combine(folder, "tb"));
        Assert.Single(events);
        Assert.Matches(@"^events\.out\.tfevents\.", Path.GetFileName(events[0]));
        await TfEventsCheck(events[0], "episode_reward", "eval_gflops_geomean");
        var png = File.ReadAllBytes(Path.Combine(folder, "charts", "curves.png"));
        Assert.Equal(PngSignature, png[..8]);
        Assert.Contains(Path.Combine(folder, "charts", "curves.png"), json["charts"]!.AsArray().Select(c => c!.GetValue<string>()));
        var eval = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "eval.json")))!.AsObject();
        Assert.Equal((trainer, 3), (eval["trainer"]!.GetValue<string>(), eval["iterations"]!.GetValue<int>()));
        var benchmarks = eval["benchmarks"]!.AsArray();
        Assert.Equal(2, benchmarks.Count);
        Assert.All(benchmarks, b => Assert.True(b!["best_gflops"]!.GetValue<double>() >= b["start_gflops"]!.GetValue<double>() && b["start_gflops"]!.GetValue<double>() > 0));

        // tune reads the run folder's policy; its actions replay to the search's best it prints
        (code, stdout, err) = Run("tune", "--spec", "mm 16 16 16", "--policy", folder, "--json", "--quick", "--no-peers");
        Assert.True(code == 0, err);
        var tune = JsonNode.Parse(stdout)!.AsObject();
        Assert.True(tune["verified"]!.GetValue<bool>());
        Assert.Equal(Path.Combine(checkpoint, "policy.safetensors"), tune["policy"]!.GetValue<string>());
        var actions = tune["actions"]!.AsArray().Select(a => Actions.Get(a!.GetValue<string>())).ToList();
        // the policy's episode length, plus the finish's cache-blocking and layout variants of its fastest (one id each,
        // measured only while time is left: a CI run once ended on a 5-step path)
        Assert.InRange(tune["steps"]!.AsArray().Count, 0, 4 + 2);
        Assert.Equal(tune["search_schedule"]!.GetValue<string>(), Transforms.ApplyAll(Nest.Initial(Computation.Parse("mm 16 16 16")), actions).Serialize());
        // the answer is the search's best unless a rival (the machine's tile) beat it
        if (tune["schedule"]!.GetValue<string>() != tune["search_schedule"]!.GetValue<string>()) Assert.Contains("beaten by", tune["method"]!.GetValue<string>());
        Assert.True(tune["policy_seconds"]!.GetValue<double>() >= 0, tune.ToJsonString());
        Assert.True(tune["measure_seconds"]!.GetValue<double>() >= 0, tune.ToJsonString());
        Assert.True(tune["measured"]!.GetValue<int>() >= 1);

        // a resume continues from iteration 3: the rows before are kept as they were, the new ones follow
        (code, stdout, err) = Run("train", "--dataset", data.Dataset, "--trainer", trainer, "--workers", "1", "--out", folder, "--resume",
            "--iter", "5", "--eval-size", "1", "--eval-time", "1s", "--json");
        Assert.True(code == 0, err);
        json = JsonNode.Parse(stdout)!.AsObject();
        Assert.Equal(checkpoint, json["resumed_from"]!.GetValue<string>());
        Assert.Equal((5, 5L * per), (json["iterations"]!.GetValue<int>(), json["env_steps"]!.GetValue<long>()));
        Assert.Equal("ckpt-000005", LatestName(folder));
        state = CompleteCheckpoint(Path.Combine(folder, "checkpoints", "ckpt-000005"), trainer);
        Assert.Equal((5, 5L * per), (state["iterations"]!.GetValue<int>(), state["env_steps"]!.GetValue<long>()));
        Assert.Equal(new[] { 16, 16 }, state["config"]!["Hidden"]!.AsArray().Select(h => h!.GetValue<int>())); // run.json's --set
        Assert.True(Directory.Exists(checkpoint), "the previous checkpoint is gone");
        var after = TrainingLog.ReadCsv(Path.Combine(folder, "metrics.csv"));
        var afterIterations = after.Where(r => !IsEvalRow(r)).ToList();
        Assert.Equal([per, 2L * per, 3L * per, 4L * per, 5L * per], afterIterations.Select(r => r.Step));
        StrictlyIncreasing([.. afterIterations.Select(r => r.Step)]);
        Assert.Equal([3L * per, 5L * per], after.Where(IsEvalRow).Select(r => r.Step));
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.Equal((rows[i].Step, rows[i].Time), (after[i].Step, after[i].Time));
            Assert.Equal(rows[i].Values.OrderBy(kv => kv.Key, StringComparer.Ordinal), after[i].Values.OrderBy(kv => kv.Key, StringComparer.Ordinal));
        }
        Assert.All(after.Skip(rows.Count), r => Assert.True(r.Time >= rows[^1].Time));
        events = Directory.GetFiles(Path.Combine(folder, "tb"));
        Assert.Equal(2, events.Length);
        foreach (var file in events) await TfEventsCheck(file, "episode_reward");
    }

    // ---- a killed run resumes from its last complete checkpoint ----

    static Process StartTraining(IEnumerable<string> args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "looptune.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing");
        var start = new ProcessStartInfo(DotnetHost()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        string[] all = ["exec", dll, .. args];
        foreach (var a in all) start.ArgumentList.Add(a);
        return Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet");
    }

    static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host
        : Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";

    /// <summary>The iterations of the checkpoint checkpoints/latest names, or null when there is none (yet) or it is
    /// being replaced while read.</summary>
    static int? LatestIterations(string run)
    {
        try { return RunFolder.LatestCheckpoint(run) is { } c ? State(c)["iterations"]!.GetValue<int>() : null; }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException or UnauthorizedAccessException) { return null; }
    }

    [Fact]
    public async Task A_run_killed_with_sigkill_resumes_from_its_last_complete_checkpoint()
    {
        var folder = temp["killed"];
        int per = StepsPerIteration("apex_dqn");
        using (var process = StartTraining(Train(data.Dataset, "apex_dqn", folder, "--iter", "100000", "--checkpoint-every", "1s", "--eval-size", "0")))
        {
            var stderr = process.StandardError.ReadToEndAsync();
            var killedOut = process.StandardOutput.ReadToEndAsync();
            var clock = Stopwatch.StartNew();
            while (LatestIterations(folder) is not >= 2)
            {
                if (process.HasExited) Assert.Fail($"train exited ({process.ExitCode}) before a checkpoint: {await stderr}");
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), "no checkpoint with 2 iterations within 60 s");
                await Task.Delay(100);
            }
            process.Kill(entireProcessTree: true); // SIGKILL on Linux: no finally block, no final checkpoint
            await process.WaitForExitAsync();
            output.WriteLine($"killed after {clock.Elapsed.TotalSeconds:F1} s: {await stderr}{await killedOut}");
            Assert.NotEqual(0, process.ExitCode);
        }

        // the latest checkpoint is complete; a leftover temporary folder or file is never the latest
        string name = LatestName(folder);
        Assert.Matches(@"^ckpt-\d{6}$", name);
        var checkpoint = Path.Combine(folder, "checkpoints", name);
        Assert.Equal(checkpoint, RunFolder.LatestCheckpoint(folder));
        var state = CompleteCheckpoint(checkpoint, "apex_dqn");
        int iterations = state["iterations"]!.GetValue<int>();
        long envSteps = state["env_steps"]!.GetValue<long>();
        Assert.True(iterations >= 2, $"latest checkpoint at iteration {iterations}");
        Assert.Equal((long)iterations * per, envSteps);
        foreach (var entry in Directory.GetFileSystemEntries(Path.Combine(folder, "checkpoints")).Select(Path.GetFileName))
            Assert.Matches(@"^(latest|ckpt-\d{6}|\.tmp-ckpt-\d{6}-\d+|\.latest\.tmp-\d+-[0-9a-f]{32})$", entry);
        var before = TrainingLog.ReadCsv(Path.Combine(folder, "metrics.csv"));
        Assert.True(before.Count >= iterations, $"{before.Count} rows for a checkpoint at iteration {iterations}");

        var (code, stdout, err) = Run("train", "--dataset", data.Dataset, "--workers", "1", "--out", folder, "--resume",
            "--iter", (iterations + 2).ToString(System.Globalization.CultureInfo.InvariantCulture), "--eval-size", "0", "--json");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(stdout)!.AsObject();
        Assert.Equal(checkpoint, json["resumed_from"]!.GetValue<string>());
        Assert.Equal(iterations + 2, json["iterations"]!.GetValue<int>());
        var resumed = RunFolder.LatestCheckpoint(folder)!;
        state = CompleteCheckpoint(resumed, "apex_dqn");
        Assert.Equal((iterations + 2, (iterations + 2L) * per), (state["iterations"]!.GetValue<int>(), state["env_steps"]!.GetValue<long>()));

        // the rows the killed process logged after its checkpoint are dropped: one row per iteration, steps increasing
        var rows = TrainingLog.ReadCsv(Path.Combine(folder, "metrics.csv"));
        StrictlyIncreasing([.. rows.Select(r => r.Step)]);
        Assert.Equal(Enumerable.Range(1, iterations + 2).Select(i => (long)i * per), rows.Select(r => r.Step));
        Assert.Equal(before.Where(r => r.Step <= envSteps).Select(r => r.Time), rows.Take(iterations).Select(r => r.Time));
    }

    // ---- compare-searches with the policy ----

    [Fact]
    public void Compare_searches_runs_the_trained_policy_on_every_benchmark()
    {
        var report = temp["report"];
        var (code, stdout, err) = Run("compare-searches", "--dataset", data.Dataset, "--count", "2", "--methods", "policy,greedy1",
            "--policy", data.Run, "--budget", "1s", "--quick", "--out", report, "--json");
        Assert.True(code == 0, err);
        var benchmarks = JsonNode.Parse(stdout)!["benchmarks"]!.AsArray().Select(b => b!.GetValue<string>()).ToList();
        Assert.Equal(2, benchmarks.Count);
        var lines = File.ReadAllLines(Path.Combine(report, "results.csv"));
        var header = lines[0].Split(',');
        Assert.Equal(("benchmark", "method"), (header[0], header[1]));
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToList();
        Assert.Equal(2 * 2, rows.Count);
        Assert.Equal(benchmarks.Order(), rows.Where(r => r[1] == "policy").Select(r => r[0]).Order());
        Assert.Equal(benchmarks.Order(), rows.Where(r => r[1] == "greedy1").Select(r => r[0]).Order());
        Assert.All(rows, r => Assert.Equal("true", r[^7])); // verified, then best_library, its GFLOPS and ratio, action_space, machine, estimated
    }

    // ---- bad input ----

    [Theory]
    [InlineData("unknown trainer 'sarsa'", "--trainer", "sarsa")]
    [InlineData("'/nonexistent-looptune-dataset' is neither a dataset folder nor a named dataset", "--dataset", "/nonexistent-looptune-dataset")]
    [InlineData("--set NoSuchField: ApexDqnConfig has no such field", "--set", "NoSuchField=1")]
    [InlineData("--set NoSuchField: PpoConfig has no such field", "--trainer", "ppo", "--set", "NoSuchField=1")]
    [InlineData("is not a training run (no run.json)", "--resume")]
    public void Train_rejects_bad_input_and_makes_no_run_folder(string message, params string[] args)
    {
        var folder = temp["new-run"];
        var dataset = args.Contains("--dataset") ? [] : new[] { "--dataset", data.Dataset };
        var (code, stdout, err) = Run(["train", .. dataset, "--workers", "1", "--iter", "1", "--out", folder, .. args]);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.Equal("", stdout);
        Assert.False(Directory.Exists(folder), $"{folder} was made");
    }

    [Fact]
    public void Train_resume_on_an_empty_folder_is_an_error_and_leaves_it_empty()
    {
        var folder = Directory.CreateDirectory(temp["empty"]).FullName;
        var (code, stdout, err) = Run("train", "--dataset", data.Dataset, "--workers", "1", "--iter", "1", "--out", folder, "--resume");
        Assert.Equal(2, code);
        Assert.Contains($"--resume: {folder} is not a training run (no run.json)", err);
        Assert.Equal("", stdout);
        Assert.Empty(Directory.GetFileSystemEntries(folder));
    }

    [Fact]
    public void Train_into_a_folder_that_is_not_empty_needs_resume_and_leaves_it_untouched()
    {
        var folder = Directory.CreateDirectory(temp["used"]).FullName;
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "keep me");
        var (code, stdout, err) = Run("train", "--dataset", data.Dataset, "--workers", "1", "--iter", "1", "--out", folder);
        Assert.Equal(2, code);
        Assert.Contains($"--out {folder} is not empty", err);
        Assert.Contains("--resume", err);
        Assert.Equal("", stdout);
        Assert.Equal([Path.Combine(folder, "notes.txt")], Directory.GetFileSystemEntries(folder));
        Assert.Equal("keep me", File.ReadAllText(Path.Combine(folder, "notes.txt")));
    }

    static void TuneRejects(string policy, params string[] messages)
    {
        var (code, stdout, err) = Run("tune", "--spec", "mm 16 16 16", "--policy", policy, "--json", "--quick", "--no-peers");
        Assert.True(code == 2, $"exit {code}: {err}");
        foreach (var m in messages) Assert.Contains(m, err);
        Assert.Equal("", stdout);
    }

    [Fact]
    public void Tune_rejects_a_missing_policy() => TuneRejects("/nonexistent-looptune-policy", "policy '/nonexistent-looptune-policy' does not exist");

    [Fact]
    public void Tune_rejects_a_file_that_is_not_safetensors()
    {
        var file = temp["garbage.safetensors"];
        var bytes = new byte[256];
        new Random(5).NextBytes(bytes);
        File.WriteAllBytes(file, bytes);
        TuneRejects(file, $"policy {file} cannot be read");
    }

    [Fact]
    public void Tune_rejects_a_safetensors_file_that_is_not_a_policy()
    {
        var file = temp["plain.safetensors"];
        SafeTensors.Save(file, [new NamedTensor("w", [2, 3], [1, 2, 3, 4, 5, 6])], new Dictionary<string, string> { ["note"] = "not a policy" });
        Assert.Single(SafeTensors.Load(file).Tensors); // a valid safetensors file
        TuneRejects(file, $"{file} is a safetensors file but not a LoopTune policy");
    }

    [Fact]
    public void Tune_rejects_a_policy_whose_tensor_has_another_shape_and_names_the_tensor()
    {
        var policy = Path.Combine(RunFolder.LatestCheckpoint(data.Run)!, Policy.FileName);
        var (tensors, meta) = SafeTensors.Load(policy);
        var first = tensors.First(t => t.Shape.Length == 2 && t.Shape[0] != t.Shape[1]);
        var file = temp["reshaped.safetensors"];
        // the same numbers, transposed shape: only the shape check can tell
        SafeTensors.Save(file, [.. tensors.Select(t => t == first ? t with { Shape = [t.Shape[1], t.Shape[0]] } : t)], meta);
        Assert.Equal(meta, SafeTensors.Load(file).Metadata);
        TuneRejects(file, $"'{first.Name}' of shape [{first.Shape[1]}, {first.Shape[0]}]");
        Assert.Equal(first.Shape, Policy.Load(policy).Network.Parameters.First(p => p.Name == first.Name).Shape); // the original loads
    }

    [Theory]
    [InlineData("policy '/nonexistent-looptune-policy' does not exist", "policy", "/nonexistent-looptune-policy")]
    [InlineData("unknown method 'policy_top99'", "policy_top99", "default")]
    [InlineData("unknown method 'policy_top1'", "greedy1,policy_top1", "default")]
    [InlineData("unknown search method 'nope'", "policy,nope", "default")]
    public void Compare_searches_rejects_a_bad_policy_method_before_making_a_report(string message, string methods, string policy)
    {
        var report = temp["report"];
        var (code, stdout, err) = Run("compare-searches", "--dataset", data.Dataset, "--count", "1", "--methods", methods, "--policy", policy,
            "--budget", "1s", "--quick", "--out", report);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.Equal("", stdout);
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }
}

/// <summary>The public tfevents_check.py (a copy is in this folder), run on an event file.</summary>
static class TfEvents
{
    /// <summary>Runs the checker on an event file: exit 0 and every tag listed; its output. Without python3 the check fails,
    /// saying so (<c>scripts/setup.sh</c> installs it): a test that checked nothing must not pass.</summary>
    public static async Task<string> Check(string path, ITestOutputHelper output, params string[] tags)
    {
        string script = Path.Combine(AppContext.BaseDirectory, "Learning", "tfevents_check.py");
        Assert.True(File.Exists(script), $"{script} is missing (copied to the output by the test project)");
        var start = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(path);
        Process python;
        try { python = Process.Start(start)!; }
        catch (Win32Exception)
        {
            output.WriteLine("python3 is not on PATH: tfevents_check.py not run");
            throw new Xunit.Sdk.XunitException("python3 is not on PATH, so the event file was not checked with tfevents_check.py (bash scripts/setup.sh installs it)");
        }
        using (python)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var stdoutTask = python.StandardOutput.ReadToEndAsync(timeout.Token);
            var stderrTask = python.StandardError.ReadToEndAsync(timeout.Token);
            await python.WaitForExitAsync(timeout.Token);
            string stdout = await stdoutTask, stderr = await stderrTask;
            Assert.True(python.ExitCode == 0, $"tfevents_check.py {path}: exit {python.ExitCode}: {stdout}{stderr}");
            foreach (var tag in tags) Assert.Contains(tag, stdout);
            return stdout;
        }
    }
}
