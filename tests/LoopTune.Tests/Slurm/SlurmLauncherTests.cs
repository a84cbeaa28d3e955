using System.Text.Json.Nodes;
using LoopTune.Cli.Slurm;
using LoopTune.Cluster;
using LoopTune.Tests.Cluster;
using LoopTune.Tests.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Slurm;

/// <summary><c>looptune slurm</c> without a cluster: the script it writes (its #SBATCH lines, the command's words read back
/// by bash), and every bad input (exit 2, naming it, nothing written).</summary>
[Trait("Category", "Integration")]
public sealed class SlurmLauncherTests : IDisposable
{
    readonly TempFolder temp = new("looptune-slurm");

    public void Dispose() => temp.Dispose();

    static readonly string[] Command = ["compare-searches", "--dataset", "mm64_128_16_range", "--methods", "random", "--out", "report"];

    /// <summary>A dry run into <paramref name="outDir"/> with --json: the parsed answer.</summary>
    static JsonObject DryRun(string outDir, string[] options, string[] command)
    {
        var (code, output, err) = TestHome.Run([.. "slurm --nodes 3 --cpus-per-node 4 --time 2:30:00".Split(' '), .. options, "--out", outDir, "--dry-run", "--json", "--", .. command]);
        Assert.True(code == 0, err);
        return JsonNode.Parse(output)!.AsObject();
    }

    /// <summary>The words bash gives the arrays <c>looptune</c> and <c>cmd</c> of <paramref name="script"/>: its lines up
    /// to the first function, run by bash, then the two arrays printed one NUL-terminated word at a time.</summary>
    static (string[] Looptune, string[] Command) ReadBack(string script, string folder)
    {
        string prelude = script[..script.IndexOf("\nsay() {", StringComparison.Ordinal)];
        string file = Path.Combine(folder, "prelude.sh");
        File.WriteAllText(file, prelude + "\nprintf '%s\\0' \"${#looptune[@]}\" \"${looptune[@]}\" \"${cmd[@]}\"\n");
        var (code, output, err) = SlurmTools.Run("bash", [file]);
        Assert.True(code == 0, err);
        var words = output.Split('\0')[..^1];
        int n = int.Parse(words[0], System.Globalization.CultureInfo.InvariantCulture);
        return (words[1..(1 + n)], words[(1 + n)..]);
    }

    [Fact]
    public void DryRunWritesTheScriptItPrints()
    {
        var json = DryRun(temp["out"], ["--partition", "batch", "--job-name", "lt-1", "--redis-port", "7000"], Command);
        string script = temp["out/lt-1.sbatch"];
        Assert.Equal(script, json["script"]!.GetValue<string>());
        Assert.Null(json["job_id"]);
        Assert.Equal(temp["out/lt-1-%j.out"], json["output"]!.GetValue<string>());
        string text = File.ReadAllText(script);
        Assert.Equal(text, json["content"]!.GetValue<string>());
        Assert.Equal(["lt-1.sbatch"], Directory.GetFiles(temp["out"]).Select(Path.GetFileName)); // no temporary file left
        Assert.Equal(
            ["--job-name=lt-1", "--nodes=3", "--ntasks-per-node=1", "--cpus-per-task=4", "--time=2:30:00", "--partition=batch",
             $"--output={temp["out/lt-1-%j.out"]}", $"--chdir={Environment.CurrentDirectory}"],
            text.Split('\n').Where(l => l.StartsWith("#SBATCH ", StringComparison.Ordinal)).Select(l => l["#SBATCH ".Length..]));
        Assert.StartsWith("#!/usr/bin/env bash\n", text);
        Assert.Contains("port=7000", text);
        Assert.Contains("--min-workers $((nodes * workers_per_node))", text);
        Assert.Contains("nodes=3 cpus=4 workers_per_node=4 threads=1", text);
        var (code, _, err) = SlurmTools.Run("bash", ["-n", script]);
        Assert.True(code == 0, $"bash -n: {err}");
    }

