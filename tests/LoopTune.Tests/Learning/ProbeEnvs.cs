using LoopTune.Learning;

namespace LoopTune.Tests.Learning;

/// <summary>
/// A small deterministic environment with a known optimum, a delayed reward, a trap and a mask:
/// <code>
/// | state        | one-hot of the position (0..Length-1) and a flag "every action so far was the key's"   |
/// | actions      | Actions; at position p action (p + 1) mod Actions is illegal                          |
/// | reward       | the key's action: 0 now, and 1 at the end if every action was the key's;              |
/// |              | any other legal action: Trap at once (a myopic learner takes it)                      |
/// | episode      | Length steps                                                                          |
/// | optimum      | return 1 (the key at every step); the best off-key return is Trap x Length           |
/// </code>
/// </summary>
sealed class KeyChainEnv(int length = 3, int actions = 4, double trap = 0.1) : IRlEnv
{
    public int[] Key { get; } = [.. Enumerable.Range(0, length).Select(p => (2 * p + 2) % actions)];
    public int Length => length;
    public double Trap => trap;
    public int ObservationSize => length + 1;
    public int ActionCount => actions;
    public int IllegalChosen { get; private set; }

    int position;
    bool onKey;

    public TimeStep Reset(Rng rng)
    {
        (position, onKey) = (0, true);
        return Observe(0, false);
    }

    public TimeStep Step(int action)
    {
        if (!Mask(position)[action]) IllegalChosen++;
        double reward;
        if (action == Key[position])
            reward = onKey && position == length - 1 ? 1 : 0;
        else
        {
            onKey = false;
            reward = trap;
        }
        position++;
        return Observe(reward, position == length);
    }

    public bool[] Mask(int p) => [.. Enumerable.Range(0, actions).Select(a => a != (p + 1) % actions)];

    TimeStep Observe(double reward, bool done)
    {
        var x = new float[length + 1];
        if (position < length) x[position] = 1;
        x[length] = onKey ? 1 : 0;
        return new TimeStep(x, Mask(Math.Min(position, length - 1)), reward, done, reward);
    }

    /// <summary>The return of the greedy rollout of <paramref name="policy"/>.</summary>
    public double GreedyReturn(Policy policy)
    {
        var t = Reset(new Rng(0));
        double total = 0;
        while (!t.Done)
        {
            t = Step(policy.Act(t.Observation, t.Mask));
            total += t.Reward;
        }
        return total;
    }
}
