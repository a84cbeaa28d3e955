using System.Reflection;
using System.Xml.Linq;
using LoopTune.Ir;
using LoopTune.Tests.Architecture;
using LoopTune.Tests.Slurm;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Tuning;

/// <summary>The LoopTune package as a user gets it: packed from the built library into a local folder, referenced by a
/// new console project restored from that folder and the machine's NuGet cache only (no registry), which runs the
/// README's snippet twice: the first process tunes mm 256 256 256 and records it, the second recalls the record; each
/// checks the kernel's output against the reference.</summary>
[Trait("Category", "Integration")]
public sealed class PackageTests
{
    const string Consumer = """
        using System.Diagnostics;
        using LoopTune;
        using LoopTune.Jit;

        var rng = new Random(7);
        float[] Fill(int n) { var x = new float[n]; for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1); return x; }
        float[] a = Fill(256 * 256), b = Fill(256 * 256), c = Fill(256 * 256);
        var clock = Stopwatch.StartNew();
        using var tuner = Tuner.Open();                   // this machine's records; the shipped (or adapted) policy
        TunedKernel k = tuner.Get("mm 256 256 256");      // tuned once with the default tuner, then recalled
        double first = clock.Elapsed.TotalMilliseconds;
        var (exact, magnitude) = Reference.Exact(k.Computation, c, a, b);
        k.Run(c, a, b);                                   // spans, the spec's operand order, output first: C += A * B
        Console.WriteLine(k.Schedule + " " + k.Gflops);   // what was chosen, as measured when tuned
        double tolerance = Reference.Tolerance(k.Computation);
        int wrong = Enumerable.Range(0, c.Length).Count(i => !(Math.Abs(c[i] - exact[i]) <= tolerance * magnitude[i] + 1e-30));
        clock.Restart();
        using var again = Tuner.Open();                   // a second tuner: not this one's kernel, the record's
        var warm = again.Get("mm 256 256 256");
        double second = clock.Elapsed.TotalMilliseconds;
        Console.WriteLine($"recalled={k.Recalled} get_ms={first:F2} again_recalled={warm.Recalled} again_ms={second:F2} compile_ms={warm.Kernel.CompileTime.TotalMilliseconds:F2} wrong={wrong}");
        return wrong == 0 && warm.Schedule == k.Schedule ? 0 : 1;
        """;

    static readonly Dictionary<string, string> Quiet = new()
    {
        ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1", ["DOTNET_NOLOGO"] = "1", ["MSBUILDDISABLENODEREUSE"] = "1", ["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0",
    };

    [Fact]
    public void The_packed_library_builds_into_a_new_project_from_a_local_folder_and_its_snippet_tunes_then_recalls_a_right_kernel()
    {
        using var dir = new TempFolder("looptune-package");
        string root = LayeringTests.RepositoryRoot(), feed = dir["feed"], app = dir["app"];
        string configuration = typeof(Tuner).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        string cache = typeof(PackageTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "NuGetPackageRoot").Value!;
        string version = $"0.0.0-test{Environment.ProcessId}.{DateTime.UtcNow.Ticks}"; // never one the cache holds already
        string dotnet = LooptuneProcess.DotnetHost();
        try
        {
            var (code, output, err) = Run(dotnet, ["pack", Path.Combine(root, "src", "LoopTune", "LoopTune.csproj"), "-c", configuration, "--no-build", "--no-restore",
                "-o", feed, $"-p:Version={version}"], 300);
            Assert.True(code == 0, output + err);
            string package = Path.Combine(feed, $"LoopTune.{version}.nupkg");
            Assert.True(File.Exists(package), $"no {package}: {output}");

            Directory.CreateDirectory(app);
            new XDocument(new XElement("configuration",
                new XElement("packageSources", new XElement("clear"), new XElement("add", new XAttribute("key", "feed"), new XAttribute("value", feed)),
                    new XElement("add", new XAttribute("key", "cache"), new XAttribute("value", cache))))).Save(Path.Combine(app, "nuget.config"));
            File.WriteAllText(Path.Combine(app, "app.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <Nullable>enable</Nullable>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="LoopTune" Version="{version}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app, "Program.cs"), Consumer);
            (code, output, err) = Run(dotnet, ["build", app, "-c", "Release", "-nodeReuse:false", "-p:UseSharedCompilation=false"], 600);
            Assert.True(code == 0, output + err);
            string bin = Path.Combine(app, "bin", "Release", "net10.0");
            Assert.True(File.Exists(Path.Combine(bin, "policies", "default.safetensors")), "the shipped policies are not next to the program");

            var env = new Dictionary<string, string>(Quiet) { ["LOOPTUNE_HOME"] = dir["home"] };
            (code, output, err) = Run(dotnet, [Path.Combine(bin, "app.dll")], 300, env);
            Assert.True(code == 0, output + err);
            Assert.Contains("recalled=False", output);
            Assert.Contains("again_recalled=True", output);
            Assert.Contains("wrong=0", output);
            string schedule = output.Split('\n')[0];
            schedule = schedule[..schedule.LastIndexOf(' ')];
            _ = Nest.Parse(Computation.Parse("mm 256 256 256"), schedule); // the schedule chosen, in its compact form

            (code, output, err) = Run(dotnet, [Path.Combine(bin, "app.dll")], 120, env); // another process: the record
            Assert.True(code == 0, output + err);
            Assert.Contains("recalled=True", output);
            Assert.Contains("wrong=0", output);
            Assert.StartsWith(schedule + " ", output);
        }
        finally
        {
            string extracted = Path.Combine(cache, "looptune"); // the restore's copy of the test's package: the cache is the user's
            try
            {
                Directory.Delete(Path.Combine(extracted, version), recursive: true);
                if (!Directory.EnumerateFileSystemEntries(extracted).Any()) Directory.Delete(extracted);
            }
            catch (DirectoryNotFoundException) { }
        }
    }

    static (int Code, string Out, string Err) Run(string file, string[] args, int timeoutSeconds, Dictionary<string, string>? env = null) =>
        SlurmTools.Run(file, args, env ?? Quiet, timeoutSeconds);
}
