using LoopTune.Measure;

namespace LoopTune.Tests.Measure;

public sealed class PeakTests
{
    [Fact]
    public void MeasuresAPositiveFiniteNumber()
    {
        double gflops = Peak.MeasureGflops(new MeasureOptions(0.002, 0.01, 3, 0.001, 100));
        Assert.True(gflops > 0 && double.IsFinite(gflops), $"{gflops}");
        Assert.Contains(Peak.VectorBits, new[] { 128, 256, 512 });
    }

    [Theory]
    [InlineData(128, 1, true)]
    [InlineData(128, 12, false)]
    [InlineData(256, 12, true)]
    [InlineData(256, 5, false)]
    [InlineData(512, 12, true)]
    [InlineData(512, 3, false)]
    public void KernelComputesTheChainsItClaims(int bits, int chains, bool fused)
    {
        var kernel = PeakKernel.Create(bits, chains, fused);
        const long iterations = 37;
        const float x = 0.75f, y = 0.5f;
        double expected = 0;
        for (int c = 0; c < chains; c++)
        {
            float acc = (c + 1) / 1024f;
            for (long i = 0; i < iterations; i++) acc = acc * x + y;
            expected += (double)acc * kernel.Lanes;
        }
        Assert.Equal(expected, kernel.Run(iterations, x, y), expected * 1e-5);
        Assert.Equal(2.0 * chains * bits / 32, kernel.FlopsPerIteration);
    }
}
