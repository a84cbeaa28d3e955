using LoopTune.Ir;

namespace LoopTune.Tests.Ir;

public class ComputationTests
{
    const string Mm = "C[m,n] += A[m,k] * B[k,n] m=128 n=64 k=32";

    [Fact]
    public void Matmul_long_form_parses_vars_sizes_shapes_and_strides()
    {
        var c = Computation.Parse(Mm);
        Assert.Equal(["m", "n", "k"], c.Vars.ToArray());
        Assert.Equal([128, 64, 32], c.Sizes.ToArray());
        Assert.Equal([false, false, true], c.IsReduction.ToArray());
        Assert.Equal(2.0 * 128 * 64 * 32, c.Flops);
        Assert.Equal(["C", "A", "B"], c.Tensors.Select(t => t.Name));
        Assert.Same(c.Output, c.Tensors[0]);
        Assert.Same(c.Left, c.Tensors[1]);
        Assert.Same(c.Right, c.Tensors[2]);
        Assert.Equal([128, 64], c.Output.Shape.ToArray());
        Assert.Equal([128, 32], c.Left.Shape.ToArray());
        Assert.Equal([32, 64], c.Right.Shape.ToArray());
        Assert.Equal([128L * 64, 128L * 32, 32L * 64], c.Tensors.Select(t => t.Length));
        // per variable (m, n, k): elements one step moves
        Assert.Equal([64L, 1, 0], c.Output.VarStrides.ToArray());
        Assert.Equal([32L, 0, 1], c.Left.VarStrides.ToArray());
        Assert.Equal([0L, 1, 64], c.Right.VarStrides.ToArray());
        Assert.Equal(Mm, c.Text);
        Assert.Equal("C[m,n] += A[m,k] * B[k,n]", c.Statement);
        Assert.Null(c.Shorthand);
        Assert.Equal(Mm, c.ToString());
    }

    [Fact]
    public void Mm_shorthand_equals_the_long_form()
    {
        var c = Computation.Parse("mm 64 80 96");
        Assert.Equal("mm 64 80 96", c.Shorthand);
        Assert.Equal("mm 64 80 96", c.ToString());
        Assert.Equal("C[m,n] += A[m,k] * B[k,n] m=64 n=80 k=96", c.Text);
        Assert.Equal(Computation.Parse("C[m,n] += A[m,k] * B[k,n] k=96 m=64 n=80"), c);
        Assert.Equal(c, Computation.Matmul(64, 80, 96));
        Assert.Equal(c.GetHashCode(), Computation.Parse(c.Text).GetHashCode());
        Assert.NotEqual(c, Computation.Parse("mm 64 96 80"));
        Assert.Equal(2.0 * 64 * 80 * 96, c.Flops);
    }

    [Fact]
    public void Conv_long_form_orders_reductions_by_first_use()
    {
        var c = Computation.Parse("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=4 h=6 w=5 c=3 r=3 s=2");
        Assert.Equal(["f", "h", "w", "c", "r", "s"], c.Vars.ToArray());
        Assert.Equal([4, 6, 5, 3, 3, 2], c.Sizes.ToArray());
        Assert.Equal([false, false, false, true, true, true], c.IsReduction.ToArray());
        Assert.Equal([4, 6, 5], c.Output.Shape.ToArray());
        Assert.Equal([3, 8, 6], c.Left.Shape.ToArray());        // h+r spans 6+3-1, w+s spans 5+2-1
        Assert.Equal([4, 3, 3, 2], c.Right.Shape.ToArray());
        Assert.Equal([30L, 5, 1, 0, 0, 0], c.Output.VarStrides.ToArray());
        Assert.Equal([0L, 6, 1, 48, 6, 1], c.Left.VarStrides.ToArray());
        Assert.Equal([18L, 0, 0, 6, 2, 1], c.Right.VarStrides.ToArray());
        Assert.Equal(2.0 * 4 * 6 * 5 * 3 * 3 * 2, c.Flops);
    }

