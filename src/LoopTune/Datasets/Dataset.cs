using System.Collections.Immutable;
using LoopTune.Ir;
using LoopTune.Measure;

namespace LoopTune.Datasets;

/// <summary>
/// A set of benchmarks with a fixed train / test split, loaded from a folder written by <see cref="DatasetGenerator"/>
/// (<c>looptune dataset gen</c>) or from a named dataset (<see cref="NamedDataset.All"/>), which is generated into
/// <c>datasets/NAME</c> in <see cref="PeakCache.DataFolder"/> on first use.
/// <code>
/// var d = Dataset.Load("mm64_256_16_range");   // 2197 matmuls: 1758 train, 439 test
/// foreach (Computation c in d.Train) ...
/// </code>
/// </summary>
public sealed class Dataset
{
    Dataset(string name, string folder, DatasetManifest manifest, ImmutableArray<Benchmark> benchmarks)
    {
        Name = name;
        Folder = folder;
        Manifest = manifest;
        Benchmarks = benchmarks;
        var byName = benchmarks.ToDictionary(b => b.Name);
        TrainBenchmarks = Pick(manifest.Train, byName, "train");
        TestBenchmarks = Pick(manifest.Test, byName, "test");
        Train = [.. TrainBenchmarks.Select(b => b.Computation)];
        Test = [.. TestBenchmarks.Select(b => b.Computation)];
    }

    /// <summary>The folder's name (for a named dataset, its name).</summary>
    public string Name { get; }

    /// <summary>Full path of the dataset folder.</summary>
    public string Folder { get; }

    /// <summary>"mm" or "conv".</summary>
    public string Kind => Manifest.Kind;

    /// <summary>What <c>manifest.json</c> says: generator arguments, seed, split.</summary>
    public DatasetManifest Manifest { get; }

    /// <summary>Every benchmark, in generation order.</summary>
    public ImmutableArray<Benchmark> Benchmarks { get; }

    /// <summary>The training benchmarks, in the manifest's (shuffled) order.</summary>
    public ImmutableArray<Benchmark> TrainBenchmarks { get; }

    /// <summary>The test benchmarks, in the manifest's (shuffled) order.</summary>
    public ImmutableArray<Benchmark> TestBenchmarks { get; }

    /// <summary>The training computations.</summary>
    public IReadOnlyList<Computation> Train { get; }

    /// <summary>The test computations.</summary>
    public IReadOnlyList<Computation> Test { get; }

    /// <summary>Loads a named dataset (generating it first if needed) or a dataset folder.</summary>
    public static Dataset Load(string nameOrFolder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrFolder);
        if (NamedDataset.Find(nameOrFolder) is { } named) return LoadFolder(named.EnsureGenerated());
        if (Directory.Exists(nameOrFolder)) return LoadFolder(nameOrFolder);
        throw new DatasetError($"'{nameOrFolder}' is neither a dataset folder nor a named dataset; the named datasets are: {string.Join(", ", NamedDataset.All.Select(n => n.Name))}");
    }

    /// <summary>Loads the dataset in <paramref name="folder"/>: its manifest and every benchmark file it lists.</summary>
    public static Dataset LoadFolder(string folder)
    {
        var full = Path.GetFullPath(folder);
        var path = Path.Combine(full, DatasetManifest.FileName);
        if (!File.Exists(path)) throw new DatasetError($"{folder} is not a dataset folder: it has no {DatasetManifest.FileName}");
        var manifest = DatasetManifest.Parse(File.ReadAllText(path), path);
        var benchmarks = manifest.Benchmarks.Select(n => Benchmark.ReadFile(Path.Combine(full, n + Benchmark.Extension)));
        return new Dataset(Path.GetFileName(full), full, manifest, [.. benchmarks]);
    }

    /// <summary>The benchmark called <paramref name="name"/>.</summary>
    public Benchmark Get(string name) =>
        Benchmarks.FirstOrDefault(b => b.Name == name) ?? throw new DatasetError($"dataset {Name} has no benchmark '{name}'");

    ImmutableArray<Benchmark> Pick(ImmutableArray<string> names, Dictionary<string, Benchmark> byName, string list) =>
        [.. names.Select(n => byName.TryGetValue(n, out var b) ? b : throw new DatasetError($"{Folder}: the {list} set names '{n}', which is not one of its benchmarks"))];
}

/// <summary>
/// A dataset known by name, generated on first use into <c>datasets/NAME</c> in <see cref="PeakCache.DataFolder"/>.
/// <list type="table">
/// <listheader><term>name</term><description>benchmarks</description></listheader>
/// <item><term>mm64_256_16_range</term><description>every mm M N K with M, N, K in 64, 80, ..., 256: 13^3 = 2197 (the original's main set)</description></item>
/// <item><term>mm64_128_16_range</term><description>M, N, K in 64, 80, ..., 128: 5^3 = 125</description></item>
/// <item><term>conv_small</term><description>3x3 convolutions, C and F in 8|16|32, H and W each in 8|16|32: 81 (the original's
/// conv sets had 62 + 19 = 81)</description></item>
/// </list>
/// All split 80 % train / 20 % test with seed 0.
/// </summary>
public sealed class NamedDataset
{
    readonly Func<DatasetGenerator> build;

    NamedDataset(string name, string description, Func<DatasetGenerator> build) =>
        (Name, Description, this.build) = (name, description, build);

    /// <summary>Fraction of the benchmarks that the named datasets put in the training set.</summary>
    public const double Split = 0.8;

    /// <summary>The seed of the named datasets' split.</summary>
    public const ulong Seed = 0;

    /// <summary>Every named dataset.</summary>
    public static ImmutableArray<NamedDataset> All { get; } =
    [
        new("mm64_256_16_range", "mm M N K, each in 64:256:16 (2197)", () => DatasetGenerator.Matmul("64:256:16,64:256:16", "64:256:16,64:256:16")),
        new("mm64_128_16_range", "mm M N K, each in 64:128:16 (125)", () => DatasetGenerator.Matmul("64:128:16,64:128:16", "64:128:16,64:128:16")),
        new("conv_small", "3x3 conv, C and F in 8|16|32, H and W each in 8|16|32 (81)", () => DatasetGenerator.Conv("8|16|32", "8|16|32,8|16|32", "8|16|32", "3")),
    ];

    /// <summary>The name <see cref="Dataset.Load"/> takes.</summary>
    public string Name { get; }

    /// <summary>One line on what it holds.</summary>
    public string Description { get; }

    /// <summary>Where it is (or will be) generated.</summary>
    public string Folder => Path.Combine(PeakCache.DataFolder, "datasets", Name);

    /// <summary>True when its folder holds a manifest.</summary>
    public bool IsGenerated => File.Exists(Path.Combine(Folder, DatasetManifest.FileName));

    /// <summary>Its benchmarks, built in memory (nothing is written).</summary>
    public DatasetGenerator Generator() => build();

    /// <summary>The named dataset called <paramref name="name"/>, or null.</summary>
    public static NamedDataset? Find(string name) => All.FirstOrDefault(n => n.Name == name);

    /// <summary>Generates it unless already there, and returns its folder. Concurrent processes may race: the first
    /// rename wins and the others use its result.</summary>
    public string EnsureGenerated()
    {
        if (IsGenerated) return Folder;
        try { Generator().Write(Folder, Split, Seed); }
        catch (Exception e) when (e is IOException or DatasetSpecError && IsGenerated) { /* another process got there first */ }
        return Folder;
    }
}
