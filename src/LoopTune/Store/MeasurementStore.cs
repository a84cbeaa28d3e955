using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.InteropServices;
using LoopTune.Ir;
using LoopTune.Measure;
using Microsoft.Data.Sqlite;

namespace LoopTune.Store;

/// <summary>
/// Every measurement LoopTune has taken, kept in a SQLite file so that a repeated state is answered from the store
/// instead of being compiled and timed again.
/// <list type="table">
/// <listheader><term>aspect</term><description>what it is</description></listheader>
/// <item><term>file</term><description><see cref="DefaultPath"/> (<c>measurements.db</c> in <see cref="DataFolder.Root"/>)
/// unless a path is given.</description></item>
/// <item><term>key</term><description>(computation = <see cref="Computation.Text"/>, schedule = <see cref="Nest.ScheduleKey"/>,
/// machine = <see cref="PeakCache.MachineKey"/>, runtime = <see cref="CurrentRuntime"/>, which names the timing context when
/// it is not hot: <see cref="RuntimeAt(int, TimingContext)"/>, so hot and cold figures never answer each other). The cursor
/// is not part of the key: it does not change the kernel.</description></item>
/// <item><term>value</term><description>median and minimum seconds per run, sample count, GFLOPS at the median, UTC time.</description></item>
/// <item><term>merge</term><description>when a record exists, <see cref="Put"/> keeps the one with more samples (the more
/// precise one); on a tie the newer wins. The whole record is kept or replaced, never mixed. The choice is made by one
/// SQL upsert, so it holds between processes too.</description></item>
/// <item><term>tuning records</term><description>a second table, <c>records</c>, keyed by (computation, machine, runtime):
/// the schedule a tuner chose (<see cref="TuningRecord"/>: the nest's compact form with its cursor, the method, the budget,
/// the GFLOPS when tuned, the UTC time); the runtime key carries the thread count above one, as a measurement's does
/// (<see cref="RuntimeAt"/>). <see cref="PutRecord(Computation, int, TuningRecord)"/>
/// replaces; <see cref="TryGetRecord(Computation, int, out TuningRecord)"/> reads this instance's machine and runtime only;
/// <see cref="Records"/> lists every machine's, <see cref="Import"/> adds a batch, keeping the faster of two. The same table keeps which lowering of an operator was chosen (<see cref="PutChoice"/>,
/// keyed "choice among: ...", never a contraction's text). It is created when missing, so files written before it existed stay readable (and older
/// LoopTunes, which ignore it, still read newer files).</description></item>
/// <item><term>concurrency</term><description>any number of processes may share a file: WAL journal, a 10 s busy timeout,
/// every <see cref="Put"/> in its own immediate transaction, retried with back-off on SQLITE_BUSY. Synchronous NORMAL:
/// a killed process loses nothing it committed (an OS crash or power cut may lose the last commits, never consistency).
/// An instance is thread-safe.</description></item>
/// <item><term>damage</term><description>the default store (<see cref="DefaultPath"/>, no path given) is a cache: a file
/// there that is not a store (not SQLite, damaged, truncated, another program's database, a schema newer than
/// <see cref="SchemaVersion"/>) is moved aside as <c>measurements.db.corrupt-UTCTIME</c> (with its <c>-wal</c>, <c>-shm</c>,
/// <c>-journal</c>), one line in <see cref="Warnings"/> says so and where, and a fresh store takes its place, also when the
/// damage shows only mid-run. A store given by path is never moved: a <see cref="StoreError"/> names it and what is wrong.
/// A store whose writer died (a hot <c>-journal</c> or a <c>-wal</c> left behind) is SQLite's to recover, and is no
/// error. A write that fails (no space, a read-only folder) is a <see cref="StoreError"/> naming the file; SQLite's
/// transactions keep every earlier commit whole.</description></item>
/// <item><term>speed</term><description>one open connection with prepared statements, and an in-memory table in front of
/// it for every record this instance has seen: a repeated lookup is a dictionary hit. A record another process improves
/// after this instance cached it is seen after <see cref="ClearMemoryCache"/> or in a new instance.</description></item>
/// </list>
/// </summary>
public sealed class MeasurementStore : IDisposable
{
    /// <summary>Version of the code the JIT generates. Part of the key: bump it whenever a change to lowering or emission
    /// can change a kernel's speed, so that old measurements stop answering.</summary>
    public const string JitVersion = "looptune-jit 7";

    /// <summary>Milliseconds SQLite waits for another process's lock before reporting SQLITE_BUSY.</summary>
    public const int BusyTimeoutMilliseconds = 10_000;

    /// <summary>The schema this build reads and writes (<c>PRAGMA user_version</c>); a file with a larger one was written by a
    /// newer LoopTune.
    /// Version 2 moved a record's thread count from its computation key into its runtime key (<see cref="Initialize"/>
    /// rewrites a version-1 file's records when it opens one).</summary>
    public const int SchemaVersion = 2;

