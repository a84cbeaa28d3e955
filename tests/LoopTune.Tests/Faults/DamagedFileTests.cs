using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using LoopTune.Datasets;
using LoopTune.Jit;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Faults;

/// <summary>
/// The other files LoopTune reads, damaged: <c>peak.json</c> (a cache: warned of and rewritten whole), a dataset's
/// manifest and benchmark files (a folder given by the user: a <see cref="DatasetError"/> naming the file; a named dataset
/// in the data folder, which is a cache: moved aside and generated again), and policy files (a <see cref="PolicyError"/>
/// naming the file, for random bytes, every cut, and seeded mutations of the header). Never any other exception.
/// </summary>
[Trait("Category", "Integration")]
public sealed class DamagedFileTests : IDisposable
{
    readonly TempFolder temp = new("looptune-damaged-files");

    public void Dispose() => temp.Dispose();

    static string[] Lines(StringWriter w) => w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [Theory]
    [InlineData("{\"key\": 1")]
    [InlineData("[1, 2, 3]")]
    [InlineData("null")]
    [InlineData("{\"a\": 1, \"a\": 2}")]
    [InlineData("\u0001\u00ff binary")]
    public void ADamagedPeakJsonIsWarnedOfAndRewrittenWhole(string damaged)
    {
        using var home = DataFolder.Use(temp.Path);
        string path = Path.Combine(temp.Path, "peak.json");
        File.WriteAllText(path, damaged);
        int bits = JitOptions.Default.VectorBits;
        var warnings = new StringWriter();
        using (Warnings.To(warnings)) PeakCache.Remember(123.5, bits);
        Assert.StartsWith($"warning: {path} is damaged (", Assert.Single(Lines(warnings)));
        Assert.EndsWith("); it is a cache: measuring what it held again and rewriting it", Lines(warnings)[0]);
        var table = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        Assert.Equal(123.5, table[Machine.KeyAt(bits)]!.GetValue<double>());
        warnings.GetStringBuilder().Clear();
        using (Warnings.To(warnings)) Assert.Equal(123.5, PeakCache.GetOrMeasure(bits));
        Assert.Empty(Lines(warnings));
    }

    /// <summary>A dataset folder of two small matmuls, and a way to damage it.</summary>
    string Dataset(Action<string> damage)
    {
        string folder = temp[$"ds-{Guid.NewGuid():N}"];
        DatasetGenerator.FromSpecs("mm", "a test", [("b1", "mm 8 8 8"), ("b2", "mm 16 8 8")]).Write(folder, 0.5, 0);
        damage(folder);
        return folder;
    }

    static void EditManifest(string folder, Func<string, string> edit)
    {
        string path = Path.Combine(folder, DatasetManifest.FileName);
        File.WriteAllText(path, edit(File.ReadAllText(path)));
    }

    public static TheoryData<string> ManifestDamage => new()
    {
        "random bytes", "cut in half", "an array", "a seed that is text", "a benchmark twice", "a benchmark name that is a path",
        "a benchmark file missing", "a benchmark file with two specs", "a benchmark file with a bad spec", "a newer format",
        "a key twice", "a train set naming no benchmark",
    };

    static void Damage(string folder, string how)
    {
        string manifest = Path.Combine(folder, DatasetManifest.FileName);
        switch (how)
        {
            case "random bytes":
                var bytes = new byte[600];
                new Random(5).NextBytes(bytes);
                File.WriteAllBytes(manifest, bytes);
                break;
            case "cut in half": EditManifest(folder, t => t[..(t.Length / 2)]); break;
            case "an array": File.WriteAllText(manifest, "[1, 2]"); break;
            case "a seed that is text": EditManifest(folder, t => t.Replace("\"seed\": 0", "\"seed\": \"zero\"", StringComparison.Ordinal)); break;
            case "a benchmark twice": EditManifest(folder, t => t.Replace("\"b2\"", "\"b1\"", StringComparison.Ordinal)); break;
            case "a benchmark name that is a path": EditManifest(folder, t => t.Replace("\"b2\"", "\"../b2\"", StringComparison.Ordinal)); break;
            case "a benchmark file missing": File.Delete(Path.Combine(folder, "b2" + Benchmark.Extension)); break;
            case "a benchmark file with two specs": File.AppendAllText(Path.Combine(folder, "b2" + Benchmark.Extension), "mm 4 4 4\n"); break;
            case "a benchmark file with a bad spec": File.WriteAllText(Path.Combine(folder, "b2" + Benchmark.Extension), "mm 4 x 4\n"); break;
            case "a newer format": EditManifest(folder, t => t.Replace("\"format\": 1", "\"format\": 9", StringComparison.Ordinal)); break;
            case "a key twice": EditManifest(folder, t => t.Replace("\"format\": 1,", "\"format\": 1, \"format\": 1,", StringComparison.Ordinal)); break;
            case "a train set naming no benchmark":
                EditManifest(folder, t => t.Replace("\"train\": [", "\"train\": [\"b9\", ", StringComparison.Ordinal));
                break;
        }
    }

