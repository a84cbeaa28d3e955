using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using LoopTune.Datasets;
using LoopTune.Measure;

namespace LoopTune.Learning;

/// <summary>What <c>looptune adapt</c> asks for.</summary>
/// <param name="Datasets">Named datasets or dataset folders; each trains the policy of its kind (a convolution dataset the
/// "conv" policy, any other the "default" one), at most one dataset per policy.</param>
/// <param name="Time">The whole adaptation's time, shared equally by the policies.</param>
/// <param name="Workers">Measuring workers, one per core (the learner runs on the calling thread).</param>
/// <param name="Resume">Continue an adaptation of this machine that was stopped or killed, from its checkpoints, for the
/// time it had left.</param>
/// <param name="Seed">Seed of every random choice.</param>
/// <param name="Set">Hyperparameter overrides of Ape-X (<see cref="ApexDqnConfig"/>); the network's shape is the policy's.</param>
/// <param name="From">The policy each name starts from (default: what <c>--policy default</c> means on this machine now:
/// the adapted one when there is one, else the shipped one).</param>
/// <param name="EvalSize">Test benchmarks in each evaluation (the last ones of the test split), which choose the policy kept;
/// default: up to 10, leaving the first 10 (the reports') out where the split has room (6 of conv_small's 16).</param>
/// <param name="EvalTime">The budget per test benchmark of an evaluation, which tunes as <c>tune</c> does (the policy-guided
/// search; default 1 s). The policy adaptation starts from is evaluated first, so the one kept is never one that tuned
/// worse than it.</param>
/// <param name="EvalEvery">Evaluate every this many iterations (and at the end).</param>
/// <param name="Db">Measurement store (default: the user's).</param>
public sealed record AdaptRequest(IReadOnlyList<string> Datasets, TimeSpan Time, int Workers, bool Resume, int Seed = 0, JsonObject? Set = null,
    IReadOnlyDictionary<string, string>? From = null, int? EvalSize = null, TimeSpan? EvalTime = null, int EvalEvery = 100, string? Db = null)
{
    /// <summary>The datasets when none are given: the matmuls of the default policy and the convolutions of the conv policy.</summary>
    public static IReadOnlyList<string> DefaultDatasets { get; } = ["mm64_4096", "conv_small_resnet50"];
}

/// <summary>One policy an adaptation produced: its name, the dataset it learned on, its run folder, where it was saved,
/// the policy it started from, and its last evaluation (null when it had none).</summary>
public sealed record AdaptedPolicy(string Name, string Dataset, string RunFolder, string PolicyFile, string From, PolicyEvaluation? Eval, double Seconds);

/// <summary>
/// <c>looptune adapt</c>'s engine: continues training the default policies on this machine (Ape-X from their weights, in
/// their own action space, at the JIT's vector width, on pinned workers) and saves them where <c>--policy default</c> finds
/// them on this kind of machine (<see cref="Policy.AdaptedPath"/>). Layout in the data folder:
/// <code>
/// adapt/&lt;machine&gt;/&lt;name&gt;/          the training run of each policy (checkpoints, curves, best.safetensors)
/// adapt/&lt;machine&gt;/progress.json       seconds each policy has trained, for --resume after a stop or a kill
/// policies/&lt;machine&gt;/&lt;name&gt;.safetensors the adapted policy (its run's best by evaluation), written to a temporary name and renamed
/// </code>
/// </summary>
public static class Adaptation
{
    /// <summary>The folder of this machine's adaptation runs.</summary>
    public static string Folder => Path.Combine(DataFolder.Root, "adapt", Machine.Slug + Policy.ThreadsSuffix);

    const string ProgressFile = "progress.json";

