using System.Diagnostics;
using System.Runtime.InteropServices;

namespace LoopTune.Measure;

/// <summary>
/// Waits until this process's other threads stop using the CPU: what lets runtimes with thread pools of their own be
/// timed one after another on the same cores. OpenBLAS's pthreads, OpenMP's team (BLIS, oneDNN) and ONNX Runtime's pool
/// each keep spinning for a while after a call (OpenBLAS for about 2^28 cycles), so a kernel timed right after one of
/// them shares its cores with threads that only wait. Measured, not assumed: the CPU time of every other thread of the
/// process is read across a short sleep of the calling thread (<see cref="CpuClocks.Threads"/>: each thread's own clock,
/// exact to the nanosecond even while it runs on another core, so <see cref="ThreadWindowSeconds"/> suffices); the
/// process is quiet when they used under a tenth of one core meanwhile and none of them is running or waiting to run at
/// the end (a spinner kept off its core by another process uses nothing, yet is not done). Where the threads' clocks cannot be read, the
/// process's clock is (<see cref="CpuClocks.Process"/>, brought up to date only at the scheduler's ticks: a longer
/// window, <see cref="ProcessWindowSeconds"/>).
/// </summary>
public static partial class Quiet
{
    /// <summary>The sleep across which the threads' own clocks are read: 2 ms (a thread spinning through it adds about
    /// 2 ms; one that blocked adds nothing). Each turn of a side-by-side timing at N threads waits at least this long.</summary>
    internal const double ThreadWindowSeconds = 0.002;

    /// <summary>The sleep across which the process's clock is read: longer than a scheduler tick (4 ms at 250 Hz, 10 ms
    /// at 100 Hz), as Linux brings the process clock's share of a thread running on another core up to date only at its
    /// ticks and context switches; across a 2 ms sleep a thread spinning on the other core was seen to add nothing.</summary>
    internal const double ProcessWindowSeconds = 0.012;

    /// <summary>The share of one core the other threads may use during a window of a quiet process (the runtime's own
    /// threads: a tiered compilation, a timer).</summary>
    internal const double Idle = 0.1;

    /// <summary>Sleeps in short windows until the process's other threads were idle for one, or
    /// <paramref name="maxSeconds"/> have passed; returns the seconds waited and whether the process was quiet at the end
    /// (always false where no CPU time can be read: then it waits <paramref name="maxSeconds"/>).</summary>
    public static (double Seconds, bool Settled) Settle(double maxSeconds) => Settle(maxSeconds, CpuClocks.Best, SystemClock.Instance);

    /// <summary><see cref="Settle(double)"/> reading <paramref name="clocks"/> across windows of
    /// <see cref="ICpuClocks.WindowSeconds"/> timed and slept by <paramref name="clock"/>.</summary>
    internal static (double Seconds, bool Settled) Settle(double maxSeconds, ICpuClocks clocks, IClock clock)
    {
        ArgumentNullException.ThrowIfNull(clocks);
        ArgumentNullException.ThrowIfNull(clock);
        double start = clock.Now;
        while (true)
        {
            var before = clocks.Read();
            double t0 = clock.Now;
            clock.Sleep(clocks.WindowSeconds);
            var after = clocks.Read();
            double now = clock.Now, window = now - t0, waited = now - start;
            if (before is not null && after is not null && Used(before, after) < Idle * window * 1e9 && !clocks.AnyRunnable()) return (waited, true);
            if (waited >= maxSeconds) return (waited, false);
        }
    }

