using System.Collections.Immutable;
using LoopTune.Ir;

namespace LoopTune.Env;

/// <summary>What <see cref="LoopTuneEnv.Step(int)"/> returns, in Gymnasium's order.</summary>
public sealed record StepResult(Observation Observation, double Reward, bool Terminated, bool Truncated, StepInfo Info);

/// <summary>Extra facts about a state: the step count, the action taken (its <see cref="ActionSpace.Describe"/>; null
/// after reset), its speed, whether that speed was recalled rather than measured, and the legal-action mask (computed
/// when first asked for: a search that never looks at it does not pay for it).</summary>
public sealed class StepInfo(int step, string? action, double gflops, bool recalled, Func<bool[]> mask)
{
    readonly Lazy<bool[]> actionMask = new(mask);

    public int Step => step;
    public string? Action => action;
    public double Gflops => gflops;
    public bool Recalled => recalled;
    public bool[] ActionMask => actionMask.Value;
}

/// <summary>A state of the environment, as <see cref="LoopTuneEnv.Restore"/> takes it back: the nest, the seed's actions
/// taken since the reset, the ids of the space taken, and the nest's speed.</summary>
public sealed record EnvState(Nest Nest, ImmutableArray<LoopAction> History, ImmutableArray<int> Ids, Evaluated Speed)
{
    /// <summary>The state a reset gives: the unscheduled nest of <paramref name="c"/>, nothing taken.</summary>
    public static EnvState Initial(Computation c, Evaluated speed) => new(Nest.Initial(c), [], [], speed);

    /// <summary>Steps taken since the reset.</summary>
    public int Steps => Ids.Length;
}

/// <summary>An id that is illegal in a state of a loop space (in the cursor space an illegal action is its own
/// <see cref="ScheduleError"/>).</summary>
public sealed class IllegalActionError(ActionSpace space, int id, Nest nest)
    : LoopTuneException($"{(id >= 0 && id < space.Count ? space.Describe(id) : $"id {id}")} is not legal in {nest.Serialize()} ({space.Name} space)");

/// <summary>
/// The LoopTune environment: an agent edits a loop nest, one action per step, and is rewarded by how much faster the
/// compiled kernel becomes. The contract is Gymnasium's: <see cref="Reset(Computation)"/>, then <see cref="Step(int)"/>
/// until <c>truncated</c> or <c>terminated</c>. Searches, policies, training and rollouts all step this one environment
/// (a search branches by <see cref="Restore"/>-ing a state it reached before).
/// <para><b>Action space</b>: Discrete(<see cref="ActionSpace.Count"/>) of the <see cref="Space"/> it is made with
/// (<see cref="ActionSpace"/>): the action table's 18 cursor actions (the seed's 17 and pack; the default), or the loop and tile spaces whose ids name a
/// loop and an edit. The cursor space's table:</para>
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
/// (its <see cref="ScheduleError"/> in the cursor space, an <see cref="IllegalActionError"/> in a loop space): never a
/// silent no-op.
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
/// | prev_actions_tensor | float[5 x 18]             | one-hot of the last 5 actions, most recent first     |
/// | machine_tensor      | float[9]                  | [0, 1]-ish: the machine the kernels run on           |
/// </code>
/// <para><b>Reward</b>: (GFLOPS after the step - GFLOPS before) / peak GFLOPS of the machine at the kernels' vector width
/// (measured once and remembered, see <see cref="Measure.PeakCache"/>). A step that changes no kernel (a cursor move)
/// earns exactly 0.</para>
/// <para><b>Episode end</b>: <c>terminated</c> is always false (there is no goal state; a learner's task also ends an
/// episode in the rare state where nothing is legal); <c>truncated</c> when the episode reaches <see cref="EpisodeLength"/> steps (default 10). Stepping after that throws.</para>
/// </summary>
public sealed class LoopTuneEnv(IEvaluator evaluator, double peakGflops, int episodeLength = 10, ActionSpace? space = null, float[]? machine = null) : IDisposable
{
    EnvState? state;

    /// <summary>An environment on this machine: kernels compiled and timed, measurements kept in the store at
    /// <paramref name="dbPath"/> (default: the user's data folder), reward normalised by the remembered peak.</summary>
    public static LoopTuneEnv Create(string? dbPath = null, int episodeLength = 10, ActionSpace? space = null) =>
        new(Evaluators.Default(dbPath), Measure.PeakCache.GetOrMeasure(), episodeLength, space, Observations.MachineTensor(Measure.Machine.Current)) { ownsEvaluator = true };

    bool ownsEvaluator;

    /// <summary>Releases the evaluator (its buffers and store) when the environment made it (<see cref="Create"/>).</summary>
    public void Dispose()
    {
        if (ownsEvaluator && evaluator is IDisposable d) d.Dispose();
    }

    public int EpisodeLength { get; } = episodeLength > 0 ? episodeLength : throw new ArgumentOutOfRangeException(nameof(episodeLength));
    public double PeakGflops { get; } = peakGflops > 0 ? peakGflops : throw new ArgumentOutOfRangeException(nameof(peakGflops));

    /// <summary>What an action id means here.</summary>
    public ActionSpace Space { get; } = space ?? ActionSpace.Cursor;

