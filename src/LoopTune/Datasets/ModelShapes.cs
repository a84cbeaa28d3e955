using LoopTune.Models;

namespace LoopTune.Datasets;

/// <summary>
/// The contraction shapes of common models, as (benchmark name, spec) pairs for <see cref="DatasetGenerator.FromSpecs"/>.
/// <para><b>BERT-base</b> (hidden 768, 12 heads of 64, feed-forward 3072), one sequence of length s, as <c>mm M N K</c> with
/// M = s tokens: the fused Q/K/V projection (s x 2304 x 768), the attention output projection (s x 768 x 768), the
/// feed-forward up (s x 3072 x 768) and down (s x 768 x 3072) projections, and one head's scores (s x s x 64) and
/// context (s x 64 x s).</para>
/// <para><b>ResNet-50</b> v1.5 (torchvision's, 224 x 224 input): every distinct stride-1 convolution. A 1x1 convolution
/// of C channels to F filters on H x W pixels is the GEMM <c>mm F (H*W) C</c> (weights F x C times image C x HW); a
/// 3x3 convolution with padding 1 is <c>conv C (H+2) (W+2) F 3 3</c> on the padded image. The stride-2 layers (the 7x7
/// stem, three 3x3 and three 1x1 downsampling convolutions) are not here: no peer library is timed on strided
/// convolutions yet.</para>
/// <para><b>ResNet-18</b> as ML.NET ships it (the model <c>looptune model resnet18</c> tunes; 224 x 224 input): its 22
/// convolutions from a layer table (<see cref="ResNet18Layers"/>), each lowered as <c>looptune model</c> lowers the node
/// (<see cref="ConvLayer.Lower"/>): a stride-1 3x3 layer is <c>conv C (H+2) (W+2) F 3 3</c> on the padded image, a
/// strided one the contraction of its column-phase split (the 7x7 stem, the three 3x3 and the three 1x1 stride-2
/// layers).</para>
/// </summary>
public static class ModelShapes
{
    /// <summary>BERT-base's six GEMMs at sequence lengths 128 and 512, named <c>bert_s{S}_{part}</c>.</summary>
    public static IEnumerable<(string Name, string Spec)> BertBase() =>
        from s in new[] { 128, 512 }
        from g in new (string Part, int N, int K)[] { ("qkv", 2304, 768), ("attn_out", 768, 768), ("ffn_up", 3072, 768), ("ffn_down", 768, 3072), ("scores", s, 64), ("context", 64, s) }
        select ($"bert_s{s}_{g.Part}", $"mm {s} {g.N} {g.K}");

    /// <summary>ResNet-50's distinct stride-1 1x1 convolutions as (channels C, image side H, filters F).</summary>
    public static IReadOnlyList<(int C, int H, int F)> ResNet50OneByOne { get; } =
    [
        (64, 56, 64), (64, 56, 256), (256, 56, 64), (256, 56, 128),
        (128, 28, 512), (512, 28, 128), (512, 28, 256),
        (256, 14, 1024), (1024, 14, 256), (1024, 14, 512),
        (512, 7, 2048), (2048, 7, 512),
    ];

    /// <summary>ResNet-50's distinct stride-1 3x3 convolutions as (channels = filters, image side before padding).</summary>
    public static IReadOnlyList<(int C, int H)> ResNet50ThreeByThree { get; } = [(64, 56), (128, 28), (256, 14), (512, 7)];

    /// <summary>The 1x1 convolutions as GEMMs, named <c>r50_1x1_{C}_{H}_{F}</c>.</summary>
    public static IEnumerable<(string Name, string Spec)> ResNet50Gemms() =>
        ResNet50OneByOne.Select(l => ($"r50_1x1_{l.C}_{l.H}_{l.F}", $"mm {l.F} {l.H * l.H} {l.C}"));

    /// <summary>The 3x3 convolutions (padded) and the 1x1 convolutions as convolutions, named <c>r50_3x3_{C}_{H}</c> and
    /// <c>r50_1x1_{C}_{H}_{F}</c>.</summary>
    public static IEnumerable<(string Name, string Spec)> ResNet50Convs() =>
        ResNet50ThreeByThree.Select(l => ($"r50_3x3_{l.C}_{l.H}", $"conv {l.C} {l.H + 2} {l.H + 2} {l.C} 3 3"))
            .Concat(ResNet50OneByOne.Select(l => ($"r50_1x1_{l.C}_{l.H}_{l.F}", $"conv {l.C} {l.H} {l.H} {l.F} 1 1")));

