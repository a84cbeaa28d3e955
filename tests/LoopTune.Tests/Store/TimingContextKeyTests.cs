using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Store;

/// <summary>The timing context (<see cref="TimingContext"/>) in the store's key: hot and cold measurements, tuning records
/// and choices among lowerings never answer each other's lookups, at any thread count, and survive export and import
/// under their own context.</summary>
public sealed class TimingContextKeyTests
{
    static readonly TimingContext ColdRight = TimingContext.ColdOperand(Operand.Right), ColdLeft = TimingContext.ColdOperand(Operand.Left);
    static readonly Computation C = Computation.Parse("mm 16 16 16");
    static readonly TuningRecord Hot = new(">m:16 n:16 k:16", "policy", "1s", 30, DateTime.UtcNow);
    static readonly TuningRecord Cold = Hot with { Schedule = ">k:16 m:16 n:16", Gflops = 20 };

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void The_runtime_key_names_the_context_before_the_thread_count_and_splits_back(int threads)
    {
        string key = MeasurementStore.RuntimeAt(threads, ColdRight);
        Assert.Equal((MeasurementStore.RuntimeAt(1, ColdRight), threads), MeasurementStore.SplitThreads(key));
        Assert.Equal(ColdRight, MeasurementStore.ContextOf(key));
        Assert.Equal(MeasurementStore.RuntimeAt(1), MeasurementStore.BaseRuntime(key));
        Assert.Equal(MeasurementStore.RuntimeAt(threads), MeasurementStore.RuntimeAt(threads, TimingContext.Hot));
        Assert.Equal(TimingContext.Hot, MeasurementStore.ContextOf(MeasurementStore.RuntimeAt(threads)));
        Assert.NotEqual(key, MeasurementStore.RuntimeAt(threads, ColdLeft));
    }

    [Fact]
    public void Hot_and_cold_records_never_answer_each_others_lookup()
    {
        using var folder = new TempFolder("looptune-context");
        using var store = new MeasurementStore(folder["r.db"], "machine", "runtime");
        store.PutRecord(C, 1, Hot);
        Assert.False(store.TryGetRecord(C, 1, ColdRight, out _));
        store.PutRecord(C, 1, ColdRight, Cold);
        store.PutRecord(C, 2, ColdRight, Cold with { Gflops = 35 });
        Assert.True(store.TryGetRecord(C, 1, out var hot) && hot.Schedule == Hot.Schedule);
        Assert.True(store.TryGetRecord(C, 1, ColdRight, out var cold) && cold.Schedule == Cold.Schedule && cold.Gflops == Cold.Gflops);
        Assert.True(store.TryGetRecord(C, 2, ColdRight, out var two) && two.Gflops == 35);
        Assert.False(store.TryGetRecord(C, 1, ColdLeft, out _));
        Assert.False(store.TryGetRecord(C, 2, out _)); // the cold record at two threads is no hot one
        Assert.Equal([("runtime", TimingContext.Hot, 1), ("runtime | cold right", ColdRight, 1), ("runtime | cold right | 2 threads", ColdRight, 2)],
            store.Records().Select(k => (k.Runtime, k.Context, k.Threads)));
        Assert.All(store.Records(), k => Assert.True(store.IsOurs(k)));
        // a store opened in the cold context reads and writes the cold records by default, and leaves the hot one alone
        using var coldStore = new MeasurementStore(folder["r.db"], "machine", "runtime | cold right");
        Assert.Equal(ColdRight, coldStore.Context);
        Assert.True(coldStore.TryGetRecord(C, 1, out var viaCold) && viaCold.Schedule == Cold.Schedule);
        coldStore.PutRecord(C, 1, Cold with { Gflops = 21 });
        Assert.True(store.TryGetRecord(C, 1, out var still) && still.Schedule == Hot.Schedule && still.Gflops == Hot.Gflops);
    }

    [Fact]
    public void Hot_and_cold_measurements_and_choices_are_kept_apart()
    {
        using var folder = new TempFolder("looptune-context");
        var nest = Nest.Initial(C);
        var fast = new Measurement(1e-6, 0.9e-6, 7, 10, C.Flops);
        var slow = new Measurement(2e-6, 1.9e-6, 3, 10, C.Flops);
        using var hot = new MeasurementStore(folder["m.db"], "machine", MeasurementStore.RuntimeAt(1));
        using var cold = new MeasurementStore(folder["m.db"], "machine", MeasurementStore.RuntimeAt(1, ColdRight));
        hot.Put(nest, fast);
        Assert.False(cold.TryGet(nest, out _));
        cold.Put(nest, slow); // fewer samples than the hot one: still kept, under its own key
        Assert.True(hot.TryGet(nest, out var h) && h.MedianSeconds == fast.MedianSeconds);
        Assert.True(cold.TryGet(nest, out var k) && k.MedianSeconds == slow.MedianSeconds);
        Assert.Single(hot.Measurements());
        Assert.Single(cold.Measurements());

        var choice = new TuningRecord("direct", "fastest of 2", "1s", 10, DateTime.UtcNow);
        hot.PutChoice("a | b", choice);
        Assert.False(hot.TryGetChoice("a | b", ColdRight, out _));
        Assert.False(cold.TryGetChoice("a | b", out _));
        hot.PutChoice("a | b", ColdRight, choice with { Schedule = "blocked" });
        Assert.True(cold.TryGetChoice("a | b", out var c) && c.Schedule == "blocked");
        Assert.True(hot.TryGetChoice("a | b", out var d) && d.Schedule == "direct");
        Assert.Empty(hot.Records()); // choices are no records
    }

    [Fact]
    public void Exported_cold_records_import_under_their_own_context()
    {
        using var folder = new TempFolder("looptune-context");
        string from = folder["from.db"], to = folder["to.db"], file = folder["records.jsonl"];
        using (var store = new MeasurementStore(from, "machine", "runtime"))
        {
            store.PutRecord(C, 1, Hot);
            store.PutRecord(C, 1, ColdLeft, Cold);
            RecordsFile.Write(file, store.Records(), new System.Text.Json.Nodes.JsonObject { ["key"] = "machine" });
        }
        Assert.Contains("\"timed\":\"cold left\"", File.ReadAllText(file));
        using var target = new MeasurementStore(to, "machine", "runtime");
        Assert.Equal((2, 2), RecordsFile.Import(target, file));
        Assert.True(target.TryGetRecord(C, 1, out var hot) && hot.Schedule == Hot.Schedule);
        Assert.True(target.TryGetRecord(C, 1, ColdLeft, out var cold) && cold.Schedule == Cold.Schedule);
        Assert.False(target.TryGetRecord(C, 1, ColdRight, out _));
    }
}
