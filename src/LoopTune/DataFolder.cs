namespace LoopTune;

/// <summary>Where LoopTune keeps what it remembers between runs (the measurement store, the peak, generated datasets,
/// adapted policies): $LOOPTUNE_HOME if set, else the user's local data folder + /looptune. Every layer may use it.</summary>
public static class DataFolder
{
    /// <summary>The folder (not created here).</summary>
    public static string Root =>
        folder.Value ?? (Environment.GetEnvironmentVariable("LOOPTUNE_HOME") is { Length: > 0 } home ? home
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "looptune"));

    static readonly AsyncLocal<string?> folder = new();

    /// <summary>Makes <paramref name="path"/> the data folder of the calling flow (the work it starts included) until the
    /// result is disposed: for tests that write what other tests read (an adapted policy), each in a folder of its own.</summary>
    internal static IDisposable Use(string path)
    {
        var before = folder.Value;
        folder.Value = path;
        return new Restore(() => folder.Value = before);
    }

    sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
