using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using LoopTune.Compare;
using LoopTune.Datasets;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Search;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Search;

/// <summary>The comparisons' journal (<see cref="RunJournal"/>, <see cref="ComparisonRowJson"/>) and <c>--resume</c>: the
/// rows a stopped or killed run finished are kept, read back as they were, and not run again.</summary>
public sealed class ComparisonResumeTests : IDisposable
{
    readonly TempFolder temp = new("looptune-resume");

    public void Dispose() => temp.Dispose();

    static readonly Dictionary<string, string> Settings = new() { ["--budget"] = "1s", ["--methods"] = "random,greedy1", ["machine"] = "m" };

    static ComparisonRow Row(string benchmark, string method, double gflops) => new(benchmark, method, 2.5, gflops, gflops * 0.9, 17, 12, 0.25,
        Actions.ParseList("down,split_4,vectorize"), "m:16 n:16 k:16", [PeerResult.Measured("openblas", 90.5, "cblas_sgemm") with { KernelOverPeer = 0.4 },
            new PeerResult("blis", null, "libblis.so not found", PeerStatus.Missing)], Verified: true, BestSampleGflops: double.NaN)
    { BestEstimated = true };

    [Fact]
    public void A_journal_keeps_its_rows_whole_and_ignores_a_torn_last_line_with_a_warning()
    {
        var folder = temp["run"];
        ComparisonRow[] rows = [Row("mm16_16_16", "random", 40.25), Row("mm16_16_16", "greedy1", 51)];
        using (var journal = RunJournal.Open(folder, "compare-searches", Settings, resume: false))
            foreach (var r in rows) journal.Append(ComparisonRowJson.ToJson(r));
        string path = Path.Combine(folder, RunJournal.FileName);
        File.AppendAllText(path, """{"Benchmark":"mm32_16_16","Method":"ran"""); // a kill in the middle of a row

        var warnings = new StringWriter();
        using (LoopTune.Warnings.To(warnings))
        using (var journal = RunJournal.Open(folder, "compare-searches", Settings, resume: true))
        {
            var kept = journal.Kept.Select(ComparisonRowJson.FromJson).ToList();
            Assert.Equal(rows.Select(ComparisonRowJson.ToJson).Select(j => j.ToJsonString()), kept.Select(ComparisonRowJson.ToJson).Select(j => j.ToJsonString()));
            Assert.Equal(["down", "split_4", "vectorize"], kept[0].Actions.Select(a => a.Name));
            Assert.Equal((90.5, 0.4, PeerStatus.Missing), (kept[0].Peer("openblas")!.Gflops!.Value, kept[0].Peer("openblas")!.KernelOverPeer!.Value, kept[0].Peer("blis")!.Status));
            Assert.True(double.IsNaN(kept[1].BestSampleGflops) && kept[1].BestEstimated && !kept[1].BaseEstimated);
            journal.Append(ComparisonRowJson.ToJson(Row("mm32_16_16", "random", 60)));
            Assert.Equal(3, journal.Count);
        }
        Assert.Equal($"warning: {path}: ignored its torn last line (a row cut off when the run was killed)", warnings.ToString().Trim());
        // the torn line is gone: the row appended after it is a line of its own
        var lines = File.ReadAllLines(path);
        Assert.Equal(4, lines.Length);
        Assert.All(lines, l => JsonNode.Parse(l));
        Assert.Equal("mm32_16_16", ComparisonRowJson.FromJson(JsonNode.Parse(lines[3])!.AsObject()).Benchmark);
    }

    [Fact]
    public void A_journal_of_another_run_or_none_or_a_damaged_one_is_refused_naming_why()
    {
        var folder = temp["run"];
        var none = Assert.Throws<RunJournalError>(() => RunJournal.Open(folder, "compare-searches", Settings, resume: true));
        Assert.Equal($"--resume: {folder} has no journal (journal.jsonl) to resume from", none.Message);
        Assert.False(Directory.Exists(folder));
        using (var journal = RunJournal.Open(folder, "compare-searches", Settings, resume: false))
            journal.Append(ComparisonRowJson.ToJson(Row("mm16_16_16", "random", 40)));

        var other = Assert.Throws<RunJournalError>(() => RunJournal.Open(folder, "compare-searches", new Dictionary<string, string>(Settings) { ["--budget"] = "2s", ["--seed"] = "3" }, resume: true));
        Assert.Contains("is the journal of another run (--budget 1s there, 2s here; --seed (none) there, 3 here)", other.Message);
        Assert.Contains("is the journal of a compare-searches run, not of compare-libraries",
            Assert.Throws<RunJournalError>(() => RunJournal.Open(folder, "compare-libraries", Settings, resume: true)).Message);
        var fresh = Assert.Throws<RunJournalError>(() => RunJournal.Open(folder, "compare-searches", Settings, resume: false));
        Assert.Contains($"--out {folder} holds the journal of an unfinished run (1 rows kept in journal.jsonl): continue it with --resume", fresh.Message);

        string path = Path.Combine(folder, RunJournal.FileName);
        var lines = File.ReadAllLines(path);
        File.WriteAllLines(path, [lines[0], "{not json", lines[1]]); // damage that no kill makes: a bad line before a good one
        Assert.Contains("line 2 cannot be read; the journal is damaged", Assert.Throws<RunJournalError>(() => RunJournal.Open(folder, "compare-searches", Settings, resume: true)).Message);
    }