    [Theory]
    [MemberData(nameof(ManifestDamage))]
    public void ADamagedDatasetFolderIsAnErrorNamingTheFile(string how)
    {
        string folder = Dataset(f => Damage(f, how));
        var e = Assert.Throws<DatasetError>(() => LoopTune.Datasets.Dataset.Load(folder));
        Assert.Contains(folder, e.Message);
        var (code, output, err) = TestHome.Run("compare-searches", "--dataset", folder, "--methods", "random", "--budget", "100ms", "--out", temp["report"]);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Equal($"error: {e.Message}", err.Trim());
    }

    [Fact]
    public void ADamagedNamedDatasetIsMovedAsideAndGeneratedAgain()
    {
        using var home = DataFolder.Use(temp.Path);
        var named = NamedDataset.Find("mm64_128_16_range")!;
        var first = LoopTune.Datasets.Dataset.Load(named.Name);
        string manifest = Path.Combine(named.Folder, DatasetManifest.FileName);
        File.WriteAllText(manifest, "{\"format\": 1, \"kind\": ");
        var warnings = new StringWriter();
        LoopTune.Datasets.Dataset again;
        using (Warnings.To(warnings)) again = LoopTune.Datasets.Dataset.Load(named.Name);
        Assert.Equal(named.Manifest().ToJson(), again.Manifest.ToJson());
        Assert.Equal(first.Benchmarks.Select(b => b.FileText), again.Benchmarks.Select(b => b.FileText));
        var aside = Assert.Single(Directory.GetDirectories(Path.GetDirectoryName(named.Folder)!, named.Name + ".corrupt-*"));
        Assert.Equal("{\"format\": 1, \"kind\": ", File.ReadAllText(Path.Combine(aside, DatasetManifest.FileName)));
        Assert.Matches($"^warning: the dataset {named.Name} in {System.Text.RegularExpressions.Regex.Escape(named.Folder)} is damaged \\(.*\\); moved it to {System.Text.RegularExpressions.Regex.Escape(aside)} and generated it again$",
            Assert.Single(Lines(warnings)));
    }

    static readonly System.Text.RegularExpressions.Regex Token = new("[0-9]+|\"[^\"]*\"");

    /// <summary>Loads a damaged policy: it loads, or it is a <see cref="PolicyError"/> naming the file; null, or what else happened.</summary>
    static string? LoadOrNamedError(string path, byte[] bytes)
    {
        File.WriteAllBytes(path, bytes);
        try
        {
            _ = Policy.Load(path);
            return null;
        }
        catch (PolicyError e) { return e.Message.Contains(path, StringComparison.Ordinal) ? null : $"a PolicyError not naming the file: {e.Message}"; }
        catch (Exception e) { return $"{e.GetType().Name}: {e.Message}"; }
    }

    [Fact]
    public void ADamagedPolicyIsAnErrorNamingIt()
    {
        // a small network of the shipped policies' kind (the tile space, whose older widths are widened on loading)
        string path = temp["policy.safetensors"];
        var shape = new NetworkShape("dqn", LoopTune.Env.ObservationEncoder.Size, LoopTune.Env.ActionSpace.Tile.Count, [8], "relu", true);
        Policy.Save(path, Net.Create(shape, new Random(1)), 10, new Dictionary<string, string> { ["looptune.dataset"] = "a test" }, LoopTune.Env.ActionSpace.Tile);
        var good = File.ReadAllBytes(path);
        Assert.Equal(shape, Policy.Load(path).Shape with { Hidden = shape.Hidden });
        var rng = new Random(22);
        var failures = new List<string>();
        void Try(string what, byte[] bytes)
        {
            if (LoadOrNamedError(path, bytes) is { } problem) failures.Add($"{what}: {problem}");
        }

        var random = new byte[4096];
        rng.NextBytes(random);
        Try("random bytes", random);
        Try("empty", []);
        for (int i = 1; i <= 16; i++) Try($"cut at {i}/17", good[..(good.Length * i / 17)]);

        // seeded mutations of the JSON header (its length prefix kept right, so the header is what is read)
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(good);
        string header = Encoding.UTF8.GetString(good, 8, n);
        string[] swaps = ["0", "-1", "1e9", "\"x\"", "null", "[]", "{}", "18", "180", "4294967296", "\"F16\"", "\"\"", "true"];
        for (int m = 0; m < 1000; m++)
        {
            string h = header;
            for (int k = rng.Next(1, 3); k > 0; k--)
            {
                int at = rng.Next(h.Length);
                h = rng.Next(3) switch
                {
                    0 => h[..at] + Token.Replace(h[at..], swaps[rng.Next(swaps.Length)], 1),
                    1 => h.Remove(at, 1),
                    _ => h.Insert(at, "{}[],:\"0"[rng.Next(8)].ToString()),
                };
            }
            var bytes = Encoding.UTF8.GetBytes(h);
            var file = new byte[8 + bytes.Length + (good.Length - 8 - n)];
            BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)bytes.Length);
            bytes.CopyTo(file, 8);
            good.AsSpan(8 + n).CopyTo(file.AsSpan(8 + bytes.Length));
            Try($"header mutation {m}: {h[..Math.Min(h.Length, 300)]}", file);
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(10)));

        File.WriteAllBytes(path, random);
        var (code, output, err) = TestHome.Run("tune", "--spec", "mm 8 8 8", "--policy", path, "--budget", "0", "--quick", "--no-peers");
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.StartsWith($"error: policy {path} cannot be read: ", err);
    }
}