    /// <summary>Adapts the policy of each dataset in turn; <paramref name="observer"/> gives the training observer of a policy
    /// (by name); <paramref name="site"/> where the actors run (default: this machine's pinned workers).</summary>
    public static IReadOnlyList<AdaptedPolicy> Run(AdaptRequest r, Func<string, ITrainingObserver> observer, CancellationToken cancel = default,
        Func<TrainRequest, ITrainingSite>? site = null)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (r.Time <= TimeSpan.Zero) throw new LoopTuneException($"--time must be positive, not {r.Time.TotalSeconds} s");
        if (r.Workers < 1) throw new LoopTuneException($"--workers {r.Workers}: at least one");
        var jobs = Jobs(r.Datasets.Count == 0 ? AdaptRequest.DefaultDatasets : r.Datasets, r.From);
        var progress = ReadProgress();
        if (!r.Resume)
        {
            foreach (var (name, _, _) in jobs)
                if (Directory.Exists(Path.Combine(Folder, name))) Directory.Delete(Path.Combine(Folder, name), recursive: true); // a new adaptation starts over
            progress.Clear();
        }
        var share = r.Time / jobs.Count;
        var done = new List<AdaptedPolicy>();
        foreach (var (name, dataset, from) in jobs)
        {
            if (cancel.IsCancellationRequested) break;
            var run = Path.Combine(Folder, name);
            double before = progress[name] is JsonValue v && v.TryGetValue(out double seconds) ? seconds : 0;
            bool resume = r.Resume && RunFolder.LatestCheckpoint(run) is not null;
            var left = share - TimeSpan.FromSeconds(before);
            var saved = Policy.AdaptedPath(name);
            if (left <= TimeSpan.FromSeconds(1) && resume)
            {
                if (!File.Exists(saved)) Save(run, saved);
                done.Add(new AdaptedPolicy(name, dataset.Name, run, saved, from, null, before));
                continue;
            }
            var init = Policy.LoadForInit(from);
            var set = new JsonObject
            {
                ["ActorsPerWorker"] = 8, ["Hidden"] = new JsonArray([.. init.Shape.Hidden.Select(h => (JsonNode)h)]),
                ["Activation"] = init.Shape.Activation, ["LayerNorm"] = init.Shape.LayerNorm,
            };
            foreach (var (k, value) in r.Set ?? []) set[k] = value?.DeepClone();
            int evalSize = r.EvalSize ?? Math.Clamp(dataset.Test.Count - 10, 1, 10);
            var request = new TrainRequest
            {
                Dataset = dataset.Folder, Time = left, Workers = r.Workers, Steps = init.EpisodeLength, EvalSize = evalSize,
                EvalTime = r.EvalTime ?? TimeSpan.FromSeconds(1), EvalEvery = r.EvalEvery, CheckpointSeconds = 30, Seed = r.Seed, Out = run, Resume = resume,
                Db = r.Db, Set = set, Init = resume ? null : from, Actions = init.Space.Name, VectorBits = [Jit.JitOptions.Default.VectorBits], EvalSearch = true,
            };
            Directory.CreateDirectory(Folder);
            var clock = Stopwatch.StartNew();
            var counting = new Counting(observer(name), () =>
            {
                progress[name] = before + clock.Elapsed.TotalSeconds;
                WriteProgress(progress);
            });
            var (_, eval) = Training.Run(request, counting, cancel, site);
            progress[name] = before + clock.Elapsed.TotalSeconds;
            WriteProgress(progress);
            Save(run, saved);
            done.Add(new AdaptedPolicy(name, dataset.Name, run, saved, from, eval, before + clock.Elapsed.TotalSeconds));
        }
        return done;
    }

    /// <summary>Each dataset with the policy it trains and the file that policy starts from; two datasets for one policy, or
    /// a policy with nothing to start from, are bad input.</summary>
    static List<(string Name, Dataset Dataset, string From)> Jobs(IReadOnlyList<string> datasets, IReadOnlyDictionary<string, string>? from)
    {
        var jobs = new List<(string, Dataset, string)>();
        foreach (var d in datasets)
        {
            var dataset = Dataset.Load(d);
            string name = dataset.Kind == "conv" ? "conv" : "default";
            if (jobs.Any(j => j.Item1 == name))
                throw new LoopTuneException($"--dataset {d}: the {name} policy already adapts on {jobs.First(j => j.Item1 == name).Item2.Name}; give one dataset per policy (matmuls or other contractions for default, convolutions for conv)");
            string start = from?.GetValueOrDefault(name) ?? Policy.DefaultFile(name);
            if (!File.Exists(start)) throw new LoopTuneException($"no {name} policy to adapt: {start} does not exist");
            jobs.Add((name, dataset, start));
        }
        return jobs;
    }

    /// <summary>Copies the run's best policy (by evaluation), or its latest checkpoint's, to <paramref name="path"/>: to a
    /// temporary name first, then renamed, so that a reader never sees half a file.</summary>
    static void Save(string run, string path)
    {
        var best = Path.Combine(run, Training.BestFile);
        var source = File.Exists(best) ? best
            : RunFolder.LatestCheckpoint(run) is { } ckpt ? Path.Combine(ckpt, Policy.FileName)
            : throw new LoopTuneException($"the adaptation run {run} has no policy to save");
        _ = Policy.Load(source); // a policy that would not load is never installed
        try { Directory.CreateDirectory(Path.GetDirectoryName(path)!); }
        catch (Exception e) when (FileWriteError.IsIo(e)) { throw FileWriteError.From(path, e); }
        AtomicFile.Copy(source, path);
    }

    static JsonObject ReadProgress()
    {
        try { return JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, ProgressFile))) as JsonObject ?? []; }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException) { return []; }
    }

    static void WriteProgress(JsonObject progress)
    {
        try { Directory.CreateDirectory(Folder); }
        catch (Exception e) when (FileWriteError.IsIo(e)) { throw FileWriteError.From(Folder, e); }
        AtomicFile.WriteText(Path.Combine(Folder, ProgressFile), progress.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>An observer that records the time trained at every checkpoint (so a killed adaptation resumes for what it had
    /// left) and passes everything on.</summary>
    sealed class Counting(ITrainingObserver inner, Action checkpointed) : ITrainingObserver
    {
        public void Started(string runFolder, ITrainer trainer, string? resumedFrom, IReadOnlyList<string> workers) => inner.Started(runFolder, trainer, resumedFrom, workers);
        public void Iteration(ITrainer trainer, IReadOnlyDictionary<string, double> values, double fractionDone) => inner.Iteration(trainer, values, fractionDone);
        public void Evaluated(PolicyEvaluation result) => inner.Evaluated(result);

        public void Checkpoint(string folder)
        {
            checkpointed();
            inner.Checkpoint(folder);
        }
    }
}
