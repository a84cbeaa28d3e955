namespace LoopTune.Datasets;

/// <summary>
/// SplitMix64 (Steele, Lea and Flood 2014): a tiny seeded generator whose output is fixed by its definition, so a
/// dataset's split never changes with the .NET version (System.Random's sequence is an implementation detail).
/// Seed 0 starts 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F.
/// </summary>
public sealed class SplitMix64(ulong seed)
{
    ulong state = seed;

    /// <summary>The next 64 random bits.</summary>
    public ulong Next()
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A uniform integer in [0, <paramref name="bound"/>), without modulo bias (Lemire's multiply-and-reject).</summary>
    public ulong NextBelow(ulong bound)
    {
        ArgumentOutOfRangeException.ThrowIfZero(bound);
        ulong high = Math.BigMul(Next(), bound, out ulong low);
        if (low >= bound) return high;
        ulong threshold = (0 - bound) % bound;
        while (low < threshold) high = Math.BigMul(Next(), bound, out low);
        return high;
    }

    /// <summary>Shuffles <paramref name="items"/> in place (Fisher-Yates, from the last element down).</summary>
    public void Shuffle<T>(IList<T> items)
    {
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = (int)NextBelow((ulong)i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
