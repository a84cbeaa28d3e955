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

    /// <summary>The manifest of these benchmarks with a train / test split (see <see cref="DatasetManifest.Create"/>).</summary>
    public DatasetManifest Manifest(double split, ulong seed) => DatasetManifest.Create(Kind, Arguments, [.. Benchmarks.Select(b => b.Name)], split, seed);

    /// <summary>Writes one file per benchmark and <c>manifest.json</c> into <paramref name="folder"/>, which must not exist or
    /// be empty. Everything is written to a temporary sibling first and renamed into place.</summary>
    public DatasetManifest Write(string folder, double split, ulong seed)
    {
        var manifest = Manifest(split, seed);
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
        catch
        {
            TryDelete(temp);
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

    internal static string TempSibling(string target)
    {
        var parent = Path.GetDirectoryName(target) ?? throw new DatasetSpecError($"--out {target} has no parent folder");
        Directory.CreateDirectory(parent);
        return Path.Combine(parent, $".{Path.GetFileName(target)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
    }

    internal static void TryDelete(string folder)
    {
        try { if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* best effort: a hidden temp folder */ }
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
