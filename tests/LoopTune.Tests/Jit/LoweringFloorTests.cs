using System.Text;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.TestUtil;
using Xunit.Abstractions;

namespace LoopTune.Tests.Jit;

/// <summary>The lowering's floor (an unroll sure to pass the code budget is dropped without being lowered first) changes
/// nothing but the time: the same program, statements and notes as lowering every attempt up to the budget.</summary>
public class LoweringFloorTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(RandomSchedules.FiveBatches), MemberType = typeof(RandomSchedules))]
    public void The_floor_lowers_random_schedules_as_the_budget_alone_does(string kind, int batch)
    {
        int lowered = 0, dropped = 0;
        for (int w = 0; w < 120; w++)
        {
            int seed = 1_000_000 * batch + w;
            var rng = new Random(seed * 17 + kind.Length);
            var c = RandomSchedules.Of(kind, rng);
            var (nest, actions) = RandomSchedules.Walk(Nest.Initial(c), rng, rng.Next(4, 30));
            if (w % 2 == 1) nest = RandomSchedules.FinishVectorized(nest, actions);
            foreach (var options in new JitOptions[]
            {
                new(MaxOperations: rng.Next(8, 400)), new(MaxVectorBits: 256, MaxOperations: rng.Next(8, 200)),
                new(MaxVectorBits: 0, MaxOperations: rng.Next(8, 120)), new(),
            })
            {
                var fast = Lowering.Lower(nest, options);
                var slow = Lowering.Lower(nest, options, floor: false);
                string what = $"[{kind} seed {seed}] {RandomSchedules.Describe(c, actions)} options {KernelCheck.Describe(options)}";
                Assert.True(Dump(fast.Program) == Dump(slow.Program), what);
                Assert.True(fast.Statements == slow.Statements && fast.BlockStart == slow.BlockStart && fast.ReadsPast == slow.ReadsPast, what);
                Assert.Equal(slow.Notes, fast.Notes);
                lowered++;
                dropped += fast.Notes.Count(n => n.Contains("not applied", StringComparison.Ordinal));
            }
        }
        output.WriteLine($"{kind} batch {batch}: {lowered} lowerings, {dropped} unrolls dropped for the budget");
        Assert.True(dropped >= 20, $"only {dropped} unrolls dropped: the budget was hardly tested");
    }

    /// <summary>A recorded schedule whose unroll is far past the budget (64 loops of 16 statements) keeps its loop, as
    /// before, and computes the reference's result.</summary>
    [Fact]
    public void An_unroll_far_past_the_budget_is_dropped_and_the_kernel_is_right()
    {
        var nest = Nest.Parse(Computation.Parse("mm 128 128 128"), ">m:16 n:4 k:64u k:2 m:8u n:32v");
        var k = Kernel.Compile(nest);
        Assert.Equal(["unroll of k not applied: the kernel would spell out more than 1024 operations"], k.Notes.Where(n => n.StartsWith("unroll", StringComparison.Ordinal)));
        Assert.Equal(Dump(Lowering.Lower(nest, JitOptions.Default, floor: false).Program), Dump(Lowering.Lower(nest, JitOptions.Default).Program));
        Assert.Null(KernelCheck.Verify(k, new Random(7)));
    }

    /// <summary>An unroll of one iteration (<c>h:1+12u</c>) above unrolls past the budget: dropping it leaves the same
    /// program, so the unroll inside goes at once too, with both notes, as lowering each attempt in turn does.</summary>
    [Theory]
    [InlineData("conv 64 30 30 64 3 3", ">h:1+12u f:4 h:16 r:1+1 c:64 s:1+1 f:16u s:2u r:2u w:28v", "h", "f'")]
    [InlineData("mm 40 64 64", ">m:1+8u m:4 n:2 k:64u m:8u n:32v", "m", "k")]
    public void An_unroll_of_one_iteration_goes_with_the_next(string spec, string schedule, string first, string second)
    {
        var nest = Nest.Parse(Computation.Parse(spec), schedule);
        var fast = Lowering.Lower(nest, JitOptions.Default);
        var slow = Lowering.Lower(nest, JitOptions.Default, floor: false);
        Assert.Equal(Dump(slow.Program), Dump(fast.Program));
        Assert.Equal(slow.Notes, fast.Notes);
        Assert.Equal([$"unroll of {first} not applied", $"unroll of {second} not applied"],
            fast.Notes.Where(n => n.StartsWith("unroll", StringComparison.Ordinal)).Select(n => n[..n.IndexOf(':')]));
        Assert.Null(KernelCheck.Verify(Kernel.Compile(nest), new Random(11)));
    }

    /// <summary>The program as text, loops' bodies and tails included (a record's own text shows a list by its type).</summary>
    static string Dump(List<Op> ops)
    {
        var sb = new StringBuilder();
        void Walk(List<Op> list, int indent)
        {
            foreach (var op in list)
            {
                sb.Append(' ', indent);
                if (op is LoopOp l)
                {
                    sb.Append($"loop {l.Trips} depth {l.Depth} parallel {l.Parallel} bumps {string.Join(",", l.Bumps)}\n");
                    Walk(l.Body, indent + 2);
                    sb.Append(' ', indent).Append("after\n");
                    Walk(l.After, indent + 2);
                }
                else if (op is PackOp p)
                {
                    sb.Append($"pack {p.Tensor} plan {p.Plan} from {p.Offset}\n");
                    Walk(p.Body, indent + 2);
                }
                else sb.Append(op).Append('\n');
            }
        }
        Walk(ops, 0);
        return sb.ToString();
    }
}
