namespace LoopTune.Measure;

/// <summary>Pins the calling thread to one CPU so timings do not migrate between cores. Linux only
/// (libc <c>sched_setaffinity</c>, through <see cref="Affinity"/>); elsewhere, or when the OS refuses, the methods report false.</summary>
public static class ThreadPinning
{
    private static readonly Lazy<int> defaultCore = new(FindDefaultCore);

    /// <summary>The core used when none is given: the highest CPU the process may run on
    /// (Environment.ProcessorCount - 1 on an unrestricted machine).</summary>
    public static int DefaultCore => defaultCore.Value;

    /// <summary>Pins the calling thread to <see cref="DefaultCore"/>; false if that failed.</summary>
    public static bool PinCurrentThread() => PinCurrentThread(DefaultCore);

    /// <summary>Pins the calling thread to <paramref name="core"/>; false (never an exception) when the
    /// core does not exist, the OS refuses, or this is not Linux.</summary>
    public static bool PinCurrentThread(int core) => Affinity.PinCurrentThread(core);

    /// <summary>The cores a kernel team of <paramref name="threads"/> led from <paramref name="core"/> runs on, that core first
    /// (<see cref="Affinity.TeamCores"/>).</summary>
    public static int[] TeamCores(int threads, int core) => Affinity.TeamCores(threads, core);

    /// <summary>Lets the calling thread run on every core the process was given again (<see cref="Affinity.ProcessCores"/>:
    /// under <c>taskset -c 0</c>, core 0, not every core of the machine, which the operating system would grant).</summary>
    public static void Unpin() => Affinity.SetCurrentThread(Affinity.ProcessCores());

    /// <summary>Pins the calling thread, until the scope is disposed, to the core it is running on now (so that processes
    /// measuring at the same time, placed on different cores by the OS, stay there instead of all piling onto one
    /// fixed core); <see cref="DefaultCore"/> if that core is not known.</summary>
    public static PinScope Pin() => Pin(CurrentCore());

    static int CurrentCore()
    {
        int core = Thread.GetCurrentProcessorId();
        return core >= 0 && CurrentAffinity() is { Count: > 0 } allowed && allowed.Contains(core) ? core : DefaultCore;
    }

    /// <summary>Pins the calling thread to <paramref name="core"/> until the scope is disposed,
    /// then restores the affinity the thread had before.</summary>
    public static PinScope Pin(int core) => new(core);

    /// <summary>The cores the calling thread may run on now, ascending; empty if unknown.</summary>
    public static IReadOnlyList<int> CurrentAffinity() =>
        Affinity.TryGetAffinity(0, out Affinity.CpuMask m) ? m.Cores() : [];

    private static int FindDefaultCore() =>
        Affinity.TryGetAffinity(Affinity.Pid(), out Affinity.CpuMask m) && m.Highest() is int core and >= 0
            ? core
            : Environment.ProcessorCount - 1;

    /// <summary>A pinned stretch of one thread: created by <see cref="Pin(int)"/>, it restores the
    /// thread's previous affinity on <see cref="Dispose"/> (even if disposed from another thread).</summary>
    public sealed class PinScope : IDisposable
    {
        private readonly int tid;
        private readonly Affinity.CpuMask previous;
        private readonly bool saved;
        private int disposed;

        internal PinScope(int core)
        {
            Core = core;
            tid = Affinity.CurrentTid();
            saved = tid != 0 && Affinity.TryGetAffinity(tid, out previous);
            Pinned = saved && PinCurrentThread(core);
        }

        /// <summary>The core asked for.</summary>
        public int Core { get; }

        /// <summary>Whether the thread really is pinned to <see cref="Core"/>.</summary>
        public bool Pinned { get; }

        /// <summary>Restores the previous affinity; calling it again does nothing.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0 && Pinned) Affinity.TrySetAffinity(tid, previous);
        }
    }
}
