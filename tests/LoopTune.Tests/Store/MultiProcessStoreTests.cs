using System.Diagnostics;
using LoopTune.Cli.Commands;
using LoopTune.Store;

using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Store;

/// <summary>Several processes share one store: every committed record survives concurrent writers and a killed writer.
/// The writers are the hidden <c>looptune store-stress</c> command, run from the looptune.dll next to the tests.</summary>
[Trait("Category", "Integration")]
public sealed class MultiProcessStoreTests : IDisposable
{
    readonly TempFolder folder = new("looptune-store-mp");

    public void Dispose() => folder.Dispose();

    static Process Writer(string db, string arguments)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "looptune.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing");
        var start = new ProcessStartInfo(DotnetHost(), $"exec \"{dll}\" store-stress --db \"{db}\" {arguments}")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        return Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet");
    }

    static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host
        : Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";

    static int Committed(string line) => int.Parse(line["committed ".Length..], System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task ConcurrentWritersLoseNoRecord()
    {
        var db = folder["shared.db"];
        // (from, count, samples): overlapping ranges with different sample counts; the most samples must win everywhere
        (int From, int Count, int Samples)[] plan = [(1, 400, 3), (201, 400, 6), (401, 400, 4), (1, 800, 5)];
        var writers = plan.Select(p => Writer(db, $"--from {p.From} --count {p.Count} --samples {p.Samples}")).ToArray();
        var outputs = await Task.WhenAll(writers.Select(async w => (Out: await w.StandardOutput.ReadToEndAsync(), Err: await w.StandardError.ReadToEndAsync())));
        foreach (var (w, o) in writers.Zip(outputs))
        {
            await w.WaitForExitAsync();
            Assert.True(w.ExitCode == 0, o.Err);
        }
        using var store = new MeasurementStore(db);
        Assert.Equal("ok", store.IntegrityCheck());
        Assert.Equal(800, store.Count);
        for (int i = 1; i <= 800; i++)
        {
            Assert.True(store.TryGet(StoreStressCommand.Record(i), out var m), $"record {i} is missing");
            Assert.Equal(plan.Where(p => i >= p.From && i < p.From + p.Count).Max(p => p.Samples), m.Samples);
            Assert.Equal(StoreStressCommand.Fake(i, 1).MedianSeconds, m.MedianSeconds);
        }
    }

    [Fact]
    public async Task AKilledWriterLosesNothingItCommitted()
    {
        var db = folder["killed.db"];
        using (var before = new MeasurementStore(db)) before.Put(StoreStressCommand.Record(999_999), StoreStressCommand.Fake(999_999, 2));
        using var writer = Writer(db, "--from 1 --forever --samples 2");
        var committed = new List<int>();
        while (committed.Count < 300 && await writer.StandardOutput.ReadLineAsync() is { } line) committed.Add(Committed(line));
        writer.Kill(entireProcessTree: true);
        while (await writer.StandardOutput.ReadLineAsync() is { } line)
            if (line.StartsWith("committed ", StringComparison.Ordinal)) committed.Add(Committed(line));
        await writer.WaitForExitAsync();
        Assert.True(committed.Count >= 300, await writer.StandardError.ReadToEndAsync());

        using var store = new MeasurementStore(db);
        Assert.Equal("ok", store.IntegrityCheck());
        Assert.True(store.TryGet(StoreStressCommand.Record(999_999), out _), "a record from before the writer is gone");
        foreach (int i in committed) Assert.True(store.TryGet(StoreStressCommand.Record(i), out _), $"committed record {i} is missing");
        Assert.InRange(store.Count, committed.Count + 1, committed.Count + 2); // at most the one it was writing when killed
        store.Put(StoreStressCommand.Record(1_000_000), StoreStressCommand.Fake(1, 2)); // still writable
    }
}