    /// <summary>The nanoseconds of CPU time used between two readings: each thread's growth, a thread that is new (or
    /// whose clock went back: an id used again) counted whole, one that ended not at all.</summary>
    internal static long Used(IReadOnlyDictionary<int, long> before, IReadOnlyDictionary<int, long> after)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        long used = 0;
        foreach (var (id, ns) in after)
            used += before.TryGetValue(id, out long was) && was <= ns ? ns - was : ns;
        return used;
    }

    /// <summary>The time and the sleeps of <see cref="Settle(double, ICpuClocks, IClock)"/>.</summary>
    internal interface IClock
    {
        /// <summary>Seconds from an arbitrary start.</summary>
        double Now { get; }

        void Sleep(double seconds);
    }

    sealed class SystemClock : IClock
    {
        public static readonly SystemClock Instance = new();

        public double Now => Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;

        public void Sleep(double seconds) => Thread.Sleep(TimeSpan.FromSeconds(seconds));
    }

    /// <summary>CPU time used so far by the threads <see cref="Settle(double)"/> watches.</summary>
    internal interface ICpuClocks
    {
        /// <summary>Nanoseconds of CPU time by thread id (or one entry for the whole process); null when unknown.</summary>
        IReadOnlyDictionary<int, long>? Read();

        /// <summary>How long a window must last for <see cref="Read"/> to see a spinning thread.</summary>
        double WindowSeconds { get; }

        /// <summary>Whether one of the threads is running or waiting to run now: a spinning thread that another process
        /// keeps off its core adds nothing to its clock, yet spins again as soon as it gets one.</summary>
        bool AnyRunnable();
    }

    /// <summary>The clocks of Linux (<c>clock_gettime</c>).</summary>
    internal sealed class CpuClocks : ICpuClocks
    {
        readonly bool perThread;

        CpuClocks(bool perThread) => this.perThread = perThread;

        /// <summary>Every thread's own clock but the caller's (<c>clock_gettime</c> of the thread's CPU clock, which Linux
        /// brings up to date when it is read, even for a thread running on another core).</summary>
        public static readonly CpuClocks Threads = new(true);

        /// <summary>The process's clock (<c>CLOCK_PROCESS_CPUTIME_ID</c>: every thread, the caller's too).</summary>
        public static readonly CpuClocks Process = new(false);

        /// <summary><see cref="Threads"/> where they can be read, else <see cref="Process"/>.</summary>
        public static CpuClocks Best => best.Value;

        static readonly Lazy<CpuClocks> best = new(() => ThreadCpuNanoseconds(Affinity.CurrentTid()) >= 0 ? Threads : Process);

        public double WindowSeconds => perThread ? ThreadWindowSeconds : ProcessWindowSeconds;

        /// <summary>Whether a thread but the caller is in state R (running or runnable) in <c>/proc/self/task/*/stat</c>;
        /// false where that cannot be read (the process clock alone decides).</summary>
        public bool AnyRunnable()
        {
            if (!perThread || !OperatingSystem.IsLinux()) return false;
            int self = Affinity.CurrentTid();
            return Affinity.Threads().Any(tid => tid != self && State(tid) == 'R');
        }

        /// <summary>The state letter of the process's thread <paramref name="tid"/> (the field after its name in its
        /// <c>stat</c>); a space when unknown (it ended).</summary>
        internal static char State(int tid)
        {
            try
            {
                string stat = File.ReadAllText($"/proc/self/task/{tid}/stat");
                int close = stat.LastIndexOf(')');
                return close >= 0 && close + 2 < stat.Length ? stat[close + 2] : ' ';
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return ' ';
            }
        }

        public IReadOnlyDictionary<int, long>? Read()
        {
            if (!perThread) return ProcessCpuNanoseconds() is var ns and >= 0 ? new Dictionary<int, long> { [0] = ns } : null;
            if (!OperatingSystem.IsLinux()) return null;
            int self = Affinity.CurrentTid();
            var threads = Affinity.Threads().ToList();
            if (!threads.Contains(self)) return null; // the threads cannot be listed
            var times = new Dictionary<int, long>(threads.Count);
            foreach (int tid in threads)
                // a thread that ended since the listing has no clock: it uses no CPU
                if (tid != self && ThreadCpuNanoseconds(tid) is var ns and >= 0) times[tid] = ns;
            return times;
        }
    }

    /// <summary>Nanoseconds of CPU time used by every thread of the process so far; -1 when unknown.</summary>
    internal static long ProcessCpuNanoseconds() => CpuNanoseconds(ClockProcessCpuTime);

    /// <summary>Nanoseconds of CPU time used so far by the process's thread <paramref name="tid"/> (its clock id, Linux's
    /// <c>MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)</c>); -1 when unknown (no such thread, not Linux).</summary>
    internal static long ThreadCpuNanoseconds(int tid) => tid > 0 ? CpuNanoseconds((~tid << 3) | ThreadSchedClock) : -1;

    static unsafe long CpuNanoseconds(int clock)
    {
        if (!OperatingSystem.IsLinux()) return -1;
        try
        {
            TimeSpec t;
            return ClockGetTime(clock, &t) == 0 ? t.Seconds * 1_000_000_000 + t.Nanoseconds : -1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return -1;
        }
    }

    const int ClockProcessCpuTime = 2;

    /// <summary>CPUCLOCK_PERTHREAD_MASK (4) | CPUCLOCK_SCHED (2): the low bits of a thread's CPU clock id.</summary>
    const int ThreadSchedClock = 6;

    [StructLayout(LayoutKind.Sequential)]
    struct TimeSpec
    {
        public long Seconds, Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static unsafe partial int ClockGetTime(int clock, TimeSpec* time);
}
