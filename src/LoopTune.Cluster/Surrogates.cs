using LoopTune.Compare;
using LoopTune.Learning;
using LoopTune.Measure;

namespace LoopTune.Cluster;

// The engine's records that cross the wire, serialised by Orleans through surrogates (its pattern for types it does not
// own: a [GenerateSerializer] struct and a [RegisterConverter] converter per type), so that work items carry the engine's
// own types and no hand-kept copy of them.

/// <summary>A <see cref="PeerResult"/> on the wire.</summary>
[GenerateSerializer, Immutable, Alias("looptune.PeerResult")]
public readonly record struct PeerResultSurrogate(
    [property: Id(0)] string Key, [property: Id(1)] double? Gflops, [property: Id(2)] string? Problem, [property: Id(3)] PeerStatus Status,
    [property: Id(4)] string? Via, [property: Id(5)] double? KernelOverPeer, [property: Id(6)] bool Estimated);

[RegisterConverter]
public sealed class PeerResultConverter : IConverter<PeerResult, PeerResultSurrogate>
{
    public PeerResult ConvertFromSurrogate(in PeerResultSurrogate s) => new(s.Key, s.Gflops, s.Problem, s.Status, s.Via) { KernelOverPeer = s.KernelOverPeer, Estimated = s.Estimated };

    public PeerResultSurrogate ConvertToSurrogate(in PeerResult p) => new(p.Key, p.Gflops, p.Problem, p.Status, p.Via, p.KernelOverPeer, p.Estimated);
}

/// <summary>A <see cref="ComparisonRow"/> on the wire: its actions by name, its peers as <see cref="PeerResult"/>s.</summary>
[GenerateSerializer, Immutable, Alias("looptune.ComparisonRow")]
public readonly record struct ComparisonRowSurrogate(
    [property: Id(0)] string Benchmark, [property: Id(1)] string Method, [property: Id(2)] double BaseGflops, [property: Id(3)] double BestGflops,
    [property: Id(4)] double SearchGflops, [property: Id(5)] int Evaluations, [property: Id(6)] int Measured, [property: Id(7)] double Seconds,
    [property: Id(8)] string[] Actions, [property: Id(9)] string Schedule, [property: Id(10)] PeerResult[] Peers, [property: Id(11)] bool Verified,
    [property: Id(12)] string? Host, [property: Id(13)] string? Machine, [property: Id(14)] double BestSampleGflops, [property: Id(15)] string Space,
    [property: Id(16)] bool BaseEstimated, [property: Id(17)] bool BestEstimated);

[RegisterConverter]
public sealed class ComparisonRowConverter : IConverter<ComparisonRow, ComparisonRowSurrogate>
{
    public ComparisonRow ConvertFromSurrogate(in ComparisonRowSurrogate s) => new(s.Benchmark, s.Method, s.BaseGflops, s.BestGflops, s.SearchGflops,
        s.Evaluations, s.Measured, s.Seconds, [.. s.Actions.Select(Ir.Actions.Get)], s.Schedule, [.. s.Peers], s.Verified, s.Host, s.Machine, s.BestSampleGflops, s.Space)
    {
        BaseEstimated = s.BaseEstimated, BestEstimated = s.BestEstimated,
    };

    public ComparisonRowSurrogate ConvertToSurrogate(in ComparisonRow r) => new(r.Benchmark, r.Method, r.BaseGflops, r.BestGflops, r.SearchGflops,
        r.Evaluations, r.Measured, r.Seconds, [.. r.Actions.Select(a => a.Name)], r.Schedule, [.. r.Peers], r.Verified, r.Host, r.Machine, r.BestSampleGflops,
        r.Space, r.BaseEstimated, r.BestEstimated);
}

/// <summary>An <see cref="ExperienceBatch"/> on the wire (its arrays stay arrays).</summary>
[GenerateSerializer, Immutable, Alias("looptune.ExperienceBatch")]
public readonly record struct ExperienceBatchSurrogate(
    [property: Id(0)] int ObservationSize, [property: Id(1)] int ActionCount, [property: Id(2)] int Steps, [property: Id(3)] float[] Observations,
    [property: Id(4)] int[] Actions, [property: Id(5)] float[] Returns, [property: Id(6)] float[] NextObservations, [property: Id(7)] bool[] NextMasks,
    [property: Id(8)] float[] Discounts, [property: Id(9)] double[] Priorities, [property: Id(10)] double[] EpisodeReturns, [property: Id(11)] double[] EpisodeFinals,
    [property: Id(12)] double[] EpisodeBests, [property: Id(13)] double[] EpisodeStarts);

[RegisterConverter]
public sealed class ExperienceBatchConverter : IConverter<ExperienceBatch, ExperienceBatchSurrogate>
{
    public ExperienceBatch ConvertFromSurrogate(in ExperienceBatchSurrogate s) => new(s.ObservationSize, s.ActionCount, s.Steps, s.Observations, s.Actions,
        s.Returns, s.NextObservations, s.NextMasks, s.Discounts, s.Priorities, s.EpisodeReturns, s.EpisodeFinals, s.EpisodeBests, s.EpisodeStarts);

    public ExperienceBatchSurrogate ConvertToSurrogate(in ExperienceBatch b) => new(b.ObservationSize, b.ActionCount, b.Steps, b.Observations, b.Actions,
        b.Returns, b.NextObservations, b.NextMasks, b.Discounts, b.Priorities, b.EpisodeReturns, b.EpisodeFinals, b.EpisodeBests, b.EpisodeStarts);
}
