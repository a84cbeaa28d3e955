using System.CommandLine;
using System.Diagnostics;
using LoopTune.Datasets;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Store;

namespace LoopTune.Cli.Commands;

/// <summary>Hidden <c>looptune store-stress --db PATH --from N --count C [--samples S] [--forever]</c>: writes synthetic
/// records (mm i 4 4, initial schedule, for i from N) into a measurement store, one transaction each, printing
/// "committed i" after every commit. The store's multi-process tests run it.</summary>
static class StoreStressCommand
{
    public static Command Create(Io io)
    {
        var db = new Option<string>("--db") { Description = "The store's file.", Required = true };
        var from = new Option<int>("--from") { Description = "First i.", DefaultValueFactory = _ => 1 };
        var count = new Option<int>("--count") { Description = "How many records.", DefaultValueFactory = _ => 100 };
        var samples = new Option<int>("--samples") { Description = "The sample count every record claims.", DefaultValueFactory = _ => 5 };
        var forever = new Option<bool>("--forever") { Description = "Keep writing until killed." };
        var command = new Command("store-stress", "Write synthetic records into a measurement store (for tests).") { db, from, count, samples, forever };
        command.Hidden = true;
        command.SetAction(p => io.Guard(() =>
        {
            using var store = new MeasurementStore(p.GetValue(db));
            int first = p.GetValue(from), last = p.GetValue(forever) ? DimSpec.MaxSize : first + p.GetValue(count) - 1;
            var clock = Stopwatch.StartNew();
            for (int i = first; i <= last; i++)
            {
                store.Put(Record(i), Fake(i, p.GetValue(samples)));
                io.Stdout.WriteLine($"committed {i}");
                io.Stdout.Flush();
            }
            io.Stderr.WriteLine($"wrote {last - first + 1} records in {clock.Elapsed.TotalSeconds:F3} s ({(last - first + 1) / clock.Elapsed.TotalSeconds:F0}/s)");
            return Program.Ok;
        }));
        return command;
    }

    /// <summary>The nest the stress writer stores as record <paramref name="i"/>.</summary>
    internal static Nest Record(int i) => Nest.Initial(Computation.Matmul(i, 4, 4));

    /// <summary>The synthetic measurement of record <paramref name="i"/>.</summary>
    internal static Measurement Fake(int i, int samples) =>
        new(1e-6 * (1 + i % 7), 0.9e-6 * (1 + i % 7), samples, 1, Computation.Matmul(i, 4, 4).Flops);
}
