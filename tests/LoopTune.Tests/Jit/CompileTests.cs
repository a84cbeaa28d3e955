using System.Diagnostics;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.TestUtil;
using Xunit.Abstractions;

namespace LoopTune.Tests.Jit;

/// <summary>Runs alone: it measures process-wide memory.</summary>
[CollectionDefinition(nameof(MemoryMeasurement), DisableParallelization = true)]
public sealed class MemoryMeasurement;

[Collection(nameof(MemoryMeasurement))]
public class CompileTests(ITestOutputHelper output)
{
    static (long Managed, long WorkingSet) Memory()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var p = Process.GetCurrentProcess();
        return (GC.GetTotalMemory(forceFullCollection: true), p.WorkingSet64);
    }

    static readonly List<Kernel> Leak = [];

    [Fact]
    public void Compiling_many_kernels_keeps_memory_flat()
    {
        var rng = new Random(2024);
        int[] sizes = [.. RandomSchedules.MmSizes.Where(s => s <= 64)];
        JitOptions[] options = [new(512), new(256, UseFma: false), new(128), new(0)];
        (long Managed, long WorkingSet) first = default;
        long statements = 0;
        for (int i = 1; i <= 2000; i++)
        {
            var c = Computation.Matmul(sizes[rng.Next(sizes.Length)], sizes[rng.Next(sizes.Length)], sizes[rng.Next(sizes.Length)]);
            var (nest, actions) = RandomSchedules.Walk(Nest.Initial(c), rng, rng.Next(0, 26));
            if (i % 2 == 0) nest = RandomSchedules.FinishVectorized(nest, actions);
            var kernel = Kernel.Compile(nest, options[i % options.Length]);
            if (Environment.GetEnvironmentVariable("LOOPTUNE_LEAK_SELFTEST") == "1") Leak.Add(kernel);
            statements += kernel.Statements;
            if (i % 100 == 0)   // run some, so the kernels are real code and not just compiled
                Assert.Null(KernelCheck.Verify(kernel, rng));
            if (i == 500) first = Memory();
        }
        var last = Memory();
        const long MB = 1 << 20;
        output.WriteLine($"after 500: managed {first.Managed / MB} MB, working set {first.WorkingSet / MB} MB; " +
                         $"after 2000: managed {last.Managed / MB} MB, working set {last.WorkingSet / MB} MB; {statements} statements");
        // flat is ~0 MB here; keeping every kernel alive (LOOPTUNE_LEAK_SELFTEST=1) grows the heap by ~15 MB and fails this
        Assert.True(last.Managed - first.Managed < 8 * MB, $"managed heap grew from {first.Managed / MB} MB to {last.Managed / MB} MB");
        Assert.True(last.WorkingSet - first.WorkingSet < 100 * MB, $"working set grew from {first.WorkingSet / MB} MB to {last.WorkingSet / MB} MB");
    }

    [Fact]
    public void Run_on_spans_checks_each_length_and_names_the_tensor()
    {
        var c = Computation.Parse("mm 4 5 6");   // C 20, A 24, B 30 floats
        var k = Kernel.Compile(Nest.Initial(c));
        var e = Assert.Throws<ArgumentException>(() => k.Run(new float[19], new float[24], new float[30]));
        Assert.Equal("output", e.ParamName);
        Assert.Contains("output (C) needs 20 floats, got 19", e.Message);
        e = Assert.Throws<ArgumentException>(() => k.Run(new float[20], new float[23], new float[30]));
        Assert.Equal("left", e.ParamName);
        Assert.Contains("left (A) needs 24 floats, got 23", e.Message);
        e = Assert.Throws<ArgumentException>(() => k.Run(new float[20], new float[24], Span<float>.Empty));
        Assert.Equal("right", e.ParamName);
        Assert.Contains("right (B) needs 30 floats, got 0", e.Message);
    }

    [Fact]
    public void Run_on_spans_accumulates_the_product()
    {
        var c = Computation.Parse("mm 2 2 3");
        var k = Kernel.Compile(Nest.Parse(c, "m:2 n:2 >k:3v"));
        float[] a = [1, 2, 3, 4, 5, 6], b = [1, 0, 0, 1, 2, -1], o = [10, 20, 30, 40, 99];   // longer spans are fine
        k.Run(o, a, b);
        // A*B = [[1+0+6, 0+2-3], [4+0+12, 0+5-6]] = [[7, -1], [16, -1]]
        Assert.Equal([17f, 19, 46, 39, 99], o);
        Assert.Equal([1f, 2, 3, 4, 5, 6], a);
    }

    [Fact]
    public void Reference_matches_a_hand_computed_convolution()
    {
        var c = Computation.Parse("O[h] += I[2*h+r] * W[r] h=2 r=2");
        float[] i = [1, 2, 3, 4], w = [10, 1], o = [0.5f, 0];
        var (exact, magnitude) = Reference.Exact(c, o, i, w);
        Assert.Equal([0.5 + 10 + 2, 30 + 4], exact);
        Assert.Equal([0.5 + 10 + 2, 30 + 4], magnitude);
        Reference.Run(c, o, i, w);
        Assert.Equal([12.5f, 34], o);
        Assert.Equal(2 * (2 + 2) * Math.Pow(2, -24), Reference.Tolerance(c));
    }

    [Fact]
    public void The_oracle_rejects_a_wrong_kernel_and_a_guard_overwrite()
    {
        // a kernel computing A * B^T, checked as A * B: the check must fail
        var transposed = Computation.Parse("C[m,n] += A[m,k] * B[n,k] m=8 n=8 k=8");
        var wrong = Kernel.Compile(Nest.Initial(transposed));
        var asIf = Computation.Parse("mm 8 8 8");
        Assert.Contains("output elements wrong", KernelCheck.VerifyAs(wrong, asIf, new Random(7)));
        var buffer = new GuardedBuffer(10, new Random(8));
        Assert.Null(buffer.CheckGuards("X"));
        buffer.Raw[buffer.Offset + buffer.Length] = 0;
        Assert.Contains("1 guard floats of X were overwritten, first 1 floats after", buffer.CheckGuards("X"));
        buffer.Raw[buffer.Offset - 3] = float.NaN;
        Assert.Contains("first 3 floats before", buffer.CheckGuards("X"));
    }
}