    [Fact]
    public void Conv_shorthand_is_valid_padding_stride_one()
    {
        var c = Computation.Parse("conv 3 8 6 4 3 2");   // C H W F R S
        Assert.Equal("conv 3 8 6 4 3 2", c.Shorthand);
        Assert.Equal([4, 6, 5], c.Output.Shape.ToArray());          // F x (H-R+1) x (W-S+1)
        Assert.Equal([3, 8, 6], c.Left.Shape.ToArray());            // C x H x W
        Assert.Equal([4, 3, 3, 2], c.Right.Shape.ToArray());        // F x C x R x S
        Assert.Equal("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=4 h=6 w=5 c=3 r=3 s=2", c.Text);
        Assert.Equal(Computation.Parse(c.Text), c);
        Assert.Equal(c, Computation.Conv(3, 8, 6, 4, 3, 2));
        var full = Computation.Parse("conv 2 3 4 5 3 4");   // kernel as large as the image: a 1x1 output
        Assert.Equal([5, 1, 1], full.Output.Shape.ToArray());
        Assert.Equal([2, 3, 4], full.Left.Shape.ToArray());
    }

    [Fact]
    public void Conv_shorthand_with_a_block_puts_the_output_channels_in_blocks_of_E_innermost()
    {
        var c = Computation.Parse("conv 3 8 6 12 3 2 4");   // C H W F R S E
        Assert.Equal("conv 3 8 6 12 3 2 4", c.Shorthand);
        Assert.Equal("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=3 h=6 w=5 e=4 c=3 r=3 s=2", c.Text);
        Assert.Equal([3, 6, 5, 4], c.Output.Shape.ToArray());       // F/E x OH x OW x E
        Assert.Equal([3, 8, 6], c.Left.Shape.ToArray());            // the image as it is
        Assert.Equal([3, 3, 3, 2, 4], c.Right.Shape.ToArray());     // F/E x C x R x S x E
        Assert.Equal(c, Computation.ConvBlocked(3, 8, 6, 12, 3, 2, 4));
        Assert.Equal(c, new ConvShape(3, 8, 6, 12, 3, 2).ToBlocked(4));
        Assert.Equal(Computation.Conv(3, 8, 6, 12, 3, 2).Flops, c.Flops);
        // recognised whatever the names and the order of the inputs; the plain form is not a blocked one and vice versa
        Assert.Equal((new ConvShape(3, 8, 6, 12, 3, 2), 4), c.AsBlockedConv());
        Assert.Equal(new ConvShape(3, 8, 6, 12, 3, 2), c.Convolution);
        Assert.Null(c.AsConv());
        var renamed = Computation.Parse("Y[a,y,x,b] += K[a,i,u,v,b] * X[i,y+u,x+v] a=3 y=6 x=5 b=4 i=3 u=3 v=2");
        Assert.Equal((new ConvShape(3, 8, 6, 12, 3, 2), 4), renamed.AsBlockedConv());
        Assert.Null(Computation.Parse("conv 3 8 6 12 3 2").AsBlockedConv());
        Assert.Equal(new ConvShape(3, 8, 6, 12, 3, 2), Computation.Parse("conv 3 8 6 12 3 2").Convolution);
        // not a convolution: the block's index is not the filter's last, or the window is not a sum
        Assert.Null(Computation.Parse("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,e,s] g=3 h=6 w=5 e=4 c=3 r=3 s=2").AsBlockedConv());
        Assert.Null(Computation.Parse("O[g,h,w,e] += I[c,h,w+s] * W[g,c,r,s,e] g=3 h=6 w=5 e=4 c=3 r=3 s=2").Convolution);
        Assert.Null(Computation.Parse("mm 4 4 4").Convolution);
    }

