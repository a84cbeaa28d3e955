using LoopTune.Ir;

namespace LoopTune.Env;

/// <summary>What <see cref="LoopTuneEnv.Step(LoopAction)"/> returns, in Gymnasium's order.</summary>
public sealed record StepResult(Observation Observation, double Reward, bool Terminated, bool Truncated, StepInfo Info);

/// <summary>Extra facts about a state: the step count, the action taken (null after reset), its speed, whether that
/// speed was recalled rather than measured, and the legal-action mask.</summary>
public sealed record StepInfo(int Step, string? Action, double Gflops, bool Recalled, bool[] ActionMask);

/// <summary>
/// The LoopTune environment: an agent edits a loop nest with a cursor, one action per step, and is rewarded by how much
/// faster the compiled kernel becomes. The contract is Gymnasium's: <see cref="Reset"/>, then <see cref="Step(LoopAction)"/>
/// until <c>truncated</c>.
/// <para><b>Action space</b>: Discrete(<see cref="Actions.Count"/>), the action table of <see cref="Actions"/>:</para>
/// <code>
/// | id    | action              | effect on the loop under the cursor                          |
/// |-------|---------------------|--------------------------------------------------------------|
/// | 0, 1  | up, down            | move the cursor                                              |
/// | 2, 3  | swap_up, swap_down  | exchange with the neighbour; the cursor follows              |
/// | 4-13  | split_2..split_1024 | split into outer x inner(N); the cursor stays outer          |
/// | 14    | merge               | fold into the enclosing loop of the same variable            |
/// | 15    | unroll              | toggle full unrolling                                        |
/// | 16    | vectorize           | toggle SIMD (innermost loop only)                            |
/// </code>
/// Every state has a mask (<see cref="ActionMask"/>, also in <see cref="StepInfo"/>); stepping an illegal action throws
/// its <see cref="ScheduleError"/>: never a silent no-op.
/// <para><b>Observations</b> (<see cref="Observation"/>, each computed only when asked for):</para>
/// <code>
/// | name                | type / shape              | range / meaning                                      |
/// |---------------------|---------------------------|------------------------------------------------------|
/// | runtime             | double                    | seconds per kernel run (median), > 0                 |
/// | flops               | double                    | GFLOPS of the kernel, > 0                            |
/// | ir                  | string                    | compact schedule (Nest.Serialize), parses back       |
/// | loop_tree           | string                    | readable tree with the cursor marker                 |
/// | ir_tree             | Graph (DOT exportable)    | loop nodes + statement node, parent -> child edges   |
/// | ir_graph            | Graph (DOT exportable)    | loops, tensors, accesses; typed edges with strides   |
/// | loops_tensor        | float[10 x 23]            | [0, 1], per-loop features, zero rows past the nest   |
/// | stride_tensor       | float[32]                 | [0, 1], sums to 1                                    |
/// | prev_actions_tensor | float[5 x 17]             | one-hot of the last 5 actions, most recent first     |
/// </code>
/// <para><b>Reward</b>: (GFLOPS after the step - GFLOPS before) / peak GFLOPS of the machine (measured once and remembered,
/// see <see cref="Measure.PeakCache"/>). Cursor moves change no kernel, so they earn exactly 0.</para>
/// <para><b>Episode end</b>: <c>terminated</c> is always false (there is no goal state); <c>truncated</c> becomes true when
/// the episode reaches <see cref="EpisodeLength"/> steps (default 10). Stepping after that throws.</para>
/// </summary>
public sealed class LoopTuneEnv(IEvaluator evaluator, double peakGflops, int episodeLength = 10) : IDisposable
{
    readonly List<LoopAction> history = [];
    Nest? state;
    Evaluated current;

    /// <summary>An environment on this machine: kernels compiled and timed, measurements kept in the store at
    /// <paramref name="dbPath"/> (default: the user's data folder), reward normalised by the remembered peak.</summary>
    public static LoopTuneEnv Create(string? dbPath = null, int episodeLength = 10) =>
        new(Evaluators.Default(dbPath), Measure.PeakCache.GetOrMeasure(), episodeLength) { ownsEvaluator = true };

    bool ownsEvaluator;

    /// <summary>Releases the evaluator (its buffers and store) when the environment made it (<see cref="Create"/>).</summary>
    public void Dispose()
    {
        if (ownsEvaluator && evaluator is IDisposable d) d.Dispose();
    }

