using System.Collections.ObjectModel;
using System.Globalization;
using System.Text;

namespace LoopTune.Learning.Logging;

/// <summary>One row of the training curves: the env step count it was logged at, the wall time (UTC, whole
/// milliseconds), and named values (e.g. "episode_reward", "loss", "epsilon", "entropy", "gflops", "env_steps_per_s",
/// "eval_gflops_geomean"). A series without a value in this row is absent from <see cref="Values"/>.</summary>
public sealed record MetricRow(long Step, DateTimeOffset Time, IReadOnlyDictionary<string, double> Values);

/// <summary>The curves of a training run, kept in its run folder twice: <c>metrics.csv</c> (read back by resumes, charts
/// and tests) and TensorBoard event files under <c>tb/</c>.</summary>
/// <remarks>
/// <para>CSV: header <c>step,time,</c> + the series names in order of first appearance; one line per <see cref="Log"/>;
/// an empty cell is "no value in that row". Time is ISO-8601 UTC with milliseconds, numbers use the invariant culture and
/// the shortest round-trip form (NaN and ±Infinity as <c>NaN</c>, <c>Infinity</c>, <c>-Infinity</c>). A row is
/// appended and flushed at once; when a new series appears the whole file is rewritten (temp file + rename) with the
/// wider header, so a reader never sees a half-written header.</para>
/// <para>TensorBoard: each open makes a new event file; a fresh run (no event file in <c>tb/</c> yet) starts with a
/// SessionLog START at step 0, and <see cref="TruncateAfter"/> writes one at step + 1, so TensorBoard also drops the
/// points a resumed run has forgotten.</para>
/// <para>One writer per run folder at a time; not thread-safe (the trainer logs from one thread).</para>
/// </remarks>
public sealed class TrainingLog : IDisposable
{
    const string CsvName = "metrics.csv", TensorBoardName = "tb", TimeFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";
    static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    readonly List<MetricRow> _rows;
    readonly List<string> _columns;
    readonly HashSet<string> _known;
    readonly TensorBoardWriter _tensorBoard;
    FileStream? _csv;
    bool _disposed;

