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
    internal static IDisposable Use(string path) => AsyncScope.Set(folder, path);
}

/// <summary>Gives an <see cref="AsyncLocal{T}"/> a value for the calling flow until the result is disposed, then the one
/// it had (the data folder of a test, the writer of <see cref="Warnings"/>).</summary>
static class AsyncScope
{
    public static IDisposable Set<T>(AsyncLocal<T?> local, T? value)
    {
        var before = local.Value;
        local.Value = value;
        return new Restore(() => local.Value = before);
    }

    sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
