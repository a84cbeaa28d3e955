using System.Diagnostics;
using System.Runtime.InteropServices;

namespace LoopTune.Measure;

/// <summary>
/// Waits until this process's other threads stop using the CPU: what lets runtimes with thread pools of their own be
/// timed one after another on the same cores. OpenBLAS's pthreads, OpenMP's team (BLIS, oneDNN) and ONNX Runtime's pool
/// each keep spinning for a while after a call (OpenBLAS for about 2^28 cycles), so a kernel timed right after one of
/// them shares its cores with threads that only wait. Measured, not assumed: the process's CPU time
/// (<c>clock_gettime(CLOCK_PROCESS_CPUTIME_ID)</c>, every thread) is read across a sleep of the calling thread longer than
/// a scheduler tick; the process is quiet when it used under a tenth of one core meanwhile.
/// </summary>
public static partial class Quiet
{
    /// <summary>The sleep across which the process's CPU time is read: longer than a scheduler tick (4 ms at 250 Hz, 10 ms
    /// at 100 Hz), as Linux brings a running thread's CPU time up to date at its ticks and context switches; across a
    /// 2 ms sleep a thread spinning on the other core was seen to add nothing.</summary>
    const double WindowSeconds = 0.012;

    /// <summary>The share of one core the other threads may use during a window of a quiet process (the runtime's own
    /// threads: a tiered compilation, a timer).</summary>
    const double Idle = 0.1;

    /// <summary>Sleeps in short windows until the process's other threads were idle for one, or
    /// <paramref name="maxSeconds"/> have passed; returns the seconds waited and whether the process was quiet at the end
    /// (always false where the process's CPU time cannot be read: then it waits <paramref name="maxSeconds"/>).</summary>
    public static (double Seconds, bool Settled) Settle(double maxSeconds)
    {
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            long before = ProcessCpuNanoseconds(), t0 = Stopwatch.GetTimestamp();
            Thread.Sleep(TimeSpan.FromSeconds(WindowSeconds));
            long used = ProcessCpuNanoseconds() - before;
            double window = Stopwatch.GetElapsedTime(t0).TotalSeconds, waited = Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (before >= 0 && used >= 0 && used < Idle * window * 1e9) return (waited, true);
            if (waited >= maxSeconds) return (waited, false);
        }
    }

    /// <summary>Nanoseconds of CPU time used by every thread of the process so far; -1 when unknown.</summary>
    internal static unsafe long ProcessCpuNanoseconds()
    {
        if (!OperatingSystem.IsLinux()) return -1;
        try
        {
            TimeSpec t;
            return ClockGetTime(ClockProcessCpuTime, &t) == 0 ? t.Seconds * 1_000_000_000 + t.Nanoseconds : -1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return -1;
        }
    }

    const int ClockProcessCpuTime = 2;

    [StructLayout(LayoutKind.Sequential)]
    struct TimeSpec
    {
        public long Seconds, Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static unsafe partial int ClockGetTime(int clock, TimeSpec* time);
}
