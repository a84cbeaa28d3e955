using LoopTune.Ir;

namespace LoopTune.Datasets;

/// <summary>A dataset folder, manifest or benchmark file that cannot be used; the message names the file or the name.</summary>
public sealed class DatasetError(string message, Exception? inner = null) : LoopTuneException(message, inner);

/// <summary>
/// One benchmark of a dataset: a name, which is also its file name without <see cref="Extension"/>, and a computation.
/// The file is readable text: a comment line with the name and the long form, then the spec in its shorthand:
/// <code>
/// # mm64_80_96: C[m,n] += A[m,k] * B[k,n] m=64 n=80 k=96
/// mm 64 80 96
/// </code>
/// Lines starting with '#' and blank lines are ignored; the one remaining line is the spec.
/// </summary>
public sealed record Benchmark(string Name, Computation Computation)
{
    /// <summary>The file extension of benchmark files.</summary>
    public const string Extension = ".txt";

    /// <summary>The file's content, with '\n' line ends.</summary>
    public string FileText => $"# {Name}: {Computation.Text}\n{Computation}\n";

    /// <summary>Reads a benchmark file; the name is the file name without its extension.</summary>
    public static Benchmark ReadFile(string path)
    {
        string[] lines;
        try { lines = File.ReadAllLines(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new DatasetError($"cannot read benchmark {path}: {e.Message}", e); }
        var specs = lines.Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
        if (specs.Length != 1) throw new DatasetError($"benchmark {path} has {specs.Length} spec lines; it needs exactly one (lines starting with # are comments)");
        try { return new Benchmark(Path.GetFileNameWithoutExtension(path), Computation.Parse(specs[0])); }
        catch (SpecError e) { throw new DatasetError($"benchmark {path}: {e.Message}", e); }
    }
}