    /// <summary><c>PRAGMA application_id</c> of a measurement store ("LTMS"): a SQLite file with another id is another program's.</summary>
    public const int ApplicationId = 0x4C544D53;

    const int MaxAttempts = 12;

    const string Schema = """
        CREATE TABLE IF NOT EXISTS measurements (
            computation TEXT NOT NULL,
            schedule    TEXT NOT NULL,
            machine     TEXT NOT NULL,
            runtime     TEXT NOT NULL,
            median_s    REAL NOT NULL,
            min_s       REAL NOT NULL,
            samples     INTEGER NOT NULL,
            gflops      REAL NOT NULL,
            measured_at TEXT NOT NULL,
            PRIMARY KEY (computation, schedule, machine, runtime)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS records (
            computation TEXT NOT NULL,
            machine     TEXT NOT NULL,
            runtime     TEXT NOT NULL,
            schedule    TEXT NOT NULL,
            method      TEXT NOT NULL,
            budget      TEXT NOT NULL,
            gflops      REAL NOT NULL,
            tuned_at    TEXT NOT NULL,
            PRIMARY KEY (computation, machine, runtime)
        ) WITHOUT ROWID;
        """;

    const string RecordMatch = "computation = $c AND machine = $machine AND runtime = $runtime";

    const string RecordUpsertSql = """
        INSERT INTO records (computation, machine, runtime, schedule, method, budget, gflops, tuned_at)
        VALUES ($c, $machine, $runtime, $s, $method, $budget, $gflops, $at)
        ON CONFLICT (computation, machine, runtime) DO UPDATE SET
            schedule = excluded.schedule, method = excluded.method, budget = excluded.budget,
            gflops = excluded.gflops, tuned_at = excluded.tuned_at
        """;

    const string KeyMatch = "computation = $c AND schedule = $s AND machine = $machine AND runtime = $runtime";

    const string UpsertSql = """
        INSERT INTO measurements (computation, schedule, machine, runtime, median_s, min_s, samples, gflops, measured_at)
        VALUES ($c, $s, $machine, $runtime, $median, $min, $samples, $gflops, $at)
        ON CONFLICT (computation, schedule, machine, runtime) DO UPDATE SET
            median_s = excluded.median_s, min_s = excluded.min_s, samples = excluded.samples,
            gflops = excluded.gflops, measured_at = excluded.measured_at
        WHERE excluded.samples >= measurements.samples
        """;

    /// <summary>The columns of each table of <see cref="Schema"/>, read from a store made in memory: a file whose tables
    /// of these names have other columns is another program's.</summary>
    static readonly Lazy<Dictionary<string, string[]>> Tables = new(() =>
    {
        using var memory = new SqliteConnection("Data Source=:memory:");
        memory.Open();
        using (var create = memory.CreateCommand())
        {
            create.CommandText = Schema;
            create.ExecuteNonQuery();
        }
        return TableColumns(memory);
    });

    /// <summary>Held while the default store is opened or replaced, so that the threads of one process that find it damaged
    /// move it aside once.</summary>
    static readonly Lock CacheGate = new();

    readonly bool cache;
    SqliteConnection connection = null!;
    SqliteCommand select = null!, upsert = null!, count = null!, selectRecord = null!, upsertRecord = null!;
    readonly Dictionary<(string Computation, string Schedule), StoredMeasurement> memory = [];
    readonly Lock gate = new();
    bool disposed;

    /// <summary>Opens (creating if needed) the store at <paramref name="path"/>, or at <see cref="DefaultPath"/>, for this
    /// machine and runtime.</summary>
    public MeasurementStore(string? path = null) : this(path, PeakCache.MachineKey, CurrentRuntime)
    {
    }

    /// <summary>Opens the store with an explicit machine and runtime key (tests, or reading another machine's records).
    /// With no <paramref name="path"/>, the default store, moved aside and started afresh when it is damaged; a store
    /// given by path that cannot be used is a <see cref="StoreError"/>.</summary>
    public MeasurementStore(string? path, string machine, string runtime)
    {
        Path = System.IO.Path.GetFullPath(path ?? DefaultPath);
        Machine = machine;
        Runtime = runtime;
        cache = path is null;
        if (!cache)
        {
            Connect();
            return;
        }
        lock (CacheGate)
        {
            try { Connect(); }
            catch (StoreError e) when (e.Damaged) { Replace(e); }
        }
    }

    /// <summary><c>measurements.db</c> in <see cref="DataFolder.Root"/> (which <c>$LOOPTUNE_HOME</c> moves).</summary>
    public static string DefaultPath => System.IO.Path.Combine(DataFolder.Root, "measurements.db");

    /// <summary>The runtime part of the key: the .NET runtime and <see cref="JitVersion"/>, and the threads kernels run on
    /// when above 1 (<see cref="Jit.RunThreads"/>).</summary>
    public static string CurrentRuntime => RuntimeAt(Jit.RunThreads.Default);

    /// <summary>The runtime part of the key for kernels run on <paramref name="threads"/> threads: <see cref="Runtime1"/>,
    /// and the count after it when above 1 (a schedule's speed at 2 threads is not its speed at 1).</summary>
    public static string RuntimeAt(int threads) => WithThreads(Runtime1, threads);

