using System.Collections.Immutable;
using LoopTune.Ir;

namespace LoopTune.Datasets;

/// <summary>
/// A set of benchmarks with a fixed train / test split, loaded from a folder written by <see cref="DatasetGenerator"/>
/// (<c>looptune dataset gen</c>) or from a named dataset (<see cref="NamedDataset.All"/>), which is generated into
/// <c>datasets/NAME</c> in <see cref="DataFolder.Root"/> on first use.
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
        if (NamedDataset.Find(nameOrFolder) is { } named) return named.Load();
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
/// A dataset known by name, generated on first use into <c>datasets/NAME</c> in <see cref="DataFolder.Root"/>.
/// <list type="table">
/// <listheader><term>name</term><description>benchmarks</description></listheader>
/// <item><term>mm64_256_16_range</term><description>every mm M N K with M, N, K in 64, 80, ..., 256: 13^3 = 2197 (the original's main set)</description></item>
/// <item><term>mm64_128_16_range</term><description>M, N, K in 64, 80, ..., 128: 5^3 = 125</description></item>
/// <item><term>conv_small</term><description>3x3 convolutions, C and F in 8|16|32, H and W each in 8|16|32: 81 (the original's
/// conv sets had 62 + 19 = 81)</description></item>
/// <item><term>mm256_4096_log</term><description>every mm M N K with M, N, K log-spaced from 256 to 4096 in half octaves
/// (256, 384, 512, 768, ..., 3072, 4096): 9^3 = 729</description></item>
/// <item><term>bert_base_gemm</term><description>BERT-base's GEMMs at sequence lengths 128 and 512 (<see cref="ModelShapes"/>): 12</description></item>
/// <item><term>resnet50_gemm</term><description>ResNet-50's stride-1 1x1 convolutions as GEMMs (M = filters, N = pixels, K = channels): 12</description></item>
/// <item><term>resnet50_conv</term><description>ResNet-50's stride-1 convolutions (3x3 on the padded image, 1x1): 16</description></item>
/// <item><term>resnet18</term><description>ResNet-18's distinct convolutions as <c>looptune model resnet18</c> lowers them
/// in their default lowering (stride 1: <c>conv ...</c> on the padded image; stride 2: the column-phase contraction; 1x1:
/// <c>mm F OH*OW C</c>): 11</description></item>
/// <item><term>resnet18_windows</term><description>the same convolutions in every lowering with sliding windows (direct and
/// channel-blocked, whose block follows this machine's vectors): what adapting the conv policy to a model's layers uses</description></item>
/// </list>
/// <item><term>mm64_4096</term><description>mm64_256_16_range and mm256_4096_log merged, each keeping its split: 2925</description></item>
/// <item><term>conv_small_resnet50</term><description>conv_small and resnet50_conv merged, each keeping its split: 97</description></item>
/// All split 80 % train / 20 % test with seed 0 (the merges: their parts' splits).
/// </summary>
public sealed class NamedDataset
{
    readonly Func<(DatasetGenerator, DatasetManifest)> build;

    NamedDataset(string name, string description, Func<DatasetGenerator> build)
        : this(name, description, () => { var g = build(); return (g, g.Manifest(Split, Seed)); }) { }

    NamedDataset(string name, string description, Func<(DatasetGenerator, DatasetManifest)> build) =>
        (Name, Description, this.build) = (name, description, build);

