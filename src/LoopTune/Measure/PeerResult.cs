namespace LoopTune.Measure;

/// <summary>What became of a peer on one computation.</summary>
public enum PeerStatus
{
    /// <summary>Checked against the reference, then timed.</summary>
    Measured,
    /// <summary>Its library (or a symbol of it) is not installed.</summary>
    Missing,
    /// <summary>Its result did not match the reference: flagged, never timed.</summary>
    WrongResult,
    /// <summary>The library has no call for this contraction (the problem says why).</summary>
    NoPeer,
    /// <summary>The library refused or failed (the problem has its message).</summary>
    Failed,
    /// <summary>Not asked for.</summary>
    NotMeasured,
}

/// <summary>A peer library's speed on the same computation, or why there is none. <paramref name="Via"/> names the call
/// timed when it is not a plain one (e.g. <c>8 x sgemm N,T (batch b)</c>, <c>im2col + cblas_sgemm</c>).</summary>
public sealed record PeerResult(string Key, double? Gflops, string? Problem, PeerStatus Status, string? Via = null)
{
    /// <summary>How many times faster the kernel ran than this peer when the two were timed side by side
    /// (<see cref="Together.Ratio"/>: the median of ratios within rounds); null when they were timed apart.</summary>
    public double? KernelOverPeer { get; init; }

    /// <summary>True when the peer was timed on a slice of the computation (<see cref="Peers.Slice"/>): its GFLOPS are an
    /// estimate of the whole's, and <see cref="Via"/> says which slice.</summary>
    public bool Estimated { get; init; }

    /// <summary>The start of a wrong result's problem.</summary>
    public const string WrongResultPrefix = "wrong result: ";

    /// <summary>The start of the problem when the library has no call for the contraction.</summary>
    public const string NoPeerPrefix = "no peer: ";

    /// <summary>A measured peer.</summary>
    public static PeerResult Measured(string key, double gflops, string? via = null) => new(key, gflops, null, PeerStatus.Measured, via);

    /// <summary>A peer whose library is not installed: its <see cref="NativePeer.Problem"/>.</summary>
    public static PeerResult Missing(NativePeer peer) => new(peer.Key, null, peer.Problem, PeerStatus.Missing);

    /// <summary>A peer whose result was wrong (never timed).</summary>
    public static PeerResult Wrong(string key, string? problem, string? via = null) => new(key, null, WrongResultPrefix + problem, PeerStatus.WrongResult, via);

    /// <summary>A library with no call for the contraction, and why.</summary>
    public static PeerResult None(string key, string reason) => new(key, null, NoPeerPrefix + reason, PeerStatus.NoPeer);

    /// <summary>A library that refused or failed.</summary>
    public static PeerResult Failed(string key, string message, string? via = null) => new(key, null, message, PeerStatus.Failed, via);
}
