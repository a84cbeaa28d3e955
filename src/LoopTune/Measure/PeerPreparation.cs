using LoopTune.Ir;

namespace LoopTune.Measure;

/// <summary>The peer libraries of one computation on <paramref name="threads"/> threads each, checked and ready to be timed
/// next to the schedules (or why not), as <see cref="KernelReport.PreparePeers(Computation, int)"/> gives them. The caller
/// disposes them.</summary>
public delegate IReadOnlyList<PreparedPeer> PeerPreparation(Computation computation, int threads);