    /// <summary>The runtime part of the key for kernels timed in <paramref name="context"/> on <paramref name="threads"/>
    /// threads: <see cref="RuntimeAt(int)"/> with the context's <see cref="TimingContext.Key"/> before the thread count
    /// when it is not hot (<c>... | cold right | 2 threads</c>): a schedule's speed with cold weights is not its speed
    /// with hot ones, so neither figure nor record of one context answers a lookup of the other.</summary>
    public static string RuntimeAt(int threads, TimingContext context) => WithThreads(WithContext(Runtime1, context), threads);

    static string WithContext(string runtime, TimingContext context) => context.IsHot ? runtime : $"{runtime}{ThreadsMark}{context.Key}";

    /// <summary>A runtime key without its thread count (<see cref="SplitThreads"/>) split into the runtime and the timing
    /// context (<see cref="RuntimeAt(int, TimingContext)"/>: hot when it names none).</summary>
    public static (string Runtime, TimingContext Context) SplitContext(string runtime)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        int mark = runtime.LastIndexOf(ThreadsMark, StringComparison.Ordinal);
        return mark >= 0 && TimingContext.TryParseKey(runtime[(mark + ThreadsMark.Length)..], out var context) && !context.IsHot
            ? (runtime[..mark], context) : (runtime, TimingContext.Hot);
    }

    /// <summary>A runtime key with neither its timing context nor its thread count: the .NET runtime and the JIT version,
    /// what a record must share with a store to be imported.</summary>
    public static string BaseRuntime(string runtime) => SplitContext(SplitThreads(runtime).Runtime).Runtime;

    /// <summary>The timing context a runtime key names (hot when none).</summary>
    public static TimingContext ContextOf(string runtime) => SplitContext(SplitThreads(runtime).Runtime).Context;

    /// <summary><paramref name="runtime"/> (without a thread count) for kernels on <paramref name="threads"/> threads.</summary>
    static string WithThreads(string runtime, int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        return threads > 1 ? FormattableString.Invariant($"{runtime}{ThreadsMark}{threads} threads") : runtime;
    }

    /// <summary>A runtime key's thread count and the key without it (<see cref="RuntimeAt"/>: 1 when it names none).</summary>
    public static (string Runtime, int Threads) SplitThreads(string runtime)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        int mark = runtime.LastIndexOf(ThreadsMark, StringComparison.Ordinal);
        return mark >= 0 && runtime.EndsWith(" threads", StringComparison.Ordinal)
            && int.TryParse(runtime.AsSpan(mark + ThreadsMark.Length, runtime.Length - mark - ThreadsMark.Length - " threads".Length), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 1
            ? (runtime[..mark], n) : (runtime, 1);
    }

    /// <summary>This instance's runtime key for kernels on <paramref name="threads"/> threads, in this instance's
    /// <see cref="Context"/>: the thread count is part of the runtime key for records as for measurements.</summary>
    string RuntimeFor(int threads) => RuntimeFor(threads, Context);

    /// <summary>This instance's runtime key for kernels on <paramref name="threads"/> threads timed in <paramref name="context"/>.</summary>
    string RuntimeFor(int threads, TimingContext context) => WithThreads(WithContext(BaseRuntime(Runtime), context), threads);

    static readonly string Runtime1 = $"{RuntimeInformation.FrameworkDescription} | {JitVersion}";

    /// <summary>Full path of the database file.</summary>
    public string Path { get; }

    /// <summary>The machine part of the key of every record this instance reads and writes.</summary>
    public string Machine { get; }

    /// <summary>The runtime part of the key of every record this instance reads and writes.</summary>
    public string Runtime { get; }

    /// <summary>The timing context of the measurements this instance reads and writes, and of its tuning records unless a
    /// call names another (<see cref="RuntimeAt(int, TimingContext)"/>): hot unless the runtime key given names one.</summary>
    public TimingContext Context => ContextOf(Runtime);

    /// <summary>Records in the file, for every machine and runtime.</summary>
    public int Count => Locked(() => Use(() => Convert.ToInt32(count.ExecuteScalar(), CultureInfo.InvariantCulture)));

    /// <summary>The record of this schedule of this computation on this machine and runtime, if one was ever stored.</summary>
    public bool TryGet(Nest nest, [MaybeNullWhen(false)] out StoredMeasurement measurement)
    {
        ArgumentNullException.ThrowIfNull(nest);
        var key = (nest.Computation.Text, nest.ScheduleKey);
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (memory.TryGetValue(key, out measurement)) return true;
            measurement = Use(() => Read(key));
            if (measurement is null) return false;
            memory[key] = measurement;
            return true;
        }
    }

    /// <summary>Stores <paramref name="measurement"/> of <paramref name="nest"/> in its own transaction and returns the record
    /// the store keeps: the new one, or the existing one when that has more samples.</summary>
    public StoredMeasurement Put(Nest nest, Measurement measurement)
    {
        ArgumentNullException.ThrowIfNull(nest);
        Validate(measurement);
        var key = (nest.Computation.Text, nest.ScheduleKey);
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            var kept = Use(() => Write(key, measurement));
            memory[key] = kept;
            return kept;
        }
    }

    /// <summary>The stored record of <paramref name="nest"/>, or, when there is none, <paramref name="measure"/>'s result,
    /// stored first. <paramref name="measure"/> runs outside the store's lock.</summary>
    public StoredMeasurement GetOrMeasure(Nest nest, Func<Nest, Measurement> measure)
    {
        ArgumentNullException.ThrowIfNull(measure);
        return TryGet(nest, out var stored) ? stored : Put(nest, measure(nest));
    }

    /// <summary>The tuning record of <paramref name="computation"/> on this instance's machine and runtime, if one was put
    /// (read from the file every time: records are few, and another process may have replaced one), for kernels on the
    /// command's thread count (<see cref="Jit.RunThreads.Default"/>, which the default runtime key follows too).</summary>
    public bool TryGetRecord(Computation computation, [MaybeNullWhen(false)] out TuningRecord record) => TryGetRecord(computation, Jit.RunThreads.Default, out record);

    /// <summary>The tuning record of <paramref name="computation"/> for kernels on <paramref name="threads"/> threads.</summary>
    public bool TryGetRecord(Computation computation, int threads, [MaybeNullWhen(false)] out TuningRecord record) =>
        TryGetRecord(computation, threads, Context, out record);

    /// <summary>The tuning record of <paramref name="computation"/> for kernels on <paramref name="threads"/> threads tuned
    /// in <paramref name="context"/> (a record of another context never answers).</summary>
    public bool TryGetRecord(Computation computation, int threads, TimingContext context, [MaybeNullWhen(false)] out TuningRecord record)
    {
        ArgumentNullException.ThrowIfNull(computation);
        return TryGetRecord(computation.Text, RuntimeFor(threads, context), out record);
    }

    const string ThreadsMark = " | ";

    /// <summary>Every measurement of this instance's machine and runtime, ordered by computation and schedule: what a cost
    /// model of this machine learns from (<c>LoopTune.CostModel</c>).</summary>
    public IReadOnlyList<StoredMeasurement> Measurements() => Locked(() => Use(() =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT computation, schedule, median_s, min_s, samples, gflops, measured_at FROM measurements "
            + "WHERE machine = $machine AND runtime = $runtime ORDER BY computation, schedule";
        command.Parameters.AddWithValue("$machine", Machine);
        command.Parameters.AddWithValue("$runtime", Runtime);
        using var r = command.ExecuteReader();
        var list = new List<StoredMeasurement>();
        while (r.Read())
            list.Add(new StoredMeasurement(r.GetString(0), r.GetString(1), r.GetDouble(2), r.GetDouble(3), r.GetInt32(4), r.GetDouble(5),
                DateTime.Parse(r.GetString(6), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind)));
        return (IReadOnlyList<StoredMeasurement>)list;
    }));

    /// <summary>How many measurements of this instance's machine and runtime the file holds (a cost model retrains when
    /// they have grown enough since it was fitted).</summary>
    public int CountOfThisMachine => Locked(() => Use(() =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM measurements WHERE machine = $machine AND runtime = $runtime";
        command.Parameters.AddWithValue("$machine", Machine);
        command.Parameters.AddWithValue("$runtime", Runtime);
        return Convert.ToInt32(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }));

    /// <summary>Every tuning record of the file, of every machine and runtime (choices among lowerings left out), ordered by
    /// machine, runtime and computation.</summary>
    public IReadOnlyList<KeyedRecord> Records() => Locked(() => Use(() =>
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT computation, machine, runtime, schedule, method, budget, gflops, tuned_at FROM records ORDER BY machine, runtime, computation";
        using var r = command.ExecuteReader();
        var list = new List<KeyedRecord>();
        while (r.Read())
            if (!r.GetString(0).StartsWith(ChoiceKey(""), StringComparison.Ordinal))
                list.Add(new KeyedRecord(r.GetString(0), SplitThreads(r.GetString(2)).Threads, r.GetString(1), r.GetString(2), ReadRecord(r, 3)));
        return list;
    }));

    /// <summary>Stores <paramref name="records"/> (records of this instance's machine and runtime at any thread count: an
    /// <see cref="ArgumentException"/> otherwise) in one transaction, all or none: each where the file has no record of its
    /// computation and threads, or has a slower one (fewer GFLOPS). Returns how many were written.</summary>
    public int Import(IReadOnlyList<KeyedRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        foreach (var k in records)
        {
            if (!IsOurs(k))
                throw new ArgumentException($"a record of {k.Machine} ({k.Runtime}) cannot be stored as one of {Machine} ({BaseRuntime(Runtime)})", nameof(records));
            ValidateRecord(k.Record);
        }
        return Locked(() => Use(() =>
        {
            using var transaction = connection.BeginTransaction(deferred: false);
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = RecordUpsertSql + " WHERE excluded.gflops > records.gflops";
            foreach (var name in new[] { "$c", "$s", "$method", "$budget", "$gflops", "$at" }) command.Parameters.AddWithValue(name, DBNull.Value);
            command.Parameters.AddWithValue("$machine", Machine);
            command.Parameters.AddWithValue("$runtime", DBNull.Value);
            int written = 0;
            foreach (var k in records)
            {
                SetRecord(command.Parameters, k.Spec, k.Record);
                command.Parameters["$runtime"].Value = RuntimeFor(k.Threads, k.Context);
                written += command.ExecuteNonQuery();
            }
            transaction.Commit();
            return written;
        }));
    }

    /// <summary>Whether <paramref name="record"/> was tuned on this instance's machine and runtime (at any thread count, in
    /// any timing context).</summary>
    public bool IsOurs(KeyedRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return record.Machine == Machine && BaseRuntime(record.Runtime) == BaseRuntime(Runtime);
    }

    bool TryGetRecord(string key, string runtime, [MaybeNullWhen(false)] out TuningRecord record)
    {
        record = Locked(() => Use(() => ReadRecord(key, runtime)));
        return record is not null;
    }

    /// <summary>The records key of a choice among an operator's lowerings (<see cref="PutChoice"/>): never a contraction's text.</summary>
    static string ChoiceKey(string alternatives) => "choice among: " + alternatives;

    /// <summary>Which of an operator's alternative contractions (<paramref name="alternatives"/>: a text naming them all) was
    /// chosen on this instance's machine and runtime: a record in the same table as the tuning records, whose schedule is
    /// the chosen contraction's text and whose GFLOPS its time when chosen.</summary>
    public bool TryGetChoice(string alternatives, [MaybeNullWhen(false)] out TuningRecord choice) => TryGetChoice(alternatives, Context, out choice);

    /// <summary>The choice among <paramref name="alternatives"/> made in <paramref name="context"/> (<see cref="TryGetChoice(string, out TuningRecord)"/>).</summary>
    public bool TryGetChoice(string alternatives, TimingContext context, [MaybeNullWhen(false)] out TuningRecord choice)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(alternatives);
        return TryGetRecord(ChoiceKey(alternatives), RuntimeFor(SplitThreads(Runtime).Threads, context), out choice);
    }

    /// <summary>Stores the choice among <paramref name="alternatives"/> (<see cref="TryGetChoice(string, out TuningRecord)"/>), replacing any earlier one.</summary>
    public void PutChoice(string alternatives, TuningRecord choice) => PutChoice(alternatives, Context, choice);

    /// <summary>Stores the choice among <paramref name="alternatives"/> made in <paramref name="context"/>, replacing any earlier one of that context.</summary>
    public void PutChoice(string alternatives, TimingContext context, TuningRecord choice)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(alternatives);
        Upsert(ChoiceKey(alternatives), RuntimeFor(SplitThreads(Runtime).Threads, context), choice);
    }

    /// <summary>Stores <paramref name="record"/> as the tuning record of <paramref name="computation"/> on this instance's
    /// machine and runtime, replacing any earlier one, in its own transaction, for kernels on the command's thread count
    /// (<see cref="Jit.RunThreads.Default"/>).</summary>
    public void PutRecord(Computation computation, TuningRecord record) => PutRecord(computation, Jit.RunThreads.Default, record);

    /// <summary>Stores <paramref name="record"/> as the record of <paramref name="computation"/> for kernels on
    /// <paramref name="threads"/> threads (<see cref="TryGetRecord(Computation, int, out TuningRecord)"/>), replacing any earlier one.</summary>
    public void PutRecord(Computation computation, int threads, TuningRecord record) => PutRecord(computation, threads, Context, record);

    /// <summary>Stores <paramref name="record"/>, tuned in <paramref name="context"/>, as the record of
    /// <paramref name="computation"/> for kernels on <paramref name="threads"/> threads in that context, replacing any
    /// earlier one of that context (a record of another context is left as it is).</summary>
    public void PutRecord(Computation computation, int threads, TimingContext context, TuningRecord record)
    {
        ArgumentNullException.ThrowIfNull(computation);
        Upsert(computation.Text, RuntimeFor(threads, context), record);
    }

    static void ValidateRecord(TuningRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentException.ThrowIfNullOrWhiteSpace(record.Schedule, nameof(record));
        if (!double.IsFinite(record.Gflops) || record.Gflops < 0)
            throw new ArgumentOutOfRangeException(nameof(record), record, "a tuning record needs finite non-negative GFLOPS");
    }

    static void SetRecord(SqliteParameterCollection p, string key, TuningRecord record)
    {
        (p["$c"].Value, p["$s"].Value, p["$method"].Value, p["$budget"].Value) = (key, record.Schedule, record.Method, record.Budget);
        (p["$gflops"].Value, p["$at"].Value) = (record.Gflops, record.TunedAt.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture));
    }

    void Upsert(string key, string runtime, TuningRecord record)
    {
        ValidateRecord(record);
        Locked(() => Use(() =>
        {
            SetRecord(upsertRecord.Parameters, key, record);
            upsertRecord.Parameters["$runtime"].Value = runtime;
            return upsertRecord.ExecuteNonQuery();
        }));
    }

    /// <summary>Forgets the in-memory copies, so the next lookups read the file (and see other processes' improvements).</summary>
    public void ClearMemoryCache()
    {
        lock (gate) memory.Clear();
    }

    /// <summary>Runs SQLite's <c>PRAGMA integrity_check</c>: "ok" when the file is consistent.</summary>
    public string IntegrityCheck() => Locked(() => Use(() => Scalar("PRAGMA integrity_check")));

    /// <summary>Closes the connection; the WAL is checkpointed into the main file when the last connection closes.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            if (disposed) return;
            disposed = true;
            Disconnect();
        }
    }

    /// <summary>Opens the connection, checks the file is a store of this schema (making its tables when missing) and
    /// prepares the statements; a file that is no store, or that cannot be opened, is a <see cref="StoreError"/>.</summary>
    void Connect()
    {
        try { Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!); }
        catch (Exception e) when (FileWriteError.IsIo(e)) { throw new StoreError(Path, $"cannot be created: {e.Message}", false, e); }
        connection = new SqliteConnection(ConnectionString(Path));
        try
        {
            connection.Open();
            Retry(Initialize);
            select = Prepare($"SELECT median_s, min_s, samples, gflops, measured_at FROM measurements WHERE {KeyMatch}", keyed: true);
            upsert = Prepare(UpsertSql, keyed: true, "$median", "$min", "$samples", "$gflops", "$at");
            count = Prepare("SELECT COUNT(*) FROM measurements", keyed: false);
            selectRecord = Prepare($"SELECT schedule, method, budget, gflops, tuned_at FROM records WHERE {RecordMatch}", keyed: true);
            upsertRecord = Prepare(RecordUpsertSql, keyed: true, "$method", "$budget", "$gflops", "$at");
        }
        catch (Exception e)
        {
            Disconnect();
            if (e is SqliteException q && Problem(q) is { } problem) throw problem;
            throw;
        }
    }

    void Disconnect()
    {
        foreach (var c in new[] { select, upsert, count, selectRecord, upsertRecord }) c?.Dispose();
        connection?.Dispose();
        (select, upsert, count, selectRecord, upsertRecord) = (null!, null!, null!, null!, null!);
    }

    /// <summary>The default store found damaged (<paramref name="why"/>): opened again in case another thread or process
    /// has replaced it meanwhile (and then kept if whole), else moved aside with its journal files, a warning written, and
    /// a fresh store started. Called under <see cref="CacheGate"/>.</summary>
    void Replace(StoreError why)
    {
        Disconnect();
        try
        {
            Connect();
            if (Scalar("PRAGMA quick_check") == "ok") return;
        }
        catch (StoreError again) when (again.Damaged) { why = again; }
        catch (SqliteException e) when (Problem(e) is { Damaged: true } again) { why = again; }
        Disconnect();
        string stamp = DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture), aside = $"{Path}.corrupt-{stamp}";
        for (int n = 2; File.Exists(aside); n++) aside = $"{Path}.corrupt-{stamp}-{n}";
        try
        {
            File.Move(Path, aside);
            foreach (var journal in new[] { "-wal", "-shm", "-journal" })
                if (File.Exists(Path + journal)) File.Move(Path + journal, aside + journal);
        }
        catch (Exception e) when (FileWriteError.IsIo(e))
        {
            throw new StoreError(Path, $"{why.Problem}, and cannot be moved aside: {e.Message}", false, e);
        }
        Warnings.Write($"the measurement store {Path} {why.Problem}; moved it to {aside} and started a fresh one");
        Connect();
    }

    /// <summary>What is wrong with the store when SQLite reports <paramref name="e"/>, or null for an error that is no
    /// fault of the file (a bug): damaged (not a database, corrupt) or unusable (no space, read-only, cannot open).</summary>
    StoreError? Problem(SqliteException e) => (e.SqliteErrorCode & 0xFF) switch
    {
        26 => new StoreError(Path, $"is not a SQLite database ({Reason(e)})", true, e),
        11 => new StoreError(Path, $"is damaged ({Reason(e)})", true, e),
        13 => new StoreError(Path, $"cannot be written: the disk is full ({Reason(e)})", false, e),
        8 => new StoreError(Path, $"cannot be written: it or its folder is read-only ({Reason(e)})", false, e),
        14 => new StoreError(Path, $"cannot be opened ({Reason(e)})", false, e),
        10 or 3 or 23 => new StoreError(Path, $"cannot be read or written ({Reason(e)})", false, e),
        _ => null,
    };

    static string Reason(SqliteException e) => e.Message.TrimEnd('.');

    /// <summary>Runs <paramref name="work"/> on the connection (<see cref="Retry"/>). When SQLite finds the default store
    /// damaged, the store is replaced (<see cref="Replace"/>) and the work runs again on the fresh one; any other fault of
    /// the file is a <see cref="StoreError"/>.</summary>
    T Use<T>(Func<T> work)
    {
        try { return Retry(work); }
        catch (SqliteException e) when (Problem(e) is { } problem)
        {
            if (!cache || !problem.Damaged) throw problem;
            lock (CacheGate) Replace(problem);
        }
        try { return Retry(work); }
        catch (SqliteException e) when (Problem(e) is { } problem) { throw problem; }
    }

    /// <summary>Each table of the file (SQLite's own left out) with its columns, in order.</summary>
    static Dictionary<string, string[]> TableColumns(SqliteConnection c)
    {
        var names = new List<string>();
        using (var list = c.CreateCommand())
        {
            list.CommandText = "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name";
            using var r = list.ExecuteReader();
            while (r.Read()) names.Add(r.GetString(0));
        }
        var tables = new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in names)
        {
            using var info = c.CreateCommand();
            info.CommandText = "SELECT name FROM pragma_table_info($t) ORDER BY cid";
            info.Parameters.AddWithValue("$t", name);
            using var r = info.ExecuteReader();
            var columns = new List<string>();
            while (r.Read()) columns.Add(r.GetString(0));
            tables[name] = [.. columns];
        }
        return tables;
    }

    /// <summary>Version 1 to 2: a record keyed "COMPUTATION | N threads" becomes COMPUTATION under the runtime key with
    /// " | N threads" (the faster kept where both exist), in one transaction.</summary>
    void MoveThreadsToRuntime()
    {
        using var transaction = connection.BeginTransaction(deferred: false);
        var moves = new List<(string Key, string Machine, string Runtime, string Computation, string NewRuntime, double Gflops)>();
        using (var read = connection.CreateCommand())
        {
            read.Transaction = transaction;
            read.CommandText = "SELECT computation, machine, runtime, gflops FROM records WHERE computation LIKE '% threads'";
            using var r = read.ExecuteReader();
            while (r.Read())
                if (SplitThreads(r.GetString(0)) is (var text, > 1 and var n) && !text.StartsWith(ChoiceKey(""), StringComparison.Ordinal))
                    moves.Add((r.GetString(0), r.GetString(1), r.GetString(2), text, WithThreads(SplitThreads(r.GetString(2)).Runtime, n), r.GetDouble(3)));
        }
        foreach (var m in moves)
        {
            using var move = connection.CreateCommand();
            move.Transaction = transaction;
            move.CommandText = """
                DELETE FROM records WHERE computation = $new AND machine = $machine AND runtime = $newRuntime AND gflops <= $gflops;
                UPDATE OR IGNORE records SET computation = $new, runtime = $newRuntime WHERE computation = $c AND machine = $machine AND runtime = $runtime;
                DELETE FROM records WHERE computation = $c AND machine = $machine AND runtime = $runtime;
                """;
            foreach (var (name, value) in new (string, object)[] { ("$new", m.Computation), ("$machine", m.Machine), ("$newRuntime", m.NewRuntime), ("$gflops", m.Gflops), ("$c", m.Key), ("$runtime", m.Runtime) })
                move.Parameters.AddWithValue(name, value);
            move.ExecuteNonQuery();
        }
        transaction.Commit();
    }

    static string ConnectionString(string path) => new SqliteConnectionStringBuilder
    {
        DataSource = path,
        Mode = SqliteOpenMode.ReadWriteCreate,
        Pooling = false,
        DefaultTimeout = BusyTimeoutMilliseconds / 1000,
    }.ToString();

    /// <summary>Checks the file is a store this build reads before changing anything in it (another program's file is
    /// left as it was), then sets WAL and makes the missing tables.</summary>
    int Initialize()
    {
        Execute($"PRAGMA busy_timeout = {BusyTimeoutMilliseconds}");
        long version = Convert.ToInt64(Scalar("PRAGMA user_version"), CultureInfo.InvariantCulture);
        long application = Convert.ToInt64(Scalar("PRAGMA application_id"), CultureInfo.InvariantCulture);
        if (version > SchemaVersion)
            throw new StoreError(Path, $"has schema version {version}, newer than this LoopTune's ({SchemaVersion})", true);
        if (application is not (0 or ApplicationId))
            throw new StoreError(Path, $"is another program's SQLite database (application id 0x{application:X8})", true);
        foreach (var (table, columns) in TableColumns(connection))
        {
            if (!Tables.Value.TryGetValue(table, out var ours))
                throw new StoreError(Path, $"is another program's SQLite database (it holds a table '{table}')", true);
            if (!columns.SequenceEqual(ours, StringComparer.OrdinalIgnoreCase))
                throw new StoreError(Path, $"is another program's SQLite database (its table '{table}' has the columns {string.Join(", ", columns)})", true);
        }
        Execute("PRAGMA journal_mode = WAL");
        Execute("PRAGMA synchronous = NORMAL");
        Execute(Schema);
        if (version == 1) MoveThreadsToRuntime();
        if (version < SchemaVersion) Execute($"PRAGMA user_version = {SchemaVersion}");
        if (application == 0) Execute($"PRAGMA application_id = {ApplicationId}");
        return 0;
    }

    SqliteCommand Prepare(string sql, bool keyed, params string[] names)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        if (keyed)
        {
            foreach (var name in new[] { "$c", "$s" }) command.Parameters.AddWithValue(name, DBNull.Value);
            command.Parameters.AddWithValue("$machine", Machine);
            command.Parameters.AddWithValue("$runtime", Runtime);
        }
        foreach (var name in names) command.Parameters.AddWithValue(name, DBNull.Value);
        command.Prepare();
        return command;
    }

    StoredMeasurement? Read((string Computation, string Schedule) key)
    {
        select.Parameters["$c"].Value = key.Computation;
        select.Parameters["$s"].Value = key.Schedule;
        using var reader = select.ExecuteReader();
        return reader.Read() ? Record(key, reader) : null;
    }

    TuningRecord? ReadRecord(string computation, string runtime)
    {
        selectRecord.Parameters["$c"].Value = computation;
        selectRecord.Parameters["$runtime"].Value = runtime;
        using var r = selectRecord.ExecuteReader();
        return r.Read() ? ReadRecord(r, 0) : null;
    }

    /// <summary>The record in columns <paramref name="at"/> on: schedule, method, budget, GFLOPS, time.</summary>
    static TuningRecord ReadRecord(SqliteDataReader r, int at) =>
        new(r.GetString(at), r.GetString(at + 1), r.GetString(at + 2), r.GetDouble(at + 3),
            DateTime.Parse(r.GetString(at + 4), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind));

    StoredMeasurement Write((string Computation, string Schedule) key, Measurement m)
    {
        using var transaction = connection.BeginTransaction(deferred: false);
        upsert.Transaction = select.Transaction = transaction;
        try
        {
            var p = upsert.Parameters;
            (p["$c"].Value, p["$s"].Value) = key;
            (p["$median"].Value, p["$min"].Value, p["$samples"].Value) = (m.MedianSeconds, m.MinSeconds, m.Samples);
            (p["$gflops"].Value, p["$at"].Value) = (m.Gflops, DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture));
            upsert.ExecuteNonQuery();
            var kept = Read(key) ?? throw new InvalidOperationException("the upserted record is missing");
            transaction.Commit();
            return kept;
        }
        finally
        {
            upsert.Transaction = select.Transaction = null;
        }
    }

    static StoredMeasurement Record((string Computation, string Schedule) key, SqliteDataReader r) =>
        new(key.Computation, key.Schedule, r.GetDouble(0), r.GetDouble(1), r.GetInt32(2), r.GetDouble(3),
            DateTime.Parse(r.GetString(4), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind));

    static void Validate(Measurement m)
    {
        if (!(m.MedianSeconds > 0) || !double.IsFinite(m.MedianSeconds) || !(m.MinSeconds > 0) || !double.IsFinite(m.MinSeconds))
            throw new ArgumentOutOfRangeException(nameof(m), m, "a stored measurement needs finite positive times");
        ArgumentOutOfRangeException.ThrowIfLessThan(m.Samples, 1, nameof(m));
    }

    void Execute(string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    string Scalar(string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToString(command.ExecuteScalar(), CultureInfo.InvariantCulture) ?? "";
    }

    T Locked<T>(Func<T> work)
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            return work();
        }
    }

    /// <summary>Runs <paramref name="work"/>, again after a randomised, growing pause while SQLite reports the file busy or
    /// locked (which can outlast the busy timeout only under heavy contention, or while the journal mode is switched).</summary>
    static T Retry<T>(Func<T> work)
    {
        for (int attempt = 1; ; attempt++)
        {
            try { return work(); }
            catch (SqliteException e) when (IsBusy(e) && attempt < MaxAttempts)
            {
                Thread.Sleep(Random.Shared.Next(1, 5 << Math.Min(attempt, 8)));
            }
        }
    }

    static bool IsBusy(SqliteException e) => (e.SqliteErrorCode & 0xFF) is 5 or 6; // SQLITE_BUSY, SQLITE_LOCKED
}

/// <summary>A measurement store that cannot be used: not a SQLite database, damaged, another program's database, a schema
/// newer than this LoopTune's, or a file that cannot be opened or written (no space, read-only). The message names the file
/// and what is wrong.</summary>
public sealed class StoreError(string path, string problem, bool damaged, Exception? inner = null)
    : LoopTuneException($"the measurement store {path} {problem}", inner)
{
    /// <summary>The store's file.</summary>
    public string Path { get; } = path;

    /// <summary>What is wrong, after the file's name.</summary>
    public string Problem { get; } = problem;

    /// <summary>True when the file is no store this build can use (not SQLite, damaged, another program's, a newer
    /// schema): the default store is then moved aside; false when it is the system that refuses (no space, read-only).</summary>
    public bool Damaged { get; } = damaged;
}