    /// <summary>ResNet-18's 22 convolutions in the model's order (ML.NET's ResNet18.onnx, 224 x 224): the 7x7 stride-2
    /// stem with pads [3,3,2,2]; four 3x3 64-channel layers at 56; then for 128, 256 and 512 channels a 1x1 stride-2
    /// shortcut and a 3x3 stride-2 layer with pads [1,1,0,0] from the previous stage, and three 3x3 layers (five in the
    /// last stage, as that model has) at 28, 14 and 7.</summary>
    public static IReadOnlyList<ConvLayer> ResNet18Layers { get; } = ResNet18();

    static List<ConvLayer> ResNet18()
    {
        var layers = new List<ConvLayer> { new(3, 224, 224, 64, 7, 7, 2, 2, [3, 3, 2, 2]) };
        layers.AddRange(Enumerable.Repeat(Same(64, 56), 4));
        foreach (var (c, f, side, same) in new[] { (64, 128, 56, 3), (128, 256, 28, 3), (256, 512, 14, 5) })
        {
            layers.Add(new ConvLayer(c, side, side, f, 1, 1, 2, 2, [0, 0, 0, 0]));
            layers.Add(new ConvLayer(c, side, side, f, 3, 3, 2, 2, [1, 1, 0, 0]));
            layers.AddRange(Enumerable.Repeat(Same(f, side / 2), same));
        }
        return layers;
    }

    /// <summary>A 3x3 stride-1 layer of <paramref name="c"/> channels to as many filters on a side x side image, pads 1.</summary>
    static ConvLayer Same(int c, int side) => new(c, side, side, c, 3, 3, 1, 1, [1, 1, 1, 1]);

    /// <summary>ResNet-18's distinct convolutions (<see cref="ResNet18Layers"/>, first occurrence first), each as the
    /// contraction <c>looptune model</c> tunes, in its shorthand when it has one (<c>conv C H W F R S</c>); named
    /// <c>r18_{R}x{S}[s2]_{C}_{H}_{F}</c>.</summary>
    public static IEnumerable<(string Name, string Spec)> ResNet18Convs() =>
        ResNet18Layers.Select(l => (Name: $"r18_{l.R}x{l.S}{(l.StrideH == 1 && l.StrideW == 1 ? "" : $"s{l.StrideH}")}_{l.C}_{l.H}_{l.F}", Spec: Spec(l.Lower().Contraction)))
            .DistinctBy(x => x.Spec);

    /// <summary>Every lowering with sliding windows (the forms the conv policy serves: <c>direct</c> and <c>blocked</c>) of
    /// ResNet-18's distinct convolutions, named as in <see cref="ResNet18Convs"/> plus <c>_direct</c> or <c>_blocked</c>.
    /// The blocked forms' block of output channels follows this machine's vectors (the default block, <see cref="ConvOp.Block"/>,
    /// alone), so the list does too.</summary>
    public static IEnumerable<(string Name, string Spec)> ResNet18WindowedLowerings() =>
        ResNet18Layers.SelectMany(l => l.Lowerings().Where(op => op.Contraction.HasWindows && (op.Lowering != ConvLowering.Blocked || op.ChannelBlock == ConvOp.Block(l.F))).Select(op =>
            (Name: $"r18_{l.R}x{l.S}{(l.StrideH == 1 && l.StrideW == 1 ? "" : $"s{l.StrideH}")}_{l.C}_{l.H}_{l.F}_{op.Lowering.ToString().ToLowerInvariant()}", Spec: Spec(op.Contraction))))
            .DistinctBy(x => x.Spec);

    /// <summary>A contraction's spec: <c>conv C H W F R S</c> or <c>mm M N K</c> when it is one, else its text.</summary>
    static string Spec(LoopTune.Ir.Computation c) =>
        c.AsConv()?.ToString() ?? (c.AsMatmul() is var (m, n, k) ? $"mm {m} {n} {k}" : c.Text);
}
