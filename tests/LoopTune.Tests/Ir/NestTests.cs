using System.Collections.Immutable;
using LoopTune.Ir;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Ir;

public class NestTests
{
    const string GoldenActions = "split_4,down,swap_down,swap_down,unroll,up,up,split_32,down,swap_down,swap_down,split_16,unroll,down,vectorize";

    [Fact]
    public void Initial_matmul_nest_is_output_vars_then_reductions_with_cursor_on_top()
    {
        var n = Nest.Initial(Computation.Parse("C[m,n] += A[m,k] * B[k,n] m=128 n=64 k=32"));
        Assert.Equal(0, n.Cursor);
        Assert.Equal([new Loop(0, 128), new Loop(1, 64), new Loop(2, 32)], n.Loops.ToArray());
        Assert.Equal(">m:128 n:64 k:32", n.Serialize());
        Assert.Equal(
            "for m in 128  <- cursor\n" +
            "  for n in 64\n" +
            "    for k in 32\n" +
            "      C[m,n] += A[m,k] * B[k,n]\n", n.ToTree());
        Assert.Equal(
            "for m in 128\n" +
            "  for n in 64\n" +
            "    for k in 32\n" +
            "      C[m,n] += A[m,k] * B[k,n]\n", n.ToTree(showCursor: false));
    }

    [Fact]
    public void Initial_conv_nest_is_f_h_w_c_r_s()
    {
        var c = Computation.Parse("conv 3 8 6 4 3 2");
        var n = Nest.Initial(c);
        Assert.Equal(0, n.Cursor);
        Assert.Equal(["f", "h", "w", "c", "r", "s"], Enumerable.Range(0, n.Count).Select(n.LoopName));
        Assert.Equal([4, 6, 5, 3, 3, 2], n.Loops.Select(l => l.Size));
        Assert.All(n.Loops, l => Assert.Equal((0, Annotation.None), (l.Tail, l.Annotation)));
        Assert.Equal(">f:4 h:6 w:5 c:3 r:3 s:2", n.Serialize());
        // the same order whatever order the long form lists the sizes in
        var longForm = Nest.Initial(Computation.Parse("O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] s=2 r=3 c=3 w=5 h=6 f=4"));
        Assert.Equal(n, longForm);
    }

    [Fact]
    public void Golden_tree_after_the_register_tiling_sequence()
    {
        var c = Computation.Parse("mm 256 256 256");
        var n = Transforms.ApplyAll(Nest.Initial(c), Actions.ParseList(GoldenActions));
        // by hand: split_4 m -> m 64, m' 4; m' sinks below n and k, unrolled; split_32 n -> n 8, n' 32;
        // n' sinks below k and m'; split_16 n' -> n' 2, n'' 16; n' unrolled, n'' vectorized.
        Assert.Equal("m:64 n:8 k:256 m:4u n:2u >n:16v", n.Serialize());
        Assert.Equal(
            "for m in 64\n" +
            "  for n in 8\n" +
            "    for k in 256\n" +
            "      for m' in 4 unroll\n" +
            "        for n' in 2 unroll\n" +
            "          for n'' in 16 vectorize  <- cursor\n" +
            "            C[m,n] += A[m,k] * B[k,n]\n", n.ToTree());
        Assert.Equal([64, 8, 256, 4, 2, 16], Enumerable.Range(0, n.Count).Select(i => n[i].Size));
        Assert.Equal([4, 32, 1, 1, 16, 1], Enumerable.Range(0, n.Count).Select(n.InnerStep));
        Assert.Equal([256, 256, 256, 4, 32, 16], Enumerable.Range(0, n.Count).Select(n.Extent));
    }

    [Fact]
    public void Split_with_a_tail_shows_the_tail()
    {
        var n = Transforms.Apply(Nest.Initial(Computation.Parse("mm 100 64 64")), Actions.Get("split_16"));
        Assert.Equal(">m:6+4 m:16 n:64 k:64", n.Serialize());
        Assert.Equal(
            "for m in 6 tail 4  <- cursor\n" +
            "  for m' in 16\n" +
            "    for n in 64\n" +
            "      for k in 64\n" +
            "        C[m,n] += A[m,k] * B[k,n]\n", n.ToTree());
        Assert.Equal(16, n.InnerStep(0));
        Assert.Equal(100, n.Extent(0));
        // a second split of the outer loop works on its extent (100) in steps of 16 * 2
        var m = Transforms.Apply(n, Actions.Get("split_2"));
        Assert.Equal(">m:3+4 m:2 m:16 n:64 k:64", m.Serialize());
        Assert.StartsWith("for m in 3 tail 4  <- cursor\n  for m' in 2\n    for m'' in 16\n      for n in 64\n", m.ToTree());
    }

