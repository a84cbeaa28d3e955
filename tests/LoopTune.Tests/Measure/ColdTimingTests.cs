using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using LoopTune.Store;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Measure;

/// <summary>Timing with one operand cold (<see cref="TimingContext"/>): the workspace's copies of the operand pass the
/// threshold together, a kernel timed on them reads them in turn and computes the reference on each, the runners of one
/// workspace share the turn, and an evaluator never answers from a store of the other context.</summary>
public sealed class ColdTimingTests
{
    static readonly TimingContext ColdRight = TimingContext.ColdOperand(Operand.Right), ColdLeft = TimingContext.ColdOperand(Operand.Left);

    [Fact]
    public void The_threshold_is_twice_the_last_level_cache_capped_and_the_copies_pass_it_together()
    {
        Assert.Equal(64L << 20, TimingContext.ColdBytes(new CacheSizes(48, 1024, 32 << 10, "sysfs")));
        Assert.Equal(2 * TimingContext.MaxCacheBytes, TimingContext.ColdBytes(new CacheSizes(48, 1024, 508 << 10, "cpuid"))); // a VM's host-wide figure
        Assert.Equal(2 * TimingContext.MaxCacheBytes, TimingContext.ColdBytes(new CacheSizes(48, 1024, null, "unknown")));
        long weights = 512L * 512 * 9 * 4; // the 512-channel 3x3 layer's 9.4 MB
        int copies = ColdRight.Copies(weights, 64L << 20);
        Assert.True(copies * weights >= 64L << 20 && (copies - 1) * weights < 64L << 20, $"{copies}");
        Assert.Equal(2, ColdRight.Copies(1L << 30, 64L << 20)); // larger than the threshold alone: never the same copy twice in a row
        Assert.Equal(1, TimingContext.Hot.Copies(weights, 64L << 20));
    }

    [Theory]
    [InlineData(Operand.Right)]
    [InlineData(Operand.Left)]
    public void A_cold_workspace_holds_distinct_copies_of_the_operand_with_its_values(Operand operand)
    {
        var c = Computation.Matmul(24, 40, 32);
        var context = TimingContext.ColdOperand(operand);
        using var hot = new KernelTiming.Workspace(c);
        for (int round = 0; round < 2; round++) // the second workspace's copies in the block the first one left
        {
            using var cold = new KernelTiming.Workspace(c, 1, context, coldBytes: 64 << 10);
            var original = operand == Operand.Left ? cold.Left : cold.Right;
            long bytes = original.Length * sizeof(float);
            Assert.Equal(1, hot.CopyCount);
            Assert.Equal(context.Copies(bytes, 64 << 10), cold.CopyCount);
            Assert.True(cold.CopyCount * bytes >= 64 << 10);
            Assert.Equal(Address(original), Address(cold, 0));
            var starts = Enumerable.Range(0, cold.CopyCount).Select(i => Address(cold, i)).Order().ToList();
            Assert.All(starts.Zip(starts.Skip(1)), p => Assert.True(p.Second - p.First >= bytes, "copies overlap"));
            Assert.All(starts, a => Assert.Equal(0, a % AlignedBuffer.Alignment));
            Assert.All(Enumerable.Range(0, cold.CopyCount), i => Assert.Equal(original.Span.ToArray(), cold.Copy(i).ToArray()));
            // the same seed fills the same values as a hot workspace
            Assert.Equal((operand == Operand.Left ? hot.Left : hot.Right).Span.ToArray(), original.Span.ToArray());
            Mark(cold); // what the next round must not see
        }
    }

    static unsafe nint Address(AlignedBuffer b) => (nint)b.Pointer;

    static unsafe nint Address(KernelTiming.Workspace w, int i) => (nint)w.CopyPointer(i);

    /// <summary>Each copy scaled by its index plus one: a run that reads copy i computes i + 1 times the product of the
    /// original operands, so the output says which copy it read, and that the kernel computed the product.</summary>
    static void Mark(KernelTiming.Workspace w)
    {
        for (int i = 1; i < w.CopyCount; i++)
        {
            var span = w.Copy(i);
            for (int j = 0; j < span.Length; j++) span[j] *= i + 1;
        }
    }

