using System.Diagnostics;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Store;
using LoopTune.Tests.TestUtil;
using Xunit.Abstractions;

namespace LoopTune.Tests.Store;

/// <summary>The store in one process: round trips, the key, the merge policy, answering repeated states.</summary>
public sealed class MeasurementStoreTests(ITestOutputHelper output) : IDisposable
{
    readonly TempFolder folder = new("looptune-store");

    public void Dispose() => folder.Dispose();

    static Nest Nest(string spec, string actions = "") => Transforms.ApplyAll(LoopTune.Ir.Nest.Initial(Computation.Parse(spec)), Actions.ParseList(actions));

    static Measurement Sample(double median, int samples = 7) => new(median, median * 0.9, samples, 10, 2.0 * 16 * 16 * 16);

    MeasurementStore Open(string name = "m.db") => new(folder[name]);

    [Fact]
    public void RoundTripsThroughTheFile()
    {
        var nest = Nest("mm 16 16 16", "split_4,down,swap_down");
        var before = DateTime.UtcNow;
        using (var store = Open()) store.Put(nest, Sample(2e-6, samples: 9));
        using var reopened = Open();
        Assert.True(reopened.TryGet(nest, out var m));
        Assert.Equal((nest.Computation.Text, nest.ScheduleKey), (m.Computation, m.Schedule));
        Assert.Equal((2e-6, 1.8e-6, 9), (m.MedianSeconds, m.MinSeconds, m.Samples));
        Assert.Equal(Sample(2e-6).Gflops, m.Gflops, 1e-9);
        Assert.Equal(DateTimeKind.Utc, m.MeasuredAt.Kind);
        Assert.InRange(m.MeasuredAt, before.AddSeconds(-1), DateTime.UtcNow.AddSeconds(1));
        Assert.Equal(1, reopened.Count);
        Assert.Equal("ok", reopened.IntegrityCheck());
    }

    [Fact]
    public void ATuningRecordSurvivesReopeningIsReplacedAndIsSeenOnlyByItsMachineAndRuntime()
    {
        var c = Computation.Parse("mm 16 16 16");
        var nest = Nest("mm 16 16 16", "split_4,down,swap_down");
        var at = new DateTime(2026, 12, 5, 14, 0, 0, DateTimeKind.Utc);
        var record = new TuningRecord(nest.Serialize(), "policy_guided", "1s", 12.5, at);
        using (var store = new MeasurementStore(folder["r.db"], "machine-a", "runtime-1"))
        {
            Assert.False(store.TryGetRecord(c, out _));
            store.PutRecord(c, record);
            Assert.True(store.TryGetRecord(c, out var same));
            Assert.Equal(record, same);
            Assert.Equal(0, store.Count); // a record is not a measurement
        }
        using (var reopened = new MeasurementStore(folder["r.db"], "machine-a", "runtime-1"))
        {
            Assert.True(reopened.TryGetRecord(c, out var back));
            Assert.Equal(record, back);
            Assert.Equal(DateTimeKind.Utc, back.TunedAt.Kind);
            Assert.Equal(nest, LoopTune.Ir.Nest.Parse(c, back.Schedule)); // the cursor is kept: Parse reads it back
            Assert.False(reopened.TryGetRecord(Computation.Parse("mm 16 16 17"), out _));
            var newer = record with { Schedule = Nest("mm 16 16 16").Serialize(), Gflops = 3, Budget = "0" };
            reopened.PutRecord(c, newer);
            Assert.True(reopened.TryGetRecord(c, out var replaced));
            Assert.Equal(newer, replaced);
        }
        using (var other = new MeasurementStore(folder["r.db"], "machine-b", "runtime-1"))
            Assert.False(other.TryGetRecord(c, out _));
        using (var otherRuntime = new MeasurementStore(folder["r.db"], "machine-a", "runtime-2"))
            Assert.False(otherRuntime.TryGetRecord(c, out _));
    }

    [Fact]
    public void AChoiceAmongLoweringsIsKeptApartFromTheRecordsOfItsContractionsAndPerMachine()
    {
        var a = Computation.Parse("mm 16 16 16");
        string alternatives = $"{Computation.Parse("conv 4 8 8 16 3 3").Text} | {a.Text}";
        var choice = new TuningRecord(a.Text, "fastest of 2: direct 0.2 ms, columns 0.1 ms", "1s", 3.5, new DateTime(2026, 12, 5, 15, 0, 0, DateTimeKind.Utc));
        using (var store = new MeasurementStore(folder["c.db"], "machine-a", "runtime-1"))
        {
            Assert.False(store.TryGetChoice(alternatives, out _));
            store.PutChoice(alternatives, choice);
            Assert.False(store.TryGetRecord(a, out _)); // not a tuning record of the chosen contraction
            Assert.Throws<ArgumentException>(() => store.PutChoice(" ", choice));
        }
        using (var reopened = new MeasurementStore(folder["c.db"], "machine-a", "runtime-1"))
        {
            Assert.True(reopened.TryGetChoice(alternatives, out var back));
            Assert.Equal(choice, back);
            Assert.False(reopened.TryGetChoice(a.Text, out _));
        }
        using (var other = new MeasurementStore(folder["c.db"], "machine-b", "runtime-1"))
            Assert.False(other.TryGetChoice(alternatives, out _));
    }

