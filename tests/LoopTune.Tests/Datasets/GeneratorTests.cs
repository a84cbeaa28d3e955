using LoopTune.Datasets;
using LoopTune.Ir;
using LoopTune.Tests.Store;

using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Datasets;

/// <summary>The generator's size syntax, the benchmarks it makes, the seeded split, and byte-stable output.</summary>
public sealed class GeneratorTests
{
    [Theory]
    [InlineData("64", new[] { 64 })]
    [InlineData("64:128:16", new[] { 64, 80, 96, 112, 128 })]
    [InlineData("64:100:16", new[] { 64, 80, 96 })]
    [InlineData("7:7:3", new[] { 7 })]
    [InlineData("16|24|8", new[] { 8, 16, 24 })]
    [InlineData("8|16:32:8|16", new[] { 8, 16, 24, 32 })]
    [InlineData(" 4 | 2 ", new[] { 2, 4 })]
    public void ParsesSizes(string text, int[] expected) => Assert.Equal(expected, DimSpec.Parse(text, "--dimA"));

    [Theory]
    [InlineData("64:32:16", "'64:32:16'", "start 64 is greater than the end 32")]
    [InlineData("a|b", "'a'", "not a whole number")]
    [InlineData("16|x", "'x'", "not a whole number")]
    [InlineData("0", "'0'", "from 1 to")]
    [InlineData("64:256:0", "step '0'", "from 1 to")]
    [InlineData("64:128", "'64:128'", "start:end:step")]
    [InlineData("1:2:3:4", "'1:2:3:4'", "start:end:step")]
    [InlineData("16||32", "'16||32'", "empty list item")]
    [InlineData("", "--dimA", "empty")]
    [InlineData("2000000", "'2000000'", "from 1 to 1048576")]
    [InlineData("-4", "'-4'", "not a whole number")]
    public void RejectsBadSizesNamingTheBadPart(string text, string part, string problem)
    {
        var e = Assert.Throws<DatasetSpecError>(() => DimSpec.Parse(text, "--dimA"));
        Assert.Contains(part, e.Message);
        Assert.Contains(problem, e.Message);
        Assert.StartsWith("--dimA", e.Message);
    }

    [Theory]
    [InlineData("64", "--dimA '64' has 1 comma-separated dimension; it needs m,k")]
    [InlineData("64,64,64", "has 3 comma-separated dimensions")]
    [InlineData("64,64:32:1", "--dimA dimension 2 (k) '64:32:1'")]
    public void ListsNeedTheRightNumberOfDimensions(string dimA, string message) =>
        Assert.Contains(message, Assert.Throws<DatasetSpecError>(() => DatasetGenerator.Matmul(dimA, "64,64")).Message);

    [Fact]
    public void MatmulTakesMFromANFromBAndTheKTheyAgreeOn()
    {
        var g = DatasetGenerator.Matmul("64|80,16:48:16", "32|48|96,8");
        Assert.Equal(["mm64_8_32", "mm64_8_48", "mm80_8_32", "mm80_8_48"], g.Benchmarks.Select(b => b.Name));
        Assert.Equal("mm 80 8 48", g.Benchmarks[3].Computation.ToString());
        Assert.Equal((80, 8, 48), g.Benchmarks[3].Computation.AsMatmul());
        Assert.Equal("# mm80_8_48: C[m,n] += A[m,k] * B[k,n] m=80 n=8 k=48\nmm 80 8 48\n", g.Benchmarks[3].FileText);
        var e = Assert.Throws<DatasetSpecError>(() => DatasetGenerator.Matmul("64,16", "32,8"));
        Assert.Contains("share no size", e.Message);
    }