    [Fact]
    public void A_comparison_runs_only_the_pairs_it_was_not_given_and_a_stop_keeps_the_finished_benchmark()
    {
        Benchmark[] benchmarks = [new("mm16_24_8", Computation.Matmul(16, 24, 8)), new("mm8_16_16", Computation.Matmul(8, 16, 16))];
        var plan = new ComparisonPlan { Benchmarks = benchmarks, Searches = [.. new[] { "greedy1", "random" }.Select(Searches.Get)], Budget = SearchBudget.Seconds(60, maxEvaluations: 8), Quick = true };
        PeerPreparation noPeers = (_, _) => [];
        var full = Comparison.Run(plan, () => new FakeEvaluator(), peers: noPeers);

        var kept = full.Rows.Take(3).ToList(); // the first benchmark, and greedy1 of the second
        int searches = 0;
        var finished = new List<ComparisonRow>();
        var resumed = Comparison.Run(plan, () => { searches++; return new FakeEvaluator(); }, peers: noPeers, kept: kept, finished: finished.Add);
        Assert.Equal(1, searches);
        Assert.Equal([("mm8_16_16", "random")], finished.Select(r => (r.Benchmark, r.Method)));
        Assert.Equal(full.Rows.Select(r => (r.Benchmark, r.Method, r.Schedule, r.Evaluations)), resumed.Rows.Select(r => (r.Benchmark, r.Method, r.Schedule, r.Evaluations)));
        Assert.All(kept, k => Assert.Same(k, resumed.Rows.Single(r => (r.Benchmark, r.Method) == (k.Benchmark, k.Method))));

        using var stop = new CancellationTokenSource();
        finished.Clear();
        Assert.Throws<OperationCanceledException>(() => Comparison.Run(plan, () => new FakeEvaluator(), peers: noPeers, stop: stop.Token,
            finished: r => { finished.Add(r); stop.Cancel(); }));
        Assert.Equal([("mm16_24_8", "greedy1"), ("mm16_24_8", "random")], finished.Select(r => (r.Benchmark, r.Method))); // its whole benchmark, nothing of the next
    }

