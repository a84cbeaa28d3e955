using System.Collections.Immutable;
using System.Text;
using LoopTune.Ir;

namespace LoopTune.Datasets;

/// <summary>
/// Builds the benchmarks of a dataset from per-dimension size specs (<see cref="DimSpec"/>) and writes them to a folder.
/// <list type="table">
/// <listheader><term>kind</term><description>arguments, benchmarks and names</description></listheader>
/// <item><term>mm</term><description><c>--dimA m,k</c> are the sizes of A (m x k), <c>--dimB k,n</c> those of B (k x n). The
/// benchmarks are every (m, n, k) with m from dimA, n from dimB and k in both dimA's and dimB's k (the product is only
/// defined where they agree), as <c>mm M N K</c>, named <c>mm{M}_{N}_{K}</c> in the same order as the spec
/// (<c>mm64_80_96</c> is <c>mm 64 80 96</c>: m=64, n=80, k=96). Order: m, then n, then k, ascending.</description></item>
/// <item><term>conv</term><description><c>--channels C</c>, <c>--image H[,W]</c>, <c>--filters F</c>, <c>--kernel R[,S]</c>
/// (default 3). One spec for the image or the kernel means square (H = W, R = S); two give every pair. Each combination
/// is <c>conv C H W F R S</c> (one image, valid padding, stride 1), named <c>conv{C}_{H}_{W}_{F}_{R}_{S}</c>; a kernel
/// larger than its image is an error.</description></item>
/// </list>
/// At most <see cref="MaxBenchmarks"/> benchmarks. Writing goes to a temporary sibling folder renamed into place at the
/// end, so a failure leaves nothing half-written.
/// </summary>
public sealed class DatasetGenerator
{
    /// <summary>Most benchmarks one dataset may have.</summary>
    public const int MaxBenchmarks = 100_000;

    DatasetGenerator(string kind, ImmutableArray<KeyValuePair<string, string>> arguments, ImmutableArray<Benchmark> benchmarks) =>
        (Kind, Arguments, Benchmarks) = (kind, arguments, benchmarks);

    /// <summary>"mm" or "conv".</summary>
    public string Kind { get; }

    /// <summary>The arguments as given (option name without dashes, text), recorded in the manifest.</summary>
    public ImmutableArray<KeyValuePair<string, string>> Arguments { get; }

    /// <summary>Every benchmark, in generation order.</summary>
    public ImmutableArray<Benchmark> Benchmarks { get; }

    /// <summary>Matrix products from the sizes of A (m,k) and B (k,n).</summary>
    public static DatasetGenerator Matmul(string? dimA, string? dimB)
    {
        var a = DimSpec.ParseList(dimA, "--dimA", "m,k", 2, 2);
        var b = DimSpec.ParseList(dimB, "--dimB", "k,n", 2, 2);
        var k = a[1].Intersect(b[0]).ToImmutableArray();
        if (k.IsEmpty)
            throw new DatasetSpecError($"--dimA's k ({Describe(a[1])}) and --dimB's k ({Describe(b[0])}) share no size; A is m x k and B is k x n, so k must agree");
        CheckCount((long)a[0].Length * b[1].Length * k.Length);
        var benchmarks = from m in a[0] from n in b[1] from kk in k select Make($"mm{m}_{n}_{kk}", () => Computation.Matmul(m, n, kk));
        return new DatasetGenerator("mm", [Arg("dimA", dimA!), Arg("dimB", dimB!)], [.. benchmarks]);
    }

    /// <summary>Convolutions from channel, image, filter and kernel sizes; <paramref name="kernel"/> defaults to 3 (3x3).</summary>
    public static DatasetGenerator Conv(string? channels, string? image, string? filters, string? kernel = null)
    {
        kernel ??= "3";
        var c = DimSpec.ParseList(channels, "--channels", "C", 1, 1)[0];
        var hw = Pairs(DimSpec.ParseList(image, "--image", "H,W", 1, 2));
        var f = DimSpec.ParseList(filters, "--filters", "F", 1, 1)[0];
        var rs = Pairs(DimSpec.ParseList(kernel, "--kernel", "R,S", 1, 2));
        CheckCount((long)c.Length * hw.Length * f.Length * rs.Length);
        var benchmarks = from cc in c
                         from i in hw
                         from ff in f
                         from r in rs
                         select Make($"conv{cc}_{i.A}_{i.B}_{ff}_{r.A}_{r.B}", () => Computation.Conv(cc, i.A, i.B, ff, r.A, r.B));
        return new DatasetGenerator("conv", [Arg("channels", channels!), Arg("image", image!), Arg("filters", filters!), Arg("kernel", kernel)], [.. benchmarks]);
    }

