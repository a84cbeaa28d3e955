using System.CommandLine;
using System.Diagnostics;
using LoopTune.Compare;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Jit;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Search;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary>What <c>compare-searches</c> and <c>compare-libraries</c> share: their options, the checks of their input (every
/// one before anything is written), and the run: the searches benchmark by benchmark with a per-search store and a
/// progress bar, the re-timing of the results and the peers, and a report folder written atomically.</summary>
sealed class ComparisonOptions
{
    public readonly Option<string> Dataset = new("--dataset") { Description = "A named dataset (see 'dataset list') or a dataset folder.", Required = true };
    public readonly Option<string> Split = new("--split") { Description = "Which list of the dataset: test, train or all (every benchmark, in generation order).", DefaultValueFactory = _ => "test" };
    public readonly Option<int> Count;
    public readonly Option<string?> Methods;
    public readonly Option<string> Policy = new("--policy") { Description = "The policy of the 'policy' methods: default (the shipped one for each benchmark: conv for a convolution, default otherwise), a shipped policy's name, a .safetensors file, a checkpoint or a training run folder.", DefaultValueFactory = _ => "default" };
    public readonly Option<string> Budget = SearchCommand.BudgetOption();
    public readonly Option<int?> MaxEvaluations = SearchCommand.MaxEvaluationsOption();
    public readonly Option<string> Out;
    public readonly Option<int> Seed = SearchCommand.SeedOption();
    public readonly Option<string?> Db = new("--db")
    {
        Description = "Share this measurement store between all searches. Default: each search starts from a new, empty store, so its time counts all its own measurements.",
    };
    public readonly Option<bool> Quick = new("--quick") { Description = "Re-time the results with the quick timing instead of the default one." };
    public readonly Option<bool> Json = Options.Json();
    public readonly Option<bool> Resume = Options.Resume(" Not with --cluster.");
    public readonly Option<string> Actions = SearchCommand.ActionsOption();
    public readonly Option<int?> VectorBits = Options.VectorBits();
    public readonly Option<string> Threads = Options.Threads("Threads every schedule is timed on (in the searches and after them, with an outer loop made parallel) and each library is given; with --cluster, the silos' workers must run at the same count ('looptune silo --threads N')");
    readonly string? defaultMethods;

    /// <param name="countName">--count or --size.</param>
    /// <param name="defaultMethods">The methods when --methods is not given (null: every search).</param>
    /// <param name="outDescription">What --out receives.</param>
    public ComparisonOptions(string countName, string? defaultMethods, string outDescription)
    {
        Split.AcceptOnlyFromAmong("test", "train", "all");
        // compare-libraries says --size (the seed's compare_tvm.py), compare-searches --count: each takes the other's too
        Count = new(countName, countName == "--size" ? "--count" : "--size") { Description = "How many benchmarks: the first N of the split.", DefaultValueFactory = _ => 25 };
        this.defaultMethods = defaultMethods;
        Methods = new("--methods")
        {
            Description = $"Comma-separated methods (default {defaultMethods ?? "all searches"}; the searches: {string.Join(",", Searches.Names)}). 'policy' is the trained policy's greedy rollout, 'policy_topK' (e.g. policy_top4) adds rollouts branching to its next choices within the budget, 'policy_search' is the policy-guided search, 'tune' what `looptune tune` does (that search with the machine's own tiles beside it).",
        };
        Out = new("--out") { Description = outDescription, Required = true };
    }

    /// <summary>Every option, to add to a command.</summary>
    public IEnumerable<Option> All => [Dataset, Split, Count, Methods, Policy, Budget, MaxEvaluations, Out, Resume, Seed, Db, Quick, Actions, VectorBits, Threads, Json];

    /// <summary>Reads and checks the options: methods, budget, count, dataset and split, in that order; a
    /// <see cref="LoopTuneException"/> names the first bad one.</summary>
    public ComparisonJob Parse(ParseResult p)
    {
        Options.ApplyVectorBits(p, VectorBits);
        Options.ApplyThreads(p, Threads);
        var space = ActionSpace.Get(p.GetValue(Actions)!);
        var searches = ComparisonMethods.Parse(p.GetValue(Methods) ?? defaultMethods, p.GetValue(Policy)!);
        var limit = SearchBudget.Parse(p.GetValue(Budget), p.GetValue(MaxEvaluations));
        int count = p.GetValue(Count);
        if (count < 1) throw new SearchError($"{Count.Name} must be at least 1, not {count}");
        var data = Datasets.Dataset.Load(p.GetValue(Dataset)!);
        string split = p.GetValue(Split)!;
        var list = split switch
        {
            "train" => data.TrainBenchmarks,
            "test" => data.TestBenchmarks,
            "all" => data.Benchmarks,
            _ => throw new DatasetError($"--split '{split}' is not test, train or all"),
        };
        if (list.IsEmpty) throw new DatasetError($"the {split} split of {data.Name} is empty");
        var plan = new ComparisonPlan
        {
            Benchmarks = [.. list.Take(count)], Searches = searches, Budget = limit, Seed = p.GetValue(Seed), Policy = p.GetValue(Policy)!, Quick = p.GetValue(Quick),
            SharedDb = p.GetValue(Db) is { } db ? Path.GetFullPath(db) : null, Space = space,
        };
        return new ComparisonJob(data, split, plan, p.GetValue(Out)!, p.GetValue(Json), p.GetValue(Resume), Options.ResumeCommand(p, Resume));
    }
}

/// <summary>A checked comparison to run (<see cref="ComparisonOptions.Parse"/>): the dataset and split its benchmarks come
/// from, the plan, where the report goes, whether it continues the run journaled there (<paramref name="Resume"/>), and
/// the command line that would continue it (<paramref name="Again"/>).</summary>
sealed record ComparisonJob(Dataset Data, string Split, ComparisonPlan Plan, string Out, bool Json, bool Resume, string Again)
{
    /// <summary>Runs the searches and re-times everything with the peers of <paramref name="peers"/> (every library when null),
    /// with a progress bar titled <paramref name="title"/>; then <paramref name="write"/> fills the report's temporary
    /// folder, which replaces <see cref="Out"/> only when all of it is written. <paramref name="elsewhere"/>, when given, runs
    /// the comparison instead of this process (on a cluster's workers). In this process, each finished row goes to the
    /// journal in <see cref="Out"/> (<see cref="RunJournal"/>, a run of <paramref name="kind"/> with the plan's settings and
    /// <paramref name="settings"/>), and a resumed run runs only the rows it lacks; Ctrl+C or SIGTERM stops between two
    /// searches with a <see cref="RunStopped"/> saying what was kept. The report replaces the folder, journal and all.</summary>
    public (Comparison Comparison, ComparisonSetup Setup, string Folder) Run(Io io, string kind, string title, PeerPreparation? peers,
        Action<string, Comparison, ComparisonSetup> write, Func<Action<ComparisonProgress>, Comparison>? elsewhere = null, IReadOnlyDictionary<string, string>? settings = null)
    {
        if (elsewhere is not null) CheckCluster();
        if (Plan.Methods.Contains(CostModelSearch.MethodName)) CostModelCommand.RefreshBeforeSearch(io, Plan.SharedDb);
        var report = new ReportFolder(Out);
        try
        {
            var evaluators = new EvaluatorSource(Plan.SharedDb, report.Temp);
            using var journal = elsewhere is null ? report.OpenJournal(kind, Settings(settings), Resume) : null;
            var comparison = WithProgress(io, title, elsewhere ?? (progress => Journaled(io, journal!, progress, evaluators.Next, peers)));
            journal?.Dispose();
            var setup = new ComparisonSetup(Data.Name, Split, Plan.Budget, Plan.Seed, elsewhere is null ? evaluators.Describe() : evaluators.DescribeOnCluster(),
                $"GFLOPS are re-timed after the searches, each schedule, the unscheduled nest and the peer libraries of a benchmark side by side (one sample of each per round, so a neighbour slowing the core for a while slows them alike), with the {(Plan.Quick ? "quick" : "default")} timing (median of {Plan.Timing.MinSamples}+ samples taken over {Plan.Timing.MinSeconds:0.###}+ s for each).",
                PeakCache.MachineKey, elsewhere is null ? Machine.Current : null, Plan.Space.Name, RunThreads.Default);
            evaluators.Clean();
            report.Fill(temp => write(temp, comparison, setup));
            report.Commit();
            return (comparison, setup, report.Target);
        }
        finally { report.Abandon(); }
    }

    /// <summary>Refuses, before a cluster is joined, what a run on a cluster cannot do: --resume (a cluster's run survives a
    /// lost silo already, and keeps no journal), or a new run over an unfinished run's journal.</summary>
    public void CheckCluster()
    {
        if (Resume) throw new LoopTuneException("--resume continues a run of this process only (a cluster's run already survives a lost silo, and keeps no journal); leave out --cluster, or --resume");
        RunJournal.RefuseUnfinished(Out);
    }

    /// <summary>The comparison in this process, journaled: the journal's rows kept, each new row appended as it is finished,
    /// and a stop by a signal turned into a <see cref="RunStopped"/> that says what was kept and how to resume.</summary>
    Comparison Journaled(Io io, RunJournal journal, Action<ComparisonProgress> progress, Func<IEvaluator> evaluators, PeerPreparation? peers)
    {
        var kept = journal.Kept.Select(ComparisonRowJson.FromJson).ToList();
        int total = Plan.Benchmarks.Count * Plan.Searches.Count;
        return Options.Journaled(io, journal, total, Again, "the benchmark under way is abandoned",
            stop => Comparison.Run(Plan, evaluators, progress, peers, kept, r => journal.Append(ComparisonRowJson.ToJson(r)), stop));
    }

    /// <summary>What a resumed run must share with the journal's: the benchmarks, the searches and their budget, the timing,
    /// the command's own <paramref name="more"/>, and <see cref="Options.JournalSettings"/>.</summary>
    Dictionary<string, string> Settings(IReadOnlyDictionary<string, string>? more) => Options.JournalSettings(new Dictionary<string, string>(more ?? new Dictionary<string, string>())
    {
        ["--dataset"] = Data.Name, ["--split"] = Split, ["benchmarks"] = string.Join(",", Plan.Benchmarks.Select(b => b.Name)),
        ["--methods"] = string.Join(",", Plan.Methods), ["--policy"] = Plan.Policy, ["--budget"] = Plan.Budget.ToString(),
        ["--seed"] = Plan.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture), ["--quick"] = Plan.Quick ? "yes" : "no",
        ["--db"] = Plan.SharedDb ?? "(a new store per search)", ["--actions"] = Plan.Space.Name,
    });

    /// <summary>Runs the comparison with a Spectre progress bar on stderr when stderr is a terminal, else with one plain line
    /// per step on stderr; stdout stays clean for --json.</summary>
    static Comparison WithProgress(Io io, string title, Func<Action<ComparisonProgress>, Comparison> run)
    {
        if (io.Stderr != Console.Error || Console.IsErrorRedirected)
        {
            var clock = Stopwatch.StartNew();
            return run(p => io.Stderr.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1}s] {p.Done}/{p.Total} {Describe(p)}"));
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        Comparison? result = null;
        console.Progress().AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title);
                result = run(p =>
                {
                    task.MaxValue = p.Total;
                    task.Value = p.Done;
                    task.Description = Markup.Escape(Describe(p));
                });
            });
        return result!;
    }

    static string Describe(ComparisonProgress p) => string.Join(" ", new[] { p.Benchmark, p.Method, p.What }.Where(s => s.Length > 0));

    /// <summary>The evaluators of the searches: a new, empty store per search in the report's temporary folder, or one
    /// shared store when --db is given.</summary>
    sealed class EvaluatorSource(string? sharedDb, string temp)
    {
        int made;

        public IEvaluator Next() => Evaluators.Default(sharedDb ?? Path.Combine(temp, $".store-{made++}.db"));

        public string Describe() => sharedDb is null
            ? "a new, empty measurement store for each search (cold: its seconds pay for every measurement it makes)."
            : $"the measurement store {Path.GetFullPath(sharedDb)}, shared by all searches (schedules already in it are recalled, not timed, and cost almost no time).";

        /// <summary>The same on a cluster, where each worker's machine opens the stores.</summary>
        public string DescribeOnCluster() => sharedDb is null
            ? "a new, empty measurement store for each search, on the machine of the worker running it (cold: its seconds pay for every measurement it makes)."
            : $"the measurement store {Path.GetFullPath(sharedDb)} on each worker's machine, shared by the searches run there (schedules already in it are recalled, not timed).";

        /// <summary>Deletes the per-search stores from the report folder.</summary>
        public void Clean()
        {
            foreach (var f in Directory.EnumerateFiles(temp, ".store-*")) File.Delete(f);
        }
    }

    /// <summary>A report folder written atomically: everything goes into <see cref="Temp"/>, a sibling of the target, which
    /// <see cref="Commit"/> renames into place (<see cref="AtomicFile.CommitFolder"/>: an old report is moved aside first and
    /// deleted after). A write that fails (no space, a read-only folder) is a <see cref="FileWriteError"/> naming the path,
    /// and an old report stays whole.</summary>
    internal sealed class ReportFolder
    {
        public ReportFolder(string target)
        {
            Target = Path.GetFullPath(target);
            if (File.Exists(Target)) throw new SearchError($"--out {target} is a file; give a folder");
            Temp = AtomicFile.TempSibling(Target);
            try { Directory.CreateDirectory(Temp); }
            catch (Exception e) when (FileWriteError.IsIo(e)) { throw FileWriteError.From(Target, e); }
        }

        public string Target { get; }
        public string Temp { get; }
        bool committed;

        /// <summary>Runs <paramref name="write"/> on the temporary folder; an I/O failure in it names the report.</summary>
        public void Fill(Action<string> write)
        {
            try { write(Temp); }
            catch (Exception e) when (FileWriteError.IsIo(e)) { throw FileWriteError.From(Target, e); }
        }

        /// <summary>Opens the run's journal in <see cref="Target"/> (<see cref="RunJournal.Open"/>); a write that fails names
        /// the report, as <see cref="Fill"/> does.</summary>
        public RunJournal OpenJournal(string kind, IReadOnlyDictionary<string, string> settings, bool resume)
        {
            try { return RunJournal.Open(Target, kind, settings, resume); }
            catch (FileWriteError e) { throw new FileWriteError(Target, e.Problem, e); }
        }

        public void Commit()
        {
            AtomicFile.CommitFolder(Temp, Target);
            committed = true;
        }

        /// <summary>Removes the temporary folder unless it was committed.</summary>
        public void Abandon()
        {
            if (!committed) AtomicFile.TryDelete(Temp);
        }
    }
}
