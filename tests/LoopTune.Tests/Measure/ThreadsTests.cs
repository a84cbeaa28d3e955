using System.Diagnostics;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Store;
using LoopTune.Tests.Jit;

namespace LoopTune.Tests.Measure;

/// <summary>Measuring at N threads: the libraries on N threads still compute the reference's result, the quiet wait sees a
/// spinning thread and its end, the evaluator times schedules with their parallel loop under a store key of its own,
/// workers leave room for their teams, and the topology of a sysfs tree. Runs with the parallel kernels' tests (it keeps
/// both cores busy).</summary>
[Collection(nameof(AllCores))]
public class ThreadsTests
{
    [Theory]
    [InlineData("mm 96 80 72")]
    [InlineData("conv 8 14 14 16 3 3")]
    [InlineData("conv 8 14 14 16 3 3 8")]
    public void Every_library_on_two_threads_matches_the_reference(string spec)
    {
        if (ThreadCountError.Max < 2) return; // one core: no second thread to give
        var prepared = KernelReport.PreparePeers(Computation.Parse(spec), 2);
        try
        {
            foreach (var p in prepared)
            {
                if (p.Result is { } r)
                {
                    // a missing library or one without a call for this contraction is fine; a wrong result never is
                    Assert.NotEqual(PeerStatus.WrongResult, r.Status);
                    Assert.NotEqual(PeerStatus.Failed, r.Status);
                    continue;
                }
                Assert.Equal(2, p.Threads);
            }
        }
        finally
        {
            foreach (var p in prepared) p.Dispose();
        }
    }

    [Fact]
    public void Threads_started_under_a_widened_scope_are_pinned_to_the_teams_other_cores_and_given_back_their_cores()
    {
        var cores = LoopTune.Affinity.ProcessCores();
        if (cores.Count < 2 || !ThreadPinning.PinCurrentThread(cores[0])) return; // one core, or no pinning here
        using var stop = new ManualResetEventSlim();
        int library = 0, other = 0;
        Thread Start(Action<int> started)
        {
            using var ready = new ManualResetEventSlim();
            var t = new Thread(() =>
            {
                started(LoopTune.Affinity.CurrentTid());
                ready.Set();
                stop.Wait();
            })
            { IsBackground = true };
            t.Start();
            ready.Wait();
            return t;
        }
        Thread a, b;
        using (LoopTune.Affinity.Widened()) a = Start(t => library = t); // a library's pool, started under the scope
        b = Start(t => other = t); // started after it: not a library's
        int[] Cores(int tid) => LoopTune.Affinity.TryGetAffinity(tid, out var m) ? m.Cores() : [];
        try
        {
            Assert.Equal(cores, Cores(library));
            int[] before = Cores(other), team = LoopTune.Affinity.TeamCores(2, cores[0]);
            using (LoopTune.Affinity.PinLibraryThreads(team))
            {
                Assert.Equal([team[1]], Cores(library));
                Assert.Equal(before, Cores(other)); // left where it was
            }
            Assert.Equal(cores, Cores(library));
        }
        finally
        {
            stop.Set();
            a.Join();
            b.Join();
            ThreadPinning.Unpin();
        }
    }

    [Fact]
    public void Settle_waits_while_a_thread_of_the_process_spins_and_returns_once_it_stops()
    {
        if (Quiet.Settle(1).Settled is false) return; // the process's CPU time cannot be read here, or it never goes quiet
        using var stop = new ManualResetEventSlim();
        using var running = new ManualResetEventSlim();
        var spinner = new Thread(() =>
        {
            running.Set();
            while (!stop.IsSet) Thread.SpinWait(100);
        })
        { IsBackground = true };
        spinner.Start();
        running.Wait();
        try
        {
            // on a loaded machine the spinner may get too little of a core in one wait: one of five must see it
            var waits = Enumerable.Range(0, 5).Select(_ => Quiet.Settle(0.1)).ToList();
            Assert.Contains(waits, w => !w.Settled && w.Seconds >= 0.1);
        }
        finally
        {
            stop.Set();
            spinner.Join();
        }
        var clock = Stopwatch.StartNew();
        Assert.True(Quiet.Settle(1).Settled);
        Assert.True(clock.Elapsed.TotalSeconds < 1);
    }

