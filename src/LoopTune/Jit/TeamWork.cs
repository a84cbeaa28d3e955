namespace LoopTune.Jit;

/// <summary>
/// The work around a kernel (copies into other layouts, write-backs, epilogues, pools) on the same pinned threads as a
/// kernel of <c>threads</c> threads (<see cref="ThreadTeam"/>): <c>count</c> items split into static chunks in whole
/// multiples of a granule, the first run by the caller. One thread runs everything on the caller, allocating nothing.
/// </summary>
public static class TeamWork
{
    /// <summary>Runs <paramref name="body"/>(part, start, end) over [0, <paramref name="count"/>) on
    /// <paramref name="threads"/> threads: part t takes [start, end), chunk boundaries whole multiples of
    /// <paramref name="granule"/> (the last chunk runs to <paramref name="count"/>). Fewer items than threads use fewer
    /// threads' worth of chunks (the others get empty ones); a body must accept an empty range.</summary>
    public static void For(int threads, int count, int granule, Action<int, int, int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(granule, 1);
        if (threads == 1 || count <= granule)
        {
            body(0, 0, count);
            return;
        }
        var chunks = Kernel.Chunks(count, threads, granule);
        chunks[threads] = count;
        ThreadTeam.For(threads).Run(body, chunks);
    }
}
