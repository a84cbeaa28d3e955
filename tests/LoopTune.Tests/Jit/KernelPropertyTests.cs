using System.Diagnostics;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.TestUtil;
using Xunit.Abstractions;

namespace LoopTune.Tests.Jit;

/// <summary>Random computations under random legal schedules, compiled under every vector width, against the reference.</summary>
public class KernelPropertyTests(ITestOutputHelper output)
{
    /// <summary>Schedules per batch; LOOPTUNE_TEST_SCALE=N multiplies it for a deeper local hunt.</summary>
    static readonly int WalksPerBatch = 60 * (int.TryParse(Environment.GetEnvironmentVariable("LOOPTUNE_TEST_SCALE"), out int s) && s > 0 ? s : 1);

    public static TheoryData<string, int> Batches()
    {
        var d = new TheoryData<string, int>();
        for (int b = 0; b < 6; b++) d.Add("mm", b);
        for (int b = 0; b < 4; b++) d.Add("conv", b);
        for (int b = 0; b < 2; b++) d.Add("strided", b);
        for (int b = 0; b < 2; b++) d.Add("other", b);
        return d;
    }

    /// <summary>The option sets every schedule is compiled under: each width, fused and unfused, sometimes a small code budget.</summary>
    static JitOptions[] OptionSets(Random rng) =>
    [
        new(MaxVectorBits: 512, UseFma: true),
        new(MaxVectorBits: 512, UseFma: false, MaxOperations: rng.Next(3) == 0 ? 24 : 2048),
        new(MaxVectorBits: 256, UseFma: rng.Next(2) == 0, MaskedTails: rng.Next(2) == 0, WideInputLoads: rng.Next(2) == 0, FuseLanes: rng.Next(2) == 0),
        new(MaxVectorBits: 128, UseFma: rng.Next(2) == 0, MaskedTails: rng.Next(2) == 0, WideInputLoads: rng.Next(2) == 0, FuseLanes: rng.Next(2) == 0),
        new(MaxVectorBits: 0, UseFma: rng.Next(2) == 0),
    ];

    [Theory]
    [MemberData(nameof(Batches))]
    public void Random_schedules_match_the_reference(string kind, int batch)
    {
        var failures = new List<string>();
        int kernels = 0, vectorized = 0, unrolled = 0, tails = 0;
        var clock = Stopwatch.StartNew();
        for (int w = 0; w < WalksPerBatch; w++)
        {
            int seed = 1_000_000 * batch + w;
            var rng = new Random(seed * 31 + kind.Length);
            var c = RandomSchedules.Of(kind, rng);
            var (nest, actions) = RandomSchedules.Walk(Nest.Initial(c), rng, rng.Next(0, 26));
            if (w % 2 == 1) nest = RandomSchedules.FinishVectorized(nest, actions);   // half the schedules end vectorized
            vectorized += nest.Loops.Any(l => l.IsVectorized) ? 1 : 0;
            unrolled += nest.Loops.Any(l => l.IsUnrolled) ? 1 : 0;
            tails += nest.Loops.Any(l => l.Tail > 0) ? 1 : 0;
            foreach (var options in OptionSets(rng))
            {
                kernels++;
                if (KernelCheck.CompileAndVerify(nest, options, rng) is string problem)
                    failures.Add($"[{kind} seed {seed}] {RandomSchedules.Describe(c, actions)} options {KernelCheck.Describe(options)}: {problem}");
            }
        }
        output.WriteLine($"{kind} batch {batch}: {kernels} kernels ({WalksPerBatch} schedules: {vectorized} vectorized, {unrolled} unrolled, {tails} with tails) in {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(failures.Count == 0, $"{failures.Count} of {kernels} kernels wrong:\n" + string.Join("\n", failures.Take(8)));
    }
}