    [Fact]
    public void The_evaluator_at_two_threads_times_the_parallel_schedule_under_its_own_store_key()
    {
        if (ThreadCountError.Max < 2) return;
        string db = Path.Combine(Path.GetTempPath(), $"looptune-threads-{Guid.NewGuid():N}.db");
        try
        {
            var nest = Nest.Parse(Computation.Parse("mm 64 64 64"), ">m:8 n:4 k:64 m:8u n:16v");
            using (var store = new MeasurementStore(db, PeakCache.MachineKey, MeasurementStore.RuntimeAt(2)))
            using (var evaluator = new LoopTune.Env.KernelEvaluator(MeasureOptions.Env, store) { Threads = 2 })
            {
                Assert.Equal("m:8p n:4 k:64 m:8u n:16v", evaluator.AsRun(nest).ScheduleKey);
                Assert.False(evaluator.Evaluate(nest).Recalled);
            }
            using (var at2 = new MeasurementStore(db, PeakCache.MachineKey, MeasurementStore.RuntimeAt(2)))
                Assert.True(at2.TryGet(Transforms.Parallelize(nest, 2), out _));
            using (var at1 = new MeasurementStore(db, PeakCache.MachineKey, MeasurementStore.RuntimeAt(1)))
                Assert.False(at1.TryGet(Transforms.Parallelize(nest, 2), out _));
            Assert.NotEqual(MeasurementStore.RuntimeAt(1), MeasurementStore.RuntimeAt(2));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            foreach (var f in Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(db) + "*")) File.Delete(f);
        }
    }

    [Fact]
    public void Workers_at_n_threads_take_every_nth_core_and_their_teams_the_cores_after()
    {
        var cores = LoopTune.Affinity.ProcessCores();
        if (cores.Count < 2) return;
        RunThreads.Use(2);
        try
        {
            int[] chosen = WorkerPool.ChooseCores(cores.Count / 2);
            Assert.Equal(cores.Where((_, i) => i % 2 == 0).Take(cores.Count / 2), chosen);
            var teams = chosen.SelectMany(c => LoopTune.Affinity.TeamCores(2, c)).ToList();
            Assert.Equal(teams.Count, teams.Distinct().Count()); // no two teams share a core
            Assert.Throws<LoopTuneException>(() => WorkerPool.ChooseCores(cores.Count / 2 + 1));
        }
        finally { RunThreads.Use(1); }
    }

    [Fact]
    public void Team_cores_start_at_the_callers_and_go_round()
    {
        var cores = LoopTune.Affinity.ProcessCores();
        int last = cores[^1];
        Assert.Equal([last, .. cores.Take(cores.Count - 1)], LoopTune.Affinity.TeamCores(cores.Count, last));
        Assert.Equal([cores[0], .. cores.Skip(1)], LoopTune.Affinity.TeamCores(cores.Count, cores[0]));
    }

    [Theory]
    [InlineData(new[] { 0, 0, 0, 1 }, 2, 2, "sysfs")] // two cores' hyperthreads: (package, core) pairs 0/0, 0/1 for cpus 0 and 1
    [InlineData(new[] { 0, 0, 0, 0 }, 1, 2, "sysfs")]
    public void Topology_counts_physical_cores_from_sysfs(int[] pairs, int physical, int cpus, string source)
    {
        string root = Directory.CreateTempSubdirectory("looptune-topology-").FullName;
        try
        {
            for (int cpu = 0; cpu < cpus; cpu++)
            {
                string dir = Directory.CreateDirectory(Path.Combine(root, $"cpu{cpu}", "topology")).FullName;
                File.WriteAllText(Path.Combine(dir, "physical_package_id"), $"{pairs[2 * cpu]}\n");
                File.WriteAllText(Path.Combine(dir, "core_id"), $"{pairs[2 * cpu + 1]}\n");
            }
            var t = CpuTopology.Read(root, [.. Enumerable.Range(0, cpus)]);
            Assert.Equal((cpus, physical, source), (t.Cpus, t.PhysicalCores, t.Source));
            Assert.Equal(cpus / physical, t.ThreadsPerCore);
            Assert.Contains(physical == 1 ? "2 hardware threads each" : "one hardware thread each", t.Describe());
            Assert.Equal("unknown", CpuTopology.Read(root, [0, 1, 2]).Source); // no cpu2 folder
        }
        finally { Directory.Delete(root, true); }
    }
}
