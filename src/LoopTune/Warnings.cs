namespace LoopTune;

/// <summary>One-line warnings from deep inside the library, about something it repaired on its own and the user should
/// know of (a damaged cache moved aside and rebuilt): to the writer the calling flow chose (<see cref="To"/>: the
/// command line's standard error, a test's own), else the process's standard error.</summary>
public static class Warnings
{
    static readonly AsyncLocal<TextWriter?> sink = new();

    /// <summary>Writes "warning: <paramref name="line"/>" as one line.</summary>
    public static void Write(string line)
    {
        var writer = sink.Value ?? Console.Error;
        lock (writer) writer.WriteLine($"warning: {line}");
    }

    /// <summary>Sends the warnings of the calling flow (and the work it starts) to <paramref name="writer"/> until the result is disposed.</summary>
    public static IDisposable To(TextWriter writer) => AsyncScope.Set(sink, writer);
}
