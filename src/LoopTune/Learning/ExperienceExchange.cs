using System.Diagnostics;
using System.Threading.Channels;

namespace LoopTune.Learning;

/// <summary>
/// What an asynchronous Ape-X learner and its actors share: a bounded queue of experience batches (an actor that finds it
/// full waits without holding its thread, so that other work queued on its worker, such as an evaluation, still runs) and a board of published weights (each publication a new version; an actor loads
/// the latest when it is newer than its own, before its next fragment). One learner publishes and takes; any number of
/// actors send and read. Counters say what crossed, so that a test can check that nothing was lost or repeated.
/// </summary>
/// <remarks>The board holds three buffers that the learner writes versions into in turn, so a publication allocates nothing
/// (it was a new 885 KB array every 25 updates). A buffer is rewritten two publications after it was the latest, perhaps
/// while a slow actor still copies from it: each buffer carries the version it holds (-1 while written), checked before and
/// after the copy, and an actor whose copy was overwritten copies the latest again (a seqlock), so no actor acts with a
/// mix of two versions.</remarks>
public sealed class ExperienceExchange : IDisposable
{
    readonly Channel<ExperienceBatch> queue;
    readonly Board[] boards = [new(), new(), new()];
    long latest; // the latest version published: it lies in boards[latest % 3]
    volatile bool stopping;
    long batchesSent, transitionsSent, actorWaitTicks;

    /// <summary>An exchange whose queue holds at most <paramref name="capacity"/> batches.</summary>
    public ExperienceExchange(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        queue = Channel.CreateBounded<ExperienceBatch>(new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    }

    /// <summary>One buffer of the board: the version it holds (-1 while it is written) and the weights.</summary>
    sealed class Board
    {
        public long Version = -1;
        public float[] Weights = [];
    }

    /// <summary>The latest version published (0: none yet).</summary>
    public long LatestVersion => Volatile.Read(ref latest);

    /// <summary>Publishes the parameters of <paramref name="net"/>, one after the other (<see cref="Net.Flatten"/>'s order), as
    /// the next version; the learner's thread alone publishes.</summary>
    public void Publish(IPolicyNetwork net)
    {
        ArgumentNullException.ThrowIfNull(net);
        int length = 0;
        foreach (var p in net.Parameters) length += p.Value.Length;
        Write(length, net, static (n, into) =>
        {
            int at = 0;
            foreach (var p in n.Parameters) { p.Value.CopyTo(into, at); at += p.Value.Length; }
        });
    }

    /// <summary>Publishes a copy of <paramref name="weights"/> (flattened parameters) as the next version.</summary>
    public void Publish(float[] weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        Write(weights.Length, weights, static (w, into) => w.CopyTo(into, 0));
    }

    void Write<T>(int length, T from, Action<T, float[]> fill)
    {
        long version = latest + 1;
        var b = boards[version % boards.Length];
        Volatile.Write(ref b.Version, -1);
        Interlocked.MemoryBarrier(); // the mark lands before any weight does
        if (b.Weights.Length != length) b.Weights = new float[length];
        fill(from, b.Weights);
        Volatile.Write(ref b.Version, version); // after every weight
        Volatile.Write(ref latest, version);
    }

    /// <summary>An actor's side: when a version newer than <paramref name="have"/> is published, gives its weights to
    /// <paramref name="load"/> (which copies them; the array is the board's, rewritten later) and returns that version;
    /// otherwise returns <paramref name="have"/>. A copy the learner overwrote meanwhile is made again from the latest.</summary>
    public long LoadIfNewer(long have, Action<float[]> load)
    {
        ArgumentNullException.ThrowIfNull(load);
        while (true)
        {
            long version = Volatile.Read(ref latest);
            if (version <= have) return have;
            var b = boards[version % boards.Length];
            if (Volatile.Read(ref b.Version) != version) continue; // being rewritten: a newer version is on its way
            load(b.Weights);
            Interlocked.MemoryBarrier(); // every weight read before the check
            if (Volatile.Read(ref b.Version) == version) return version;
        }
    }

    /// <summary>Whether the actors are asked to stop after the fragment they are making.</summary>
    public bool Stopping => stopping;

    /// <summary>Asks the actors to stop (<paramref name="stop"/>) or lets a new stream begin.</summary>
    public void SetStopping(bool stop) => stopping = stop;

    /// <summary>Batches waiting in the queue.</summary>
    public int Waiting => queue.Reader.Count;

    /// <summary>Batches and transitions sent since the exchange was made.</summary>
    public long BatchesSent => Interlocked.Read(ref batchesSent);

    /// <inheritdoc cref="BatchesSent"/>
    public long TransitionsSent => Interlocked.Read(ref transitionsSent);

    /// <summary>Seconds the actors have waited in all for room in the queue (the learner was behind).</summary>
    public double ActorWaitSeconds => Interlocked.Read(ref actorWaitTicks) / (double)Stopwatch.Frequency;

    /// <summary>An actor's side: queues <paramref name="batch"/>, waiting while the queue is full.</summary>
    public async Task Send(ExperienceBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (!queue.Writer.TryWrite(batch))
        {
            long start = Stopwatch.GetTimestamp();
            await queue.Writer.WriteAsync(batch).ConfigureAwait(false);
            Interlocked.Add(ref actorWaitTicks, Stopwatch.GetTimestamp() - start);
        }
        Interlocked.Increment(ref batchesSent);
        Interlocked.Add(ref transitionsSent, batch.Count);
    }

    /// <summary>The learner's side: the oldest batch, waiting at most <paramref name="timeout"/> for one.</summary>
    public bool TryTake(TimeSpan timeout, out ExperienceBatch batch)
    {
        if (queue.Reader.TryRead(out batch!)) return true;
        using var cancel = new CancellationTokenSource(timeout);
        try { queue.Reader.WaitToReadAsync(cancel.Token).AsTask().GetAwaiter().GetResult(); }
        catch (OperationCanceledException) { }
        return queue.Reader.TryRead(out batch!);
    }

    public void Dispose() => queue.Writer.TryComplete();
}

/// <summary>Actors that can also act continuously, feeding an asynchronous learner through an
/// <see cref="ExperienceExchange"/> (<see cref="ApexDqnConfig.Asynchronous"/>): the actors on this machine's workers.</summary>
public interface IStreamingExperienceSource : IExperienceSource
{
    /// <summary>Every actor group acts on its worker until <paramref name="exchange"/> is <see cref="ExperienceExchange.Stopping"/>:
    /// before each fragment (at least one) it loads the latest published weights when they are newer than its own, then
    /// sends its batch (waiting while the queue is full). Each fragment is one piece of work on the worker, so other work
    /// given to the worker runs between two. The task completes when every group has stopped, with the first group's
    /// exception if one failed.</summary>
    Task Stream(ExperienceExchange exchange);

    /// <summary>The weight version each group acts with (0: none loaded).</summary>
    IReadOnlyList<long> ActingVersions { get; }
}
