using System.Text.Json.Nodes;
using LoopTune.Datasets;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Learning;
using LoopTune.Learning.Nn;
using LoopTune.Measure;
using LoopTune.Store;
using LoopTune.Tests.Learning;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Faults;

/// <summary>
/// Writes that fail: a checkpoint, a report, a store written on a disk with no free byte (a small tmpfs, filled) or
/// mounted read-only (EROFS stops root, which chmod does not), and a folder where a file is expected. Each is a clear
/// error naming the path (<see cref="FileWriteError"/> or <see cref="StoreError"/>; exit code 2), and what was there
/// before is whole: the latest checkpoint byte for byte and still loadable, the previous report byte for byte, every
/// committed record of the store. The tmpfs tests are skipped, saying why, where mount is not permitted.
/// </summary>
[Trait("Category", "Integration")]
public sealed class FailingWriteTests : IDisposable
{
    readonly TempFolder temp = new("looptune-failing-writes");

    public void Dispose() => temp.Dispose();

    static readonly ApexDqnConfig Small = new()
    {
        Hidden = [16], LearningRate = 1e-3, LearningStarts = 20, BatchSize = 8, RolloutFragment = 5, ActorsPerWorker = 2,
        UpdatesPerStep = 0.5, TargetUpdatePeriod = 20, ReplayCapacity = 200,
    };

    static (ApexDqn Trainer, WorkerPool Pool) Trainer()
    {
        var pool = new WorkerPool(WorkerPool.ChooseCores(1));
        return (new ApexDqn(Small, pool, (_, _) => new KeyChainEnv(), seed: 3), pool);
    }

    static Dictionary<string, byte[]> Snapshot(string folder) =>
        Directory.GetFiles(folder, "*", SearchOption.AllDirectories).ToDictionary(f => Path.GetRelativePath(folder, f), File.ReadAllBytes);