    /// <summary>The machine_tensor of every observation (zeros when the environment was made without a machine).</summary>
    public float[] Machine { get; } = machine is null ? new float[Observations.MachineFeatures]
        : machine.Length == Observations.MachineFeatures ? machine : throw new ArgumentException($"a machine tensor has {Observations.MachineFeatures} floats", nameof(machine));

    public IEvaluator Evaluator => evaluator;
    public int Steps => Snapshot.Steps;
    public Nest State => Snapshot.Nest;

    /// <summary>The seed's actions taken since the reset (an id of a loop space may stand for several).</summary>
    public IReadOnlyList<LoopAction> History => Snapshot.History;

    /// <summary>The current state, for <see cref="Restore"/>.</summary>
    public EnvState Snapshot => state ?? throw new InvalidOperationException("call Reset before using the environment");

    /// <summary>Starts an episode on <paramref name="benchmark"/> from its initial nest.</summary>
    public (Observation Observation, StepInfo Info) Reset(Computation benchmark)
    {
        var start = Nest.Initial(benchmark);
        state = new EnvState(start, [], [], evaluator.Evaluate(start));
        return (Observe(), Info(null));
    }

    /// <summary>Starts an episode on a benchmark drawn from <paramref name="benchmarks"/> with <paramref name="seed"/>.</summary>
    public (Observation Observation, StepInfo Info) Reset(IReadOnlyList<Computation> benchmarks, int seed) =>
        Reset(benchmarks[new Random(seed).Next(benchmarks.Count)]);

    /// <summary>Goes back to a state this environment (or another of the same space) reached before, without evaluating
    /// anything: how a search branches.</summary>
    public (Observation Observation, StepInfo Info) Restore(EnvState to)
    {
        state = to ?? throw new ArgumentNullException(nameof(to));
        return (Observe(), Info(null));
    }

    /// <summary>Applies id <paramref name="actionId"/> of <see cref="Space"/>; an illegal one throws and leaves the state as it was.</summary>
    public StepResult Step(int actionId)
    {
        var now = Snapshot;
        if (now.Steps >= EpisodeLength) throw new InvalidOperationException($"the episode was truncated after {EpisodeLength} steps; call Reset");
        if (actionId < 0 || actionId >= Space.Count) throw new ArgumentOutOfRangeException(nameof(actionId), $"action ids of the {Space.Name} space are 0..{Space.Count - 1}");
        if (Space == ActionSpace.Cursor && !Moves.Enabled(Actions.All[actionId])) throw new OneThreadParallelError(now.Nest, Actions.All[actionId]);
        var (actions, next) = Space == ActionSpace.Cursor ? ([Actions.All[actionId]], Transforms.Apply(now.Nest, Actions.All[actionId]))
            : Space.TryApply(now.Nest, actionId) ?? throw new IllegalActionError(Space, actionId, now.Nest);
        var speed = next.ScheduleKey == now.Nest.ScheduleKey ? now.Speed with { Recalled = true } : evaluator.Evaluate(next);
        state = new EnvState(next, now.History.AddRange(actions), now.Ids.Add(actionId), speed);
        var info = Info(Space.Describe(actionId));
        return new StepResult(Observe(), (speed.Gflops - now.Speed.Gflops) / PeakGflops, false, Steps >= EpisodeLength, info);
    }

    /// <summary>Steps the action <see cref="ActionSpace.Describe"/> calls <paramref name="action"/> (<c>split_4</c>;
    /// <c>tile_vec_16@2</c> in the tile space).</summary>
    public StepResult Step(string action) => Step(Space == ActionSpace.Cursor ? Actions.Get(action).Id : Space.Parse(action));

    /// <summary>Steps one of the seed's actions (the cursor space).</summary>
    public StepResult Step(LoopAction action) => Space == ActionSpace.Cursor ? Step(action.Id)
        : throw new InvalidOperationException($"this environment acts in the {Space.Name} space: step one of its ids, not the seed's action {action.Name}");

    /// <summary>Entry i is true when id i is legal in the current state.</summary>
    public bool[] ActionMask() => Space.Mask(State);

    /// <summary>The current state's observation as one float vector (<see cref="ObservationEncoder"/>).</summary>
    public float[] Encode() => ObservationEncoder.Encode(Observe(), Steps, EpisodeLength);

    /// <summary>The current state's observations.</summary>
    public Observation Observe() => new(Snapshot.Nest, Snapshot.Speed, Snapshot.History, Machine);

    StepInfo Info(string? action)
    {
        var s = Snapshot;
        return new(s.Steps, action, s.Speed.Gflops, s.Speed.Recalled, () => Space.Mask(s.Nest));
    }
}

/// <summary>The observations of one state, by name; each is computed on first access.</summary>
public sealed class Observation(Nest nest, Evaluated speed, IReadOnlyList<LoopAction> history, float[]? machine = null)
{
    public static readonly IReadOnlyList<string> Names =
        ["runtime", "flops", "ir", "loop_tree", "ir_tree", "ir_graph", "loops_tensor", "stride_tensor", "prev_actions_tensor", "machine_tensor"];

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

    /// <summary>The machine the kernels run on (<see cref="Observations.MachineTensor"/>); zeros when unknown.</summary>
    public float[] MachineTensor { get; } = machine ?? new float[Observations.MachineFeatures];

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
        "machine_tensor" => MachineTensor,
        _ => throw new LoopTuneException($"unknown observation '{name}'; the observations are: {string.Join(", ", Names)}"),
    };
}
