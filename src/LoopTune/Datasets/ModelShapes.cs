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
}
