namespace LoopTune.Measure;

/// <summary>What every peer library reports about itself: its key, the file loaded, whether it can be used (and why
/// not), its version and how its thread count is set.</summary>
public abstract class NativePeer
{
    protected internal NativePeer(string key, string library, string? problem, string? version, string threading) =>
        (Key, Library, Problem, Version, Threading) = (key, library, problem, version, threading);

    /// <summary>Short name, such as "openblas" or "onednn_conv".</summary>
    public string Key { get; }

    /// <summary>The library file loaded, or the files tried when none could be.</summary>
    public string Library { get; }

    /// <summary>Whether the peer can be called.</summary>
    public bool Available => Problem is null;

    /// <summary>Why the peer is unavailable (library not found, symbol missing); null when available.</summary>
    public string? Problem { get; }

    /// <summary>The library's own description of its version or build, when it exports one.</summary>
    public string? Version { get; }

    /// <summary>How the peer's thread count is set (one thread unless a measurement asks for more): N in the text stands for
    /// the count.</summary>
    public string Threading { get; }

    /// <inheritdoc/>
    public override string ToString() => Available ? $"{Key} ({Library})" : $"{Key}: {Problem}";
}