    /// <summary>A fixed list of named benchmarks of one kind, such as a model's layers; <paramref name="source"/> (recorded in
    /// the manifest as the argument "source") says where the shapes come from.</summary>
    public static DatasetGenerator FromSpecs(string kind, string source, IEnumerable<(string Name, string Spec)> specs)
    {
        var benchmarks = specs.Select(s => Make(s.Name, () => Computation.Parse(s.Spec))).ToImmutableArray();
        var twice = benchmarks.GroupBy(b => b.Name).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null) throw new DatasetSpecError($"benchmark name {twice.Key} is given twice");
        CheckCount(benchmarks.Length);
        return new DatasetGenerator(kind, [Arg("source", source)], benchmarks);
    }

    /// <summary>A dataset made of others of one kind, each given with its manifest: every benchmark of each, once, in
    /// order; the test split holds every benchmark some part tests, the train split the parts' other training benchmarks,
    /// so that no shape is both trained on and tested. The manifest records the parts (argument "merge") and the
    /// resulting training fraction; its seed is 0.</summary>
    public static (DatasetGenerator Generator, DatasetManifest Manifest) Merge(IReadOnlyList<(string Name, DatasetGenerator Generator, DatasetManifest Manifest)> parts)
    {
        if (parts.Count < 2) throw new DatasetSpecError($"a merge needs at least two datasets, not {parts.Count}");
        var kinds = parts.Select(p => p.Manifest.Kind).Distinct().ToList();
        if (kinds.Count > 1) throw new DatasetSpecError($"cannot merge datasets of different kinds ({string.Join(", ", parts.Select(p => $"{p.Name}: {p.Manifest.Kind}"))})");
        var benchmarks = new List<Benchmark>();
        var seen = new Dictionary<string, Benchmark>();
        foreach (var b in parts.SelectMany(p => p.Generator.Benchmarks))
        {
            if (seen.TryGetValue(b.Name, out var other))
            {
                if (!other.Computation.Equals(b.Computation)) throw new DatasetSpecError($"two datasets name different computations {b.Name}: {other.Computation} and {b.Computation}");
                continue;
            }
            seen[b.Name] = b;
            benchmarks.Add(b);
        }
        CheckCount(benchmarks.Count);
        var test = parts.SelectMany(p => p.Manifest.Test).Distinct().ToList();
        var tested = test.ToHashSet();
        var train = parts.SelectMany(p => p.Manifest.Train).Where(n => !tested.Contains(n)).Distinct().ToList();
        var args = ImmutableArray.Create(Arg("merge", string.Join("+", parts.Select(p => p.Name))));
        var generator = new DatasetGenerator(kinds[0], args, [.. benchmarks]);
        double split = Math.Round((double)train.Count / benchmarks.Count, 6);
        return (generator, new DatasetManifest(kinds[0], args, 0, split, [.. benchmarks.Select(b => b.Name)], [.. train], [.. test]));
    }

    /// <summary>A loaded dataset as a generator of its benchmarks (with the arguments its manifest records).</summary>
    public static DatasetGenerator Of(Dataset d) => new(d.Kind, d.Manifest.Arguments, d.Benchmarks);

    /// <summary>The manifest of these benchmarks with a train / test split (see <see cref="DatasetManifest.Create"/>).</summary>
    public DatasetManifest Manifest(double split, ulong seed) => DatasetManifest.Create(Kind, Arguments, [.. Benchmarks.Select(b => b.Name)], split, seed);

    /// <summary>Writes one file per benchmark and <c>manifest.json</c> into <paramref name="folder"/>, which must not exist or
    /// be empty. Everything is written to a temporary sibling first and renamed into place.</summary>
    public DatasetManifest Write(string folder, double split, ulong seed) => Write(folder, Manifest(split, seed));

    /// <summary>Writes these benchmarks with <paramref name="manifest"/> (which must list exactly them), as
    /// <see cref="Write(string, double, ulong)"/> does.</summary>
    public DatasetManifest Write(string folder, DatasetManifest manifest)
    {
        if (!manifest.Benchmarks.SequenceEqual(Benchmarks.Select(b => b.Name))) throw new ArgumentException("the manifest lists other benchmarks", nameof(manifest));
        var target = Path.GetFullPath(folder);
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
            throw new DatasetSpecError($"--out {folder} exists and is not empty; choose a new folder");
        if (File.Exists(target)) throw new DatasetSpecError($"--out {folder} is a file; choose a new folder");
        var temp = TempSibling(target);
        try
        {
            WriteFiles(temp, manifest);
            if (Directory.Exists(target)) Directory.Delete(target);
            Directory.Move(temp, target);
        }
        catch (Exception e)
        {
            AtomicFile.TryDelete(temp);
            if (FileWriteError.IsIo(e)) throw FileWriteError.From(target, e);
            throw;
        }
        return manifest;
    }

    void WriteFiles(string folder, DatasetManifest manifest)
    {
        Directory.CreateDirectory(folder);
        var utf8 = new UTF8Encoding(false);
        foreach (var b in Benchmarks) File.WriteAllText(Path.Combine(folder, b.Name + Benchmark.Extension), b.FileText, utf8);
        manifest.WriteTo(Path.Combine(folder, DatasetManifest.FileName));
    }

    /// <summary>A hidden temporary folder beside <paramref name="target"/> (<see cref="AtomicFile.TempSibling"/>), its parent created.</summary>
    static string TempSibling(string target)
    {
        var parent = Path.GetDirectoryName(target) ?? throw new DatasetSpecError($"--out {target} has no parent folder");
        try { Directory.CreateDirectory(parent); }
        catch (Exception e) when (FileWriteError.IsIo(e)) { throw FileWriteError.From(parent, e); }
        return AtomicFile.TempSibling(target);
    }

    static Benchmark Make(string name, Func<Computation> build)
    {
        try { return new Benchmark(name, build()); }
        catch (SpecError e) { throw new DatasetSpecError($"benchmark {name}: {e.Problem}"); }
    }

    static ImmutableArray<(int A, int B)> Pairs(ImmutableArray<ImmutableArray<int>> dims) =>
        dims.Length == 1 ? [.. dims[0].Select(x => (x, x))] : [.. from a in dims[0] from b in dims[1] select (a, b)];

    static void CheckCount(long count)
    {
        if (count > MaxBenchmarks) throw new DatasetSpecError($"these sizes make {count} benchmarks; a dataset holds at most {MaxBenchmarks}");
    }

    static KeyValuePair<string, string> Arg(string key, string value) => KeyValuePair.Create(key, value.Trim());

    static string Describe(ImmutableArray<int> sizes) =>
        sizes.Length <= 6 ? string.Join("|", sizes) : $"{sizes[0]}..{sizes[^1]}, {sizes.Length} sizes";
}
