namespace LoopTune.Learning;

/// <summary>One n-step transition of DQN's replay: the state and its action, the discounted reward of the next n steps,
/// the state n steps later with its legal-action mask, and the discount to apply to that state's value (gamma^n, or 0 when
/// the episode ended within the n steps).</summary>
public sealed record Transition(float[] Observation, int Action, float Return, float[] NextObservation, bool[] NextMask, float Discount);

/// <summary>
/// Prioritized experience replay (Schaul et al. 2016), proportional variant: transition i is drawn with probability
/// p_i^alpha / sum_k p_k^alpha and weighted by (N P(i))^-beta / max_j (N P(j))^-beta. Sum and min segment trees give
/// O(log N) draws and updates. When full, the oldest transition is evicted (Ape-X).
/// </summary>
public sealed class PrioritizedReplay(int capacity, double alpha)
{
    readonly int size = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, capacity));
    readonly double[] sum = new double[2 * (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, capacity))];
    readonly double[] min = Enumerable.Repeat(double.PositiveInfinity, 2 * (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, capacity))).ToArray();
    readonly Transition[] items = new Transition[capacity];
    int next;

    public int Capacity { get; } = capacity;
    public int Count { get; private set; }

    /// <summary>The largest priority given so far (new transitions without a priority of their own get it).</summary>
    public double MaxPriority { get; private set; } = 1;

    public Transition this[int i] => items[i];

    /// <summary>Transition <paramref name="i"/>'s priority as stored, p_i^alpha (0 for a slot never filled).</summary>
    internal double StoredPriority(int i) => sum[i + size];

    /// <summary>The probability that one draw picks transition <paramref name="i"/>: p_i^alpha / sum_k p_k^alpha.</summary>
    internal double Probability(int i) => sum[i + size] / sum[1];

    /// <summary>Adds a transition with <paramref name="priority"/> (its TD error magnitude; null: the largest so far).</summary>
    public void Add(Transition t, double? priority = null)
    {
        items[next] = t;
        Update(next, priority ?? MaxPriority);
        next = (next + 1) % Capacity;
        Count = Math.Min(Count + 1, Capacity);
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
