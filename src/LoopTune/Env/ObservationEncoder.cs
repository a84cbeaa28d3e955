using LoopTune.Ir;

namespace LoopTune.Env;

/// <summary>
/// The observation a policy reads, as one float vector: the environment's default tensors, and the share of the episode
/// left (a policy with a step limit must know how many steps it has).
/// <code>
/// | slice      | size | source                                       |
/// |------------|------|----------------------------------------------|
/// | 0..229     | 230  | loops_tensor (10 loops x 23 features)        |
/// | 230..261   | 32   | stride_tensor                                |
/// | 262..351   | 90   | prev_actions_tensor (5 x 18 one-hot)         |
/// | 352        | 1    | steps taken / episode length                 |
/// | 353..361   | 9    | machine_tensor                               |
/// </code>
/// Older encodings (<see cref="Positions"/>): v2 had the seed's 17 actions (5 x 17 one-hot, 357 floats); v1 had, in
/// addition, no machine_tensor (348 floats).
/// </summary>
public static class ObservationEncoder
{
    /// <summary>The encoding's name, stored with every policy: a policy only reads observations of its own encoding.</summary>
    public const string Name = "loops+strides+prev_actions+time+machine/v3";

    /// <summary>The encoding before the machine_tensor.</summary>
    public const string V1 = "loops+strides+prev_actions+time/v1";

    /// <summary>The encoding before the pack action (17 actions in the prev_actions_tensor).</summary>
    public const string V2 = "loops+strides+prev_actions+time+machine/v2";

    /// <summary>For an older encoding, the position in today's of each of its inputs (its length is the older size); null for
    /// an encoding this one cannot be read from. Inputs today's has and the older had not (the machine_tensor for v1, the
    /// pack action's one-hot entries) have no source.</summary>
    public static int[]? Positions(string encoder)
    {
        bool machine = encoder == V2;
        if (!machine && encoder != V1) return null;
        int prev = Nest.MaxLoops * Observations.LoopFeatures + Observations.StrideBuckets, time = prev + Observations.PreviousActions * Actions.SeedCount;
        var at = new int[time + 1 + (machine ? Observations.MachineFeatures : 0)];
        for (int i = 0; i < at.Length; i++)
            at[i] = i < prev ? i
                : i < time ? prev + (i - prev) / Actions.SeedCount * Actions.LearnedCount + (i - prev) % Actions.SeedCount
                : i == time ? MachineOffset - 1
                : MachineOffset + (i - time - 1);
        return at;
    }

    public static int Size { get; } = Nest.MaxLoops * Observations.LoopFeatures + Observations.StrideBuckets
        + Observations.PreviousActions * Actions.LearnedCount + 1 + Observations.MachineFeatures;

    /// <summary>Where the machine_tensor starts.</summary>
    public static int MachineOffset => Size - Observations.MachineFeatures;

    public static float[] Encode(Observation o, int step, int episodeLength)
    {
        var x = new float[Size];
        o.LoopsTensor.CopyTo(x, 0);
        o.StrideTensor.CopyTo(x, o.LoopsTensor.Length);
        o.PrevActionsTensor.CopyTo(x, o.LoopsTensor.Length + o.StrideTensor.Length);
        x[MachineOffset - 1] = step / (float)episodeLength;
        o.MachineTensor.CopyTo(x, MachineOffset);
        return x;
    }
}

