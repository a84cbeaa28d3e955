using System.Text.Json.Nodes;
using LoopTune.Ir;
using LoopTune.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Tuning;

/// <summary><c>looptune records list|export|import</c>: a machine's records round trip through a JSON lines file into
/// another store, whose tuner then recalls them; a file of another machine or runtime, a malformed line, a missing file
/// and an unwritable path are exit 2 naming them, with nothing imported and nothing half-written.</summary>
public sealed class RecordsCommandTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => TestHome.Run(args);

    /// <summary>A store with a record the tuner made (one thread) and one put for two threads; the exported file.</summary>
    static (string Db, string File) Exported(TempFolder dir)
    {
        string db = dir["a.db"], file = dir["records.jsonl"];
        using (var tuner = Tuner.Open(db, new() { Budget = "0" })) tuner.Get("mm 32 16 48");
        using (var store = new MeasurementStore(db))
            store.PutRecord(Computation.Parse("mm 64 32 16"), 2, new TuningRecord(">m:64p n:32 k:16", "hand", "0", 12.5, DateTime.UtcNow));
        var (code, output, err) = Run("records", "export", file, "--db", db);
        Assert.True(code == 0, err);
        Assert.Contains("exported 2", output);
        return (db, file);
    }

    static IReadOnlyList<KeyedRecord> Records(string db)
    {
        using var store = new MeasurementStore(db);
        return store.Records();
    }

    [Fact]
    public void Exported_records_import_into_another_store_whose_tuner_recalls_them()
    {
        using var dir = new TempFolder();
        var (db, file) = Exported(dir);
        var lines = File.ReadAllLines(file).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(2, lines.Count);
        using (var store = new MeasurementStore(db))
            Assert.All(lines, l => Assert.Equal(store.Machine, (string?)l["machine"]!["key"]));
        Assert.Equal([1, 2], lines.Select(l => (int)l["threads"]!).Order());
        Assert.All(lines, l => Assert.True(l["machine"]!["peak_gflops"]!.GetValue<double>() > 0));

        string other = Path.Combine(Directory.CreateDirectory(dir["elsewhere"]).FullName, "b.db"); // a kernels folder of its own
        var (code, output, err) = Run("records", "import", file, "--db", other, "--json");
        Assert.True(code == 0, err);
        var result = JsonNode.Parse(output)!;
        Assert.Equal((2, 2, 0), ((int)result["read"]!, (int)result["imported"]!, (int)result["kept"]!));
        Assert.Equal(Records(db), Records(other));

        (code, output, _) = Run("records", "list", "--db", other, "--json");
        Assert.Equal(0, code);
        var listed = JsonNode.Parse(output)!["records"]!.AsArray();
        Assert.Equal(lines.Select(l => (string?)l["schedule"]).Order(), listed.Select(l => (string?)l!["schedule"]).Order());

        Assert.All(listed, l => Assert.Null((string?)l!["compiled"])); // imported schedules, no library built yet

        Tuner tuner;
        using (tuner = Tuner.Open(other, new() { Budget = "0" }))
        {
            var k = tuner.Get("mm 32 16 48");
            Assert.True(k.Recalled);
            Assert.Equal(0, tuner.Searches);
            Assert.Equal(Records(db).Single(r => r.Threads == 1).Record.Schedule, k.Schedule);
            TunerTests.AssertMatchesReference(k);
        }
        Assert.EndsWith(": kept", Assert.Single(tuner.Builds)); // the first recall's build of the one-thread record
        (code, output, _) = Run("records", "list", "--db", other, "--json");
        Assert.Equal(0, code);
        listed = JsonNode.Parse(output)!["records"]!.AsArray();
        var compiled = listed.Where(l => l!["compiled"] is not null).ToList();
        Assert.Equal(1, (int)Assert.Single(compiled)!["threads"]!);
        Assert.True(File.Exists((string?)compiled[0]!["compiled"]));
    }

    [Fact]
    public void An_import_keeps_the_faster_record_of_a_computation()
    {
        using var dir = new TempFolder();
        var (db, file) = Exported(dir);
        var slower = dir["slower.jsonl"];
        File.WriteAllLines(slower, File.ReadAllLines(file).Select(l =>
        {
            var o = JsonNode.Parse(l)!.AsObject();
            (o["schedule"], o["gflops"]) = (o["threads"]!.GetValue<int>() == 2 ? ">m:64 n:32 k:16" : o["schedule"]!.GetValue<string>(), (double)o["gflops"]! / 2);
            return o.ToJsonString();
        }));
        var (code, output, err) = Run("records", "import", slower, "--db", db, "--json");
        Assert.True(code == 0, err);
        var result = JsonNode.Parse(output)!;
        Assert.Equal((2, 0, 2), ((int)result["read"]!, (int)result["imported"]!, (int)result["kept"]!));
        var before = Records(db);
        Assert.Equal(0, Run("records", "import", file, "--db", dir["fresh.db"]).Code);
        Assert.Equal(0, Run("records", "import", slower, "--db", dir["fresh.db"]).Code);
        Assert.Equal(before, Records(dir["fresh.db"]));
    }

    [Theory]
    [InlineData("machine", "machine 'Some Other CPU")]
    [InlineData("runtime", "runtime '.NET 4.8")]
    public void Records_of_another_machine_or_runtime_are_refused_whole(string field, string named)
    {
        using var dir = new TempFolder();
        var (_, file) = Exported(dir);
        var lines = File.ReadAllLines(file);
        var o = JsonNode.Parse(lines[1])!.AsObject();
        if (field == "machine") o["machine"]!["key"] = "Some Other CPU | 2 cpus | 512-bit vectors | .NET 10";
        else o["runtime"] = ".NET 4.8 | looptune-jit 5";
        File.WriteAllLines(file, [lines[0], o.ToJsonString()]);
        string target = dir["target.db"];
        var (code, output, err) = Run("records", "import", file, "--db", target);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Contains(file, err);
        Assert.Contains(named, err);
        Assert.Contains("nothing imported", err);
        Assert.Empty(Records(target));
    }

    [Fact]
    public void A_malformed_line_or_a_missing_file_is_exit_2_naming_it_and_nothing_is_imported()
    {
        using var dir = new TempFolder();
        var (_, file) = Exported(dir);
        File.AppendAllText(file, "{\"spec\": \"mm 2 2\", \"schedule\": \">m:2\"}\n");
        string target = dir["target.db"];
        var (code, _, err) = Run("records", "import", file, "--db", target);
        Assert.Equal(2, code);
        Assert.Contains($"{file}, line 3", err);
        Assert.Contains("bad spec", err);
        Assert.Empty(Records(target));
        (code, _, err) = Run("records", "import", dir["missing.jsonl"], "--db", target);
        Assert.Equal(2, code);
        Assert.Contains(dir["missing.jsonl"], err);
    }

    [Theory]
    [InlineData("list")]
    [InlineData("export")]
    public void Listing_or_exporting_a_store_that_does_not_exist_is_exit_2_and_makes_nothing(string verb)
    {
        using var dir = new TempFolder();
        string missing = Path.Combine(dir["no-such-folder"], "x.db");
        var (code, _, err) = verb == "list" ? Run("records", "list", "--db", missing) : Run("records", "export", dir["out.jsonl"], "--db", missing);
        Assert.Equal(2, code);
        Assert.Contains($"records {verb} --db {missing}: no measurement store there", err);
        Assert.False(Directory.Exists(dir["no-such-folder"]));
        Assert.False(File.Exists(dir["out.jsonl"]));
    }

    [Fact]
    public void An_unwritable_export_path_is_exit_2_naming_it_with_nothing_written()
    {
        using var dir = new TempFolder();
        var (db, file) = Exported(dir);
        string before = File.ReadAllText(file);
        File.WriteAllText(dir["plain"], "a file, not a folder");
        foreach (var path in new[] { Path.Combine(dir["plain"], "records.jsonl"), dir["no-such-folder/records.jsonl"], dir.Path })
        {
            var (code, output, err) = Run("records", "export", path, "--db", db);
            Assert.Equal(2, code);
            Assert.Equal("", output);
            Assert.Contains(path, err);
        }
        Assert.Equal(before, File.ReadAllText(file));
        Assert.Equal(["a.db", "plain", "records.jsonl"], Directory.GetFiles(dir.Path).Select(Path.GetFileName).Where(f => !f!.StartsWith("a.db-", StringComparison.Ordinal)).Order());
    }
}