    [Fact]
    public void ConvIsSquareForOneSpecAndEveryPairForTwo()
    {
        Assert.Equal(["conv4_8_8_2_3_3", "conv4_10_10_2_3_3"], DatasetGenerator.Conv("4", "8|10", "2").Benchmarks.Select(b => b.Name));
        var pairs = DatasetGenerator.Conv("4", "8|10,9", "2", "3,1|3");
        Assert.Equal(["conv4_8_9_2_3_1", "conv4_8_9_2_3_3", "conv4_10_9_2_3_1", "conv4_10_9_2_3_3"], pairs.Benchmarks.Select(b => b.Name));
        Assert.Equal("conv 4 10 9 2 3 1", pairs.Benchmarks[2].Computation.ToString());
        var e = Assert.Throws<DatasetSpecError>(() => DatasetGenerator.Conv("4", "8", "2", "9"));
        Assert.Contains("conv4_8_8_2_9_9", e.Message);
        Assert.Contains("larger than the image", e.Message);
        Assert.Contains("--filters", Assert.Throws<DatasetSpecError>(() => DatasetGenerator.Conv("4", "8", null)).Message);
    }

    [Fact]
    public void RefusesHugeDatasets() =>
        Assert.Contains("at most", Assert.Throws<DatasetSpecError>(() => DatasetGenerator.Matmul("1:100:1,1:100:1", "1:100:1,1:100:1")).Message);

    [Fact]
    public void SplitMix64MatchesItsDefinition()
    {
        var rng = new SplitMix64(0);
        Assert.Equal([0xE220A8397B1DCDAFUL, 0x6E789E6AA1B965F4UL, 0x06C45D188009454FUL], new[] { rng.Next(), rng.Next(), rng.Next() });
        var bounded = new SplitMix64(7);
        Assert.All(Enumerable.Range(0, 1000).Select(_ => bounded.NextBelow(3)), x => Assert.InRange(x, 0UL, 2UL));
    }

