using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LoopTune.Cli.Slurm;
using LoopTune.Datasets;
using LoopTune.Tests.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Slurm;

/// <summary><c>looptune slurm</c> end to end on a real SLURM (<c>scripts/local-slurm.sh start</c> runs one on this
/// machine): jobs submitted with sbatch start a redis-server and a silo, run the command with --cluster, and leave no
/// process behind, whether the command ends or the job is cancelled. Skipped, saying why, without SLURM.</summary>
[Trait("Category", "Integration")]
public sealed class SlurmJobTests : IDisposable
{
    readonly TempFolder temp = new("looptune-slurm-job");

    public void Dispose() => temp.Dispose();

    /// <summary>The command the jobs run on the cluster (the launcher appends --cluster and --min-workers): two benchmarks of
    /// the tiny dataset, one search method for <paramref name="budget"/> each.</summary>
    static string[] ClusterCommand(string dataset, string report, string budget) =>
        ["compare-searches", "--dataset", dataset, "--methods", "random", "--budget", budget, "--count", "2", "--quick", "--out", report];

    [SlurmFact]
    public void SubmittingPrintsTheJobAndSlurmHasItAsWritten()
    {
        var (code, stdout, err) = TestHome.Run(["slurm", "--nodes", "1", "--cpus-per-node", "1", "--time", "0:03:00", "--job-name", "lt-submit",
            "--redis-port", $"{FreePort()}", "--out", temp["job out"], "--", .. ClusterCommand(Dataset(), temp["report"], "1s")]);
        Assert.True(code == 0, err);
        var m = Regex.Match(stdout, @"^submitted job (\d+): 1 node\(s\) x 1 CPU\(s\), 0:03:00\nscript  (.+)\noutput  (.+)\n$");
        Assert.True(m.Success, stdout);
        string id = m.Groups[1].Value;
        try
        {
            Assert.Equal(temp["job out/lt-submit.sbatch"], m.Groups[2].Value);
            Assert.Equal(temp[$"job out/lt-submit-{id}.out"], m.Groups[3].Value);
            var (_, job, _) = Slurm("scontrol", "-o", "show", "job", id);
            foreach (var field in new[] { "JobName=lt-submit", "NumNodes=1", "NumCPUs=1", "TimeLimit=00:03:00", $"WorkDir={Environment.CurrentDirectory}",
                $"StdOut={temp[$"job out/lt-submit-{id}.out"]}", $"Command={temp["job out/lt-submit.sbatch"]}" })
                Assert.Contains(field, job);
        }
        finally { Slurm("scancel", id); }
        WaitForEnd(id, TimeSpan.FromMinutes(1));
    }

    [SlurmJobFact]
    public void AJobRunsTheCommandOnItsSilosAndLeavesNothingRunning()
    {
        int port = FreePort();
        var (id, output) = Submit(port, ClusterCommand(Dataset(), temp["report it's"], "1s"));
        var (state, exit) = WaitForEnd(id, TimeSpan.FromMinutes(3));
        string log = File.ReadAllText(output);
        Assert.True((state, exit) == ("COMPLETED", "0:0"), $"job {id} ended {state} with {exit}:\n{log}");
        Assert.Contains($"membership store rediss://", log); // TLS, with the job's password and certificate
        Assert.DoesNotContain(File.ReadAllText(temp["job out/looptune-compare-searches.secrets/store.password"]).Trim(), log);
        Assert.Contains("the command exited with 0", log);
        var csv = File.ReadAllLines(Path.Combine(temp["report it's"], "results.csv"));
        Assert.Equal(1 + 2, csv.Length); // the header, then random on each benchmark
        Assert.All(csv[1..], row => Assert.Contains(",random,", row));
        AssertNothingRuns(port, log);
    }

