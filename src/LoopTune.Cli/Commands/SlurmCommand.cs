using System.CommandLine;
using System.Text.Json.Nodes;
using LoopTune.Cli.Slurm;
using LoopTune.Learning;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune slurm --nodes N --cpus-per-node C --time H:MM:SS [--partition P] [--job-name NAME] [--redis-port 6379]
/// [--out DIR] [--dry-run] [--json] -- COMMAND...</c>: writes the batch script of <see cref="BatchScript"/> into DIR (atomically)
/// and submits it with sbatch, printing the job id and its output file; with --dry-run prints the script instead. Beside
/// the script it writes the job's password and certificate (<see cref="JobSecrets"/>, mode 600), which it never prints. The
/// command is checked against looptune's own command line before anything is written; on any error nothing is left.</summary>
static class SlurmCommand
{
    public static Command Create(Io io)
    {
        var nodes = new Option<int>("--nodes") { Description = "Nodes to allocate: one silo on each.", Required = true };
        var cpus = new Option<int>("--cpus-per-node") { Description = "CPUs of each node: one measuring worker pinned to each.", Required = true };
        var time = new Option<string>("--time") { Description = "The job's time limit, H:MM:SS or D-H:MM:SS.", Required = true };
        var partition = new Option<string?>("--partition") { Description = "The SLURM partition (default: the cluster's default)." };
        var jobName = new Option<string?>("--job-name") { Description = "The job's name (default: looptune-COMMAND); also names the script and the output file." };
        var redisPort = new Option<int>("--redis-port") { Description = "The port of the membership store (redis-server) on the first node.", DefaultValueFactory = _ => 6379 };
        var output = new Option<string>("--out") { Description = "Folder for the batch script and the job's output file.", DefaultValueFactory = _ => "." };
        var dryRun = new Option<bool>("--dry-run") { Description = "Write the script and print it; submit nothing (works without SLURM)." };
        var json = Options.Json();
        var command = new Argument<string[]>("command")
        {
            Description = "After --: the looptune command to run on the cluster (e.g. train ... or compare-searches ...); --cluster and --min-workers are appended.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var slurm = new Command("slurm", "Run a looptune command on a SLURM cluster: write a batch script that starts a Redis membership store, one silo per node and the command, and submit it with sbatch.")
        {
            nodes, cpus, time, partition, jobName, redisPort, output, dryRun, json, command,
        };
        slurm.SetAction(p => io.Guard(() =>
        {
            string[] words = p.GetValue(command) ?? [];
            var job = SlurmJob.Create(p.GetValue(nodes), p.GetValue(cpus), p.GetValue(time)!, p.GetValue(partition), p.GetValue(jobName),
                p.GetValue(redisPort), p.GetValue(output)!, Environment.CurrentDirectory, Sbatch.Self(), words);
            CheckCommand(p.RootCommandResult.Command, words);
            string? sbatch = p.GetValue(dryRun) ? null : Sbatch.Find();
            string text = BatchScript.Render(job), folder = Path.GetDirectoryName(job.Output)!, script = Path.Combine(folder, $"{job.JobName}.sbatch");
            bool created = !Directory.Exists(folder);
            string? id = null;
            try
            {
                Write(script, text);
                JobSecrets.Write(job);
                if (sbatch is not null) id = Sbatch.Submit(sbatch, script);
            }
            catch
            {
                AtomicFile.TryDelete(script);
                AtomicFile.TryDelete(job.Secrets);
                if (created) AtomicFile.TryDelete(folder);
                throw;
            }
            string log = id is null ? job.Output : job.OutputOf(id);
            if (p.GetValue(json))
            {
                var o = new JsonObject { ["script"] = script, ["job_id"] = id, ["output"] = log };
                if (id is null) o["content"] = text;
                io.Stdout.WriteLine(o.ToJsonString(Options.JsonStyle));
            }
            else if (id is null) io.Stdout.Write($"# {script} (not submitted: --dry-run)\n{text}");
            else io.Stdout.WriteLine($"submitted job {id}: {job.Nodes} node(s) x {job.CpusPerNode} CPU(s), {job.Time}\nscript  {script}\noutput  {log}");
            return Program.Ok;
        }));
        return slurm;
    }

    /// <summary>Parses the command with looptune's own command line, so a misspelled command or option fails here rather
    /// than on the cluster after the queue.</summary>
    static void CheckCommand(Command root, string[] words)
    {
        var parsed = root.Parse(words);
        if (parsed.Errors.Count > 0) throw new LoopTuneException($"the command after --: {string.Join(" ", parsed.Errors.Select(e => e.Message))}");
    }

    /// <summary>Writes the script next to its place and renames it there, executable by its owner.</summary>
    static void Write(string path, string text)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            AtomicFile.WriteText(path, text);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.UserExecute);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LoopTuneException($"cannot write the script {path}: {e.Message}");
        }
    }
}
