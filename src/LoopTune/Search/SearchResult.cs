using System.Collections.Immutable;
using LoopTune.Ir;

namespace LoopTune.Search;

/// <summary>
/// What a search found. <see cref="Actions"/> replays from <see cref="Start"/> to <see cref="Best"/>:
/// <c>Transforms.ApplyAll(Start, Actions).ScheduleKey == Best.ScheduleKey</c>, and <see cref="BestGflops"/> is the
/// evaluator's answer for that schedule.
/// </summary>
/// <param name="Method">The search's name (<see cref="ISearch.Name"/>).</param>
/// <param name="Start">The nest the search started from.</param>
/// <param name="Best">The fastest schedule seen (the start itself when nothing was faster).</param>
/// <param name="BestGflops">Its GFLOPS, as the evaluator reported them during the search.</param>
/// <param name="BaseGflops">The start's GFLOPS, from the same evaluator.</param>
/// <param name="Actions">The legal actions from the start to the best schedule, cursor moves included.</param>
/// <param name="Evaluations">Calls to the evaluator, one per distinct schedule, the start included: both the schedules
/// the evaluator compiled and timed now and those it recalled (from its memory or the measurement store). A schedule
/// seen again in the same run is answered by the search itself and not counted.</param>
/// <param name="Measured">Of <see cref="Evaluations"/>, those the evaluator timed now (<c>Recalled</c> false).</param>
/// <param name="Seconds">Wall-clock seconds the search took.</param>
/// <param name="Tree">Every schedule evaluated and how the search reached it (for <c>--debug</c>).</param>
/// <param name="Space">The action space the search acted in (<see cref="Env.ActionSpace"/>).</param>
/// <param name="Ids">The ids of that space from the start to the best schedule: stepping them through a
/// <see cref="Env.LoopTuneEnv"/> of that space replays to <paramref name="Best"/>.</param>
public sealed record SearchResult(
    string Method, Nest Start, Nest Best, double BestGflops, double BaseGflops, ImmutableArray<LoopAction> Actions,
    int Evaluations, int Measured, double Seconds, SearchTree Tree, string Space, ImmutableArray<int> Ids)
{
    /// <summary>Whether <see cref="BestGflops"/> is an estimate from a slice (the whole kernel ran too long to time).</summary>
    public bool BestEstimated { get; init; }

    /// <summary>Whether <see cref="BaseGflops"/> is an estimate from a slice.</summary>
    public bool BaseEstimated { get; init; }

    /// <summary>How many of the evaluations were estimates from slices.</summary>
    public int Estimates { get; init; }

    /// <summary>Evaluations the evaluator answered from what it remembered.</summary>
    public int Recalled => Evaluations - Measured;

    /// <summary>Best over base GFLOPS.</summary>
    public double Speedup => BestGflops / BaseGflops;
}
