using System.Text.RegularExpressions;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Store;
using LoopTune.Tests.TestUtil;
using Microsoft.Data.Sqlite;

namespace LoopTune.Tests.Faults;

/// <summary>
/// Measurement stores that go bad. The default store is a cache: a file there that is no store is moved aside byte for
/// byte, one warning line names both places, and a fresh store works. A store given by path is never touched: a
/// <see cref="StoreError"/> (exit code 2 from the command line) names it and what is wrong. A store whose writer died,
/// leaving a hot journal or a WAL, is recovered by SQLite with every committed record and is no error.
/// </summary>
public sealed class DamagedStoreTests : IDisposable
{
    readonly TempFolder folder = new("looptune-damaged-store");

    public void Dispose() => folder.Dispose();

    static Nest Record(int i) => Nest.Initial(Computation.Matmul(i, 4, 4));

    static Measurement Sample(int i) => new(1e-6 * i, 0.9e-6 * i, 3, 1, Computation.Matmul(i, 4, 4).Flops);

    /// <summary>A store at <paramref name="path"/> holding records 1..<paramref name="count"/>, closed (its WAL folded in).</summary>
    static void MakeStore(string path, int count)
    {
        using var store = new MeasurementStore(path);
        for (int i = 1; i <= count; i++) store.Put(Record(i), Sample(i));
    }

