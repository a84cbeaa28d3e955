using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.Jit;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Ir;

/// <summary><see cref="Transforms.Parallelize"/>: the parallel loop a tuner at N threads adds, against the rules it must keep
/// and the balance it promises. With the parallel kernels' tests: its kernels run on 2 threads.</summary>
[Collection(nameof(AllCores))]
public class ParallelizeTests
{
    static Nest N(string spec, string nest) => Nest.Parse(Computation.Parse(spec), nest);

    [Theory]
    [InlineData("mm 512 512 512", ">m:64 n:16 k:512 m:8u n:2u n:16v", 2, "m:64p n:16 k:512 m:8u n:2u n:16v")]
    [InlineData("mm 24 64 8", ">m:3 n:4 k:8 m:8u n:16v", 2, "m:3 n:4p k:8 m:8u n:16v")] // 3 on 2 leaves a quarter idle: n's 4 divide
    [InlineData("mm 24 64 8", ">m:3 n:4 k:8 m:8u n:16v", 3, "m:3p n:4 k:8 m:8u n:16v")]
    [InlineData("mm 24 48 8", ">m:3 n:3 k:8 m:8u n:16v", 2, "m:3p n:3 k:8 m:8u n:16v")] // none divides: the busiest, outermost first
    [InlineData("mm 8 16 64", ">k:64 m:8 n:16v", 2, "k:64 m:8p n:16v")] // never the reduction
    [InlineData("mm 8 16 64", ">k:64 m:8u n:16v", 2, "k:64 m:8u n:16v")] // nothing qualifies: unchanged
    [InlineData("mm 16 16 16", ">m:2p n:16 k:16 m:8u", 2, "m:2p n:16 k:16 m:8u")] // parallel already
    [InlineData("mm 16 16 16", ">m:16 n:16 k:16", 1, "m:16 n:16 k:16")] // one thread
    public void Parallelize_takes_the_outermost_loop_that_keeps_the_threads_busy(string spec, string before, int threads, string after)
    {
        var nest = N(spec, before);
        var p = Transforms.Parallelize(nest, threads);
        Assert.Equal(after, p.ScheduleKey);
        Assert.Equal(nest.Cursor, p.Cursor);
        Assert.Equal(p, Nest.Parse(p.Computation, p.Serialize())); // a nest the parser's rules accept
    }

    /// <summary>With a preferred variable: its outermost loop that keeps the threads busy, in place of the rule's and of one
    /// the nest had; the rule where no loop over it qualifies.</summary>
    [Theory]
    [InlineData(">g:2 h:8 w:8 c:4 e:16v", 2, "g:2 h:8p w:8 c:4 e:16v")]
    [InlineData(">g:2p h:8 w:8 c:4 e:16v", 2, "g:2 h:8p w:8 c:4 e:16v")] // moved from g
    [InlineData(">g:2 h:2 h:4 w:8 c:4 e:16v", 2, "g:2 h:2p h:4 w:8 c:4 e:16v")] // the outermost of h's loops
    [InlineData(">g:2 c:4 h:8 w:8 e:16v", 2, "g:2 c:4 h:8p w:8 e:16v")] // inside a reduction loop too: the tuner times it
    [InlineData(">g:2 w:8 c:4 h:8u e:16v", 2, "g:2p w:8 c:4 h:8u e:16v")] // h unrolled: the rule
    [InlineData(">g:2p w:8 c:4 h:8u e:16v", 2, "g:2p w:8 c:4 h:8u e:16v")] // h unrolled: the nest's own
    [InlineData(">g:2 h:8 w:8 c:4 e:16v", 1, "g:2 h:8 w:8 c:4 e:16v")] // one thread
    public void Parallelize_prefers_the_variable_it_is_given(string before, int threads, string after)
    {
        var nest = N("O[g,h,w,e] += I[c,h,w] * W[g,c,e] g=2 h=8 w=8 e=16 c=4", before);
        var p = Transforms.Parallelize(nest, threads, "h");
        Assert.Equal(after, p.ScheduleKey);
        Assert.Equal(p, Nest.Parse(p.Computation, p.Serialize()));
        Assert.Equal(Transforms.Parallelize(nest, threads), Transforms.Parallelize(nest, threads, "x")); // not a variable: the rule
    }

    /// <summary>On random schedules: the loop it marks is one the parallel action could mark, the rest is untouched, and the
    /// kernel at 2 threads computes the reference's result (guard zones intact).</summary>
    [Theory]
    [InlineData("mm 37 29 23", 1)]
    [InlineData("conv 5 13 11 7 3 3", 2)]
    public void Parallelize_keeps_the_rules_and_the_result(string spec, int seed)
    {
        var rng = new Random(seed);
        var c = Computation.Parse(spec);
        for (int i = 0; i < 60; i++)
        {
            var (nest, _) = RandomSchedules.Walk(Nest.Initial(c), rng, rng.Next(1, 14));
            if (nest.ParallelLoop >= 0) continue;
            var p = Transforms.Parallelize(nest, 2);
            if (p.ParallelLoop < 0) continue;
            Assert.True(Transforms.IsLegal(nest.With(nest.Loops, p.ParallelLoop), Actions.Get("parallel")), p.Serialize());
            Assert.Equal(nest.Loops.SetItem(p.ParallelLoop, nest[p.ParallelLoop] with { Annotation = Annotation.Parallel }).ToArray(), p.Loops.ToArray());
            Assert.Equal(nest.Packed, p.Packed);
            var kernel = Kernel.Compile(p);
            kernel.SetThreads(2); // also on one core (under taskset): the team's threads then share it
            var v = Verifier.Verify(kernel);
            Assert.True(v.Passed, $"{p.Serialize()}: {v.Problem}");
        }
    }
}
