namespace LoopTune.Cluster;

/// <summary>Waits for the cluster's async work from synchronous code (the commands, the learner's loop), running it on
/// the thread pool so that no synchronization context of the caller (a test runner's) can deadlock it.</summary>
public static class Sync
{
    public static T Wait<T>(Func<Task<T>> work) => Task.Run(work).GetAwaiter().GetResult();

    public static void Wait(Func<Task> work) => Task.Run(work).GetAwaiter().GetResult();
}
