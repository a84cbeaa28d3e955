using LoopTune.Ir;

namespace LoopTune.Tests.Ir;

public sealed class AsConvTests
{
    [Theory]
    [InlineData("conv 16 34 34 32 3 3", 16, 34, 34, 32, 3, 3)]
    [InlineData("conv 1 5 7 3 1 1", 1, 5, 7, 3, 1, 1)]
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=4 h=6 w=5 c=2 r=3 s=2", 2, 8, 6, 4, 3, 2)]
    [InlineData("Y[k,y,x] += F[k,ch,dy,dx] * X[ch,dy+y,x+dx] k=4 y=6 x=5 ch=2 dy=3 dx=2", 2, 8, 6, 4, 3, 2)]
    public void DetectsConvolutions(string spec, int c, int h, int w, int f, int r, int s)
    {
        var shape = Computation.Parse(spec).AsConv();
        Assert.Equal(new ConvShape(c, h, w, f, r, s), shape);
        Assert.Equal(Computation.Parse(spec).Flops, shape!.Value.Flops);
        Assert.Null(Computation.Parse(spec).AsMatmul());
    }

    [Theory]
    [InlineData("mm 8 8 8")]
    [InlineData("O[f,h,w] += I[c,2*h+r,w+s] * W[f,c,r,s] f=4 h=3 w=5 c=2 r=3 s=2")]
    [InlineData("O[h,w,f] += I[c,h+r,w+s] * W[f,c,r,s] f=4 h=6 w=5 c=2 r=3 s=2")]
    [InlineData("O[f,h,w] += I[c,h+r,w+s] * W[c,f,r,s] f=4 h=6 w=5 c=2 r=3 s=2")]
    [InlineData("O[f,h,w] += I[c,h+s,w+r] * W[f,c,r,s] f=4 h=6 w=5 c=2 r=3 s=2")]
    [InlineData("O[f,h] += I[c,h+r] * W[f,c,r] f=3 h=4 c=2 r=3")]
    public void OtherContractionsAreNotConvolutions(string spec) => Assert.Null(Computation.Parse(spec).AsConv());
}