    /// <summary>The named datasets <paramref name="names"/> merged (<see cref="DatasetGenerator.Merge"/>).</summary>
    static NamedDataset Merged(string name, string description, params string[] names) =>
        new(name, description, () => DatasetGenerator.Merge([.. names.Select(n => Find(n)!).Select(d => (d.Name, d.Generator(), d.Manifest()))]));

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
        new("mm256_4096_log", "mm M N K, each in 256|384|512|...|3072|4096, half octaves (729)", () => DatasetGenerator.Matmul(HalfOctaves + "," + HalfOctaves, HalfOctaves + "," + HalfOctaves)),
        new("bert_base_gemm", "BERT-base's GEMMs at sequence lengths 128 and 512 (12)", () => DatasetGenerator.FromSpecs("mm", "BERT-base, sequence lengths 128 and 512", ModelShapes.BertBase())),
        new("resnet50_gemm", "ResNet-50's stride-1 1x1 convolutions as GEMMs (12)", () => DatasetGenerator.FromSpecs("mm", "ResNet-50 v1.5, 224x224, stride-1 1x1 convolutions as GEMMs", ModelShapes.ResNet50Gemms())),
        new("resnet50_conv", "ResNet-50's stride-1 convolutions, 3x3 padded and 1x1 (16)", () => DatasetGenerator.FromSpecs("conv", "ResNet-50 v1.5, 224x224, stride-1 convolutions", ModelShapes.ResNet50Convs())),
        new("resnet18", "ResNet-18's distinct convolutions in their default lowering: stride-1 3x3 padded, stride-2 phase-split, 1x1 as mm (11)",
            () => DatasetGenerator.FromSpecs("conv", "ResNet-18 (ML.NET's ResNet18.onnx), 224x224, distinct convolutions as looptune model lowers them", ModelShapes.ResNet18Convs())),
        new("resnet18_windows", "ResNet-18's distinct convolutions in every lowering with sliding windows, direct and channel-blocked (blocks follow this machine's vectors)",
            () => DatasetGenerator.FromSpecs("conv", "ResNet-18 (ML.NET's ResNet18.onnx), 224x224, distinct convolutions, direct and blocked lowerings", ModelShapes.ResNet18WindowedLowerings())),
        Merged("mm64_4096", "mm64_256_16_range + mm256_4096_log, each keeping its split (2925): what the default policy trains on", "mm64_256_16_range", "mm256_4096_log"),
        Merged("conv_small_resnet50", "conv_small + resnet50_conv, each keeping its split (97): what the conv policy trains on", "conv_small", "resnet50_conv"),
    ];

    const string HalfOctaves = "256|384|512|768|1024|1536|2048|3072|4096";

    /// <summary>The name <see cref="Dataset.Load"/> takes.</summary>
    public string Name { get; }

    /// <summary>One line on what it holds.</summary>
    public string Description { get; }

    /// <summary>Where it is (or will be) generated.</summary>
    public string Folder => Path.Combine(DataFolder.Root, "datasets", Name);

    /// <summary>True when its folder holds a manifest.</summary>
    public bool IsGenerated => File.Exists(Path.Combine(Folder, DatasetManifest.FileName));

    /// <summary>Its benchmarks, built in memory (nothing is written).</summary>
    public DatasetGenerator Generator() => build().Item1;

    /// <summary>Its manifest, built in memory: the split of <see cref="Split"/> and <see cref="Seed"/>, or a merge's.</summary>
    public DatasetManifest Manifest() => build().Item2;

    /// <summary>The named dataset called <paramref name="name"/>, or null.</summary>
    public static NamedDataset? Find(string name) => All.FirstOrDefault(n => n.Name == name);

    /// <summary>Loads it, generating it first if needed. Its folder is a cache: one that does not load (a damaged manifest
    /// or benchmark file) is moved aside as <c>NAME.corrupt-UTCTIME</c>, one line in <see cref="Warnings"/> says so and
    /// where, and it is generated again.</summary>
    public Dataset Load()
    {
        try { return Dataset.LoadFolder(EnsureGenerated()); }
        catch (LoopTuneException e) when (e is DatasetError or DatasetSpecError) // DatasetSpecError: a folder there without its manifest
        {
            lock (gate)
            {
                try { return Dataset.LoadFolder(Folder); } // another thread may have generated it again meanwhile
                catch (DatasetError) when (Directory.Exists(Folder)) { }
                string aside = $"{Folder}.corrupt-{DateTime.UtcNow:yyyyMMdd'T'HHmmss'Z'}";
                for (int n = 2; Directory.Exists(aside); n++) aside = $"{Folder}.corrupt-{DateTime.UtcNow:yyyyMMdd'T'HHmmss'Z'}-{n}";
                try { Directory.Move(Folder, aside); }
                catch (Exception io) when (FileWriteError.IsIo(io)) { throw new DatasetError($"{e.Message}; the dataset {Name} cannot be moved aside to be generated again: {io.Message}", io); }
                Warnings.Write($"the dataset {Name} in {Folder} is damaged ({e.Message}); moved it to {aside} and generated it again");
                return Dataset.LoadFolder(EnsureGenerated());
            }
        }
    }

    static readonly Lock gate = new();

    /// <summary>Generates it unless already there, and returns its folder. Concurrent processes may race: the first
    /// rename wins and the others use its result.</summary>
    public string EnsureGenerated()
    {
        if (IsGenerated) return Folder;
        try
        {
            var (generator, manifest) = build();
            generator.Write(Folder, manifest);
        }
        catch (Exception e) when (e is IOException or FileWriteError or DatasetSpecError && IsGenerated) { /* another process got there first */ }
        return Folder;
    }
}
