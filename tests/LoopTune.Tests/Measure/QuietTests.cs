using LoopTune.Measure;

namespace LoopTune.Tests.Measure;

/// <summary>The quiet wait's logic on a fake clock and fake threads' clocks (the oracle: the load scripted), and the
/// threads' own clocks of Linux against a thread's reading of its own.</summary>
public sealed class QuietTests
{
    /// <summary>A clock whose sleeps only move its time on, and threads that use the CPU as scripted: thread 1 spins (a
    /// whole core) until <c>spinsUntil</c>, thread 2 uses <c>background</c> of a core all along, and a thread waits to run
    /// (kept off its core, using nothing) until <c>runnableUntil</c>.</summary>
    sealed class FakeMachine(double spinsUntil, double background = 0, bool readable = true, double runnableUntil = 0) : Quiet.IClock, Quiet.ICpuClocks
    {
        public double Now { get; private set; } = 100;

        public List<double> Sleeps { get; } = [];

        public double WindowSeconds => 0.002;

        public void Sleep(double seconds)
        {
            Sleeps.Add(seconds);
            Now += seconds * 1.05; // a sleep overshoots a little
        }

        public IReadOnlyDictionary<int, long>? Read() => readable
            ? new Dictionary<int, long> { [1] = Ns(Math.Min(Now, spinsUntil) - 100), [2] = Ns((Now - 100) * background) }
            : null;

        public bool AnyRunnable() => Now < runnableUntil;

        static long Ns(double seconds) => (long)Math.Round(Math.Max(seconds, 0) * 1e9);
    }

    [Fact]
    public void A_quiet_process_settles_after_one_window()
    {
        var m = new FakeMachine(spinsUntil: 0, background: 0.05); // a twentieth of a core: under the tenth allowed
        var (seconds, settled) = Quiet.Settle(0.5, m, m);
        Assert.True(settled);
        Assert.Equal([0.002], m.Sleeps);
        Assert.Equal(0.0021, seconds, 9);
    }

    [Fact]
    public void Settle_waits_for_the_spinning_thread_and_ends_with_the_first_window_after_it_stopped()
    {
        var m = new FakeMachine(spinsUntil: 100.0232);
        var (seconds, settled) = Quiet.Settle(0.5, m, m);
        Assert.True(settled);
        // windows of 2.1 ms: the 11th (to 23.1 ms) is busy throughout; the 12th sees the spinner's last 0.1 ms, under a
        // tenth of the window: quiet
        Assert.Equal(12, m.Sleeps.Count);
        Assert.Equal(12 * 0.0021, seconds, 9);
    }

    [Fact]
    public void A_thread_waiting_to_run_keeps_the_process_from_settling_though_it_uses_nothing()
    {
        var m = new FakeMachine(spinsUntil: 0, runnableUntil: 100.0100);
        var (seconds, settled) = Quiet.Settle(0.5, m, m);
        Assert.True(settled);
        Assert.Equal(5, m.Sleeps.Count); // the 5th window ends at 10.5 ms, the first past 10 ms
        Assert.Equal(5 * 0.0021, seconds, 9);
    }

    [Fact]
    public void Settle_gives_up_at_the_limit_when_a_thread_never_stops_or_nothing_can_be_read()
    {
        foreach (var m in new[]
                 {
                     new FakeMachine(spinsUntil: double.PositiveInfinity), new FakeMachine(0, background: 0.2), new FakeMachine(0, readable: false),
                     new FakeMachine(0, runnableUntil: double.PositiveInfinity),
                 })
        {
            var (seconds, settled) = Quiet.Settle(0.05, m, m);
            Assert.False(settled);
            Assert.InRange(seconds, 0.05, 0.05 + 0.0021 + 1e-9); // the window that passes the limit is the last
        }
    }

    [Fact]
    public void Used_counts_each_threads_growth_a_new_thread_whole_and_an_ended_one_not_at_all()
    {
        var before = new Dictionary<int, long> { [1] = 1_000, [2] = 5_000, [3] = 7_000, [4] = 9_000 };
        // 1 grew by 500, 2 did not, 3 ended, 4's id was used again by a new thread (its clock went back), 5 is new
        var after = new Dictionary<int, long> { [1] = 1_500, [2] = 5_000, [4] = 300, [5] = 2_000 };
        Assert.Equal(500 + 0 + 300 + 2_000, Quiet.Used(before, after));
        Assert.Equal(0, Quiet.Used(after, after));
    }

    [Fact]
    public void The_threads_own_clocks_see_what_a_thread_spent_to_the_millisecond()
    {
        if (!OperatingSystem.IsLinux()) return;
        Assert.Same(Quiet.CpuClocks.Threads, Quiet.CpuClocks.Best);
        Assert.Equal(Quiet.ThreadWindowSeconds, Quiet.CpuClocks.Best.WindowSeconds);
        using var go = new ManualResetEventSlim();
        using var spun = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        int tid = 0;
        long own = 0;
        var spinner = new Thread(() =>
        {
            tid = Affinity.CurrentTid();
            go.Wait();
            // spins until its own clock (the oracle, read by the thread itself) has grown by 30 ms
            long start = Quiet.ThreadCpuNanoseconds(tid);
            while (Quiet.ThreadCpuNanoseconds(tid) - start < 30_000_000) Thread.SpinWait(50);
            own = Quiet.ThreadCpuNanoseconds(tid) - start;
            spun.Set();
            release.Wait(); // blocked: alive, and using nothing
        })
        { IsBackground = true };
        spinner.Start();
        while (Volatile.Read(ref tid) == 0) Thread.Sleep(1);
        var before = Quiet.CpuClocks.Threads.Read()!;
        Assert.False(before.ContainsKey(Affinity.CurrentTid())); // the caller's own clock is left out
        Assert.True(before.ContainsKey(tid));
        Assert.Equal('S', StateOnceNot('R', tid)); // blocked, waiting for the go (once its event's short spin is over)
        go.Set();
        // spinning: running, or waiting for the core (unless it was done before this thread got the core back)
        Assert.True(StateOnceNot('S', tid) == 'R' || spun.IsSet);
        spun.Wait();
        var after = Quiet.CpuClocks.Threads.Read()!;
        char state = StateOnceNot('R', tid); // blocked on the other event
        release.Set();
        spinner.Join();
        long seen = after[tid] - before[tid];
        Assert.InRange(seen, own, own + 2_000_000); // what it spent, and at most its start and end besides
        Assert.Equal('S', state);
    }

    /// <summary>The state of thread <paramref name="tid"/> once it is no longer <paramref name="state"/> (within a second).</summary>
    static char StateOnceNot(char state, int tid)
    {
        char now = Quiet.CpuClocks.State(tid);
        for (int i = 0; i < 1000 && now == state; i++)
        {
            Thread.Sleep(1);
            now = Quiet.CpuClocks.State(tid);
        }
        return now;
    }
}
