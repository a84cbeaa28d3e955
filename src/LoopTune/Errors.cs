namespace LoopTune;

/// <summary>Base of every error LoopTune reports for bad input (spec, schedule, action, file).
/// The CLI maps these to exit code 2; anything else is an internal failure (exit code 1).</summary>
public class LoopTuneException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A file or folder LoopTune had to write and could not (no space left, a read-only folder, a file where a folder
/// belongs): exit code 2, naming the path and the system's reason, as bad input is. What was there before is left whole
/// (<see cref="AtomicFile"/>).</summary>
public sealed partial class FileWriteError(string path, string problem, Exception? inner = null)
    : LoopTuneException($"cannot write {path}: {problem}", inner)
{
    /// <summary>The file or folder that could not be written.</summary>
    public string Path { get; } = path;

    /// <summary>Why, as the system said it.</summary>
    public string Problem { get; } = problem;

    /// <summary>The error for <paramref name="e"/>, an I/O failure while writing <paramref name="path"/>: the system's reason,
    /// without the file .NET quotes after it (often a temporary name that no longer exists).</summary>
    public static FileWriteError From(string path, Exception e) =>
        e as FileWriteError ?? new(path, QuotedPath().Replace(e.Message, "").TrimEnd('.'), e);

    [System.Text.RegularExpressions.GeneratedRegex(@" : '[^']*'\.?$")]
    private static partial System.Text.RegularExpressions.Regex QuotedPath();

    /// <summary>The failures of the file system that <see cref="From"/> turns into a <see cref="FileWriteError"/>.</summary>
    public static bool IsIo(Exception e) => e is IOException or UnauthorizedAccessException;
}

/// <summary>A run's journal (<see cref="RunJournal"/>) that cannot serve: none to resume from, one of another run, a damaged
/// one, or one a new run would overwrite. Exit code 2, naming the folder and what to do.</summary>
public sealed class RunJournalError(string message, Exception? inner = null) : LoopTuneException(message, inner);
