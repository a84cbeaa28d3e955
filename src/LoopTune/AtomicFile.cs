using System.Text;

namespace LoopTune;

/// <summary>
/// The one way LoopTune writes a file that another process or a later run reads (checkpoints, reports, policies, manifests,
/// caches): into a temporary name beside it (<see cref="TempSibling"/>), flushed to the disk, then renamed over it. A run
/// killed midway, a full disk or a read-only folder therefore never leaves half a file: the previous one stays whole until
/// the new one is complete. A failure is a <see cref="FileWriteError"/> naming the path (exit code 2), and the temporary
/// file is removed. Folders (a checkpoint, a report, a dataset) are written whole into a temporary sibling and put in
/// place by <see cref="CommitFolder"/>.
/// </summary>
public static class AtomicFile
{
    static readonly UTF8Encoding Utf8 = new(false);

    /// <summary>Writes what <paramref name="write"/> puts into the stream as <paramref name="path"/>, in a folder that exists.</summary>
    public static void Write(string path, Action<Stream> write) => Write(path, write, secret: false);

    /// <summary>Writes <paramref name="text"/> as <paramref name="path"/>, readable and writable by its owner only (mode 600)
    /// from the moment the temporary file is created: a password or a private key.</summary>
    public static void WriteSecret(string path, string text) => Write(path, s => s.Write(Utf8.GetBytes(text)), secret: true);

    static void Write(string path, Action<Stream> write, bool secret)
    {
        ArgumentNullException.ThrowIfNull(write);
        string full = Path.GetFullPath(path), temp = TempSibling(full);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (secret && !OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        try
        {
            using (var file = new FileStream(temp, options))
            {
                write(file);
                file.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e)
        {
            TryDelete(temp);
            if (FileWriteError.IsIo(e)) throw FileWriteError.From(full, e);
            throw;
        }
    }

    /// <summary>Writes <paramref name="text"/> (UTF-8, no byte-order mark) as <paramref name="path"/>.</summary>
    public static void WriteText(string path, string text) => Write(path, s => s.Write(Utf8.GetBytes(text)));

    /// <summary>Writes <paramref name="bytes"/> as <paramref name="path"/>.</summary>
    public static void WriteBytes(string path, byte[] bytes) => Write(path, s => s.Write(bytes));

    /// <summary>Copies <paramref name="source"/> to <paramref name="path"/> (a reader of <paramref name="path"/> sees the old
    /// file or the whole copy).</summary>
    public static void Copy(string source, string path) => Write(path, s =>
    {
        using var from = File.OpenRead(source);
        from.CopyTo(s);
    });

    /// <summary>A hidden, unique name beside <paramref name="target"/> (<c>.NAME.tmp-PID-GUID</c>), for a file or a folder
    /// written before it is renamed into place.</summary>
    public static string TempSibling(string target)
    {
        string full = Path.GetFullPath(target);
        return Path.Combine(Path.GetDirectoryName(full) ?? throw new FileWriteError(target, "it has no parent folder"),
            $".{Path.GetFileName(full)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
    }

    /// <summary>Puts the complete folder <paramref name="temp"/> in place as <paramref name="target"/>: an existing one is moved
    /// aside first and deleted after, so at every moment one whole folder (the old or the new) is there or beside it.</summary>
    public static void CommitFolder(string temp, string target)
    {
        string? old = Directory.Exists(target) ? temp + ".old" : null;
        try
        {
            if (old is not null) Directory.Move(target, old);
            try { Directory.Move(temp, target); }
            catch when (old is not null)
            {
                Directory.Move(old, target); // the old one back
                throw;
            }
        }
        catch (Exception e) when (FileWriteError.IsIo(e)) { throw FileWriteError.From(target, e); }
        if (old is not null) TryDelete(old);
    }

    /// <summary>Deletes a file or folder left by a failed write; best effort (it has a hidden name).</summary>
    public static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
            else File.Delete(path);
        }
        catch (Exception e) when (FileWriteError.IsIo(e)) { /* best effort: a hidden temporary name */ }
    }
}
