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

    /// <summary>A stretch of a thread on a set of cores, restoring its previous affinity when disposed. The threads the process
    /// started meanwhile (a library's pool, started by its loading or first call) are remembered as library threads
    /// (<see cref="PinLibraryThreads"/>).</summary>
    public readonly struct Scope : IDisposable
    {
        readonly int tid;
        readonly CpuMask previous;
        readonly bool saved;
        readonly HashSet<int>? before;

        internal Scope(IEnumerable<int> cores)
        {
            tid = CurrentTid();
            before = [.. Threads()];
            saved = tid != 0 && TryGetAffinity(tid, out previous) && SetCurrentThread(cores);
        }

        public void Dispose()
        {
            if (saved) TrySetAffinity(tid, previous);
            if (before is { } old)
                foreach (int t in Threads().Where(t => !old.Contains(t))) LibraryThreads.TryAdd(t, 0);
        }
    }

    /// <summary>Threads started while a <see cref="Widened"/> scope was open: the native libraries' workers.</summary>
    static readonly System.Collections.Concurrent.ConcurrentDictionary<int, byte> LibraryThreads = new();

    /// <summary>The ids of the process's threads now (none where /proc cannot be read).</summary>
    internal static IEnumerable<int> Threads()
    {
        try
        {
            return [.. Directory.EnumerateDirectories("/proc/self/task").Select(d => int.TryParse(Path.GetFileName(d), out int t) ? t : 0).Where(t => t > 0)];
        }
        catch (IOException)
        {
            return [];
        }
        catch (UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>Pins the libraries' worker threads (those started under <see cref="Widened"/>, still alive and not pinned to
    /// one core by anyone else) to the cores of a team after its leader's, <paramref name="team"/>[1..], in turn, until
    /// disposed; then each gets its affinity back. With the caller on <paramref name="team"/>[0], a library's N threads
    /// then run on N cores, as our kernel's team does. Left to the OS, on a machine whose cores share no cache it
    /// knows of (a VM without cache topology), a woken library worker was put on its waker's core and waited there:
    /// oneDNN's convolution at two threads ran at 142 GFLOPS timed in turns with our kernel, 420 alone.</summary>
    public static IDisposable PinLibraryThreads(IReadOnlyList<int> team)
    {
        ArgumentNullException.ThrowIfNull(team);
        var saved = new List<(int Tid, CpuMask Mask)>();
        int[] others = [.. team.Skip(1).Distinct().Where(c => c != team[0])];
        if (others.Length > 0)
        {
            var alive = Threads().ToHashSet();
            foreach (int t in LibraryThreads.Keys.Order())
            {
                if (!alive.Contains(t)) { LibraryThreads.TryRemove(t, out _); continue; }
                if (!TryGetAffinity(t, out CpuMask m) || m.Cores().Length < 2) continue;
                if (TrySetAffinity(t, CpuMask.Single(others[saved.Count % others.Length]))) saved.Add((t, m));
            }
        }
        return new Restore(saved);
    }

    sealed class Restore(List<(int Tid, CpuMask Mask)> saved) : IDisposable
    {
        public void Dispose()
        {
            foreach (var (t, m) in saved) TrySetAffinity(t, m);
            saved.Clear();
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
