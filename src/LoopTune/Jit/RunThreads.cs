namespace LoopTune.Jit;

/// <summary>
/// The threads this command's kernels run on, and its peers with them (<c>--threads</c>), as <see cref="JitOptions.Default"/>
/// is its vector width: 1 unless <see cref="Use"/> said otherwise. What follows it: the environment's and the searches'
/// evaluator (each schedule is timed with a parallel loop added, <see cref="Ir.Transforms.Parallelize"/>, on that many
/// threads), the measurement store's key (a figure at 2 threads is not one at 1), the final timings and the peers.
/// Async-local, so a count set by one command reaches the threads it starts and not another command run in the same
/// process (the tests run many).
/// </summary>
public static class RunThreads
{
    static readonly AsyncLocal<int> set = new();

    /// <summary>The count in force: 1 unless <see cref="Use"/> set another.</summary>
    public static int Default => set.Value > 1 ? set.Value : 1;

    /// <summary>Makes <paramref name="threads"/> the count for this command (a <see cref="ThreadCountError"/> outside 1 to
    /// the cores the process may use).</summary>
    public static void Use(int threads) => set.Value = ThreadCountError.Check(threads);
}
