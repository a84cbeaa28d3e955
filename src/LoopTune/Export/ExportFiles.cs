namespace LoopTune.Export;

/// <summary>Writes an exported kernel next to its header: <c>FILE.c</c> and <c>FILE.h</c>, each to a temporary name in the
/// same folder first and renamed once both are written, so that a failure leaves neither half-written.</summary>
public static class ExportFiles
{
    /// <summary>The header's path for a source path: the same name ending in .h.</summary>
    public static string HeaderPath(string source) => Path.ChangeExtension(source, ".h");

    /// <summary>Checks that <paramref name="source"/> names a .c file in an existing folder; a <see cref="LoopTuneException"/> otherwise.</summary>
    public static string CheckPath(string source)
    {
        if (!source.EndsWith(".c", StringComparison.Ordinal) || Path.GetFileName(source) == ".c")
            throw new LoopTuneException($"--out {source}: give a C source file name ending in .c (the header is written next to it, ending in .h)");
        var folder = Path.GetDirectoryName(Path.GetFullPath(source))!;
        if (!Directory.Exists(folder)) throw new LoopTuneException($"--out {source}: the folder {folder} does not exist");
        if (Directory.Exists(source)) throw new LoopTuneException($"--out {source}: is a folder");
        return source;
    }

    /// <summary>Writes <paramref name="exported"/> to <paramref name="source"/> and its header; an unwritable path is a
    /// <see cref="LoopTuneException"/> naming it, with no file left behind.</summary>
    public static void Write(string source, CSource exported)
    {
        CheckPath(source);
        string header = HeaderPath(source);
        var files = new[] { (source, exported.Code), (header, exported.Header) };
        var temps = files.Select(f => $"{f.Item1}.{Environment.ProcessId}.tmp").ToArray();
        string at = source;
        try
        {
            for (int i = 0; i < files.Length; i++)
            {
                at = files[i].Item1;
                File.WriteAllText(temps[i], files[i].Item2);
            }
            for (int i = 0; i < files.Length; i++)
            {
                at = files[i].Item1;
                File.Move(temps[i], files[i].Item1, overwrite: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            foreach (var t in temps) File.Delete(t);
            throw new LoopTuneException($"cannot write {at}: {e.Message}");
        }
    }
}
