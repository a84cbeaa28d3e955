using System.Text.Json.Nodes;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Measure;

/// <summary>The remembered peak against the oracle that no kernel runs faster than the FMA peak: a kernel timed whole above
/// the remembered figure shows it was measured slow, and the figure is measured again; one below it leaves it alone.</summary>
public sealed class PeakCacheTests : IDisposable
{
    readonly TempFolder temp = new("looptune-peak-cache");

    public void Dispose() => temp.Dispose();

    static readonly Nest Tile = Nest.Parse(Computation.Matmul(64, 64, 64), ">m:8 n:4 k:64 m:8u n:16v");

    static JsonObject Table(string path) => JsonNode.Parse(File.ReadAllText(path))!.AsObject();

    [Fact]
    public void A_kernel_faster_than_the_remembered_peak_has_the_peak_measured_again_and_the_fma_timing_forgotten()
    {
        using var home = DataFolder.Use(temp.Path);
        int bits = JitOptions.Default.VectorBits;
        string key = Machine.KeyAt(bits), machine = temp["machine.json"];
        PeakCache.Remember(1.0, bits); // a figure no vectorized kernel stays under
        File.WriteAllText(machine, new JsonObject { [key] = new JsonObject { ["clock_ghz"] = 0.5, ["fma_latency_cycles"] = 40.0 } }.ToJsonString());
        var warnings = new StringWriter();
        KernelReport report;
        using (Warnings.To(warnings)) report = KernelReport.Run(Tile, MeasureOptions.Quick, peers: false);
        Assert.True(report.Verification.Passed, report.Verification.Problem);
        double remembered = Table(temp["peak.json"])[key]!.GetValue<double>();
        Assert.True(remembered >= report.Gflops / report.Kernel.Threads, $"remembered {remembered}, the kernel ran {report.Gflops}");
        Assert.Equal(remembered, report.PeakGflops);
        Assert.True(report.FractionOfPeak <= 1, $"{report.FractionOfPeak}");
        Assert.Contains("the remembered peak of 1.0 GFLOPS", warnings.ToString());
        Assert.False(Table(machine).ContainsKey(key), "the FMA timing derived from the old peak is forgotten");
        // the kernel's own speed is a lower bound of the peak: the same kernel again does not set it off
        warnings.GetStringBuilder().Clear();
        using (Warnings.To(warnings)) Assert.Equal(remembered, PeakCache.Checked(remembered, bits));
        Assert.Empty(warnings.ToString());
    }

    [Fact]
    public void A_kernel_below_the_remembered_peak_leaves_it_as_it_is()
    {
        using var home = DataFolder.Use(temp.Path);
        int bits = JitOptions.Default.VectorBits;
        PeakCache.Remember(1e6, bits);
        string before = File.ReadAllText(temp["peak.json"]);
        var warnings = new StringWriter();
        KernelReport report;
        using (Warnings.To(warnings)) report = KernelReport.Run(Tile, MeasureOptions.Quick, peers: false);
        Assert.Equal(1e6, report.PeakGflops);
        Assert.Equal(before, File.ReadAllText(temp["peak.json"]));
        Assert.Empty(warnings.ToString());
        Assert.Equal(1e6, PeakCache.Checked(1.04e6, bits)); // within the tolerance
        Assert.Equal(1e6, PeakCache.Checked(double.NaN, bits));
    }
}