    [Theory]
    [InlineData("mm 24 40 32", ">m:8 n:5 k:32 m:3u n:8v", Operand.Right)]
    [InlineData("mm 24 40 32", ">m:8 n:5 k:32 m:3u n:8v", Operand.Left)]
    [InlineData("O[g,h,w,e] += I[c,h+r,w+s] * W[g,c,r,s,e] g=2 h=5 w=5 e=16 c=8 r=3 s=3", ">g:2 c:8 r:3 s:3 h:5 w:5u e:16v", Operand.Right)]
    public void A_kernel_timed_cold_reads_the_copies_in_turn_and_computes_the_reference_on_each(string spec, string schedule, Operand operand)
    {
        var c = Computation.Parse(spec);
        var kernel = Kernel.Compile(Nest.Parse(c, schedule));
        using var w = new KernelTiming.Workspace(c, 1, TimingContext.ColdOperand(operand), coldBytes: 32 << 10);
        int copies = w.CopyCount;
        Assert.InRange(copies, 3, 64);
        Mark(w);
        var left = w.Left.Span.ToArray();
        var right = w.Right.Span.ToArray();
        var (exact, magnitude) = Reference.Exact(c, new float[c.Output.Length], left, right);
        double tolerance = Reference.Tolerance(c);
        var run = KernelTiming.Runner(kernel, w);
        for (int i = 0; i < copies + 2; i++) // past the last copy: the turn starts again at the first
        {
            w.Output.Clear();
            run();
            float scale = i % copies + 1;
            var output = w.Output.Span;
            for (int j = 0; j < output.Length; j++)
                Assert.True(Math.Abs(output[j] - scale * exact[j]) <= scale * (tolerance * magnitude[j] + 1e-30), $"run {i}, element {j}: {output[j]}, expected {scale * exact[j]}");
        }
    }

    [Fact]
    public void Runners_on_one_workspace_share_the_turn_so_that_side_by_side_no_run_reads_the_copy_the_last_one_read()
    {
        var c = Computation.Matmul(8, 16, 8);
        var a = Kernel.Compile(Nest.Initial(c));
        var b = Kernel.Compile(Nest.Parse(c, ">m:8 k:8 n:16v"));
        using var w = new KernelTiming.Workspace(c, 1, ColdRight, coldBytes: 4 << 10);
        Mark(w);
        var (exact, _) = Reference.Exact(c, new float[c.Output.Length], w.Left.Span.ToArray(), w.Right.Span.ToArray());
        Action[] runs = [KernelTiming.Runner(a, w), KernelTiming.Runner(b, w)];
        for (int i = 0; i < 6; i++)
        {
            w.Output.Clear();
            runs[i % 2]();
            Assert.Equal((i % w.CopyCount + 1) * exact[0], w.Output.Span[0], 1e-3f);
        }
    }

    [Fact]
    public void A_cold_evaluator_times_and_confirms_on_the_copies_and_refuses_a_store_of_hot_figures()
    {
        var c = Computation.Matmul(32, 32, 32);
        using var dir = new TempFolder();
        string db = dir["m.db"];
        var nests = new[] { Nest.Initial(c), Nest.Parse(c, ">m:32 k:32 n:2 n:16v") };
        using (var cold = new KernelEvaluator(MeasureOptions.Quick, new MeasurementStore(db, "test machine", MeasurementStore.RuntimeAt(1, ColdRight))) { Context = ColdRight })
        {
            Assert.True(cold.Evaluate(nests[1]).Gflops > 0);
            Assert.Equal(ColdRight, cold.Prepare(c).Context);
            Assert.InRange(cold.Fastest(nests), 0, 1);
        }
        using (var hot = new MeasurementStore(db, "test machine", MeasurementStore.RuntimeAt(1)))
        {
            Assert.False(hot.TryGet(nests[1], out _)); // the cold figure is not a hot one
            using var mixed = new KernelEvaluator(MeasureOptions.Quick, new MeasurementStore(db, "test machine", MeasurementStore.RuntimeAt(1))) { Context = ColdLeft };
            var e = Assert.Throws<InvalidOperationException>(() => mixed.Evaluate(nests[0]));
            Assert.Contains("must not mix", e.Message);
        }
        using var again = new MeasurementStore(db, "test machine", MeasurementStore.RuntimeAt(1, ColdRight));
        Assert.True(again.TryGet(nests[1], out var kept));
        Assert.True(kept.Gflops > 0);
        Assert.False(again.TryGet(nests[0], out _)); // never timed whole by the cold evaluator alone (Fastest stores nothing)
    }
}
