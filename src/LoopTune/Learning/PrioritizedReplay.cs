namespace LoopTune.Learning;

/// <summary>One n-step transition of DQN's replay: the state and its action, the discounted reward of the next n steps,
/// the state n steps later with its legal-action mask, and the discount to apply to that state's value (gamma^n, or 0 when
/// the episode ended within the n steps).</summary>
public sealed record Transition(float[] Observation, int Action, float Return, float[] NextObservation, bool[] NextMask, float Discount);

/// <summary>
/// Prioritized experience replay (Schaul et al. 2016), proportional variant: transition i is drawn with probability
/// p_i^alpha / sum_k p_k^alpha and weighted by (N P(i))^-beta / max_j (N P(j))^-beta. Sum and min segment trees give
/// O(log N) draws and updates. When full, the oldest transition is evicted (Ape-X).
/// <para>The transitions are stored field by field in flat arrays, allocated chunk by chunk as the replay fills: adding one
/// copies its rows and makes no object, so that a learner absorbing thousands a second leaves the garbage collector
/// nothing to trace or promote. Every transition of a replay has the size of the first's observation and mask.</para>
/// </summary>
public sealed class PrioritizedReplay(int capacity, double alpha)
{
    const int ChunkSize = 4096;   // transitions per storage chunk
    readonly int size = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, capacity));
    readonly double[] sum = new double[2 * (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, capacity))];
    readonly double[] min = Enumerable.Repeat(double.PositiveInfinity, 2 * (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, capacity))).ToArray();
    readonly int[] actions = new int[capacity];
    readonly float[] returns = new float[capacity], discounts = new float[capacity];
    readonly float[]?[] observations = new float[]?[(capacity + ChunkSize - 1) / ChunkSize], nextObservations = new float[]?[(capacity + ChunkSize - 1) / ChunkSize];
    readonly bool[]?[] nextMasks = new bool[]?[(capacity + ChunkSize - 1) / ChunkSize];
    int observationSize = -1, maskSize = -1;
    int next;

    public int Capacity { get; } = capacity;
    public int Count { get; private set; }

    /// <summary>The largest priority given so far (new transitions without a priority of their own get it).</summary>
    public double MaxPriority { get; private set; } = 1;

    /// <summary>Transition <paramref name="i"/>, copied out of the replay.</summary>
    public Transition this[int i] => new(Observation(i).ToArray(), Action(i), Return(i), NextObservation(i).ToArray(), NextMask(i).ToArray(), Discount(i));

    /// <summary>Transition <paramref name="i"/>'s state (a view of the replay's storage, valid until the slot is reused).</summary>
    public ReadOnlySpan<float> Observation(int i) => Row(observations, i, observationSize);

    /// <summary>Transition <paramref name="i"/>'s state n steps later.</summary>
    public ReadOnlySpan<float> NextObservation(int i) => Row(nextObservations, i, observationSize);

    /// <summary>The legal actions of transition <paramref name="i"/>'s state n steps later.</summary>
    public ReadOnlySpan<bool> NextMask(int i) => Row(nextMasks, i, maskSize);

    /// <summary>Transition <paramref name="i"/>'s action.</summary>
    public int Action(int i) => actions[Filled(i)];

    /// <summary>Transition <paramref name="i"/>'s discounted reward of the next n steps.</summary>
    public float Return(int i) => returns[Filled(i)];

    /// <summary>The discount of transition <paramref name="i"/>'s bootstrapped value (0: the episode ended).</summary>
    public float Discount(int i) => discounts[Filled(i)];

    /// <summary>Transition <paramref name="i"/>'s priority as stored, p_i^alpha (0 for a slot never filled).</summary>
    internal double StoredPriority(int i) => sum[i + size];

    /// <summary>The probability that one draw picks transition <paramref name="i"/>: p_i^alpha / sum_k p_k^alpha.</summary>
    internal double Probability(int i) => sum[i + size] / sum[1];

    /// <summary>Adds a transition with <paramref name="priority"/> (its TD error magnitude; null: the largest so far).</summary>
    public void Add(Transition t, double? priority = null)
    {
        ArgumentNullException.ThrowIfNull(t);
        Add(t.Observation, t.Action, t.Return, t.NextObservation, t.NextMask, t.Discount, priority);
    }

    /// <summary>Adds a transition given field by field (copied; see <see cref="Transition"/>).</summary>
    public void Add(ReadOnlySpan<float> observation, int action, float @return, ReadOnlySpan<float> nextObservation, ReadOnlySpan<bool> nextMask,
        float discount, double? priority = null)
    {
        if (observationSize < 0) (observationSize, maskSize) = (observation.Length, nextMask.Length);
        if (observation.Length != observationSize || nextObservation.Length != observationSize || nextMask.Length != maskSize)
            throw new ArgumentException($"a transition of {observation.Length} and {nextObservation.Length} observations and {nextMask.Length} actions in a replay of {observationSize} and {maskSize}");
        var (chunk, at) = Math.DivRem(next, ChunkSize);
        int rows = Math.Min(ChunkSize, Capacity - chunk * ChunkSize);
        observation.CopyTo((observations[chunk] ??= new float[rows * observationSize]).AsSpan(at * observationSize));
        nextObservation.CopyTo((nextObservations[chunk] ??= new float[rows * observationSize]).AsSpan(at * observationSize));
        nextMask.CopyTo((nextMasks[chunk] ??= new bool[rows * maskSize]).AsSpan(at * maskSize));
        (actions[next], returns[next], discounts[next]) = (action, @return, discount);
        Update(next, priority ?? MaxPriority);
        next = (next + 1) % Capacity;
        Count = Math.Min(Count + 1, Capacity);
    }

    int Filled(int i) => (uint)i < (uint)Count ? i : throw new ArgumentOutOfRangeException(nameof(i), i, $"a replay of {Count} transitions");

    ReadOnlySpan<T> Row<T>(T[]?[] chunks, int i, int width)
    {
        var (chunk, at) = Math.DivRem(Filled(i), ChunkSize);
        return chunks[chunk].AsSpan(at * width, width);
    }

    /// <summary>Sets transition <paramref name="i"/>'s priority (> 0).</summary>
    public void Update(int i, double priority)
    {
        if (!(priority > 0) || !double.IsFinite(priority)) throw new ArgumentOutOfRangeException(nameof(priority), priority, "a priority is finite and > 0");
        MaxPriority = Math.Max(MaxPriority, priority);
        double p = Math.Pow(priority, alpha);
        int n = i + size;
        sum[n] = min[n] = p;
        for (n /= 2; n >= 1; n /= 2)
        {
            sum[n] = sum[2 * n] + sum[2 * n + 1];
            min[n] = Math.Min(min[2 * n], min[2 * n + 1]);
        }
    }

    /// <summary>Draws <paramref name="batch"/> indices, one from each of <paramref name="batch"/> equal slices of the
    /// priority mass (stratified), and their importance-sampling weights for <paramref name="beta"/>.</summary>
    public (int[] Indices, float[] Weights) Sample(int batch, double beta, Rng rng)
    {
        if (Count == 0) throw new InvalidOperationException("the replay is empty");
        var idx = new int[batch];
        var w = new float[batch];
        double total = sum[1], segment = total / batch;
        double maxWeight = Math.Pow(Count * min[1] / total, -beta);
        for (int b = 0; b < batch; b++)
        {
            double u = (b + rng.NextDouble()) * segment;
            int n = 1;
            while (n < size)
            {
                if (u < sum[2 * n] || sum[2 * n + 1] <= 0) n = 2 * n;
                else { u -= sum[2 * n]; n = 2 * n + 1; }
            }
            int i = Math.Min(n - size, Count - 1);
            idx[b] = i;
            w[b] = (float)(Math.Pow(Count * sum[i + size] / total, -beta) / maxWeight);
        }
        return (idx, w);
    }
}