    [Fact]
    public void ACommandAtNThreadsGetsSilosOfOneWorkerPerNCpusAtN()
    {
        DryRun(temp["out"], ["--job-name", "lt-t"], [.. Command, "--threads", "2"]);
        string text = File.ReadAllText(temp["out/lt-t.sbatch"]);
        Assert.Contains("nodes=3 cpus=4 workers_per_node=2 threads=2", text);
        Assert.Contains("--cpus-per-task=\"$cpus\"", text);
        var (code, _, err) = TestHome.Run([.. "slurm --nodes 1 --cpus-per-node 2 --time 0:10:00 --dry-run".Split(' '), "--out", temp["bad"], "--", .. Command, "--threads", "3"]);
        Assert.Equal(2, code);
        Assert.Contains("--threads 3 in the command: a number from 1 to --cpus-per-node (2), or all", err);
    }

    /// <summary>A launch writes the job's secrets beside the script (a folder of mode 700, files of mode 600, new ones each
    /// time) and prints its password nowhere, the script included; the script gives the silos and the command the job's
    /// certificate; and a redis-server started with the job's configuration, as the script starts it, accepts a client
    /// holding the job's password and certificate and refuses one lacking either.</summary>
    [RedisFact]
    public async Task TheJobsSecretsAreItsOwnAndNeverPrinted()
    {
        string[] launch = [.. "slurm --nodes 1 --cpus-per-node 1 --time 0:10:00 --job-name lt-s".Split(' '), "--out", temp["out"], "--dry-run", "--json", "--", .. Command];
        var (code, output, err) = TestHome.Run(launch);
        Assert.True(code == 0, err);
        string secrets = temp["out/lt-s.secrets"], password = File.ReadAllText(Path.Combine(secrets, JobSecrets.PasswordFile)).Trim();
        Assert.Matches("^[0-9a-f]{64}$", password);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, TempFolder.Mode(secrets));
        Assert.Equal(new[] { JobSecrets.PasswordFile, JobSecrets.StoreConfig, JobSecrets.CertFile, JobSecrets.KeyFile }.Order(), Directory.GetFiles(secrets).Select(Path.GetFileName).Order());
        Assert.All(Directory.GetFiles(secrets), f => Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, TempFolder.Mode(f)));
        string script = File.ReadAllText(temp["out/lt-s.sbatch"]);
        Assert.DoesNotContain(password, output + err + script);
        Assert.Contains("cluster=\"rediss://", script);
        Assert.Contains("silo --cluster \"$cluster\" --workers \"$workers_per_node\" --threads \"$threads\" \"${tls[@]}\" &", script);
        Assert.Contains("--min-workers $((nodes * workers_per_node)) \"${tls[@]}\" &", script);
        Assert.Contains($"secrets={secrets}\n", script);

        int tlsPort = ClusterHost.FreePort();
        using var redis = new RedisServer(ClusterHost.FreePort(), Path.Combine(secrets, JobSecrets.StoreConfig), "--tls-port", $"{tlsPort}");
        var tls = ClusterTls.Load(Path.Combine(secrets, JobSecrets.CertFile), Path.Combine(secrets, JobSecrets.KeyFile));
        var address = ClusterAddress.Parse($"rediss://:{password}@127.0.0.1:{tlsPort}");
        await StoreProbe.CheckAsync(address with { Tls = tls }, TimeSpan.FromSeconds(5), default);
        foreach (var stranger in new[] { address, ClusterAddress.Parse($"rediss://127.0.0.1:{tlsPort}") with { Tls = tls } })
        {
            var e = await Assert.ThrowsAsync<ClusterError>(() => StoreProbe.CheckAsync(stranger, TimeSpan.FromSeconds(5), default));
            Assert.DoesNotContain(password, e.Message);
        }

        Assert.Equal(0, TestHome.Run(launch).Code);
        Assert.NotEqual(password, File.ReadAllText(Path.Combine(secrets, JobSecrets.PasswordFile)).Trim());
    }

    [Fact]
    public void TheScriptRunsThisLooptuneAndTheCommandAsGiven()
    {
        var json = DryRun(temp["out"], [], Command);
        var (looptune, command) = ReadBack(json["content"]!.GetValue<string>(), temp.Path);
        Assert.Equal(Sbatch.Self(), looptune);
        Assert.All(looptune, w => Assert.True(Path.IsPathRooted(w), $"{w} is not an absolute path"));
        Assert.EndsWith("looptune.dll", looptune[^1]);
        Assert.Equal(Command, command);
        Assert.Equal(temp["out/looptune-compare-searches.sbatch"], json["script"]!.GetValue<string>()); // the default job name
    }

    [Theory]
    [InlineData("my data", "it's \"quoted\"")]
    [InlineData("$HOME `id` $(id) ${x}", "a;b && c | d > e")]
    [InlineData("* ? [a] {a,b} ~ ~/x !x #x", "back\\slash \\\"")]
    [InlineData("new\nline\ttab", "")]
    [InlineData("x=--out y", "é ü 日本 'a''b'")]
    public void CommandWordsSurviveBashExactly(string dataset, string report)
    {
        string[] command = ["compare-searches", "--dataset", dataset, "--out", report, "--methods", "random,greedy1", "--budget", "1s"];
        var json = DryRun(temp["out with space"], [], command);
        Assert.Equal(command, ReadBack(json["content"]!.GetValue<string>(), temp.Path).Command);
    }

    [Fact]
    public void EveryCharacterBashReadsSurvivesAsAWordOfItsOwn()
    {
        // each printable ASCII character alone, then with a letter before and after, and words bash expands or splits
        var chars = Enumerable.Range(' ', '~' - ' ' + 1).Select(c => ((char)c).ToString()).ToList();
        string[] words = ["compare-searches", .. chars, .. chars.Select(c => $"a{c}b"), "", "~/x", "{a,b}", "a=b c", "$((1+1))", "\\n", "x\n", "é", "\t\r"];
        var job = SlurmJob.Create(1, 2, "0:10:00", null, "x", 6379, temp.Path, temp.Path, ["/bin/looptune"], words);
        Assert.Equal(words, ReadBack(BatchScript.Render(job), temp.Path).Command);
    }

    [Fact]
    public void ProgramPathsWithSpacesAndQuotesSurviveBash()
    {
        string[] program = ["/opt/my dotnet/dotnet", "/home/o'neil/\"lt\"/looptune.dll"];
        var job = SlurmJob.Create(1, 2, "0:10:00", null, null, 6379, temp.Path, temp.Path, program, Command);
        var (looptune, command) = ReadBack(BatchScript.Render(job), temp.Path);
        Assert.Equal(program, looptune);
        Assert.Equal(Command, command);
    }

    [Fact]
    public void OutputFolderWithSpacesIsQuotedInTheSbatchLine()
    {
        var json = DryRun(temp["a b"], ["--job-name", "x"], Command);
        Assert.Contains($"#SBATCH --output=\"{temp["a b/x-%j.out"]}\"\n", json["content"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("--nodes 0", "--nodes", "0")]
    [InlineData("--nodes -2", "--nodes", "-2")]
    [InlineData("--cpus-per-node 0", "--cpus-per-node", "0")]
    [InlineData("--cpus-per-node -1", "--cpus-per-node", "-1")]
    [InlineData("--time '1h'", "--time", "1h")]
    [InlineData("--time '90'", "--time", "90")]
    [InlineData("--time '1:60:00'", "--time", "1:60:00")]
    [InlineData("--time '1:00'", "--time", "1:00")]
    [InlineData("--time '0:00:00'", "--time", "0:00:00")]
    [InlineData("--time '-1:00:00'", "--time", "-1:00:00")]
    [InlineData("--redis-port 0", "--redis-port", "0")]
    [InlineData("--redis-port 70000", "--redis-port", "70000")]
    [InlineData("--partition 'a b'", "--partition", "a b")]
    [InlineData("--job-name 'x;y'", "--job-name", "x;y")]
    public void BadOptionsAreNamed(string message, string option, string value)
    {
        var args = new Dictionary<string, string> { ["--nodes"] = "1", ["--cpus-per-node"] = "2", ["--time"] = "0:10:00", [option] = value };
        AssertBadInput(message, ["slurm", .. args.Select(a => $"{a.Key}={a.Value}"), "--out", temp["out"], "--dry-run", "--", .. Command]);
    }

    [Theory]
    [InlineData("no command after --")]
    [InlineData("no command after --", "--")]
    [InlineData("the command after --: ", "--", "frobnicate")]
    [InlineData("the command after --: ", "--", "compare-searches", "--dataset", "x", "--bogus")]
    [InlineData("the command after --: ", "--", "compare-searches")] // its required --dataset and --out
    [InlineData("the job starts the silos itself", "--", "silo", "--workers", "2")]
    [InlineData("the job starts the silos itself", "--", "slurm", "--nodes", "1")]
    [InlineData("--cluster in the command: the launcher adds", "--", "compare-searches", "--cluster", "redis://h:1")]
    [InlineData("--min-workers=4 in the command", "--", "compare-searches", "--min-workers=4")]
    public void BadCommandsAreNamed(string message, params string[] command) =>
        AssertBadInput(message, ["slurm", "--nodes", "1", "--cpus-per-node", "2", "--time", "0:10:00", "--out", temp["out"], "--dry-run", .. command]);

    [Fact]
    public void AnOutputFolderSlurmCannotNameIsRefused() =>
        AssertBadInput("SLURM cannot take a path", ["slurm", "--nodes", "1", "--cpus-per-node", "2", "--time", "0:10:00", "--out", temp["100%"], "--dry-run", "--", .. Command]);

    [Fact]
    public void WithoutSbatchItSaysSlurmIsNotInstalledAndDryRunStillWorks()
    {
        var noSlurm = new Dictionary<string, string> { ["PATH"] = temp["empty"] };
        string[] args = [.. SlurmTools.Looptune()[1..], "slurm", "--nodes", "1", "--cpus-per-node", "2", "--time", "0:10:00", "--out", temp["out"], "--", .. Command];
        var (code, output, err) = SlurmTools.Run(SlurmTools.Looptune()[0], args, noSlurm);
        Assert.Equal(2, code);
        Assert.Contains("sbatch is not on PATH: SLURM is not installed", err);
        Assert.Contains("--dry-run", err);
        Assert.Equal("", output);
        Assert.False(Directory.Exists(temp["out"]) && Directory.EnumerateFileSystemEntries(temp["out"]).Any(), "a script was left behind");

        (code, output, err) = SlurmTools.Run(SlurmTools.Looptune()[0], [.. args[..^(Command.Length + 1)], "--dry-run", "--", .. Command], noSlurm);
        Assert.True(code == 0, err);
        Assert.StartsWith($"# {temp["out/looptune-compare-searches.sbatch"]} (not submitted: --dry-run)\n#!/usr/bin/env bash\n", output);
        Assert.EndsWith(File.ReadAllText(temp["out/looptune-compare-searches.sbatch"]), output);
    }

    [SbatchFact]
    public void ARefusedJobShowsWhatSbatchSaidAndLeavesNoScript()
    {
        var (code, output, err) = TestHome.Run(["slurm", "--nodes", "1", "--cpus-per-node", "1", "--time", "0:01:00", "--partition", "no-such-partition",
            "--out", temp["out"], "--", .. Command]);
        Assert.Equal(2, code);
        Assert.Contains("sbatch refused the job", err);
        Assert.Contains("sbatch: error:", err); // sbatch's own words
        Assert.Equal("", output);
        Assert.False(Directory.Exists(temp["out"]), "the launcher left its folder");
    }

    void AssertBadInput(string message, string[] args)
    {
        var (code, output, err) = TestHome.Run(args);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.Equal("", output);
        Assert.False(Directory.Exists(temp["out"]), "the launcher wrote something");
    }
}
