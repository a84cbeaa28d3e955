namespace LoopTune.Learning;

/// <summary>
/// The learners' random generator: SplitMix64 with its whole state in one public <see cref="State"/> word, so a checkpoint
/// saves it and a resumed run draws exactly the numbers it would have drawn (System.Random's state cannot be saved).
/// </summary>
public sealed class Rng(ulong seed)
{
    /// <summary>The generator's state; setting it replays the sequence from that point.</summary>
    public ulong State { get; set; } = seed;

    /// <summary>A generator for stream <paramref name="stream"/> of <paramref name="seed"/> (actors, learner, init).</summary>
    public static Rng For(int seed, int stream) => new(Mix((ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ Mix((ulong)stream + 1)));

    public ulong NextULong()
    {
        ulong z = State += 0x9E3779B97F4A7C15UL;
        return Mix(z);
    }

    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (NextULong() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [0, <paramref name="n"/>).</summary>
    public int Next(int n) => n > 0 ? (int)Math.BigMul(NextULong(), (ulong)n, out _) : throw new ArgumentOutOfRangeException(nameof(n));

    /// <summary>A System.Random seeded from this generator (for APIs that take one, such as weight initialisation).</summary>
    public Random ToRandom() => new((int)(NextULong() & int.MaxValue));

    /// <summary>A uniformly drawn true entry of <paramref name="mask"/>.</summary>
    public int Choose(ReadOnlySpan<bool> mask)
    {
        int legal = 0;
        foreach (var m in mask) if (m) legal++;
        if (legal == 0) throw new InvalidOperationException("no legal action to choose from");
        int k = Next(legal);
        for (int i = 0; i < mask.Length; i++) if (mask[i] && k-- == 0) return i;
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>An index drawn with probability <paramref name="p"/>[i] (p sums to 1).</summary>
    public int Sample(ReadOnlySpan<float> p)
    {
        double u = NextDouble(), c = 0;
        int last = 0;
        for (int i = 0; i < p.Length; i++)
        {
            if (p[i] <= 0) continue;
            c += p[i];
            last = i;
            if (u < c) return i;
        }
        return last;
    }
}