    [Theory]
    [InlineData(0.8, 2197, 1758)]
    [InlineData(0.5, 5, 3)]
    [InlineData(0.0, 10, 0)]
    [InlineData(1.0, 10, 10)]
    public void TheSplitIsDeterministicAndProportional(double split, int count, int train)
    {
        var names = Enumerable.Range(0, count).Select(i => $"b{i}").ToArray();
        var a = DatasetManifest.Create("mm", [], [.. names], split, 42);
        var b = DatasetManifest.Create("mm", [], [.. names], split, 42);
        Assert.Equal(a.Train.AsEnumerable(), b.Train);
        Assert.Equal(a.Test.AsEnumerable(), b.Test);
        Assert.Equal(train, a.Train.Length);
        Assert.Equal(names.Order(), a.Train.Concat(a.Test).Order());
        if (count > 100) Assert.NotEqual(a.Train.AsEnumerable(), DatasetManifest.Create("mm", [], [.. names], split, 43).Train);
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void RejectsSplitsOutsideZeroToOne(double split) =>
        Assert.Contains("--split", Assert.Throws<DatasetSpecError>(() => DatasetManifest.Create("mm", [], ["a"], split, 0)).Message);

    [Fact]
    public void WritesByteStableFilesAndLoadsThemBack()
    {
        using var temp = new TempFolder("looptune-ds");
        var g = DatasetGenerator.Matmul("8:64:8,8|16", "8|16,4:12:4");
        g.Write(temp["one"], 0.75, 5);
        DatasetGenerator.Matmul("8:64:8,8|16", "8|16,4:12:4").Write(temp["two"], 0.75, 5);
        AssertSameFiles(temp["one"], temp["two"]);
        var d = Dataset.LoadFolder(temp["one"]);
        Assert.Equal((8 * 3 * 2, 36, 12), (d.Benchmarks.Length, d.Train.Count, d.Test.Count));
        Assert.Equal(g.Benchmarks.Select(b => b.Computation), d.Benchmarks.Select(b => b.Computation));
        Assert.Equal(("one", "mm", 5UL), (d.Name, d.Kind, d.Manifest.Seed));
        Assert.Equal(d.Get(d.Manifest.Test[0]).Computation, d.Test[0]);
    }

    [Fact]
    public void WritesNothingWhenTheFolderIsTaken()
    {
        using var temp = new TempFolder("looptune-ds");
        Directory.CreateDirectory(temp["taken"]);
        File.WriteAllText(temp["taken/x.txt"], "mine");
        var e = Assert.Throws<DatasetSpecError>(() => DatasetGenerator.Matmul("8,8", "8,8").Write(temp["taken"], 0.8, 0));
        Assert.Contains("not empty", e.Message);
        Assert.Equal([temp["taken"]], Directory.GetFileSystemEntries(temp.Path));
        Assert.Equal([temp["taken/x.txt"]], Directory.GetFileSystemEntries(temp["taken"]));
    }

    [Theory]
    [InlineData("mm256_4096_log", 729, 583)]
    [InlineData("bert_base_gemm", 12, 10)]
    [InlineData("resnet50_gemm", 12, 10)]
    [InlineData("resnet50_conv", 16, 13)]
    [InlineData("resnet18", 11, 9)]
    [InlineData("resnet18_windows", 16, 13)] // 8 direct (the 1x1 have none) and 8 blocked (every F here is a multiple of 64)
    public void LargeShapeDatasetsGenerateTheSameBytesTwice(string name, int count, int train)
    {
        using var temp = new TempFolder("looptune-ds");
        var named = NamedDataset.Find(name)!;
        named.Generator().Write(temp["one"], NamedDataset.Split, NamedDataset.Seed);
        named.Generator().Write(temp["two"], NamedDataset.Split, NamedDataset.Seed);
        AssertSameFiles(temp["one"], temp["two"]);
        var d = Dataset.LoadFolder(temp["one"]);
        Assert.Equal((count, train, count - train), (d.Benchmarks.Length, d.Train.Count, d.Test.Count));
    }

    [Fact]
    public void ModelShapesAreTheModelsLayers()
    {
        var sizes = DatasetGenerator.Matmul("256|384|512|768|1024|1536|2048|3072|4096,256", "256,256").Benchmarks.Select(b => b.Computation.AsMatmul()!.Value.M);
        Assert.Equal([256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096], sizes);
        var bert = ModelShapes.BertBase().ToDictionary(b => b.Name, b => Computation.Parse(b.Spec));
        Assert.Equal(2.0 * 512 * 3072 * 768, bert["bert_s512_ffn_up"].Flops);
        Assert.Equal((128, 128, 64), bert["bert_s128_scores"].AsMatmul());
        // a 1x1 convolution and its GEMM do the same work, and a padded 3x3 keeps the image's size
        foreach (var (c, h, f) in ModelShapes.ResNet50OneByOne)
        {
            var conv = Computation.Conv(c, h, h, f, 1, 1);
            var gemm = Computation.Parse(ModelShapes.ResNet50Gemms().Single(g => g.Name == $"r50_1x1_{c}_{h}_{f}").Spec);
            Assert.Equal(conv.Flops, gemm.Flops);
            Assert.Equal(conv.Output.Length, gemm.Output.Length);
        }
        foreach (var (name, spec) in ModelShapes.ResNet50Convs().Where(x => x.Name.StartsWith("r50_3x3", StringComparison.Ordinal)))
        {
            var shape = Computation.Parse(spec).AsConv()!.Value;
            Assert.Equal(int.Parse(name.Split('_')[^1], System.Globalization.CultureInfo.InvariantCulture), shape.OH);
        }
    }

    [Fact]
    public void ResNet18IsItsDistinctConvolutionsAsLooptuneModelLowersThem()
    {
        var layers = ModelShapes.ResNet18Layers;
        Assert.Equal(22, layers.Count);
        // 4.09 GFLOP in the 22 convolutions: torchvision's ResNet-18 (3.63 GFLOP) and two more 3x3 512-channel layers at 7x7 (0.23 each)
        double flops = layers.Sum(l => { var (oh, ow) = l.Output; return 2.0 * l.F * oh * ow * l.C * l.R * l.S; });
        Assert.Equal(4.0895e9, flops, 0.0001e9);
        Assert.Equal((112L, 112L), layers[0].Output);
        Assert.Equal((7L, 7L), layers[^1].Output);
        var specs = ModelShapes.ResNet18Convs().ToList();
        Assert.Equal(11, specs.Count);
        Assert.Equal(specs.Count, specs.Select(s => s.Name).Distinct().Count());
        var byName = specs.ToDictionary(s => s.Name, s => s.Spec);
        // the stride-1 3x3 layers on the padded image, as conv specs; the strided ones as their column-phase split; the 1x1
        // ones as the matrix products of their pixels
        Assert.Equal("conv 64 58 58 64 3 3", byName["r18_3x3_64_56_64"]);
        Assert.Equal("conv 512 9 9 512 3 3", byName["r18_3x3_512_7_512"]);
        Assert.Equal("O[f,h,w] += I[c,p,2*h+r,w+q] * W[f,c,r,p,q] f=64 h=112 w=112 c=3 p=2 r=7 q=4", byName["r18_7x7s2_3_224_64"]);
        Assert.Equal("mm 128 784 64", byName["r18_1x1s2_64_56_128"]);
        Assert.StartsWith("O[f,h,w] += I[c,p,2*h+r,w+q] * W[f,c,r,p,q] f=256 h=14 w=14 c=128 p=2 r=3 q=2", byName["r18_3x3s2_128_28_256"]);
        Assert.All(specs, s => Computation.Parse(s.Spec));

        // every windowed lowering: the default's direct ones and a blocked one for each window larger than 1x1
        var windows = ModelShapes.ResNet18WindowedLowerings().ToDictionary(s => s.Name, s => Computation.Parse(s.Spec));
        Assert.All(windows.Values, c => Assert.True(c.HasWindows, c.Text));
        Assert.Equal("conv 64 58 58 64 3 3", windows["r18_3x3_64_56_64_direct"].ToString());
        // the stem's 64 channels in one block where 4 vectors hold them (AVX-512), else in blocks of g
        Assert.StartsWith(LoopTune.Models.ConvOp.Block(64) == 64 ? "O[h,w,e] += I[c,2*h+r,2*w+s] * W[c,r,s,e] h=112 w=112 e=64"
            : $"O[g,h,w,e] += I[c,2*h+r,2*w+s] * W[g,c,r,s,e] g={64 / LoopTune.Models.ConvOp.Block(64)} h=112 w=112 e={LoopTune.Models.ConvOp.Block(64)}", windows["r18_7x7s2_3_224_64_blocked"].Text, StringComparison.Ordinal);
        Assert.DoesNotContain(windows.Keys, k => k.StartsWith("r18_1x1", StringComparison.Ordinal));
        Assert.Equal(8, windows.Keys.Count(k => k.EndsWith("_direct", StringComparison.Ordinal)));
        Assert.Equal(8, windows.Keys.Count(k => k.EndsWith("_blocked", StringComparison.Ordinal)));
    }

    [Fact]
    public void FromSpecsNamesTheBadBenchmark()
    {
        Assert.Contains("twice", Assert.Throws<DatasetSpecError>(() => DatasetGenerator.FromSpecs("mm", "t", [("a", "mm 8 8 8"), ("a", "mm 4 4 4")])).Message);
        Assert.Contains("benchmark b", Assert.Throws<DatasetSpecError>(() => DatasetGenerator.FromSpecs("mm", "t", [("b", "mm 8 0 8")])).Message);
    }

    internal static void AssertSameFiles(string a, string b)
    {
        var names = Directory.GetFiles(a).Select(Path.GetFileName).Order().ToArray();
        Assert.Equal(names, Directory.GetFiles(b).Select(Path.GetFileName).Order());
        foreach (var n in names) Assert.True(File.ReadAllBytes(Path.Combine(a, n!)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(b, n!))), $"{n} differs");
    }
}
