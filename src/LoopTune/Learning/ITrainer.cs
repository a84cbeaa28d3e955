using System.Text.Json.Nodes;
using LoopTune.Learning.Nn;

namespace LoopTune.Learning;

/// <summary>The hyperparameters of a trainer (<see cref="ApexDqnConfig"/>, <see cref="PpoConfig"/>): what a training site
/// builds its trainer from.</summary>
public interface ITrainerConfig;

/// <summary>
/// A learning algorithm as the <c>train</c> command drives it: one <see cref="Iterate"/> is one round of experience from
/// every actor followed by the learner's updates; between iterations the whole state can be saved (weights and optimizer
/// moments as tensors, counters and random-generator states as JSON) and restored.
/// </summary>
public interface ITrainer : IDisposable
{
    /// <summary>"apex_dqn" or "ppo".</summary>
    string Name { get; }

    /// <summary>The hyperparameters, as a record with a comment per field.</summary>
    object Config { get; }

    /// <summary>The learner's network: what a rollout or a checkpoint's policy uses.</summary>
    IPolicyNetwork Policy { get; }

    long EnvSteps { get; }
    int Iterations { get; }

    /// <summary>One iteration; returns the values to log (episode reward, loss, epsilon or entropy, GFLOPS, steps per second).</summary>
    IReadOnlyDictionary<string, double> Iterate();

    /// <summary>Every tensor of the learner's state (networks, optimizer moments).</summary>
    IReadOnlyList<NamedTensor> Tensors();

    /// <summary>Counters and random-generator states.</summary>
    JsonObject State();

    /// <summary>Starts from the weights of <paramref name="policy"/> (same shape) instead of random ones: a warm start,
    /// e.g. fine-tuning on large benchmarks a policy trained on small ones.</summary>
    void InitFrom(IPolicyNetwork policy);

    /// <summary>Puts back what <see cref="Tensors"/> and <see cref="State"/> saved.</summary>
    void Restore(IReadOnlyList<NamedTensor> tensors, JsonObject state);
}