    public int EpisodeLength { get; } = episodeLength > 0 ? episodeLength : throw new ArgumentOutOfRangeException(nameof(episodeLength));
    public double PeakGflops { get; } = peakGflops > 0 ? peakGflops : throw new ArgumentOutOfRangeException(nameof(peakGflops));
    public int Steps => history.Count;
    public Nest State => state ?? throw new InvalidOperationException("call Reset before using the environment");
    public IReadOnlyList<LoopAction> History => history;

    /// <summary>Starts an episode on <paramref name="benchmark"/> from its initial nest.</summary>
    public (Observation Observation, StepInfo Info) Reset(Computation benchmark)
    {
        history.Clear();
        state = Nest.Initial(benchmark);
        current = evaluator.Evaluate(state);
        return (Observe(), Info(null));
    }

    /// <summary>Starts an episode on a benchmark drawn from <paramref name="benchmarks"/> with <paramref name="seed"/>.</summary>
    public (Observation Observation, StepInfo Info) Reset(IReadOnlyList<Computation> benchmarks, int seed) =>
        Reset(benchmarks[new Random(seed).Next(benchmarks.Count)]);

    public StepResult Step(int actionId) =>
        Step(actionId >= 0 && actionId < Actions.Count ? Actions.All[actionId] : throw new ArgumentOutOfRangeException(nameof(actionId), $"action ids are 0..{Actions.Count - 1}"));

    public StepResult Step(string action) => Step(Actions.Get(action));

    /// <summary>Applies <paramref name="action"/>; an illegal one throws its <see cref="ScheduleError"/> and leaves the state as it was.</summary>
    public StepResult Step(LoopAction action)
    {
        if (Steps >= EpisodeLength) throw new InvalidOperationException($"the episode was truncated after {EpisodeLength} steps; call Reset");
        var next = Transforms.Apply(State, action);
        var before = current.Gflops;
        current = next.ScheduleKey == State.ScheduleKey ? current with { Recalled = true } : evaluator.Evaluate(next);
        state = next;
        history.Add(action);
        return new StepResult(Observe(), (current.Gflops - before) / PeakGflops, false, Steps >= EpisodeLength, Info(action.Name));
    }

    /// <summary>Entry i is true when action i is legal in the current state.</summary>
    public bool[] ActionMask() => Transforms.Mask(State);

    Observation Observe() => new(State, current, [.. history]);
    StepInfo Info(string? action) => new(Steps, action, current.Gflops, current.Recalled, ActionMask());
}

/// <summary>The observations of one state, by name; each is computed on first access.</summary>
public sealed class Observation(Nest nest, Evaluated speed, IReadOnlyList<LoopAction> history)
{
    public static readonly IReadOnlyList<string> Names =
        ["runtime", "flops", "ir", "loop_tree", "ir_tree", "ir_graph", "loops_tensor", "stride_tensor", "prev_actions_tensor"];

    readonly Lazy<float[]> loops = new(() => Observations.LoopsTensor(nest));
    readonly Lazy<float[]> strides = new(() => Observations.StrideTensor(nest));
    readonly Lazy<float[]> previous = new(() => Observations.PreviousActionsTensor(history));

    public Nest Nest { get; } = nest;
    public double Runtime => speed.Seconds;
    public double Flops => speed.Gflops;
    public string Ir => Nest.Serialize();
    public string LoopTree => Nest.ToTree();
    public Graph IrTree => Observations.IrTree(Nest);
    public Graph IrGraph => Observations.IrGraph(Nest);
    public float[] LoopsTensor => loops.Value;
    public float[] StrideTensor => strides.Value;
    public float[] PrevActionsTensor => previous.Value;

    /// <summary>The observation called <paramref name="name"/> (see <see cref="Names"/>).</summary>
    public object Get(string name) => name switch
    {
        "runtime" => Runtime,
        "flops" => Flops,
        "ir" => Ir,
        "loop_tree" => LoopTree,
        "ir_tree" => IrTree,
        "ir_graph" => IrGraph,
        "loops_tensor" => LoopsTensor,
        "stride_tensor" => StrideTensor,
        "prev_actions_tensor" => PrevActionsTensor,
        _ => throw new LoopTuneException($"unknown observation '{name}'; the observations are: {string.Join(", ", Names)}"),
    };
}