    /// <summary>Opens the log in <paramref name="runFolder"/> (created if missing): reads an existing <c>metrics.csv</c>
    /// so a resumed run continues it (a last line without its newline, cut off when a process was killed mid-write, is
    /// dropped), and opens a new <see cref="TensorBoardWriter"/> in <c>runFolder/tb/</c>.</summary>
    /// <exception cref="LoopTuneException">The existing metrics.csv is not one this class wrote.</exception>
    public TrainingLog(string runFolder)
    {
        ArgumentException.ThrowIfNullOrEmpty(runFolder);
        Directory.CreateDirectory(runFolder);
        CsvPath = Path.GetFullPath(Path.Combine(runFolder, CsvName));
        TensorBoardFolder = Path.GetFullPath(Path.Combine(runFolder, TensorBoardName));
        bool torn = false;
        if (File.Exists(CsvPath)) (_columns, _rows, torn) = Parse(CsvPath);
        else (_columns, _rows) = ([], []);
        _known = new HashSet<string>(_columns, StringComparer.Ordinal);
        Rows = _rows.AsReadOnly();

        bool freshTensorBoard = !Directory.Exists(TensorBoardFolder) || !Directory.EnumerateFiles(TensorBoardFolder, "*tfevents*").Any();
        try
        {
            if (torn || !File.Exists(CsvPath)) RewriteCsv();
            _tensorBoard = new TensorBoardWriter(TensorBoardFolder);
            if (freshTensorBoard) _tensorBoard.SessionStart(0);
            _csv ??= OpenForAppend();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The rows logged so far (including those read from an existing metrics.csv), in logging order. A live,
    /// read-only view.</summary>
    public IReadOnlyList<MetricRow> Rows { get; }

    /// <summary>Full path of <c>metrics.csv</c>.</summary>
    public string CsvPath { get; }

    /// <summary>Full path of the folder of the TensorBoard event files (<c>tb/</c> in the run folder).</summary>
    public string TensorBoardFolder { get; }

    /// <summary>Appends a row at env step <paramref name="step"/>, timed now: to the CSV (rewritten with a wider header
    /// when a series is new) and one TensorBoard scalar per value (tag = the series name). Flushed at once.</summary>
    /// <exception cref="ArgumentException">A series name is empty, is "step" or "time", or holds a comma, quote or line
    /// break.</exception>
    public void Log(long step, IReadOnlyDictionary<string, double> values)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(values);
        foreach (var name in values.Keys) CheckName(name);

        var copy = new Dictionary<string, double>(values, StringComparer.Ordinal);
        int oldColumns = _columns.Count;
        foreach (var name in values.Keys)
            if (_known.Add(name)) _columns.Add(name);
        var row = new MetricRow(step, NowToTheMillisecond(), copy);
        _rows.Add(row);
        try
        {
            if (_columns.Count != oldColumns) RewriteCsv();
            else
            {
                _csv!.Write(Utf8.GetBytes(Line(row)));
                _csv.Flush();
            }
        }
        catch (Exception e)
        {
            _rows.RemoveAt(_rows.Count - 1);
            for (int i = _columns.Count - 1; i >= oldColumns; i--)
            {
                _known.Remove(_columns[i]);
                _columns.RemoveAt(i);
            }
            if (FileWriteError.IsIo(e)) throw FileWriteError.From(CsvPath, e);
            throw;
        }
        try
        {
            foreach (var (name, value) in row.Values) _tensorBoard.Scalar(name, (float)value, step, row.Time);
        }
        catch (Exception e) when (FileWriteError.IsIo(e)) { throw FileWriteError.From(TensorBoardFolder, e); }
    }

    /// <summary>Forgets the rows with <c>Step &gt; step</c> (a run resuming from a checkpoint taken at
    /// <paramref name="step"/>): the CSV is rewritten atomically (temp file + rename) and TensorBoard is told to drop its
    /// points after <paramref name="step"/> as well. The series columns stay.</summary>
    public void TruncateAfter(long step)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var kept = _rows.Where(r => r.Step <= step).ToList();
        if (kept.Count != _rows.Count)
        {
            var all = _rows.ToList();
            _rows.Clear();
            _rows.AddRange(kept);
            try { RewriteCsv(); }
            catch
            {
                _rows.Clear();
                _rows.AddRange(all);
                throw;
            }
        }
        if (step < long.MaxValue) _tensorBoard.SessionStart(step + 1);
    }

