using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace LoopTune.Measure;

/// <summary>Pins the calling thread to one CPU so timings do not migrate between cores. Linux only
/// (libc <c>sched_setaffinity</c>); elsewhere, or when the OS refuses, the methods report false.</summary>
public static unsafe partial class ThreadPinning
{
    private static readonly Lazy<int> defaultCore = new(FindDefaultCore);

    /// <summary>The core used when none is given: the highest CPU the process may run on
    /// (Environment.ProcessorCount - 1 on an unrestricted machine).</summary>
    public static int DefaultCore => defaultCore.Value;

    /// <summary>Pins the calling thread to <see cref="DefaultCore"/>; false if that failed.</summary>
    public static bool PinCurrentThread() => PinCurrentThread(DefaultCore);

    /// <summary>Pins the calling thread to <paramref name="core"/>; false (never an exception) when the
    /// core does not exist, the OS refuses, or this is not Linux.</summary>
    public static bool PinCurrentThread(int core) =>
        core is >= 0 and < CpuMask.Bits && TrySetAffinity(0, CpuMask.Single(core));

    /// <summary>Lets the calling thread run on every core again (as far as the process is allowed).</summary>
    public static void Unpin() => TrySetAffinity(0, CpuMask.All());

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

    private static readonly Lazy<int[]> processCores = new(FindProcessCores);

    /// <summary>The cores the process may run on (its affinity when it started, as <c>taskset</c> sets it), ascending;
    /// 0 to Environment.ProcessorCount - 1 when that is unknown. A kernel runs on at most this many threads.</summary>
    public static IReadOnlyList<int> ProcessCores() => processCores.Value;

    private static int[] FindProcessCores() =>
        TryGetAffinity(Call(&Native.Pid), out CpuMask m) && m.Cores() is { Length: > 0 } cores ? cores : [.. Enumerable.Range(0, Environment.ProcessorCount)];

    /// <summary>The cores the calling thread may run on now, ascending; empty if unknown.</summary>
    public static IReadOnlyList<int> CurrentAffinity() =>
        TryGetAffinity(0, out CpuMask m) ? m.Cores() : [];

    internal static bool TryGetAffinity(int tid, out CpuMask mask)
    {
        mask = default;
        fixed (CpuMask* p = &mask) return Call(&Native.GetAffinity, tid, p);
    }

    internal static bool TrySetAffinity(int tid, CpuMask mask) => Call(&Native.SetAffinity, tid, &mask);

    internal static int CurrentTid() => Call(&Native.Tid);

    private static int FindDefaultCore() =>
        TryGetAffinity(Call(&Native.Pid), out CpuMask m) && m.Highest() is int core and >= 0
            ? core
            : Environment.ProcessorCount - 1;

    private static bool Call(delegate*<int, nuint, CpuMask*, int> affinity, int tid, CpuMask* mask)
    {
        try
        {
            return OperatingSystem.IsLinux() && affinity(tid, (nuint)sizeof(CpuMask), mask) == 0;
        }
        catch (Exception e) when (IsMissing(e))
        {
            return false;
        }
    }

    private static int Call(delegate*<int> id)
    {
        try
        {
            return OperatingSystem.IsLinux() ? id() : 0;
        }
        catch (Exception e) when (IsMissing(e))
        {
            return 0;
        }
    }

    private static bool IsMissing(Exception e) => e is DllNotFoundException or EntryPointNotFoundException;

    /// <summary>A pinned stretch of one thread: created by <see cref="Pin(int)"/>, it restores the
    /// thread's previous affinity on <see cref="Dispose"/> (even if disposed from another thread).</summary>
    public sealed class PinScope : IDisposable
    {
        private readonly int tid;
        private readonly CpuMask previous;
        private readonly bool saved;
        private int disposed;

        internal PinScope(int core)
        {
            Core = core;
            tid = CurrentTid();
            saved = tid != 0 && TryGetAffinity(tid, out previous);
            Pinned = saved && PinCurrentThread(core);
        }

        /// <summary>The core asked for.</summary>
        public int Core { get; }

        /// <summary>Whether the thread really is pinned to <see cref="Core"/>.</summary>
        public bool Pinned { get; }

        /// <summary>Restores the previous affinity; calling it again does nothing.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0 && Pinned) TrySetAffinity(tid, previous);
        }
    }

    /// <summary>glibc's cpu_set_t: 1024 bits.</summary>
    [InlineArray(Words)]
    internal struct CpuMask
    {
        public const int Words = 16;
        public const int Bits = Words * 64;
        private ulong word;

        public static CpuMask Single(int core)
        {
            CpuMask m = default;
            m[core >> 6] = 1UL << (core & 63);
            return m;
        }

        public static CpuMask All()
        {
            CpuMask m = default;
            ((Span<ulong>)m).Fill(ulong.MaxValue);
            return m;
        }

        public readonly bool Has(int core) => (this[core >> 6] >> (core & 63) & 1) != 0;

        public readonly int Highest() => Enumerable.Range(0, Bits).LastOrDefault(Has, -1);

        public readonly int[] Cores() => Enumerable.Range(0, Bits).Where(Has).ToArray();
    }

    private static partial class Native
    {
        [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
        internal static partial int SetAffinity(int pid, nuint size, CpuMask* mask);

        [LibraryImport("libc", EntryPoint = "sched_getaffinity", SetLastError = true)]
        internal static partial int GetAffinity(int pid, nuint size, CpuMask* mask);

        [LibraryImport("libc", EntryPoint = "gettid")]
        internal static partial int Tid();

        [LibraryImport("libc", EntryPoint = "getpid")]
        internal static partial int Pid();
    }
}
