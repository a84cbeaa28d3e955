using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Search;

namespace LoopTune;

/// <summary>How a <see cref="Tuner"/> tunes what it has no record of, and the threads its kernels run on.</summary>
public sealed record TunerOptions
{
    /// <summary>The wall-clock budget of one computation's search, as <c>looptune tune --budget</c> reads it: <c>1s</c> (the
    /// default), <c>500ms</c>, <c>10s</c>; <c>0</c> runs the policy's greedy rollout alone. The final timing of the chosen
    /// schedule comes after it.</summary>
    public string Budget { get; init; } = "1s";

    /// <summary>The policy, as <c>looptune tune --policy</c> reads it: <c>default</c> (the shipped or adapted one of the
    /// computation's kind: <c>conv</c> for a convolution), a shipped policy's name, a .safetensors file, a checkpoint or
    /// a training run folder.</summary>
    public string Policy { get; init; } = "default";

    /// <summary>The threads every kernel runs on (<see cref="Kernel.Threads"/>): 1 (the default) to the cores the process may
    /// use. With more than one, the one-thread search's best schedule and the same with its outermost loop that may be
    /// <c>parallel</c> made parallel are both timed on that many threads and the faster kept; records are kept per count.</summary>
    public int Threads { get; init; } = 1;

    /// <summary>The operand a kernel will find cold when the program runs it (its constant operand, the weights, when it
    /// runs among many others, as a model's layers do): every timing of the search and the final one then reads that
    /// operand from one of many copies in turn (<see cref="TimingContext"/>), and the record is kept under that context,
    /// apart from the hot one. Null (the default): timed hot, every run on the same buffers.</summary>
    public Operand? Cold { get; init; }

    /// <summary>Keep each record's schedule compiled by the machine's C compiler too, so that a later recall loads it
    /// rather than compiling it with the JIT (<see cref="LoopTune.CompiledRecords"/>; one thread only): true, the default.
    /// Without a C compiler it does nothing.</summary>
    public bool CompiledRecords { get; init; } = true;

    /// <summary>The timing context of <see cref="Cold"/>.</summary>
    internal TimingContext Context => new(Cold);

    /// <summary>These options, checked: a budget that does not read (<see cref="SearchError"/>), a thread count out of range
    /// (<see cref="ThreadCountError"/>) or a policy that does not load (<see cref="PolicyError"/>) is bad input, found when
    /// the tuner opens rather than at its first search.</summary>
    internal TunerOptions Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(Budget, nameof(Budget));
        ArgumentException.ThrowIfNullOrWhiteSpace(Policy, nameof(Policy));
        if (!PolicyTuning.RolloutOnly(Budget)) _ = SearchBudget.Parse(Budget);
        ThreadCountError.Check(Threads);
        if (Policy != "default") _ = Learning.Policy.Load(Policy);
        return this;
    }
}