    [Fact]
    public void ARecordsThreadCountIsPartOfItsRuntimeKeyAsAMeasurementsIs()
    {
        var c = Computation.Parse("mm 16 16 16");
        var one = new TuningRecord("m:16 n:16 k:16", "policy", "1s", 10, DateTime.UtcNow);
        var two = one with { Schedule = "m:16p n:16 k:16", Gflops = 19 };
        using var store = new MeasurementStore(folder["t.db"], "machine", "runtime");
        store.PutRecord(c, 1, one);
        store.PutRecord(c, 2, two);
        Assert.True(store.TryGetRecord(c, 1, out var a) && a.Schedule == one.Schedule);
        Assert.True(store.TryGetRecord(c, 2, out var b) && b.Schedule == two.Schedule);
        Assert.False(store.TryGetRecord(c, 3, out _));
        Assert.Equal([(c.Text, 1, "runtime"), (c.Text, 2, "runtime | 2 threads")], store.Records().Select(k => (k.Spec, k.Threads, k.Runtime)));
        // a store opened at two threads reads and writes the same keys
        using var atTwo = new MeasurementStore(folder["t.db"], "machine", "runtime | 2 threads");
        Assert.True(atTwo.TryGetRecord(c, 2, out var again) && again.Schedule == two.Schedule);
        Assert.True(atTwo.TryGetRecord(c, 1, out var single) && single.Schedule == one.Schedule);
        Assert.True(atTwo.IsOurs(store.Records()[0]) && !atTwo.IsOurs(store.Records()[0] with { Runtime = "other | 2 threads" }));
    }