    [Theory]
    [InlineData("has no journal (journal.jsonl) to resume from", "compare-searches", "--resume", "--count", "1")]
    [InlineData("has no journal (journal.jsonl) to resume from", "compare-libraries", "--resume", "--size", "1")]
    [InlineData("--resume continues a run of this process only", "compare-searches", "--resume", "--cluster", "localhost")]
    public void Resume_without_a_journal_or_on_a_cluster_exits_with_two_and_makes_no_folder(string message, params string[] args)
    {
        var folder = temp["report"];
        var (code, output, err) = TestHome.Run([.. args, "--dataset", "mm64_128_16_range", "--methods", "random", "--out", folder]);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.Equal("", output);
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    // ---- a real run, stopped and resumed ----

    const int Benchmarks = 4, Methods = 3;

    string[] Command(string folder, string budget, params string[] more)
    {
        var data = temp["ds"];
        if (!Directory.Exists(data)) DatasetGenerator.Matmul("16|32,16", "16,16|24").Write(data, 0.5, 0);
        return ["compare-searches", "--dataset", data, "--split", "all", "--count", $"{Benchmarks}", "--methods", "random,greedy1,greedy2", "--budget", budget,
            "--quick", "--out", folder, .. more];
    }

    /// <summary>The whole rows of the journal in <paramref name="folder"/> (a torn last line left out), or none yet.</summary>
    static List<ComparisonRow> Journaled(string folder)
    {
        string path = Path.Combine(folder, RunJournal.FileName);
        if (!File.Exists(path)) return [];
        var lines = File.ReadAllText(path).Split('\n');
        var rows = new List<ComparisonRow>();
        foreach (var line in lines.Skip(1).SkipLast(1)) // the text after the last newline is empty, or a row being written
            rows.Add(ComparisonRowJson.FromJson(JsonNode.Parse(line)!.AsObject()));
        return rows;
    }

    /// <summary>Starts the comparison as a child process and waits until its journal holds a finished row.</summary>
    async Task<Process> StartAndWaitForARow(string folder)
    {
        var process = LooptuneProcess.Start(Command(folder, "150ms"));
        var clock = Stopwatch.StartNew();
        while (Journaled(folder).Count == 0)
        {
            if (process.HasExited) Assert.Fail($"compare-searches exited ({process.ExitCode}) before a row: {await process.StandardError.ReadToEndAsync()}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), "no row in the journal within 60 s");
            await Task.Delay(20);
        }
        return process;
    }

    /// <summary>The (benchmark, method) pairs of results.csv, and its rows by pair.</summary>
    static Dictionary<(string, string), string[]> Results(string folder) =>
        File.ReadAllLines(Path.Combine(folder, "results.csv")).Skip(1).Select(l => l.Split(',')).ToDictionary(c => (c[0], c[1]));

    [Fact]
    [Trait("Category", "Integration")]
    public async Task A_run_killed_with_sigkill_resumes_without_losing_or_repeating_a_row()
    {
        var folder = temp["killed"];
        using (var process = await StartAndWaitForARow(folder))
        {
            process.Kill(entireProcessTree: true); // SIGKILL: no handler, no finally
            await process.WaitForExitAsync();
        }
        var kept = Journaled(folder);
        Assert.InRange(kept.Count, 1, Benchmarks * Methods - 1);
        Assert.Equal(kept.Count, kept.Select(r => (r.Benchmark, r.Method)).Distinct().Count());
        Assert.False(File.Exists(Path.Combine(folder, "results.csv")));

        // another run's settings, or a new run over the journal, are refused and leave it as it was
        string before = File.ReadAllText(Path.Combine(folder, RunJournal.FileName));
        var (code, _, err) = TestHome.Run(Command(folder, "200ms", "--resume"));
        Assert.Equal(2, code);
        Assert.Contains("is the journal of another run (--budget 150ms there, 200ms here)", err);
        (code, _, err) = TestHome.Run(Command(folder, "150ms"));
        Assert.Equal(2, code);
        Assert.Contains($"holds the journal of an unfinished run ({kept.Count} rows kept in journal.jsonl): continue it with --resume", err);
        Assert.Equal(before, File.ReadAllText(Path.Combine(folder, RunJournal.FileName)));

        (code, _, err) = TestHome.Run(Command(folder, "150ms", "--resume"));
        Assert.True(code == 0, err);
        Assert.Contains($"resuming: {kept.Count} of {Benchmarks * Methods} rows kept", err);
        // the resumed process searched only the rows the journal lacked
        Assert.Equal(Benchmarks * Methods - kept.Count, err.Split('\n').Count(l => l.EndsWith(" searching", StringComparison.Ordinal)));
        var results = Results(folder);
        Assert.Equal(Benchmarks * Methods, results.Count);
        Assert.Equal(Benchmarks, results.Keys.Select(k => k.Item1).Distinct().Count());
        foreach (var k in kept) // a kept row is the journal's, not measured again
            Assert.Equal(k.Seconds.ToString("0.####", CultureInfo.InvariantCulture), results[(k.Benchmark, k.Method)][6]);
        Assert.Equal(["gflops_by_benchmark.png", "machine.json", "results.csv", "summary.md", "time_vs_quality.png"],
            Directory.GetFiles(folder).Select(Path.GetFileName).Order()); // the report of an uninterrupted run: the journal went with the finished run
    }

    [Fact]
    [Trait("Category", "Integration")]
    public async Task Sigterm_keeps_the_finished_rows_and_says_how_to_resume()
    {
        var folder = temp["stopped"];
        string stderr;
        using (var process = await StartAndWaitForARow(folder))
        {
            var err = process.StandardError.ReadToEndAsync();
            Process.Start("kill", ["-TERM", $"{process.Id}"])!.WaitForExit();
            Assert.True(process.WaitForExit(60_000), "compare-searches did not stop on SIGTERM");
            stderr = await err;
            Assert.True(process.ExitCode == 143, stderr);
        }
        var kept = Journaled(folder);
        Assert.InRange(kept.Count, 1, Benchmarks * Methods - 1);
        Assert.Equal(0, kept.Count % Methods); // a stop abandons the benchmark under way: whole benchmarks are kept
        Assert.Contains("SIGTERM: stopping: the benchmark under way is abandoned, the rows finished are kept", stderr);
        string line = stderr.Split('\n').Single(l => l.StartsWith("kept ", StringComparison.Ordinal));
        string prefix = $"kept {kept.Count} of {Benchmarks * Methods} rows in {Path.Combine(folder, RunJournal.FileName)}; resume with: looptune ";
        Assert.StartsWith(prefix, line);
        Assert.Equal(string.Join(' ', Command(folder, "150ms", "--resume")), line[prefix.Length..]);
        Assert.Equal([RunJournal.FileName], Directory.GetFileSystemEntries(folder).Select(Path.GetFileName));
        Assert.Equal(["ds", "stopped"], Directory.GetFileSystemEntries(temp.Path).Select(Path.GetFileName).Order()); // no report folder left half-written

        var (code, _, resumed) = TestHome.Run(line[prefix.Length..].Split(' ')); // the command it printed
        Assert.True(code == 0, resumed);
        Assert.Equal(Benchmarks * Methods, Results(folder).Count);
    }
}
