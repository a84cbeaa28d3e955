using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoopTune;

/// <summary>
/// The journal of a long run (<c>compare-searches</c>, <c>compare-libraries</c>), in its output folder as
/// <see cref="FileName"/>: JSON lines, a header naming the run's kind and settings (the machine's key among them), then
/// one finished row per line, each written, flushed and synced to the disk before the run goes on. A run killed at any
/// moment (SIGKILL included) therefore keeps every row it finished; at worst its last line is cut off, and that torn line
/// is ignored with a one-line warning. <see cref="Open"/> with resume reads the rows back (the run does not measure them
/// again), refusing a journal of another run; the run deletes the journal with its finished report.
/// </summary>
public sealed class RunJournal : IDisposable
{
    public const string FileName = "journal.jsonl";
    const string Format = "looptune-journal/1";
    static readonly UTF8Encoding Utf8 = new(false);
    readonly FileStream file;
    readonly Lock gate = new();
    int appended;

    RunJournal(string path, FileStream file, IReadOnlyList<JsonObject> kept, bool resumed) => (Path, this.file, Kept, Resumed) = (path, file, kept, resumed);

    /// <summary>The journal's file.</summary>
    public string Path { get; }

    /// <summary>The rows an earlier invocation finished (none for a new run), in the order they were written.</summary>
    public IReadOnlyList<JsonObject> Kept { get; }

    /// <summary>Whether the journal was an earlier invocation's (<c>--resume</c>).</summary>
    public bool Resumed { get; }

    /// <summary>Every row in the journal: kept and appended.</summary>
    public int Count => Kept.Count + appended;

    /// <summary>Opens the journal of <paramref name="folder"/> for a run of <paramref name="kind"/> with
    /// <paramref name="settings"/>. A new run (<paramref name="resume"/> false) starts one, creating the folder, and is
    /// refused when the folder holds one already (an unfinished run's rows are never dropped silently); a resumed run
    /// needs one, of the same kind and settings: a <see cref="RunJournalError"/> names what differs.</summary>
    public static RunJournal Open(string folder, string kind, IReadOnlyDictionary<string, string> settings, bool resume)
    {
        string full = System.IO.Path.GetFullPath(folder), path = System.IO.Path.Combine(full, FileName);
        bool exists = File.Exists(path);
        if (resume && !exists) throw new RunJournalError($"--resume: {full} has no journal ({FileName}) to resume from");
        if (!resume) RefuseUnfinished(full);
        try
        {
            if (!resume)
            {
                Directory.CreateDirectory(full);
                AtomicFile.WriteText(path, Header(kind, settings).ToJsonString() + "\n");
            }
            var (header, rows, length) = Read(path);
            if (resume) Check(path, header, kind, settings);
            var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.Read);
            stream.SetLength(length); // a torn last line goes, so the next row starts a line of its own
            stream.Seek(length, SeekOrigin.Begin);
            return new RunJournal(path, stream, rows, resume);
        }
        catch (Exception e) when (FileWriteError.IsIo(e)) { throw FileWriteError.From(path, e); }
    }

    /// <summary>Refuses to start a new run in <paramref name="folder"/> when it holds an unfinished run's journal: its rows
    /// would be lost with it.</summary>
    public static void RefuseUnfinished(string folder)
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetFullPath(folder), FileName);
        if (File.Exists(path))
            throw new RunJournalError($"--out {System.IO.Path.GetDirectoryName(path)} holds the journal of an unfinished run ({Read(path).Rows.Count} rows kept in {FileName}): continue it with --resume, or delete {path} to start over");
    }

    /// <summary>Writes <paramref name="row"/> as one line and syncs it to the disk before returning; safe from several threads.</summary>
    public void Append(JsonObject row)
    {
        ArgumentNullException.ThrowIfNull(row);
        byte[] line = Utf8.GetBytes(row.ToJsonString() + "\n");
        lock (gate)
        {
            try
            {
                file.Write(line);
                file.Flush(flushToDisk: true);
            }
            catch (Exception e) when (FileWriteError.IsIo(e)) { throw FileWriteError.From(Path, e); }
            appended++;
        }
    }

    public void Dispose() => file.Dispose();

    static JsonObject Header(string kind, IReadOnlyDictionary<string, string> settings) => new()
    {
        ["journal"] = Format, ["kind"] = kind,
        ["settings"] = new JsonObject([.. settings.Select(s => KeyValuePair.Create(s.Key, (JsonNode?)s.Value))]),
    };

    /// <summary>The header, the rows, and the length of the file up to the end of the last whole row. A last line that is
    /// not whole JSON (cut off by a kill) is left out with a warning; any other line that cannot be read is an error.</summary>
    internal static (JsonObject Header, List<JsonObject> Rows, long Length) Read(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (FileWriteError.IsIo(e)) { throw new RunJournalError($"{path} cannot be read: {e.Message}", e); }
        var rows = new List<JsonObject>();
        JsonObject? header = null;
        long length = 0;
        for (int start = 0, n = 1; start < bytes.Length; n++)
        {
            int end = Array.IndexOf(bytes, (byte)'\n', start);
            bool last = end < 0 || end == bytes.Length - 1;
            var line = Parse(bytes.AsSpan(start, (end < 0 ? bytes.Length : end) - start));
            if (line is null || end < 0)
            {
                if (!last || header is null) throw new RunJournalError($"{path}: line {n} cannot be read; the journal is damaged (delete it to start the run over)");
                Warnings.Write($"{path}: ignored its torn last line (a row cut off when the run was killed)");
                break;
            }
            if (header is null) header = line;
            else rows.Add(line);
            start = end + 1;
            length = start;
        }
        if (header is null || (string?)header["journal"] != Format)
            throw new RunJournalError($"{path} is not a LoopTune journal (its first line is no {Format} header)");
        return (header, rows, length);
    }

    static JsonObject? Parse(ReadOnlySpan<byte> line)
    {
        try { return JsonNode.Parse(line) as JsonObject; }
        catch (JsonException) { return null; }
    }

    /// <summary>Refuses the journal of another kind of run, or of one with other settings, naming each difference.</summary>
    static void Check(string path, JsonObject header, string kind, IReadOnlyDictionary<string, string> settings)
    {
        if ((string?)header["kind"] is var was && was != kind) throw new RunJournalError($"--resume: {path} is the journal of a {was} run, not of {kind}");
        var old = header["settings"] as JsonObject ?? [];
        var differences = settings.Keys.Union(old.Select(o => o.Key))
            .Select(k => (Key: k, There: old[k]?.GetValue<string>(), Here: settings.GetValueOrDefault(k)))
            .Where(d => d.There != d.Here).Select(d => $"{d.Key} {d.There ?? "(none)"} there, {d.Here ?? "(none)"} here").ToList();
        if (differences.Count > 0)
            throw new RunJournalError($"--resume: {path} is the journal of another run ({string.Join("; ", differences)}); give the same settings, or another --out");
    }
}
