using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace LoopTune;

/// <summary>The OS's CPU affinity calls (libc <c>sched_getaffinity</c> / <c>sched_setaffinity</c>, Linux only; elsewhere, or
/// when the OS refuses, they report false or nothing), for every layer that places threads: the measuring thread
/// (<c>Measure.ThreadPinning</c>) and a kernel's threads (<c>Jit.ThreadTeam</c>).</summary>
static unsafe partial class Affinity
{
    private static readonly Lazy<int[]> processCores = new(FindProcessCores);

    /// <summary>The cores the process may run on (its affinity when it started, as <c>taskset</c> sets it), ascending;
    /// 0 to Environment.ProcessorCount - 1 when that is unknown.</summary>
    public static IReadOnlyList<int> ProcessCores() => processCores.Value;

    private static int[] FindProcessCores() =>
        TryGetAffinity(Pid(), out CpuMask m) && m.Cores() is { Length: > 0 } cores ? cores : [.. Enumerable.Range(0, Environment.ProcessorCount)];

    /// <summary>Pins the calling thread to <paramref name="core"/>; false (never an exception) when the core does not exist,
    /// the OS refuses, or this is not Linux.</summary>
    public static bool PinCurrentThread(int core) =>
        core is >= 0 and < CpuMask.Bits && TrySetAffinity(0, CpuMask.Single(core));

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
