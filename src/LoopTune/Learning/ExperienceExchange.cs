using System.Diagnostics;
using System.Threading.Channels;

namespace LoopTune.Learning;

/// <summary>
/// What an asynchronous Ape-X learner and its actors share: a bounded queue of experience batches (an actor that finds it
/// full waits without holding its thread, so that other work queued on its worker, such as an evaluation, still runs) and a board of published weights (each publication a new version; an actor loads
/// the latest when it is newer than its own, before its next fragment). One learner publishes and takes; any number of
/// actors send and read. Counters say what crossed, so that a test can check that nothing was lost or repeated.
/// </summary>
public sealed class ExperienceExchange : IDisposable
{
    readonly Channel<ExperienceBatch> queue;
    volatile Published latest = new(0, null);
    volatile bool stopping;
    long batchesSent, transitionsSent, actorWaitTicks;

    /// <summary>An exchange whose queue holds at most <paramref name="capacity"/> batches.</summary>
    public ExperienceExchange(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        queue = Channel.CreateBounded<ExperienceBatch>(new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    }

    /// <summary>A version of the learner's weights (0 and null: none yet).</summary>
    public sealed record Published(long Version, float[]? Weights);

    /// <summary>The latest weights published.</summary>
    public Published Latest => latest;

    /// <summary>Publishes <paramref name="weights"/> (the learner's flattened parameters, not modified afterwards) as the
    /// next version; the learner's thread alone publishes.</summary>
    public void Publish(float[] weights) => latest = new(latest.Version + 1, weights);

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