    /// <summary>Flushes both files to disk and closes them. Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            if (_csv is not null)
            {
                try { _csv.Flush(flushToDisk: true); }
                finally { _csv.Dispose(); }
            }
        }
        finally { _tensorBoard?.Dispose(); }
    }

    /// <summary>Reads a metrics.csv (for charts and tests). A last line without its newline is a row still being written
    /// (or cut off by a kill) and is not read; blank lines are skipped.</summary>
    /// <exception cref="LoopTuneException">The file is missing or is not a metrics CSV; the message names the file and
    /// the line.</exception>
    public static IReadOnlyList<MetricRow> ReadCsv(string path) => Parse(path).Rows;

    static (List<string> Columns, List<MetricRow> Rows, bool Torn) Parse(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string text;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream, Utf8, detectEncodingFromByteOrderMarks: true);
            text = reader.ReadToEnd();
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new LoopTuneException($"{path}: no such metrics file", e);
        }

        var lines = text.Split('\n');
        // Split leaves "" after a final newline; anything else there is a line whose newline was never written.
        bool torn = lines[^1].Length > 0;
        int count = lines.Length - 1;
        var columns = new List<string>();
        var rows = new List<MetricRow>();
        int headerCells = 0;
        for (int i = 0; i < count; i++)
        {
            string line = lines[i].TrimEnd('\r');
            int number = i + 1;
            if (i == 0)
            {
                var header = line.Split(',');
                if (header.Length < 2 || header[0] != "step" || header[1] != "time")
                    throw Bad(path, number, "the header does not start with \"step,time\"");
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var name in header.Skip(2))
                {
                    if (NameProblem(name) is string problem) throw Bad(path, number, $"column \"{name}\": {problem}");
                    if (!seen.Add(name)) throw Bad(path, number, $"column \"{name}\" appears twice");
                    columns.Add(name);
                }
                headerCells = header.Length;
                continue;
            }
            if (line.Trim().Length == 0) continue;
            var cells = line.Split(',');
            if (cells.Length != headerCells) throw Bad(path, number, $"{cells.Length} cells where the header has {headerCells}");
            if (!long.TryParse(cells[0], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long step))
                throw Bad(path, number, $"step \"{cells[0]}\" is not an integer");
            if (!TryParseTime(cells[1], out var time)) throw Bad(path, number, $"time \"{cells[1]}\" is not an ISO-8601 time");
            var values = new Dictionary<string, double>(StringComparer.Ordinal);
            for (int c = 2; c < cells.Length; c++)
            {
                if (cells[c].Length == 0) continue;
                if (!double.TryParse(cells[c], NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
                    throw Bad(path, number, $"{columns[c - 2]} \"{cells[c]}\" is not a number");
                values[columns[c - 2]] = value;
            }
            rows.Add(new MetricRow(step, time, values));
        }
        return (columns, rows, torn);
    }

    static LoopTuneException Bad(string path, int line, string problem) => new($"{path}, line {line}: {problem}");

    static bool TryParseTime(string s, out DateTimeOffset time)
    {
        const DateTimeStyles Utc = DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal;
        return DateTimeOffset.TryParseExact(s, TimeFormat, CultureInfo.InvariantCulture, Utc, out time)
            || DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, Utc, out time);
    }

    static void CheckName(string name)
    {
        if (NameProblem(name) is string problem) throw new ArgumentException($"series name \"{name}\": {problem}", "values");
    }

    static string? NameProblem(string name) =>
        string.IsNullOrWhiteSpace(name) ? "empty"
        : name is "step" or "time" ? "reserved for the first two columns"
        : name.IndexOfAny([',', '"', '\r', '\n']) >= 0 ? "holds a comma, quote or line break"
        : name.Trim().Length != name.Length ? "starts or ends with white space"
        : null;

    static DateTimeOffset NowToTheMillisecond()
    {
        long ticks = DateTimeOffset.UtcNow.UtcTicks;
        return new DateTimeOffset(ticks - ticks % TimeSpan.TicksPerMillisecond, TimeSpan.Zero);
    }

    string Header() => string.Join(',', ["step", "time", .. _columns]) + "\n";

    string Line(MetricRow row)
    {
        var line = new StringBuilder(16 + 12 * _columns.Count);
        line.Append(row.Step.ToString(CultureInfo.InvariantCulture)).Append(',');
        line.Append(row.Time.UtcDateTime.ToString(TimeFormat, CultureInfo.InvariantCulture));
        foreach (var name in _columns)
        {
            line.Append(',');
            if (row.Values.TryGetValue(name, out double value)) line.Append(value.ToString("R", CultureInfo.InvariantCulture));
        }
        return line.Append('\n').ToString();
    }

    /// <summary>Writes the header and every row as the CSV (<see cref="AtomicFile"/>: a temporary file renamed over it, so a
    /// failed write leaves the previous CSV whole); the append stream is reopened on the new file.</summary>
    void RewriteCsv()
    {
        var text = new StringBuilder(Header());
        foreach (var row in _rows) text.Append(Line(row));
        _csv?.Dispose();
        _csv = null;
        try { AtomicFile.WriteText(CsvPath, text.ToString()); }
        finally
        {
            if (!_disposed && _csv is null && File.Exists(CsvPath)) _csv = OpenForAppend();
        }
    }

    FileStream OpenForAppend() => new(CsvPath, FileMode.Append, FileAccess.Write, FileShare.Read | FileShare.Delete, bufferSize: 1);
}