    [Fact]
    public void A_blocked_convolution_computes_the_plain_one_with_its_weights_and_output_in_blocks()
    {
        // the oracle: the plain convolution's reference; W'[g,c,r,s,e] = W[E*g+e,c,r,s], O[E*g+e,h,w] = O'[g,h,w,e]
        const int C = 3, H = 7, W = 6, F = 8, R = 3, S = 2, E = 4;
        var plain = Computation.Conv(C, H, W, F, R, S);
        var blocked = Computation.ConvBlocked(C, H, W, F, R, S, E);
        var rng = new Random(5);
        var image = new float[plain.Left.Length];
        var weights = new float[plain.Right.Length];
        LoopTune.Jit.Reference.FillUniform(image, rng);
        LoopTune.Jit.Reference.FillUniform(weights, rng);
        var packed = new float[blocked.Right.Length];
        int taps = C * R * S, oh = H - R + 1, ow = W - S + 1;
        for (int f = 0; f < F; f++)
            for (int t = 0; t < taps; t++) packed[(f / E * taps + t) * E + f % E] = weights[f * taps + t];
        var want = new float[plain.Output.Length];
        var got = new float[blocked.Output.Length];
        LoopTune.Jit.Reference.Run(plain, want, image, weights);
        LoopTune.Jit.Reference.Run(blocked, got, image, packed);
        for (int f = 0; f < F; f++)
            for (int p = 0; p < oh * ow; p++)
                Assert.Equal(want[f * oh * ow + p], got[(f / E * oh * ow + p) * E + f % E], 5);
    }

    [Fact]
    public void Coefficients_scale_shapes_and_strides()
    {
        var c = Computation.Parse("O[f,h] += I[c,2*h+r] * W[f,c,r] f=2 h=5 c=3 r=3");
        Assert.Equal([3, 2 * 4 + 2 + 1], c.Left.Shape.ToArray());
        Assert.Equal([0L, 2, 11, 1], c.Left.VarStrides.ToArray());  // f, h, c, r
        Assert.Equal("O[f,h] += I[c,2*h+r] * W[f,c,r] f=2 h=5 c=3 r=3", c.Text);
        var d = Computation.Parse("O[x] += I[3*x + 2*y] * K[y] x=4 y=2");
        Assert.Equal([3 * 3 + 2 * 1 + 1], d.Left.Shape.ToArray());
        Assert.Equal([3L, 2], d.Left.VarStrides.ToArray());
        Assert.Equal("O[x] += I[3*x+2*y] * K[y] x=4 y=2", d.Text);
    }

