namespace LoopTune.Learning;

/// <summary>What an environment returns to a learner: the encoded observation, the legal-action mask of the state, the
/// reward of the step that led there (0 after a reset), whether the episode ended, and a score for the curves (for the
/// loop-nest task: the GFLOPS of the state).</summary>
public readonly record struct TimeStep(float[] Observation, bool[] Mask, double Reward, bool Done, double Score);

/// <summary>
/// The environment as a learner sees it: fixed-size float observations, a discrete action set with a mask, episodes that
/// end. <see cref="LoopTuneTask"/> adapts the loop-nest environment; tests use small environments with a known optimum.
/// <code>
/// | member          | contract                                                                  |
/// |-----------------|---------------------------------------------------------------------------|
/// | Reset(rng)      | a new episode (the task drawn with rng); Reward 0, Done false             |
/// | Step(a)         | a must be legal in the last mask; after Done, only Reset                   |
/// | Mask            | at least one legal action in every state that is not Done                  |
/// </code>
/// </summary>
public interface IRlEnv
{
    int ObservationSize { get; }
    int ActionCount { get; }
    TimeStep Reset(Rng rng);
    TimeStep Step(int action);
}
