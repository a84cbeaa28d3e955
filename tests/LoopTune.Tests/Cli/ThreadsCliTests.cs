using System.Text.Json.Nodes;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.Jit;
using LoopTune.Tests.TestUtil;
using static LoopTune.Tests.Models.OnnxTestModels;

namespace LoopTune.Tests.Cli;

/// <summary>--threads on the commands: its parsing and bad input, and runs at two threads whose kernels and libraries still
/// compute the reference's result. With the parallel kernels' tests: they keep both cores busy.</summary>
[Trait("Category", "Integration")]
[Collection(nameof(AllCores))]
public sealed class ThreadsCliTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => TestHome.Run(args);

    [Theory]
    [InlineData("x")]
    [InlineData("1.5")]
    [InlineData("")]
    public void A_thread_count_that_is_not_a_number_or_all_is_bad_input(string threads)
    {
        foreach (var args in new[] { new[] { "tune", "--spec", "mm 8 8 8", "--budget", "0" }, ["search", "--spec", "mm 8 8 8", "-m", "random"], ["bench", "--scaling-only"] })
        {
            var (code, output, err) = Run([.. args, "--threads", threads]);
            Assert.Equal(2, code);
            Assert.Contains($"--threads must be a number from 1 to {ThreadCountError.Max} (the cores this process may use) or 'all'; got '{threads}'", err);
            Assert.Equal("", output);
        }
    }

    [Fact]
    public void Too_many_threads_and_a_scaling_table_without_counts_are_bad_input()
    {
        var (code, _, err) = Run("compare-searches", "--dataset", "mm64_256_16_range", "--out", Path.Combine(Path.GetTempPath(), "never"), "--threads", "9999");
        Assert.Equal(2, code);
        Assert.Contains($"threads must be from 1 to {ThreadCountError.Max}", err);
        (code, _, err) = Run("bench", "--scaling-only");
        Assert.Equal(2, code);
        Assert.Contains("--scaling-only needs --threads", err);
        (code, _, err) = Run("train", "--dataset", "mm64_256_16_range", "--out", Path.Combine(Path.GetTempPath(), "never"), "--threads", "all", "--workers", "2");
        if (ThreadCountError.Max >= 2)
        {
            Assert.Equal(2, code);
            Assert.Contains("workers of", err);
        }
    }

    [Fact]
    public void Run_at_all_threads_times_the_kernel_and_every_library_on_them_and_checks_them()
    {
        int n = ThreadCountError.Max;
        var (code, output, err) = Run("run", "mm 64 64 64", "--schedule", "m:8p n:4 k:64 m:8u n:16v", "--threads", "all", "--quick", "--json");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!;
        Assert.True(json["verified"]!.GetValue<bool>());
        Assert.Equal(n, json["threads"]!.GetValue<int>());
        foreach (var (key, problem) in json["peer_problems"]!.AsObject())
            Assert.False(problem?.GetValue<string>().StartsWith("wrong result", StringComparison.Ordinal) ?? false, $"{key}: {problem}");
    }

    [Fact]
    public void Compare_searches_on_a_localhost_cluster_at_two_threads_measures_parallel_schedules_on_a_worker_with_its_team()
    {
        if (ThreadCountError.Max < 2) return;
        using var temp = new TempFolder("looptune-cluster-threads");
        LoopTune.Datasets.DatasetGenerator.Matmul("16|24,16", "16,16|24").Write(temp["ds"], 0.5, 0);
        var (code, output, err) = Run("compare-searches", "--dataset", temp["ds"], "--split", "train", "--count", "2", "--methods", "greedy1",
            "--budget", "2s", "--max-evaluations", "6", "--quick", "--cluster", "localhost", "--threads", "2", "--db", temp["store.db"], "--out", temp["report"], "--json");
        Assert.True(code == 0, err);
        Assert.Contains("1 worker(s)", err); // two cores: one worker, its team on the other
        Assert.Equal(2, JsonNode.Parse(output)!["threads"]!.GetValue<int>());
        var csv = File.ReadAllLines(Path.Combine(temp["report"], "results.csv"));
        string[] header = csv[0].Split(',');
        var rows = csv.Skip(1).Select(l => l.Split(',')).ToList();
        Assert.Equal(2, rows.Count);
        Assert.All(rows, r => Assert.Equal("true", r[Array.IndexOf(header, "verified")]));
        // the worker measured at two threads: every figure the searches stored is under the two-thread runtime key
        using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={temp["store.db"]};Mode=ReadOnly");
        db.Open();
        using var query = db.CreateCommand();
        query.CommandText = "SELECT DISTINCT runtime FROM measurements";
        using var reader = query.ExecuteReader();
        var runtimes = new List<string>();
        while (reader.Read()) runtimes.Add(reader.GetString(0));
        Assert.Equal([LoopTune.Store.MeasurementStore.RuntimeAt(2)], runtimes);
    }

    [Fact]
    public async Task A_worker_refuses_a_run_at_another_thread_count_and_cores_whose_teams_meet_are_bad_input()
    {
        var worker = new LoopTune.Cluster.WorkerInfo("h/core0", "h", 0, Orleans.Runtime.SiloAddress.New(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 1), 1), "m", true);
        var e = Assert.Throws<LoopTune.Cluster.ClusterError>(() => worker.UseThreads(2));
        Assert.Contains("worker h/core0 runs kernels on 1 thread(s) and this run asks for 2: start its silo with 'looptune silo --threads 2'", e.Message);
        if (ThreadCountError.Max < 2) return; // one core: two threads are no count to run at
        Assert.Equal(2, await Task.Run(() =>
        {
            (worker with { Threads = 2, Team = [0, 1] }).UseThreads(2);
            return RunThreads.Default;
        }));
        var cores = LoopTune.Measure.ThreadPinning.CurrentAffinity();
        var error = await Task.Run(() =>
        {
            RunThreads.Use(2);
            return Assert.Throws<LoopTune.Cluster.ClusterError>(() => LoopTune.Cluster.WorkerCores.Choose(null, $"{cores[0]},{cores[1]}"));
        });
        Assert.Contains($"the teams of the workers on cores {cores[0]} and {cores[1]} both need core", error.Message);
    }

    [Fact]
    public void Search_at_two_threads_returns_a_verified_schedule_with_its_parallel_loop()
    {
        if (ThreadCountError.Max < 2) return;
        var (code, output, err) = Run("search", "--spec", "mm 64 64 64", "-m", "greedy1", "--budget", "300ms", "--threads", "2", "--json");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!;
        Assert.True(json["verified"]!.GetValue<bool>());
        // the answer as it was timed: with the parallel loop the rule gives it whenever a loop qualifies (which schedule
        // wins depends on the timings; a tiny product's fastest may have no loop to share, "k:64 m:8u n:64v")
        var schedule = json["schedule"]!.GetValue<string>();
        var nest = Nest.Parse(Computation.Parse("mm 64 64 64"), schedule.Contains('>') ? schedule : ">" + schedule);
        Assert.Equal(Transforms.Parallelize(nest, 2).ScheduleKey, nest.ScheduleKey);
        Assert.Equal(nest.ParallelLoop >= 0, schedule.Split(' ').Any(l => l.EndsWith('p')));
    }

    /// <summary>tune says who placed the parallel loop: the search (an action) or the rule (none taken); at one thread none.</summary>
    [Fact]
    public void Tune_at_two_threads_says_who_placed_the_parallel_loop()
    {
        var (code, output, err) = Run("tune", "--spec", "mm 64 48 32", "--budget", "0", "--no-peers", "--json");
        Assert.True(code == 0, err);
        Assert.Null(JsonNode.Parse(output)!["parallel"]);
        if (ThreadCountError.Max < 2) return;
        (code, output, err) = Run("tune", "--spec", "mm 64 48 32", "--budget", "0", "--no-peers", "--threads", "2", "--json");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!;
        var schedule = json["schedule"]!.GetValue<string>();
        var nest = Nest.Parse(Computation.Parse("mm 64 48 32"), schedule.Contains('>') ? schedule : ">" + schedule);
        var parallel = json["parallel"]!;
        Assert.Equal(nest.ParallelLoop, parallel["position"]!.GetValue<int>());
        Assert.Equal(nest.LoopName(nest.ParallelLoop), parallel["loop"]!.GetValue<string>());
        bool taken = json["actions"]!.AsArray().Any(a => a!.GetValue<string>() == "parallel");
        Assert.Equal(taken ? "search" : "rule", parallel["by"]!.GetValue<string>());
        (code, output, _) = Run("tune", "--spec", "mm 64 48 32", "--budget", "0", "--no-peers", "--threads", "2");
        Assert.Equal(0, code);
        Assert.Contains(taken ? "taken by the search" : "added by the rule", output);
    }

    /// <summary>A model at every core: the contractions tuned and run on them, each node and the forward pass still within
    /// the bound of ONNX Runtime's (itself given as many threads).</summary>
    [Fact]
    public void Model_at_all_threads_matches_onnx_runtime_node_by_node_and_end_to_end()
    {
        using var temp = new TempFolder("looptune-model-threads");
        var file = temp["conv.onnx"];
        File.WriteAllBytes(file, Model(
            [
                Node("Conv", "conv", ["X", "W"], ["Y1"], Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1)),
                Node("Relu", "relu", ["Y1"], ["R"]),
                Node("Conv", "conv2", ["R", "W2"], ["Y"], Ints("kernel_shape", 1, 1)),
            ],
            [Value("X", [1, 8, 16, 16])], [Value("Y", null)], [Floats("W", [16, 8, 3, 3], Random(1152, 1)), Floats("W2", [8, 16, 1, 1], Random(128, 2))]));
        var (code, stdout, err) = TestHome.Run("model", file, "--run", "--budget", "0", "--quick", "--json", "--threads", "all", "--out", temp["r"], "--db", temp["m.db"]);
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(stdout)!;
        Assert.True(json["end_to_end"]!["within_bound"]!.GetValue<bool>(), json["end_to_end"]!.ToJsonString());
        Assert.All(json["ops"]!.AsArray().Where(r => r!["tuned"]!.GetValue<bool>()), r => Assert.True(r!["verified"]!.GetValue<bool>(), r.ToJsonString()));
    }
}