    static void AssertSame(Dictionary<string, byte[]> before, string folder)
    {
        var after = Snapshot(folder);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (name, bytes) in before) Assert.True(bytes.AsSpan().SequenceEqual(after[name]), $"{name} changed");
    }

    static string SystemSays(string how) => how == "full" ? "No space left on device" : "Read-only file system";

    static void Break(SmallDisk disk, string how)
    {
        if (how == "full") disk.Fill();
        else disk.MakeReadOnly();
    }

    [SmallDiskTheory]
    [InlineData("full")]
    [InlineData("read-only")]
    public void ACheckpointThatCannotBeWrittenNamesItAndTheLatestStaysWhole(string how)
    {
        using var disk = new SmallDisk(8192);
        var (trainer, pool) = Trainer();
        using var _ = pool;
        using var __ = trainer;
        string run = disk["run"];
        trainer.Iterate();
        var first = RunFolder.SaveCheckpoint(run, trainer, 3, ActionSpace.Cursor, new Dictionary<string, string>());
        var before = Snapshot(run);
        trainer.Iterate();
        Break(disk, how);

        var e = Assert.Throws<FileWriteError>(() => RunFolder.SaveCheckpoint(run, trainer, 3, ActionSpace.Cursor, new Dictionary<string, string>()));
        Assert.StartsWith($"cannot write the checkpoint {Path.Combine(run, RunFolder.Checkpoints, "ckpt-")}", e.Message);
        Assert.EndsWith($": {SystemSays(how)}", e.Message); // the system's reason, not the temporary file it was writing
        AssertSame(before, run); // the latest checkpoint byte for byte, and no temporary folder left
        Assert.Equal(first, RunFolder.LatestCheckpoint(run));
        var (again, pool2) = Trainer();
        using var ___ = pool2;
        using var ____ = again;
        Assert.Equal(first, RunFolder.LoadCheckpoint(run, again));
        Assert.Equal(SafeTensors.Load(Path.Combine(first, Policy.FileName)).Tensors.SelectMany(t => t.Data), Net.Flatten(again.Policy));
    }

    [SmallDiskTheory]
    [InlineData("full")]
    [InlineData("read-only")]
    public void AReportThatCannotBeWrittenNamesItAndThePreviousStaysWhole(string how)
    {
        using var disk = new SmallDisk(4096);
        string data = temp["ds"], report = disk["report"];
        DatasetGenerator.FromSpecs("mm", "a test", [("b1", "mm 16 16 8")]).Write(data, 0, 0);
        string[] args = ["compare-searches", "--dataset", data, "--methods", "random", "--budget", "200ms", "--count", "1", "--quick",
            "--db", temp["store.db"], "--out", report, "--json"];
        var (code, output, err) = TestHome.Run(args);
        Assert.True(code == 0, err);
        Assert.Equal(report, JsonNode.Parse(output)!["out"]!.GetValue<string>());
        var before = Snapshot(report);
        Assert.Contains("summary.md", before.Keys);
        Break(disk, how);

        (code, output, err) = TestHome.Run(args);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        var last = err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[^1]; // after the progress lines
        Assert.StartsWith($"error: cannot write {report}: ", last);
        Assert.EndsWith($": {SystemSays(how)}", last);
        Assert.DoesNotContain("internal error", err);
        AssertSame(before, report);
        Assert.Equal(["report"], Directory.GetFileSystemEntries(disk.Path).Select(Path.GetFileName).Where(n => n != "filler"));
    }

    [SmallDiskFact]
    public void AStoreOnAFullDiskNamesItKeepsEveryCommitAndIsNotMovedAside()
    {
        using var disk = new SmallDisk(512);
        using var home = DataFolder.Use(disk.Path);
        var committed = new List<int>();
        var warnings = new StringWriter();
        using (Warnings.To(warnings))
        using (var store = new MeasurementStore())
        {
            void FillIt()
            {
                for (int i = 1; ; i++)
                {
                    store.Put(Nest.Initial(Computation.Matmul(i, 4, 4)), new Measurement(1e-6, 1e-6, 2, 1, 1));
                    committed.Add(i);
                }
            }
            var e = Assert.Throws<StoreError>(FillIt);
            Assert.False(e.Damaged);
            Assert.StartsWith($"the measurement store {MeasurementStore.DefaultPath} cannot be written: the disk is full", e.Message);
            Assert.NotEmpty(committed);

            // and from the command line, on the same full disk: exit 2 naming the store
            var (code, _, err) = TestHome.Run("search", "--spec", "mm 8 8 8", "--method", "random", "--max-evaluations", "3");
            Assert.Equal(2, code);
            Assert.StartsWith($"error: the measurement store {MeasurementStore.DefaultPath} cannot be written: the disk is full", err);
        }
        Assert.Empty(warnings.ToString());
        Assert.Empty(Directory.GetFiles(disk.Path, "*.corrupt-*"));
        disk.Grow(8192);
        using var reopened = new MeasurementStore();
        Assert.Equal("ok", reopened.IntegrityCheck());
        foreach (int i in committed) Assert.True(reopened.TryGet(Nest.Initial(Computation.Matmul(i, 4, 4)), out _), $"committed record {i} is missing");
    }

    [SmallDiskFact]
    public void AStoreOnAReadOnlyDiskNamesIt()
    {
        using var disk = new SmallDisk(1024);
        string path = disk["given.db"];
        using (var store = new MeasurementStore(path)) store.Put(Nest.Initial(Computation.Matmul(3, 4, 4)), new Measurement(1e-6, 1e-6, 2, 1, 1));
        var bytes = File.ReadAllBytes(path);
        disk.MakeReadOnly();
        var (code, _, err) = TestHome.Run("search", "--spec", "mm 8 8 8", "--method", "random", "--max-evaluations", "3", "--db", path);
        Assert.Equal(2, code);
        Assert.StartsWith($"error: the measurement store {path} ", err);
        Assert.DoesNotContain("internal error", err);
        Assert.Equal(bytes, File.ReadAllBytes(path));
    }

    [Fact]
    public void AFileWhereAFolderBelongsIsAnErrorNamingIt()
    {
        // no mount needed: a file where the checkpoints folder, or a report's parent folder, should be stops root too
        string run = temp["run"];
        Directory.CreateDirectory(run);
        File.WriteAllText(Path.Combine(run, RunFolder.Checkpoints), "a file");
        var (trainer, pool) = Trainer();
        using var _ = pool;
        using var __ = trainer;
        var e = Assert.Throws<FileWriteError>(() => RunFolder.SaveCheckpoint(run, trainer, 3, ActionSpace.Cursor, new Dictionary<string, string>()));
        Assert.StartsWith($"cannot write the checkpoint {Path.Combine(run, RunFolder.Checkpoints, "ckpt-000000")}: ", e.Message);

        File.WriteAllText(temp["parent"], "a file");
        var (code, output, err) = TestHome.Run("search", "--spec", "mm 8 8 8", "--method", "random", "--max-evaluations", "2", "--db", Path.Combine(temp["parent"], "store.db"));
        Assert.Equal("", output);
        Assert.Equal(2, code);
        Assert.StartsWith($"error: the measurement store {Path.Combine(temp["parent"], "store.db")} cannot be created: ", err);
        (code, output, err) = TestHome.Run("dataset", "gen", "--dimA", "8,8", "--dimB", "8,8", "--out", Path.Combine(temp["parent"], "ds"));
        Assert.Equal(2, code);
        Assert.StartsWith($"error: cannot write {temp["parent"]}: ", err);
    }
}
