using System.Collections.Concurrent;

namespace LoopTune.Jit;

/// <summary>
/// The persistent worker threads that run the chunks of a parallel kernel (<see cref="Kernel.Threads"/>): one team per
/// thread count and calling core, made on first use and kept for the process. A team of N has N - 1 workers, each pinned
/// to one of the cores the process may use other than the caller's (in ascending order, round again when there are
/// fewer; all on the caller's core when it has no other), as the measuring thread is pinned to its own. A run hands each
/// worker its chunk and runs the first one on the calling thread; nothing is allocated and no thread is started.
/// <para>Hand-off and barrier: each worker spins briefly on a generation counter, then blocks on its own semaphore, which
/// the caller releases once per run (a permit, so a wake-up cannot be lost); the last worker to finish releases the
/// caller's semaphore, which the caller likewise spins on briefly before blocking. A team with more threads than cores
/// (workers sharing a core) does not spin: a spinning thread would only hold the core the one it waits for needs. Runs on one team are serialised by its
/// lock, so a kernel may be called from several threads at once: each call runs on all N threads in turn (callers on
/// different cores use different teams).</para>
/// </summary>
sealed unsafe class ThreadTeam
{
    static readonly ConcurrentDictionary<(int Threads, int Core), ThreadTeam> Teams = new();
    static int started;

    /// <summary>Pause instructions a waiting thread spins for before it blocks (some tens of microseconds).</summary>
    const int SpinRounds = 2000, SpinPause = 20;

    readonly SemaphoreSlim[] wake;
    readonly SemaphoreSlim done = new(0);
    readonly object gate = new();
    readonly int spinRounds;
    int generation, pending;
    KernelFn? fn;
    Action<int, int, int>? work;
    nint output, left, right, init, residual;
    PackBlocks?[]? blocks;
    int[] bounds = [];
    Exception? failure;

    ThreadTeam(int threads, int core)
    {
        wake = [.. Enumerable.Range(0, threads - 1).Select(_ => new SemaphoreSlim(0))];
        int[] cores = Affinity.TeamCores(threads, core);
        spinRounds = cores.Distinct().Count() == threads ? SpinRounds : 0;
        for (int i = 1; i < threads; i++)
        {
            int index = i, pin = cores[i];
            new Thread(() => Work(index, pin)) { IsBackground = true, Name = $"looptune kernel {index}/{threads} core {pin}" }.Start();
            Interlocked.Increment(ref started);
        }
    }

    /// <summary>Worker threads started in this process so far (each team starts its own once).</summary>
    internal static int Started => Volatile.Read(ref started);

    /// <summary>The team of <paramref name="threads"/> (at least 2) for a caller on the core it runs on now.</summary>
    public static ThreadTeam For(int threads) =>
        Teams.GetOrAdd((threads, Thread.GetCurrentProcessorId()), static key => new ThreadTeam(key.Threads, key.Core));

    /// <summary>Runs <paramref name="kernel"/> on the team: thread t (the caller is 0) runs the parallel loop's iterations
    /// [bounds[t], bounds[t + 1]) with its own block buffers <paramref name="threadBlocks"/>[t] (if any); returns when all
    /// have finished.</summary>
    public void Run(KernelFn kernel, float* o, float* l, float* r, float* i, float* res, int[] chunks, PackBlocks?[]? threadBlocks)
    {
        lock (gate)
        {
            (fn, work, output, left, right, init, residual, blocks) = (kernel, null, (nint)o, (nint)l, (nint)r, (nint)i, (nint)res, threadBlocks);
            Wake(chunks);
            try { kernel(o, l, r, i, 1, chunks[0], chunks[1], threadBlocks?[0], res); }
            finally { Wait(); }
        }
    }

    /// <summary>Runs <paramref name="body"/>(t, bounds[t], bounds[t + 1]) on thread t of the team (the caller is 0); returns
    /// when all have finished. For the work around kernels (copies into other layouts, epilogues) on the kernel's threads.</summary>
    public void Run(Action<int, int, int> body, int[] chunks)
    {
        lock (gate)
        {
            (fn, work) = (null, body);
            Wake(chunks);
            try { body(0, chunks[0], chunks[1]); }
            finally { Wait(); } // the workers finish theirs before a failure of the caller's part leaves
        }
    }

    /// <summary>Wakes the workers on their chunks of <paramref name="chunks"/>. Under the gate.</summary>
    void Wake(int[] chunks)
    {
        (bounds, failure) = (chunks, null);
        Volatile.Write(ref pending, wake.Length);
        Interlocked.Increment(ref generation);
        foreach (var w in wake) w.Release();
    }

    /// <summary>Waits for the workers (the caller has run its chunk), then forgets the work. Under the gate.</summary>
    void Wait()
    {
        for (int i = 0; i < spinRounds && Volatile.Read(ref pending) != 0; i++) Thread.SpinWait(SpinPause);
        done.Wait();
        (fn, work, blocks) = (null, null, null); // the team outlives the kernel: let it be collected
        if (failure is { } e) throw new InvalidOperationException("a kernel thread failed", e);
    }

    void Work(int index, int core)
    {
        Affinity.PinCurrentThread(core);
        int seen = 0;
        while (true)
        {
            for (int i = 0; i < spinRounds && Volatile.Read(ref generation) == seen; i++) Thread.SpinWait(SpinPause);
            wake[index - 1].Wait();
            seen++;
            try
            {
                if (work is { } body) body(index, bounds[index], bounds[index + 1]);
                else fn!((float*)output, (float*)left, (float*)right, (float*)init, 1, bounds[index], bounds[index + 1], blocks?[index], (float*)residual);
            }
            catch (Exception e) { failure = e; }
            finally
            {
                if (Interlocked.Decrement(ref pending) == 0) done.Release();
            }
        }
    }
}
