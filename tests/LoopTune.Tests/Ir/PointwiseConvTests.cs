using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Ir;

/// <summary><c>conv C H W F 1 1</c>: a pointwise convolution, built with the image's pixels as one variable
/// (<c>O[f,p] += I[c,p] * W[f,c]</c>), on the same memory as the windowed form <c>O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s]</c>
/// with r = s = 1.</summary>
public sealed class PointwiseConvTests
{
    static Computation Windowed(int c, int h, int w, int f) =>
        Computation.Parse($"O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f={f} h={h} w={w} c={c} r=1 s=1");

    [Fact]
    public void Its_pixels_are_one_variable_and_it_stays_a_convolution_with_its_image()
    {
        var c = Computation.Parse("conv 64 56 56 256 1 1");
        Assert.Equal("f p c", string.Join(" ", c.Vars));
        Assert.Equal("256 3136 64", string.Join(" ", c.Sizes));
        Assert.Equal("False False True", string.Join(" ", c.IsReduction));
        Assert.Equal(new ConvShape(64, 56, 56, 256, 1, 1), c.AsConv());
        Assert.Equal(new ConvShape(64, 56, 56, 256, 1, 1), c.Convolution);
        Assert.Equal("conv 64 56 56 256 1 1", c.ToString());
        Assert.False(c.HasWindows);
        Assert.Equal(Operand.Right, c.Filters);
        Assert.Null(c.AsMatmul());
        var windowed = Windowed(64, 56, 56, 256);
        Assert.Equal(windowed.Flops, c.Flops);
        Assert.Equal(windowed.Tensors.Select(t => t.Length), c.Tensors.Select(t => t.Length));
        Assert.Equal(c, new ConvShape(64, 56, 56, 256, 1, 1).ToComputation());
    }

    [Fact]
    public void The_same_contraction_from_its_text_is_a_product_not_a_convolution()
    {
        var text = Computation.Parse(Computation.Parse("conv 8 4 6 16 1 1").Text);
        Assert.Null(text.AsConv());
        Assert.Null(text.Convolution);
        Assert.Null(text.Filters);
        Assert.NotNull(text.AsGemm());
        // a window larger than 1x1 keeps h, w, r and s
        Assert.Equal("f h w c r s", string.Join(" ", Computation.Parse("conv 8 4 6 16 3 1").Vars));
        Assert.Equal("f h w c r s", string.Join(" ", Computation.Parse("conv 8 4 6 16 1 3").Vars));
    }

    [Fact]
    public void A_slice_of_its_output_channels_is_still_a_convolution_and_of_its_pixels_a_product()
    {
        var c = Computation.Parse("conv 64 56 56 256 1 1");
        Assert.Equal(new ConvShape(64, 56, 56, 64, 1, 1), c.WithSize(0, 64).AsConv());
        Assert.Equal(c.Flops / 4, c.WithSize(0, 64).Flops);
        Assert.Null(c.WithSize(1, 100).AsConv());
        Assert.Equal(100, c.WithSize(1, 100).Sizes[1]);
    }

    /// <summary>Kernels of the pointwise form, vectors running across the image's rows, judged against the windowed
    /// convolution's reference on the same buffers.</summary>
    [Theory]
    [InlineData(3, 5, 7, 4, ">f:4 c:3 p:35v")]                         // 35 pixels: rows of 7 in two vectors and a tail
    [InlineData(3, 5, 7, 4, ">p:2+3 f:2 c:3 f:2u p:16v")]
    [InlineData(16, 6, 6, 24, ">f:2 p:2+4 c:4 c:4u f:12u p:16v")]
    [InlineData(16, 6, 6, 24, ">p:4+4 f:3 c:16 f:8u p:8v")]
    [InlineData(16, 6, 6, 24, ">f:3 p:9 c:16 f:8u p:4u")]
    [InlineData(5, 3, 3, 7, ">p:9 f:7 c:5")]
    public void Its_kernels_compute_the_windowed_convolution(int c, int h, int w, int f, string schedule)
    {
        var pointwise = Computation.Parse($"conv {c} {h} {w} {f} 1 1");
        var kernel = Kernel.Compile(Nest.Parse(pointwise, schedule));
        var rng = new Random(5);
        Assert.Null(KernelCheck.VerifyAs(kernel, Windowed(c, h, w, f), rng));
        Assert.Null(KernelCheck.Verify(kernel, rng));
    }

    [Fact]
    public void The_hand_schedule_is_a_product_tile_over_the_pixels()
    {
        var tile = RegisterTile.For(Machine.Current);
        var nest = tile.Convolution(new ConvShape(16, 9, 10, 24, 1, 1));
        Assert.Equal(Computation.Parse("conv 16 9 10 24 1 1"), nest.Computation);
        Assert.EndsWith("v", nest.ScheduleKey);
        Assert.Equal("p", nest.Computation.Vars[nest[^1].Var]);
        Assert.Equal("f", nest.Computation.Vars[nest[0].Var]); // the channels' blocks outermost
        Assert.Null(KernelCheck.VerifyAs(Kernel.Compile(nest), Windowed(16, 9, 10, 24), new Random(3)));
    }
}