    [Theory]
    [InlineData(Mm)]
    [InlineData("  C [ m , n ]+=A[m,k]*B[k,n] ,k=3; m=1 n=2 ")]
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] s=1 r=2 c=3 w=4 h=5 f=6")]
    [InlineData("O[f,h] += I[c,2*h+r] * W[f,c,r] f=2 h=5 c=3 r=3")]
    [InlineData("Out[i] += X[j,i] * Y[j] i=7 j=9")]
    [InlineData("mm 1 2 3")]
    [InlineData("conv 1 12 11 5 3 1")]
    public void Canonical_text_reparses_to_an_equal_computation(string spec)
    {
        var c = Computation.Parse(spec);
        var again = Computation.Parse(c.Text);
        Assert.Equal(c, again);
        Assert.Equal(c.Text, again.Text);
        Assert.Equal(c.Vars.ToArray(), again.Vars.ToArray());
        Assert.Equal(c.Sizes.ToArray(), again.Sizes.ToArray());
        Assert.Equal(c.IsReduction.ToArray(), again.IsReduction.ToArray());
        for (int t = 0; t < 3; t++)
        {
            Assert.Equal(c.Tensors[t].Name, again.Tensors[t].Name);
            Assert.Equal(c.Tensors[t].Shape.ToArray(), again.Tensors[t].Shape.ToArray());
            Assert.Equal(c.Tensors[t].VarStrides.ToArray(), again.Tensors[t].VarStrides.ToArray());
        }
    }

    [Theory]
    [InlineData("C[m,n] += A[m,k] * B[k,n] m=4 n=4", 14, "no size given for variable 'k'")]
    [InlineData("C[m,n] += A[m,k] * B[k,n] m=4 n=4 k=4 q=2", 38, "'q', which no tensor uses")]
    [InlineData("C[m,n] += A[m,k] * B[k,n] m=4 n=4 k=4 m=5", 38, "size of 'm' given twice")]
    [InlineData("C[m,n] += A[m,k] * B[k,n] m=0 n=4 k=4", 28, "'0' is not a size")]
    [InlineData("C[m,n] += A[m,k] * B[k,n] m=x n=4 k=4", 28, "expected a positive integer")]
    [InlineData("C[m,n] += A[m,k] * B[k,n] m=4 n=2000000 k=4", 32, "is not a size")]
    [InlineData("C[m,n] += A[m,k * B[k,n] m=4 n=4 k=4", 16, "expected ']'")]
    [InlineData("C[m,n] += A[m,k] * B[k,n", 24, "expected ']' but the spec ended")]
    [InlineData("C[m,n] = A[m,k] * B[k,n] m=4 n=4 k=4", 7, "expected '+='")]
    [InlineData("C[m,n] += A[m,k] B[k,n] m=4 n=4 k=4", 17, "expected '*'")]
    [InlineData("C[m+k,n] += A[m,k] * B[k,n] m=4 n=4 k=4", 2, "must be a single variable")]
    [InlineData("C[m, 2*n] += A[m,k] * B[k,n] m=4 n=4 k=4", 5, "must be a single variable")]
    [InlineData("C[m,m] += A[m,k] * B[k,m] m=4 k=4", 4, "indexes output C twice")]
    [InlineData("O[h] += I[h+h] * W[h] h=3", 12, "appears twice in one index")]
    [InlineData("A[m,n] += A[m,k] * B[k,n] m=4 n=4 k=4", 0, "distinct names")]
    [InlineData("C[m,n] += A[m,k] * C[k,n] m=4 n=4 k=4", 0, "distinct names")]
    [InlineData("mm 1 2", 6, "'mm' needs 3 sizes")]
    [InlineData("conv 1 2 3", 10, "'conv' needs 6 sizes")]
    [InlineData("conv 3 8 8 12 3 3 5", 18, "the block E = 5 does not divide the 12 output channels")]
    [InlineData("conv 3 8 8 12 3 3 4 2", 20, "unexpected text after 'conv' with 7 sizes")]
    [InlineData("mm 0 4 4", 3, "'0' is not a size")]
    [InlineData("mm 4 4 4 x", 9, "unexpected text")]
    [InlineData("mm 4 4 4x", 8, "unexpected text")]
    [InlineData("C[m,n] += A[m,k] * B[k,n] m=4 n=4 k=4 )", 38, "expected '='")]
    [InlineData("", 0, "expected a tensor name")]
    public void Bad_spec_throws_SpecError_with_a_caret_at_the_offending_column(string spec, int position, string problem)
    {
        var e = Assert.Throws<SpecError>(() => Computation.Parse(spec));
        Assert.IsAssignableFrom<LoopTuneException>(e);
        Assert.Equal(position, e.Position);
        Assert.Contains(problem, e.Problem);
        AssertCaretAt(e, spec, position);
    }

    [Fact]
    public void Tensor_too_large_in_a_shorthand_quotes_what_the_user_typed()
    {
        var e = Assert.Throws<SpecError>(() => Computation.Parse("mm 65536 65536 1"));
        Assert.Contains("tensor C would hold", e.Problem);
        Assert.Equal("mm 65536 65536 1", e.Spec);
        AssertCaretAt(e, e.Spec, 0);
    }

    [Theory]
    [InlineData("conv 3 4 4 2 5 3", 13)]   // R = 5 > H = 4: the caret belongs under R
    [InlineData("conv 3 4 4 2 3 6", 15)]   // S = 6 > W = 4: under S
    public void Conv_kernel_larger_than_image_points_at_the_kernel_size(string spec, int position)
    {
        var e = Assert.Throws<SpecError>(() => Computation.Parse(spec));
        Assert.Contains("larger than the image", e.Problem);
        Assert.Equal(spec, e.Spec);
        Assert.Equal(position, e.Position);
        AssertCaretAt(e, spec, position);
    }

    static void AssertCaretAt(SpecError e, string spec, int position)
    {
        var lines = e.Message.Split('\n');
        Assert.Equal(3, lines.Length);
        Assert.Contains($"(at column {position + 1})", lines[0]);
        Assert.Equal("  " + spec, lines[1]);
        Assert.StartsWith("  " + new string(' ', position) + "^", lines[2]);
        Assert.Equal(lines[2].TrimEnd('^').Length, 2 + position);   // nothing but spaces before the caret
    }
}