    static void Sql(string path, string sql)
    {
        using var c = new SqliteConnection($"Data Source={path};Pooling=False");
        c.Open();
        using var command = c.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    /// <summary>Every kind of file that is no store this build can use, as (name, what the error says, the bytes).</summary>
    public static TheoryData<string, string> Damage => new()
    {
        { "random bytes", "is not a SQLite database" },
        { "truncated", "is damaged" },
        { "another program's tables", "is another program's SQLite database (it holds a table 'users')" },
        { "another program's columns", "is another program's SQLite database (its table 'measurements' has the columns id, name)" },
        { "another program's application id", "is another program's SQLite database (application id 0x00000007)" },
        { "a newer schema", $"has schema version {MeasurementStore.SchemaVersion + 1}, newer than this LoopTune's ({MeasurementStore.SchemaVersion})" },
    };

    byte[] Damaged(string kind)
    {
        string made = folder[$"made-{Guid.NewGuid():N}.db"];
        switch (kind)
        {
            case "random bytes":
                var random = new byte[8192];
                new Random(22).NextBytes(random);
                return random;
            case "truncated":
                MakeStore(made, 400);
                var whole = File.ReadAllBytes(made);
                return whole[..(whole.Length / 2)];
            case "another program's tables":
                Sql(made, "CREATE TABLE users (id INTEGER, name TEXT); INSERT INTO users VALUES (1, 'a')");
                break;
            case "another program's columns":
                Sql(made, "CREATE TABLE measurements (id INTEGER, name TEXT)");
                break;
            case "another program's application id":
                Sql(made, "PRAGMA application_id = 7; CREATE TABLE t (x)");
                break;
            case "a newer schema":
                MakeStore(made, 3);
                Sql(made, $"PRAGMA user_version = {MeasurementStore.SchemaVersion + 1}");
                break;
        }
        return File.ReadAllBytes(made);
    }

    [Theory]
    [MemberData(nameof(Damage))]
    public void TheDefaultStoreDamagedIsMovedAsideWithAWarningAndAFreshOneWorks(string kind, string problem)
    {
        var bytes = Damaged(kind);
        using var home = DataFolder.Use(folder["home"]);
        Directory.CreateDirectory(folder["home"]);
        File.WriteAllBytes(MeasurementStore.DefaultPath, bytes);
        var warnings = new StringWriter();
        using (Warnings.To(warnings))
        using (var store = new MeasurementStore())
        {
            Assert.Equal(0, store.Count);
            store.Put(Record(5), Sample(5));
            Assert.True(store.TryGet(Record(5), out var m));
            Assert.Equal(Sample(5).MedianSeconds, m.MedianSeconds);
            Assert.Equal("ok", store.IntegrityCheck());
        }
        var aside = AsideOf(MeasurementStore.DefaultPath);
        Assert.Equal(bytes, File.ReadAllBytes(aside));
        Assert.Equal($"warning: the measurement store {MeasurementStore.DefaultPath} {problem}; moved it to {aside} and started a fresh one",
            Assert.Single(Lines(warnings)).Replace(" (SQLite Error 26: 'file is not a database')", "").Replace(" (SQLite Error 11: 'database disk image is malformed')", ""));

        // the next run finds the fresh store: nothing moved, nothing said
        warnings.GetStringBuilder().Clear();
        using (Warnings.To(warnings))
        using (var again = new MeasurementStore())
            Assert.True(again.TryGet(Record(5), out _));
        Assert.Empty(Lines(warnings));
        Assert.Single(Directory.GetFiles(folder["home"], "measurements.db.corrupt-*"));
    }

    [Theory]
    [MemberData(nameof(Damage))]
    public void AStoreGivenByPathIsNeverMovedAndTheErrorNamesIt(string kind, string problem)
    {
        var bytes = Damaged(kind);
        string path = folder["given.db"];
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<StoreError>(() => new MeasurementStore(path));
        Assert.StartsWith($"the measurement store {path} {problem}", e.Message);
        Assert.True(e.Damaged);
        Assert.Equal(bytes, File.ReadAllBytes(path));
        Assert.Empty(Directory.GetFiles(folder.Path, "given.db.corrupt-*"));

        // and from the command line: exit 2 with that message, no stack trace
        var (code, _, err) = TestHome.Run("search", "--spec", "mm 8 8 8", "--method", "random", "--max-evaluations", "2", "--db", path);
        Assert.Equal(2, code);
        Assert.Equal($"error: {e.Message}", Assert.Single(Lines(err)));
        Assert.Equal(bytes, File.ReadAllBytes(path));
    }

    [Fact]
    public void SearchOnADamagedDefaultStoreWarnsAndGoesOn()
    {
        using var home = DataFolder.Use(folder["home"]);
        Directory.CreateDirectory(folder["home"]);
        var bytes = Damaged("random bytes");
        File.WriteAllBytes(MeasurementStore.DefaultPath, bytes);
        var (code, output, err) = TestHome.Run("search", "--spec", "mm 8 8 8", "--method", "random", "--max-evaluations", "3", "--json");
        Assert.True(code == 0, err);
        Assert.NotNull(System.Text.Json.Nodes.JsonNode.Parse(output));
        var aside = AsideOf(MeasurementStore.DefaultPath);
        Assert.Equal(bytes, File.ReadAllBytes(aside));
        Assert.Contains($"warning: the measurement store {MeasurementStore.DefaultPath} is not a SQLite database", err);
        Assert.Contains($"moved it to {aside} and started a fresh one", err);
        using var store = new MeasurementStore();
        Assert.True(store.Count > 0, "the search's measurements went into the fresh store");
    }

    [Fact]
    public void DamageFoundMidRunReplacesTheDefaultStoreAndTheWorkGoesOn()
    {
        using var home = DataFolder.Use(folder["home"]);
        MakeStore(MeasurementStore.DefaultPath, 2000);
        // every page after the schema's (page 1) overwritten: the file opens, its tables' pages are garbage
        int page;
        using (var s = new SqliteConnection($"Data Source={MeasurementStore.DefaultPath};Pooling=False"))
        {
            s.Open();
            using var c = s.CreateCommand();
            c.CommandText = "PRAGMA page_size";
            page = Convert.ToInt32(c.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
        var bytes = File.ReadAllBytes(MeasurementStore.DefaultPath);
        Assert.True(bytes.Length > 4 * page, $"{bytes.Length} bytes: too few pages to damage");
        Array.Fill(bytes, (byte)0xFF, page, bytes.Length - page);
        File.WriteAllBytes(MeasurementStore.DefaultPath, bytes);

        var warnings = new StringWriter();
        using (Warnings.To(warnings))
        using (var store = new MeasurementStore())
        {
            Assert.False(store.TryGet(Record(7), out _)); // the damage shows here; the lookup is answered by the fresh store
            store.Put(Record(7), Sample(7));
            Assert.True(store.TryGet(Record(7), out _));
            Assert.Equal(1, store.Count);
        }
        var aside = AsideOf(MeasurementStore.DefaultPath);
        Assert.Equal(bytes, File.ReadAllBytes(aside));
        Assert.Matches($"^warning: the measurement store {Regex.Escape(MeasurementStore.DefaultPath)} is damaged \\(SQLite Error 11: .*\\); moved it to {Regex.Escape(aside)} and started a fresh one$",
            Assert.Single(Lines(warnings)));
    }

    [Fact]
    public void AHotJournalLeftByADeadWriterIsRolledBackNotAnError()
    {
        string live = folder["live.db"], dead = folder["dead.db"];
        MakeStore(live, 50);
        var committed = File.ReadAllBytes(live);
        using (var c = new SqliteConnection($"Data Source={live};Pooling=False"))
        {
            c.Open();
            using var command = c.CreateCommand();
            command.CommandText = "PRAGMA journal_mode = DELETE; PRAGMA cache_size = 1";
            command.ExecuteNonQuery();
            using var transaction = c.BeginTransaction();
            command.Transaction = transaction;
            command.CommandText = "INSERT INTO measurements VALUES ($c, 's', 'm', 'r', 1, 1, 1, 1, 't')";
            var p = command.Parameters.AddWithValue("$c", "");
            for (int i = 0; i < 3000; i++)
            {
                p.Value = $"uncommitted {i}";
                command.ExecuteNonQuery();
            }
            // what a writer killed now leaves: the file with pages of its transaction, and the journal that undoes them
            File.Copy(live, dead);
            File.Copy(live + "-journal", dead + "-journal");
            transaction.Rollback();
        }
        Assert.NotEqual(committed, File.ReadAllBytes(dead)); // the transaction had reached the file
        var warnings = new StringWriter();
        using (Warnings.To(warnings))
        using (var store = new MeasurementStore(dead))
        {
            Assert.Equal("ok", store.IntegrityCheck());
            Assert.Equal(50, store.Count);
            for (int i = 1; i <= 50; i++) Assert.True(store.TryGet(Record(i), out _), $"committed record {i} is missing");
            store.Put(Record(51), Sample(51));
        }
        Assert.Empty(Lines(warnings));
        Assert.False(File.Exists(dead + "-journal"));
    }

    [Fact]
    public void AWalLeftByADeadWriterKeepsItsCommitsAndTheDefaultStoreIsNotMoved()
    {
        using var home = DataFolder.Use(folder["home"]);
        string live = folder["live.db"];
        using (var writer = new MeasurementStore(live))
        {
            for (int i = 1; i <= 60; i++) writer.Put(Record(i), Sample(i));
            // what a writer killed now leaves: its commits in the WAL, not yet in the file
            Directory.CreateDirectory(folder["home"]);
            foreach (var suffix in new[] { "", "-wal", "-shm" }) File.Copy(live + suffix, MeasurementStore.DefaultPath + suffix);
        }
        Assert.True(new FileInfo(MeasurementStore.DefaultPath + "-wal").Length > 0);
        var warnings = new StringWriter();
        using (Warnings.To(warnings))
        using (var store = new MeasurementStore())
        {
            Assert.Equal("ok", store.IntegrityCheck());
            Assert.Equal(60, store.Count);
            for (int i = 1; i <= 60; i++) Assert.True(store.TryGet(Record(i), out _), $"committed record {i} is missing");
        }
        Assert.Empty(Lines(warnings));
        Assert.Empty(Directory.GetFiles(folder["home"], "*.corrupt-*"));
    }

    [Fact]
    public void AnEmptyFileIsAnEmptyStore()
    {
        using var home = DataFolder.Use(folder["home"]);
        Directory.CreateDirectory(folder["home"]);
        File.WriteAllBytes(MeasurementStore.DefaultPath, []);
        var warnings = new StringWriter();
        using (Warnings.To(warnings))
        using (var store = new MeasurementStore())
        {
            store.Put(Record(3), Sample(3));
            Assert.Equal(1, store.Count);
        }
        Assert.Empty(Lines(warnings));
    }

    /// <summary>The one file the default store at <paramref name="path"/> was moved to.</summary>
    static string AsideOf(string path)
    {
        var aside = Assert.Single(Directory.GetFiles(Path.GetDirectoryName(path)!, Path.GetFileName(path) + ".corrupt-*"), f => !Regex.IsMatch(f, "-(wal|shm|journal)$"));
        Assert.Matches(@"\.corrupt-\d{8}T\d{6}Z$", aside);
        return aside;
    }

    static string[] Lines(object text) => text.ToString()!.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