    [Fact]
    public void AVersionOneFileHasItsThreadCountsMovedFromTheComputationKeyToTheRuntime()
    {
        var c = Computation.Parse("mm 16 16 16");
        using (var store = new MeasurementStore(folder["v1.db"], "machine", "runtime")) store.PutRecord(c, 1, new TuningRecord("m:16 n:16 k:16", "policy", "1s", 10, DateTime.UtcNow));
        using (var raw = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={folder["v1.db"]};Pooling=False"))
        {
            raw.Open();
            using var old = raw.CreateCommand();
            // as version 1 wrote them: the count in the computation's key, under either runtime key
            old.CommandText = $"""
                INSERT INTO records VALUES ('{c.Text} | 2 threads', 'machine', 'runtime', 'm:16p n:16 k:16', 'policy', '1s', 19, '2026-12-05T00:00:00.0000000Z');
                INSERT INTO records VALUES ('{c.Text} | 4 threads', 'machine', 'runtime | 4 threads', 'm:4p m:4 n:16 k:16', 'policy', '1s', 30, '2026-12-05T00:00:00.0000000Z');
                PRAGMA user_version = 1;
                """;
            old.ExecuteNonQuery();
        }
        using var reopened = new MeasurementStore(folder["v1.db"], "machine", "runtime");
        Assert.Equal([(1, "m:16 n:16 k:16"), (2, "m:16p n:16 k:16"), (4, "m:4p m:4 n:16 k:16")],
            reopened.Records().Select(k => (k.Threads, k.Record.Schedule)).Order());
        Assert.All(reopened.Records(), k => Assert.Equal(c.Text, k.Spec));
        Assert.True(reopened.TryGetRecord(c, 4, out var four) && four.Gflops == 30);
    }

    [Fact]
    public void AFileWithoutTheRecordsTableGetsIt()
    {
        var nest = Nest("mm 8 8 8");
        using (var store = Open("old.db")) store.Put(nest, Sample(1e-6));
        using (var raw = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={folder["old.db"]};Pooling=False"))
        {
            raw.Open();
            using var drop = raw.CreateCommand();
            drop.CommandText = "DROP TABLE records";
            drop.ExecuteNonQuery();
        }
        using var reopened = Open("old.db");
        Assert.True(reopened.TryGet(nest, out _));
        Assert.False(reopened.TryGetRecord(nest.Computation, out _));
        reopened.PutRecord(nest.Computation, new TuningRecord(nest.Serialize(), "policy", "0", 1, DateTime.UtcNow));
        Assert.True(reopened.TryGetRecord(nest.Computation, out _));
    }

    [Fact]
    public void TheCursorIsNotPartOfTheKeyButTheScheduleAndComputationAre()
    {
        using var store = Open();
        store.Put(Nest("mm 16 16 16"), Sample(1e-6));
        Assert.True(store.TryGet(Nest("mm 16 16 16", "down,down"), out _));
        Assert.False(store.TryGet(Nest("mm 16 16 16", "down,swap_down"), out _));
        Assert.False(store.TryGet(Nest("mm 16 16 17"), out _));
    }

    [Fact]
    public void ARepeatedStateIsAnsweredFromTheStore()
    {
        int calls = 0;
        Measurement Measure(Nest n) { calls++; return Sample(3e-6); }
        var nest = Nest("mm 8 8 8", "split_2");
        using (var store = Open())
        {
            var first = store.GetOrMeasure(nest, Measure);
            Assert.Same(first, store.GetOrMeasure(nest, Measure));
            Assert.Same(first, store.GetOrMeasure(Transforms.Apply(nest, Actions.Get("down")), Measure));
        }
        using (var again = Open()) again.GetOrMeasure(nest, Measure); // a new process would read it from the file
        Assert.Equal(1, calls);
    }

    [Fact]
    public void PutKeepsTheRecordWithMoreSamplesAndTheNewerOnATie()
    {
        var nest = Nest("mm 4 4 4");
        using var store = Open();
        Assert.Equal(5, store.Put(nest, Sample(1e-6, samples: 5)).Samples);
        var kept = store.Put(nest, Sample(9e-6, samples: 3));
        Assert.Equal((5, 1e-6), (kept.Samples, kept.MedianSeconds));
        kept = store.Put(nest, Sample(4e-6, samples: 8));
        Assert.Equal((8, 4e-6), (kept.Samples, kept.MedianSeconds));
        Assert.Equal(2e-6, store.Put(nest, Sample(2e-6, samples: 8)).MedianSeconds); // a tie: the newer wins
        store.ClearMemoryCache();
        Assert.True(store.TryGet(nest, out var read));
        Assert.Equal((8, 2e-6), (read.Samples, read.MedianSeconds));
        Assert.Equal(1, store.Count);
    }

    [Fact]
    public void RecordsOfAnotherMachineOrRuntimeDoNotAnswer()
    {
        var nest = Nest("mm 4 4 4");
        using (var other = new MeasurementStore(folder["m.db"], "another machine", MeasurementStore.CurrentRuntime)) other.Put(nest, Sample(1e-6));
        using (var older = new MeasurementStore(folder["m.db"], PeakCache.MachineKey, "an older runtime")) older.Put(nest, Sample(1e-6));
        using var store = Open();
        Assert.False(store.TryGet(nest, out _));
        Assert.Equal(2, store.Count);
        Assert.Contains(MeasurementStore.JitVersion, store.Runtime);
    }

    [Fact]
    public void RejectsMeaninglessMeasurements()
    {
        using var store = Open();
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Put(Nest("mm 4 4 4"), new Measurement(0, 0, 1, 1, 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Put(Nest("mm 4 4 4"), new Measurement(1, 1, 0, 1, 1)));
        Assert.Equal(0, store.Count);
    }

    [Fact]
    public void DefaultPathIsInTheDataFolder() =>
        Assert.Equal(Path.Combine(DataFolder.Root, "measurements.db"), MeasurementStore.DefaultPath);

    /// <summary>Reports (does not assert) lookup and write speeds; run with a detailed console logger to see them.</summary>
    [Fact]
    public void ReportsSpeeds()
    {
        using var store = Open();
        var nests = Enumerable.Range(1, 2000).Select(i => Nest($"mm {i} 4 4")).ToArray();
        var clock = Stopwatch.StartNew();
        foreach (var n in nests) store.Put(n, Sample(1e-6));
        double writes = nests.Length / clock.Elapsed.TotalSeconds;
        store.ClearMemoryCache();
        double cold = PerLookup(store, nests), warm = PerLookup(store, nests);
        output.WriteLine($"writes {writes:F0}/s; lookup from SQLite {cold * 1e6:F2} us; warm lookup {warm * 1e6:F3} us");
        Assert.Equal(nests.Length, store.Count);
    }

    static double PerLookup(MeasurementStore store, Nest[] nests)
    {
        var clock = Stopwatch.StartNew();
        foreach (var n in nests) Assert.True(store.TryGet(n, out _));
        return clock.Elapsed.TotalSeconds / nests.Length;
    }
}
