using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace LoopTune;

/// <summary>The OS's CPU affinity calls (libc <c>sched_getaffinity</c> / <c>sched_setaffinity</c>, Linux only; elsewhere, or
/// when the OS refuses, they report false or nothing), for every layer that places threads: the measuring thread
/// (<c>Measure.ThreadPinning</c>) and a kernel's threads (<c>Jit.ThreadTeam</c>).</summary>
static unsafe partial class Affinity
{
    private static int[]? processCores;

    /// <summary>Reads the process's cores when this assembly loads, before any of its code pins a thread: read later, the
    /// main thread's affinity (which <c>sched_getaffinity(pid)</c> returns) may be one measuring core.</summary>
#pragma warning disable CA2255 // a library's module initializer on purpose: it must run before any thread of the process is pinned
    [ModuleInitializer]
    internal static void ReadProcessCores() => processCores ??= FindProcessCores();
#pragma warning restore CA2255

    /// <summary>The cores the process may run on (its affinity when it started, as <c>taskset</c> sets it), ascending;
    /// 0 to Environment.ProcessorCount - 1 when that is unknown.</summary>
    public static IReadOnlyList<int> ProcessCores() => processCores ??= FindProcessCores();

    private static int[] FindProcessCores() =>
        TryGetAffinity(Pid(), out CpuMask m) && m.Cores() is { Length: > 0 } cores ? cores : [.. Enumerable.Range(0, Environment.ProcessorCount)];

    /// <summary>Pins the calling thread to <paramref name="core"/>; false (never an exception) when the core does not exist,
    /// the OS refuses, or this is not Linux.</summary>
    public static bool PinCurrentThread(int core) =>
        core is >= 0 and < CpuMask.Bits && TrySetAffinity(0, CpuMask.Single(core));

    /// <summary>The cores a team of <paramref name="threads"/> led by a thread on <paramref name="core"/> runs on, in order:
    /// <paramref name="core"/>, then the process's cores after it in ascending order, from the lowest again past the
    /// highest (round again when there are fewer; all on <paramref name="core"/> when it has no other): a worker on every
    /// N-th core and its team on the N - 1 after it never meet another's. <c>Jit.ThreadTeam</c> pins its workers to them, and a peer library
    /// timed at the same count runs within them (<c>Measure.KernelReport.TimeSideBySide</c>).</summary>
    public static int[] TeamCores(int threads, int core)
    {
        var all = ProcessCores();
        var others = all.Where(c => c > core).Concat(all.Where(c => c < core)).ToArray();
        return [core, .. Enumerable.Range(0, threads - 1).Select(i => others.Length == 0 ? core : others[i % others.Length])];
    }

    /// <summary>Lets the calling thread run on any of <paramref name="cores"/>; false (never an exception) when none exists, the
    /// OS refuses, or this is not Linux. Threads it creates from then on (a library's thread pool) inherit the set.</summary>
    public static bool SetCurrentThread(IEnumerable<int> cores)
    {
        CpuMask m = default;
        foreach (int c in cores.Where(c => c is >= 0 and < CpuMask.Bits)) m[c >> 6] |= 1UL << (c & 63);
        return m.Highest() >= 0 && TrySetAffinity(0, m);
    }

    /// <summary>Lets the calling thread run on every core the process may use until the scope ends, then restores its
    /// affinity: native libraries that start their worker threads when loaded or first called (OpenBLAS's pthreads,
    /// OpenMP's team, ONNX Runtime's pool) are loaded under it, so their threads may use every core instead of inheriting
    /// one measuring core.</summary>
    public static Scope Widened() => new(ProcessCores());

    /// <summary>A stretch of a thread on a set of cores, restoring its previous affinity when disposed.</summary>
    public readonly struct Scope : IDisposable
    {
        readonly int tid;
        readonly CpuMask previous;
        readonly bool saved;

        internal Scope(IEnumerable<int> cores)
        {
            tid = CurrentTid();
            saved = tid != 0 && TryGetAffinity(tid, out previous) && SetCurrentThread(cores);
        }

        public void Dispose()
        {
            if (saved) TrySetAffinity(tid, previous);
        }
    }

    /// <summary>The process id (0 when unknown).</summary>
    internal static int Pid() => Call(&Native.Pid);

    internal static bool TryGetAffinity(int tid, out CpuMask mask)
    {
        mask = default;
        fixed (CpuMask* p = &mask) return Call(&Native.GetAffinity, tid, p);
    }

    internal static bool TrySetAffinity(int tid, CpuMask mask) => Call(&Native.SetAffinity, tid, &mask);

    internal static int CurrentTid() => Call(&Native.Tid);

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
