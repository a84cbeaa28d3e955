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
/// | 262..346   | 85   | prev_actions_tensor (5 x 17 one-hot)         |
/// | 347        | 1    | steps taken / episode length                 |
/// | 348..356   | 9    | machine_tensor                               |
/// </code>
/// </summary>
public static class ObservationEncoder
{
    /// <summary>The encoding's name, stored with every policy: a policy only reads observations of its own encoding.</summary>
    public const string Name = "loops+strides+prev_actions+time+machine/v2";

    public static int Size { get; } = Nest.MaxLoops * Observations.LoopFeatures + Observations.StrideBuckets
        + Observations.PreviousActions * Actions.Count + 1 + Observations.MachineFeatures;

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