    [Fact]
    public void Navigation_helpers_agree_with_the_loop_list()
    {
        var n = Nest.Parse(Computation.Parse("mm 100 64 64"), "m:3+4 n:64 >m:2 k:64 m:16");
        Assert.Equal([2, -1, 4, -1, -1], Enumerable.Range(0, n.Count).Select(n.NextOfVar));
        Assert.Equal([-1, -1, 0, -1, 2], Enumerable.Range(0, n.Count).Select(n.PreviousOfVar));
        Assert.Equal(["m", "n", "m'", "k", "m''"], Enumerable.Range(0, n.Count).Select(n.LoopName));
        Assert.Equal([32, 1, 16, 1, 1], Enumerable.Range(0, n.Count).Select(n.InnerStep));
    }

    public static TheoryData<string> Kinds => new() { "mm", "conv", "strided", "other" };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Serialize_and_Parse_round_trip_along_random_walks(string kind)
    {
        int states = 0;
        for (int seed = 0; seed < 150; seed++)
        {
            var rng = new Random(seed);
            var c = RandomSchedules.Of(kind, rng);
            RandomSchedules.Walk(Nest.Initial(c), rng, 40, n =>
            {
                states++;
                string text = n.Serialize();
                var back = Nest.Parse(c, text);
                Assert.True(n.Equals(back), $"seed {seed} {c}: '{text}' parsed as '{back.Serialize()}'");
                Assert.Equal(n.GetHashCode(), back.GetHashCode());
                Assert.Equal(text, back.Serialize());
                Assert.Equal(n.ToTree(), back.ToTree());
                Assert.Equal(n.Count + 1 + (n.Packed != 0 ? 1 : 0), n.ToTree().Count(ch => ch == '\n'));
                // the computation's canonical text gives an equal computation, so the nest parses against it too
                Assert.Equal(n, Nest.Parse(Computation.Parse(c.Text), text));
            });
        }
        Assert.True(states > 150 * 20);
    }

    [Fact]
    public void Equality_depends_on_loops_cursor_and_computation()
    {
        var c = Computation.Parse("mm 8 8 8");
        var a = Nest.Parse(c, "m:2 >n:8 k:8 m:4u");
        Assert.Equal(a, Nest.Parse(c, "m:2 >n:8 k:8 m:4u"));
        Assert.NotEqual(a, Nest.Parse(c, ">m:2 n:8 k:8 m:4u"));
        Assert.NotEqual(a, Nest.Parse(c, "m:2 >n:8 k:8 m:4"));
        Assert.NotEqual(a, Nest.Parse(c, "m:2 >n:8 k:8 m:4v"));
        Assert.Equal(a, Nest.Parse(Computation.Parse("C[m,n] += A[m,k] * B[k,n] k=8 n=8 m=8"), "m:2 >n:8 k:8 m:4u"));
        Assert.NotEqual(a, Nest.Parse(Computation.Parse("Z[m,n] += A[m,k] * B[k,n] m=8 n=8 k=8"), "m:2 >n:8 k:8 m:4u"));
    }

    [Theory]
    [InlineData("m:4 n:4 k:4", "no cursor")]
    [InlineData("", "no cursor")]
    [InlineData(">m:4 >n:4 k:4", "two cursors")]
    [InlineData(">m:4 n:4 q:4", "no variable 'q'")]
    [InlineData(">m:4 n:4 k:3", "cover 3 elements, not its size 4")]
    [InlineData(">m:4 n:4", "cover 0 elements")]
    [InlineData(">m:4 n:4 k:2 k:1", "cover 2 elements, not its size 4")]
    [InlineData(">m:2 n:4 k:4 m:2+1", "tail")]
    [InlineData(">m:4 n4 k:4", "is not name:size")]
    [InlineData(">m:x n:4 k:4", "is not name:size")]
    [InlineData(">m:4+1+1 n:4 k:4", "is not name:size")]
    [InlineData(">m:2+y m:2 n:4 k:4", "is not name:size")]
    [InlineData(">m:0 n:4 k:4", "size must be >= 1")]
    [InlineData(">m:4v n:4 k:4", "vectorized but not innermost")]
    [InlineData(">m:4 n:4 k:4 :4", "no variable ''")]
    public void Malformed_compact_text_throws_NestFormatError(string text, string problem)
    {
        var c = Computation.Parse("mm 4 4 4");
        var e = Assert.Throws<NestFormatError>(() => Nest.Parse(c, text));
        Assert.StartsWith("bad schedule: ", e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void More_than_ten_loops_is_rejected()
    {
        var c = Computation.Parse("mm 512 64 64");
        Assert.Equal(10, Nest.Parse(c, ">m:2 m:2 m:2 m:2 m:2 m:2 m:2 m:4 n:64 k:64").Count);
        var e = Assert.Throws<NestFormatError>(() => Nest.Parse(c, ">m:2 m:2 m:2 m:2 m:2 m:2 m:2 m:2 m:2 n:64 k:64"));
        Assert.Contains("1 to 10 loops", e.Message);
        Assert.Throws<NestFormatError>(() => new Nest(c, ImmutableArray<Loop>.Empty, 0));
        Assert.Throws<NestFormatError>(() => new Nest(c, [new Loop(0, 512), new Loop(1, 64), new Loop(2, 64)], 3));
        Assert.Throws<NestFormatError>(() => new Nest(c, [new Loop(0, 512), new Loop(1, 64), new Loop(3, 64)], 0));
    }
}