    [SlurmJobFact]
    public void ACancelledJobLeavesNothingRunning()
    {
        int port = FreePort();
        var (id, output) = Submit(port, ClusterCommand(Dataset(), temp["report"], "300s"));
        // cancel once the silo and the command run
        var until = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (!(Running(port).Any(c => c.Contains(" silo ")) && Running(port).Any(c => c.Contains("--min-workers"))))
        {
            Assert.True(DateTime.UtcNow < until, $"job {id}: no silo and command after 2 minutes:\n{Read(output)}");
            Assert.Equal("", WaitForEnd(id, TimeSpan.Zero).State); // still running
            Thread.Sleep(200);
        }
        Assert.Equal(0, Slurm("scancel", id).Code);
        var (state, _) = WaitForEnd(id, TimeSpan.FromMinutes(1));
        string log = Read(output);
        Assert.True(state == "CANCELLED", $"job {id} ended {state}:\n{log}");
        Assert.Contains("stopped the store and the silos", log);
        Assert.False(Directory.Exists(temp["report"]), "the cancelled comparison left a report");
        AssertNothingRuns(port, log);
    }

    string Dataset()
    {
        DatasetGenerator.Matmul("16|32,16", "16,16|24").Write(temp["data set"], 0.5, 0);
        return temp["data set"];
    }

    /// <summary>Submits a one-node, one-CPU job through the launcher; its id and output file.</summary>
    (string Id, string Output) Submit(int port, string[] command)
    {
        var (code, stdout, err) = TestHome.Run(["slurm", "--nodes", "1", "--cpus-per-node", "1", "--time", "0:05:00", "--redis-port", $"{port}",
            "--out", temp["job out"], "--json", "--", .. command]);
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(stdout)!.AsObject();
        string id = json["job_id"]!.GetValue<string>();
        Assert.Equal(temp[$"job out/looptune-compare-searches-{id}.out"], json["output"]!.GetValue<string>());
        return (id, json["output"]!.GetValue<string>());
    }

    /// <summary>The job's final state and exit code (scontrol's JobState, ExitCode) once it has ended, waiting at most
    /// <paramref name="limit"/>; ("", "") if it has not ended by then.</summary>
    static (string State, string Exit) WaitForEnd(string id, TimeSpan limit)
    {
        var until = DateTime.UtcNow + limit;
        while (true)
        {
            var (code, output, err) = Slurm("scontrol", "-o", "show", "job", id);
            Assert.True(code == 0, err);
            string state = Regex.Match(output, @"JobState=(\S+)").Groups[1].Value, exit = Regex.Match(output, @"ExitCode=(\S+)").Groups[1].Value;
            if (state is not ("PENDING" or "CONFIGURING" or "RUNNING" or "COMPLETING" or "SUSPENDED")) return (state, exit);
            if (DateTime.UtcNow >= until) return ("", "");
            Thread.Sleep(500);
        }
    }

    /// <summary>Fails if a redis-server, silo or command of the job on <paramref name="port"/> still runs a few seconds after
    /// the job ended (SLURM reaps what a job leaves as it ends; a leak stays).</summary>
    static void AssertNothingRuns(int port, string log)
    {
        for (int i = 0; i < 20 && Running(port).Count > 0; i++) Thread.Sleep(250);
        var left = Running(port);
        Assert.True(left.Count == 0, $"left running:\n{string.Join('\n', left)}\n{log}");
    }

    /// <summary>The command lines of the processes of a job whose store is on <paramref name="port"/>: its redis-server, its
    /// silos and its command.</summary>
    static List<string> Running(int port)
    {
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc").Where(d => Path.GetFileName(d).All(char.IsAsciiDigit)))
        {
            string line;
            try { line = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' '); }
            catch (IOException) { continue; }
            catch (UnauthorizedAccessException) { continue; }
            if (line.Contains($":{port}") && (line.Contains("redis-server") || line.Contains(" silo ") || line.Contains("--min-workers"))) found.Add(line);
        }
        return found;
    }

    static (int Code, string Out, string Err) Slurm(string tool, params string[] args) =>
        SlurmTools.Run(Sbatch.OnPath(tool) ?? tool, args, timeoutSeconds: 30);

    static string Read(string file) => File.Exists(file) ? File.ReadAllText(file) : $"({file} not written)";

    static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        try { return ((IPEndPoint)l.LocalEndpoint).Port; }
        finally { l.Stop(); }
    }
}
