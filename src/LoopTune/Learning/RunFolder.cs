using System.Text.Json;
using System.Text.Json.Nodes;
using LoopTune.Env;
using LoopTune.Learning.Nn;

namespace LoopTune.Learning;

/// <summary>
/// The folder of one training run, and its checkpoints. Layout:
/// <code>
/// run.json                          what was asked: trainer, dataset, seed, workers, steps, hyperparameters
/// checkpoints/ckpt-000042/          one checkpoint per save, the newest few kept:
///     model.safetensors             every tensor of the learner (networks, Adam moments)
///     state.json                    counters, random-generator states, hyperparameters
///     policy.safetensors            the policy alone, with its shape in the metadata (looptune tune --policy)
/// checkpoints/latest                the name of the newest complete checkpoint
/// metrics.csv, tb/, charts/         the training curves (CSV, TensorBoard events, PNG)
/// eval.json                         the last evaluation on the test split
/// best.safetensors                  the policy that evaluated best so far (its figures in its metadata)
/// </code>
/// A checkpoint is written into a temporary folder, renamed into place, and only then named in <c>latest</c> (itself
/// written to a temporary file and renamed): a run killed at any moment leaves the previous checkpoint intact.
/// </summary>
public static class RunFolder
{
    public const string RunFile = "run.json", Checkpoints = "checkpoints", Latest = "latest", Model = "model.safetensors", StateFile = "state.json";
    const int Keep = 3;

    /// <summary>The newest complete checkpoint folder of run folder <paramref name="run"/>, or null.</summary>
    public static string? LatestCheckpoint(string run)
    {
        var latest = Path.Combine(run, Checkpoints, Latest);
        if (!File.Exists(latest)) return null;
        var name = File.ReadAllText(latest).Trim();
        var dir = Path.Combine(run, Checkpoints, name);
        return name.StartsWith("ckpt-", StringComparison.Ordinal) && Directory.Exists(dir) ? dir : null;
    }

    /// <summary>Writes the trainer's checkpoint (and its policy) and makes it the latest; returns its folder. A write that
    /// fails (no space, a read-only folder) is a <see cref="FileWriteError"/> naming the path, and the latest checkpoint
    /// stays the previous one, whole: the new one is written into a temporary folder and renamed into place first.</summary>
    public static string SaveCheckpoint(string run, ITrainer trainer, int episodeLength, ActionSpace space, IReadOnlyDictionary<string, string> policyInfo)
    {
        string root = Path.GetFullPath(Path.Combine(run, Checkpoints));
        // a new name even when this iteration was saved before (a resume that trains no further): the checkpoint that
        // latest names is never deleted or replaced, only superseded
        string name = $"ckpt-{trainer.Iterations:D6}";
        for (int n = 1; Directory.Exists(Path.Combine(root, name)); n++) name = $"ckpt-{trainer.Iterations:D6}-{n}";
        string final = Path.Combine(root, name), temp = Path.Combine(root, $".tmp-{name}-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(root);
            foreach (var leftover in Directory.GetDirectories(root, ".tmp-*")) Directory.Delete(leftover, true); // from a killed run
            Directory.CreateDirectory(temp);
            SafeTensors.Save(Path.Combine(temp, Model), trainer.Tensors(), new Dictionary<string, string> { ["looptune.trainer"] = trainer.Name });
            var state = trainer.State();
            state["trainer"] = trainer.Name;
            state["config"] = JsonSerializer.SerializeToNode(trainer.Config, trainer.Config.GetType());
            AtomicFile.WriteText(Path.Combine(temp, StateFile), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            Policy.Save(Path.Combine(temp, Policy.FileName), trainer.Policy, episodeLength, PolicyInfo(trainer, policyInfo), space);
            Directory.Move(temp, final);
        }
        catch (Exception e) when (FileWriteError.IsIo(e) || e is FileWriteError)
        {
            AtomicFile.TryDelete(temp);
            throw new FileWriteError($"the checkpoint {final}", (e as FileWriteError ?? FileWriteError.From(final, e)).Problem, e);
        }
        AtomicFile.WriteText(Path.Combine(root, Latest), name);
        foreach (var old in Directory.GetDirectories(root, "ckpt-*").Where(d => Path.GetFileName(d) != name)
                     .OrderBy(Age).SkipLast(Keep - 1))
            AtomicFile.TryDelete(old);
        return final;
    }

    /// <summary>Puts the latest checkpoint of <paramref name="run"/> back into <paramref name="trainer"/>; returns its folder.</summary>
    public static string LoadCheckpoint(string run, ITrainer trainer)
    {
        var dir = LatestCheckpoint(run) ?? throw new LoopTuneException($"--resume: {run} has no checkpoint to resume from");
        JsonObject state;
        try { state = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, StateFile)))?.AsObject() ?? throw new JsonException("empty"); }
        catch (Exception e) when (e is JsonException or IOException or InvalidOperationException)
        {
            throw new LoopTuneException($"checkpoint {dir}: {StateFile} cannot be read ({e.Message})", e);
        }
        if ((string?)state["trainer"] != trainer.Name)
            throw new LoopTuneException($"checkpoint {dir} was made by trainer '{state["trainer"]}', not '{trainer.Name}'");
        var (tensors, _) = SafeTensors.Load(Path.Combine(dir, Model));
        try { trainer.Restore(tensors, state); }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new LoopTuneException($"checkpoint {dir}: {StateFile} is incomplete ({e.Message})", e);
        }
        return dir;
    }

    /// <summary>The order checkpoints were made in: ckpt-ITERATION[-N], by iteration, then N.</summary>
    static (long, int) Age(string dir)
    {
        var parts = Path.GetFileName(dir).Split('-');
        long.TryParse(parts.ElementAtOrDefault(1), System.Globalization.CultureInfo.InvariantCulture, out long iteration);
        int.TryParse(parts.ElementAtOrDefault(2), System.Globalization.CultureInfo.InvariantCulture, out int n);
        return (iteration, n);
    }

    /// <summary>The metadata of a policy the trainer saves: <paramref name="info"/> plus the trainer and its counts.</summary>
    public static Dictionary<string, string> PolicyInfo(ITrainer trainer, IReadOnlyDictionary<string, string> info) => new(info)
    {
        ["looptune.trainer"] = trainer.Name,
        ["looptune.env_steps"] = trainer.EnvSteps.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["looptune.iterations"] = trainer.Iterations.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
