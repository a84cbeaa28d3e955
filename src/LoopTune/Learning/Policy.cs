using System.Globalization;
using System.Text.Json;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Learning.Nn;

namespace LoopTune.Learning;

/// <summary>A policy file that cannot be used: missing, corrupt, or made for another network or observation.</summary>
public sealed class PolicyError(string message, Exception? inner = null) : LoopTuneException(message, inner);

/// <summary>
/// A trained policy: a network with the shape, observation encoding and episode length it was trained with, read from a
/// safetensors file whose metadata records them (any safetensors reader opens it). <see cref="Act"/> is the greedy masked
/// choice: the legal action with the largest Q-value (DQN) or logit (PPO).
/// </summary>
public sealed class Policy
{
    /// <summary>The file name of a policy in a checkpoint folder.</summary>
    public const string FileName = "policy.safetensors";
    const string Prefix = "looptune.";

    Policy(IPolicyNetwork network, ActionSpace space, int episodeLength, IReadOnlyDictionary<string, string> metadata, string source) =>
        (Network, Space, EpisodeLength, Metadata, Source) = (network, space, episodeLength, metadata, source);

    public IPolicyNetwork Network { get; }

    /// <summary>What the network's outputs mean (<see cref="ActionSpace"/>).</summary>
    public ActionSpace Space { get; }
    public NetworkShape Shape => Network.Shape;
    public int EpisodeLength { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Where the policy was read from (or "memory").</summary>
    public string Source { get; }

    /// <summary>The folder of the policies shipped with LoopTune (next to the program); <c>--policy NAME</c> finds NAME.safetensors there.</summary>
    public static string ShippedFolder => Path.Combine(AppContext.BaseDirectory, "policies");

    /// <summary>The default policy: default.safetensors in <see cref="ShippedFolder"/>.</summary>
    public static string DefaultPath => Path.Combine(ShippedFolder, "default.safetensors");

    /// <summary>The shipped policy for convolutions: conv.safetensors in <see cref="ShippedFolder"/>.</summary>
    public static string ConvPath => Path.Combine(ShippedFolder, "conv.safetensors");

    /// <summary>Where <c>looptune adapt</c> keeps the policies it adapted to this kind of machine:
    /// <c>policies/&lt;machine&gt;/</c> in the data folder (<see cref="Measure.Machine.Slug"/>).</summary>
    public static string AdaptedFolder => Path.Combine(DataFolder.Root, "policies", Measure.Machine.Slug + ThreadsSuffix);

    /// <summary>"" at one thread, "-2threads" at two (<see cref="Jit.RunThreads"/>): a policy adapted to rewards at N threads
    /// is kept, and found, apart from one adapted at one.</summary>
    public static string ThreadsSuffix => Jit.RunThreads.Default > 1 ? $"-{Jit.RunThreads.Default}threads" : "";

    /// <summary>The adapted policy called <paramref name="name"/> ("default" or "conv") of this kind of machine.</summary>
    public static string AdaptedPath(string name) => Path.Combine(AdaptedFolder, name + ".safetensors");

    /// <summary>The name of the default policy for <paramref name="c"/>: "conv" for a convolution, in any layout
    /// (<see cref="Computation.HasWindows"/>: a model's strided, phase-split or channel-blocked ones too), when there is a
    /// convolution policy, adapted or shipped; "default" otherwise.</summary>
    public static string KindOf(Computation c) =>
        c.HasWindows && (File.Exists(AdaptedPath("conv")) || File.Exists(ConvPath)) ? "conv" : "default";

    /// <summary>The file "default" means for policy <paramref name="name"/>: the one adapted to this machine when there is
    /// one (<see cref="AdaptedPath"/>), else the shipped one.</summary>
    public static string DefaultFile(string name) =>
        File.Exists(AdaptedPath(name)) ? AdaptedPath(name) : name == "conv" ? ConvPath : DefaultPath;

    /// <summary>What "default" means for <paramref name="c"/>: the policy of its kind (<see cref="KindOf"/>), adapted to this
    /// machine when it was (<see cref="DefaultFile"/>). Any other name is itself.</summary>
    public static string Choose(string pathOrDefault, Computation c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return pathOrDefault == "default" ? DefaultFile(KindOf(c)) : pathOrDefault;
    }

    /// <summary>A policy over <paramref name="network"/> (a trainer's live network).</summary>
    public static Policy FromNetwork(IPolicyNetwork network, int episodeLength, ActionSpace? space = null) =>
        new(network, space ?? ActionSpace.Cursor, episodeLength, new Dictionary<string, string>(), "memory");

    /// <summary>Writes the network and its description (plus <paramref name="extra"/> metadata) to <paramref name="path"/>, atomically.</summary>
    public static void Save(string path, IPolicyNetwork network, int episodeLength, IReadOnlyDictionary<string, string>? extra = null, ActionSpace? space = null)
    {
        var meta = new Dictionary<string, string>(extra ?? new Dictionary<string, string>())
        {
            [Prefix + "format"] = "looptune-policy/1",
            [Prefix + "shape"] = JsonSerializer.Serialize(network.Shape),
            [Prefix + "encoder"] = ObservationEncoder.Name,
            [Prefix + "episode_length"] = episodeLength.ToString(CultureInfo.InvariantCulture),
            [Prefix + "action_space"] = (space ?? ActionSpace.Cursor).Name,
        };
        SafeTensors.Save(path, SafeTensors.FromParameters(network.Parameters), meta);
    }

    /// <summary>
    /// Reads a policy: "default" (the shipped one; <see cref="Choose"/> picks the convolution one for a convolution), a .safetensors policy file, a checkpoint folder (its policy.safetensors)
    /// or a run folder of <c>looptune train</c> (its latest checkpoint). A <see cref="PolicyError"/> names what is wrong.
    /// </summary>
    public static Policy Load(string pathOrDefault) => Load(pathOrDefault, upgrade: false);

    /// <summary>What <see cref="Load(string)"/> reads, and also a policy of the encoding before the machine_tensor
    /// (<see cref="EncoderV1"/>), carried over exactly: its first layers get zero weights for the new inputs, so it acts as it
    /// did and learns to use the machine from there (<c>train --init</c>, <c>adapt</c>). <see cref="Load(string)"/> itself
    /// reads a policy of the encoding before the pack action (<see cref="ObservationEncoder.V2"/>) the same way: the new
    /// inputs are only the pack action's entries among the previous actions.</summary>
    public static Policy LoadForInit(string pathOrDefault) => Load(pathOrDefault, upgrade: true);

    /// <summary>The observation encoding before the machine_tensor: the first <see cref="ObservationEncoder.MachineOffset"/>
    /// floats of today's.</summary>
    public const string EncoderV1 = ObservationEncoder.V1;

    static Policy Load(string pathOrDefault, bool upgrade)
    {
        string path = ResolvePath(pathOrDefault);
        IReadOnlyList<NamedTensor> tensors;
        IReadOnlyDictionary<string, string> meta;
        try { (tensors, meta) = SafeTensors.Load(path); }
        catch (SafeTensorsError e) { throw new PolicyError($"policy {path} cannot be read: {e.Message}", e); }
        if (!meta.TryGetValue(Prefix + "shape", out var shapeJson) || !meta.TryGetValue(Prefix + "encoder", out var encoder))
            throw new PolicyError($"{path} is a safetensors file but not a LoopTune policy (its metadata has no {Prefix}shape / {Prefix}encoder)");
        NetworkShape shape;
        try { shape = JsonSerializer.Deserialize<NetworkShape>(shapeJson) ?? throw new JsonException("null"); }
        catch (Exception e) when (e is JsonException or NotSupportedException or ArgumentException)
        {
            throw new PolicyError($"policy {path}: its network shape '{shapeJson}' cannot be read ({e.Message})", e);
        }
        if (shape.Kind is null || shape.Activation is null || shape.Hidden is null || shape.Observations <= 0 || shape.Actions <= 0 || shape.Hidden.Any(h => h <= 0))
            throw new PolicyError($"policy {path}: its network shape '{shapeJson}' lacks a field or has a size that is not positive");
        if ((encoder is ObservationEncoder.V2 or ObservationEncoder.V3 || (encoder == EncoderV1 && upgrade)) && ObservationEncoder.Positions(encoder) is { } at && shape.Observations == at.Length)
        {
            (tensors, shape) = (Upgrade(tensors, shape, at), shape with { Observations = ObservationEncoder.Size });
            meta = new Dictionary<string, string>(meta) { [Prefix + "encoder"] = ObservationEncoder.Name, [Prefix + "upgraded_from"] = encoder };
        }
        else if (encoder != ObservationEncoder.Name)
            throw new PolicyError($"policy {path} reads observations '{encoder}'; this LoopTune encodes '{ObservationEncoder.Name}'"
                + (encoder == EncoderV1 ? " (the machine_tensor is new): carry its weights over with 'train --init' or 'adapt'" : ""));
        ActionSpace space;
        try { space = ActionSpace.Get(meta.GetValueOrDefault(Prefix + "action_space", "cursor")); }
        catch (LoopTuneException e) { throw new PolicyError($"policy {path}: {e.Message}", e); }
        bool loops = space.LoopOf(0) is not null;
        if (shape.Actions < space.Count && (loops ? shape.Actions % Nest.MaxLoops == 0 && shape.Actions / Nest.MaxLoops < space.PerLoop : shape.Actions >= Actions.SeedCount))
        {
            string from = loops ? (shape.Actions / Nest.MaxLoops).ToString(CultureInfo.InvariantCulture) + " per loop" : shape.Actions.ToString(CultureInfo.InvariantCulture);
            meta = new Dictionary<string, string>(meta) { [Prefix + "upgraded_actions_from"] = from };
            (tensors, shape) = (Widen(tensors, shape, space), shape with { Actions = space.Count });
        }
        if (shape.Observations != ObservationEncoder.Size || shape.Actions != space.Count)
            throw new PolicyError($"policy {path} is a network for {shape.Observations} inputs and {shape.Actions} actions; the '{space.Name}' action space has {ObservationEncoder.Size} and {space.Count}");
        IPolicyNetwork net;
        try { net = Net.Create(shape, new Random(0)); }
        catch (ArgumentException e) { throw new PolicyError($"policy {path}: {e.Message}", e); }
        try { SafeTensors.LoadInto(net.Parameters, tensors, path); }
        catch (SafeTensorsError e) { throw new PolicyError(e.Message, e); }
        int length = meta.TryGetValue(Prefix + "episode_length", out var l) && int.TryParse(l, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : 10;
        return new Policy(net, space, length, meta, path);
    }

    /// <summary>An older encoding's network with every first-layer weight ([inputs, outputs]) read for today's inputs: row i
    /// moves to <paramref name="at"/>[i], the new inputs get zero rows. The same function of the observations it had.</summary>
    static IReadOnlyList<NamedTensor> Upgrade(IReadOnlyList<NamedTensor> tensors, NetworkShape shape, int[] at) =>
    [
        .. tensors.Select(t =>
        {
            if (t.Shape is not [var rows, var cols] || rows != shape.Observations || !t.Name.EndsWith(".0.weight", StringComparison.Ordinal)) return t;
            var data = new float[ObservationEncoder.Size * cols];
            for (int r = 0; r < rows; r++) Array.Copy(t.Data, r * cols, data, at[r] * cols, cols);
            return t with { Shape = [ObservationEncoder.Size, cols], Data = data };
        }),
    ];

    /// <summary>A network for a space with fewer edits (per loop in a loop space: the tile space before its block macros or
    /// before parallel; the cursor space before parallel) widened to <paramref name="space"/>: each old edit keeps its
    /// output column at its new id, and every new edit gets zero weights and the mean bias of the old edits, so the old
    /// edits keep their order and the new ones start level.</summary>
    static IReadOnlyList<NamedTensor> Widen(IReadOnlyList<NamedTensor> tensors, NetworkShape shape, ActionSpace space)
    {
        bool loops = space.LoopOf(0) is not null;
        int oldPer = loops ? shape.Actions / Nest.MaxLoops : shape.Actions, newPer = loops ? space.PerLoop : space.Count;
        NamedTensor Remap(NamedTensor t, int offset)
        {
            // a tensor other than the metadata's shape says is left for LoadInto to name
            if (t.Shape is not ([_] or [_, _]) || t.Shape[^1] != shape.Actions + offset) return t;
            int rows = t.Shape.Length == 2 ? t.Shape[0] : 1, oldCols = t.Shape[^1], newCols = space.Count + offset;
            bool bias = t.Shape.Length == 1;
            var data = new float[rows * newCols];
            for (int r = 0; r < rows; r++)
            {
                for (int c = 0; c < offset; c++) data[r * newCols + c] = t.Data[r * oldCols + c];
                float mean = 0;
                for (int a = 0; a < shape.Actions; a++) mean += t.Data[r * oldCols + offset + a] / shape.Actions;
                for (int a = 0; a < space.Count; a++)
                {
                    int loop = a / newPer, edit = a % newPer;
                    data[r * newCols + offset + a] = edit < oldPer ? t.Data[r * oldCols + offset + loop * oldPer + edit] : bias ? mean : 0;
                }
            }
            return t with { Shape = bias ? [newCols] : [rows, newCols], Data = data };
        }
        return [.. tensors.Select(t => t.Name switch
        {
            "q.out.weight" or "q.out.bias" => Remap(t, 1), // column 0 is the dueling network's state value
            "actor.out.weight" or "actor.out.bias" => Remap(t, 0),
            _ => t,
        })];
    }

    static string ResolvePath(string p)
    {
        if (p == "default")
            return File.Exists(DefaultFile("default")) ? DefaultFile("default") : throw new PolicyError($"the default policy is not installed ({DefaultPath} does not exist)");
        var shipped = Path.Combine(ShippedFolder, p + ".safetensors");
        if (!p.Contains('/') && !p.Contains('.') && File.Exists(shipped)) return shipped;
        if (File.Exists(p)) return p;
        if (Directory.Exists(p))
        {
            if (File.Exists(Path.Combine(p, FileName))) return Path.Combine(p, FileName);
            if (RunFolder.LatestCheckpoint(p) is { } ckpt) return Path.Combine(ckpt, FileName);
            throw new PolicyError($"folder {p} holds no policy: neither {FileName} nor a checkpoint of a training run");
        }
        throw new PolicyError($"policy '{p}' does not exist (give 'default', a .safetensors file, a checkpoint folder or a run folder)");
    }

    /// <summary>The same network with rollouts of <paramref name="steps"/> actions (its time feature then counts those).</summary>
    public Policy WithEpisodeLength(int steps) => new(Network, Space, steps, Metadata, Source);

    /// <summary>Runs the network a few times so that .NET has compiled its code before anything is timed.</summary>
    public void WarmUp()
    {
        var mask = Space.Mask(Nest.Initial(Computation.Parse("mm 8 8 8")));
        for (int i = 0; i < 3; i++) Rank(new float[ObservationEncoder.Size], mask);
    }

    /// <summary>The greedy legal action for an encoded observation.</summary>
    public int Act(float[] observation, bool[] mask) => Net.MaskedArgmax(Network.Scores(Net.Row(observation)).Row(0), mask);

    /// <summary>The legal actions ranked by the policy's preference, best first.</summary>
    public int[] Rank(float[] observation, bool[] mask)
    {
        var s = Network.Scores(Net.Row(observation)).Row(0).ToArray();
        return [.. Enumerable.Range(0, s.Length).Where(a => mask[a]).OrderByDescending(a => s[a]).ThenBy(a => a)];
    }

    /// <summary>The legal actions of <paramref name="env"/>'s state (an environment of this policy's space and episode
    /// length), ranked by the policy, best first.</summary>
    public int[] Rank(LoopTuneEnv env) => Rank(env.Encode(), env.ActionMask());

    /// <summary>The machines and vector widths the policy was trained on, as its metadata records them (empty for a policy
    /// made before they were recorded).</summary>
    public IReadOnlyList<string> TrainedOn => Metadata.TryGetValue(Prefix + "machines", out var m) ? [.. m.Split('\n', StringSplitOptions.RemoveEmptyEntries)] : [];
}

/// <summary>What a policy's rollout did: the path and the final state, the best state measured, and how many kernels it timed.</summary>
public sealed record RolloutResult(IReadOnlyList<LoopAction> Actions, Nest Final, Nest Best, double StartGflops, double BestGflops, int Measured);

/// <summary>Greedy masked rollouts of a policy through the environment, timing each new kernel on the way (the best state is the answer).</summary>
public static class Rollout
{
    /// <summary>Runs <paramref name="steps"/> greedy choices of <paramref name="policy"/> from the unscheduled nest of
    /// <paramref name="computation"/> in a <see cref="LoopTuneEnv"/> of the policy's space whose observations carry
    /// <paramref name="machine"/> (default: this machine's, <see cref="PolicySearch.ThisMachine"/>), measuring every state
    /// whose kernel changed.</summary>
    public static RolloutResult Greedy(Policy policy, Computation computation, IEvaluator evaluator, int? steps = null, float[]? machine = null)
    {
        var env = new LoopTuneEnv(evaluator, 1, steps ?? policy.EpisodeLength, policy.Space, machine ?? PolicySearch.ThisMachine());
        var (_, info) = env.Reset(computation);
        int measured = 1;
        double start = info.Gflops, bestGflops = start;
        var best = env.State;
        while (env.Steps < env.EpisodeLength)
        {
            var ranked = policy.Rank(env);
            if (ranked.Length == 0) break;
            var before = env.State.ScheduleKey;
            var r = env.Step(ranked[0]);
            if (env.State.ScheduleKey == before) continue;
            measured++;
            if (r.Info.Gflops > bestGflops) (bestGflops, best) = (r.Info.Gflops, env.State);
        }
        return new RolloutResult(env.History, env.State, best, start, bestGflops, measured);
    }
}
