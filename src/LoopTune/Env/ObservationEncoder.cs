using LoopTune.Ir;

namespace LoopTune.Env;

/// <summary>
/// The observation a policy reads, as one float vector: the environment's default tensors, and the share of the episode
/// left (a policy with a step limit must know how many steps it has).
/// <code>
/// | slice      | size | source                                       |
/// |------------|------|----------------------------------------------|
/// | 0..239     | 240  | loops_tensor (10 loops x 24 features)        |
/// | 240..271   | 32   | stride_tensor                                |
/// | 272..366   | 95   | prev_actions_tensor (5 x 19 one-hot)         |
/// | 367        | 1    | steps taken / episode length                 |
/// | 368..376   | 9    | machine_tensor                               |
/// </code>
/// Older encodings (<see cref="Positions"/>), each read exactly by today's: v3 had 23 features per loop (no parallel flag)
/// and 18 actions (5 x 18 one-hot, 362 floats); v2 had the seed's 17 actions (357 floats); v1 had, in addition, no
/// machine_tensor (348 floats).
/// </summary>
public static class ObservationEncoder
{
    /// <summary>The encoding's name, stored with every policy: a policy only reads observations of its own encoding.</summary>
    public const string Name = "loops+strides+prev_actions+time+machine/v4";

    /// <summary>The encoding before the machine_tensor.</summary>
    public const string V1 = "loops+strides+prev_actions+time/v1";

    /// <summary>The encoding before the pack action (17 actions in the prev_actions_tensor).</summary>
    public const string V2 = "loops+strides+prev_actions+time+machine/v2";

    /// <summary>The encoding before the parallel action (18 actions, 23 features per loop).</summary>
    public const string V3 = "loops+strides+prev_actions+time+machine/v3";

    /// <summary>The features per loop of the encodings before v4.</summary>
    public const int OldLoopFeatures = 23;

    /// <summary>For an older encoding, the position in today's of each of its inputs (its length is the older size); null for
    /// an encoding this one cannot be read from. Inputs today's has and the older had not (the machine_tensor for v1, the
    /// one-hot entries of the actions added since, the parallel flag of each loop) have no source.</summary>
    public static int[]? Positions(string encoder)
    {
        (int Actions, bool Machine)? old = encoder switch
        {
            V1 => (Actions.SeedCount, false),
            V2 => (Actions.SeedCount, true),
            V3 => (Actions.SeedCount + 1, true),
            _ => null,
        };
        if (old is not var (actions, machine)) return null;
        int loops = Nest.MaxLoops * OldLoopFeatures, prev = loops + Observations.StrideBuckets, time = prev + Observations.PreviousActions * actions;
        int newPrev = Nest.MaxLoops * Observations.LoopFeatures + Observations.StrideBuckets;
        var at = new int[time + 1 + (machine ? Observations.MachineFeatures : 0)];
        for (int i = 0; i < at.Length; i++)
            at[i] = i < loops ? i / OldLoopFeatures * Observations.LoopFeatures + i % OldLoopFeatures
                : i < prev ? newPrev - Observations.StrideBuckets + (i - loops)
                : i < time ? newPrev + (i - prev) / actions * Actions.LearnedCount + (i - prev) % actions
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

