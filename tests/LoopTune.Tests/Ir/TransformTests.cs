using LoopTune.Ir;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Ir;

public class TransformTests
{
    static Nest N(string spec, string nest) => Nest.Parse(Computation.Parse(spec), nest);
    static Nest Do(Nest n, string actions) => Transforms.ApplyAll(n, Actions.ParseList(actions));

    [Fact]
    public void Action_table_has_fixed_ids_and_names()
    {
        Assert.Equal(["up", "down", "swap_up", "swap_down", "split_2", "split_4", "split_8", "split_16", "split_32", "split_64",
                      "split_128", "split_256", "split_512", "split_1024", "merge", "unroll", "vectorize", "pack", "parallel"], Actions.All.Select(a => a.Name));
        Assert.Equal(Actions.All.Length, Actions.Count);
        Assert.All(Actions.All, a => Assert.Equal(a, Actions.All[a.Id]));
        Assert.All(Actions.All, a => Assert.Equal(a, Actions.Get(a.Name)));
        Assert.Equal((ActionKind.Split, 64), (Actions.Get("split_64").Kind, Actions.Get("split_64").Factor));
        Assert.Equal(["split_4", "down", "unroll"], Actions.ParseList(" split_4 ,down,, unroll ").Select(a => a.Name));
        Assert.Empty(Actions.ParseList("  "));
        Assert.Empty(Actions.ParseList(null));
    }

    [Theory]
    [InlineData("split_3")]
    [InlineData("Up")]
    [InlineData("")]
    [InlineData("swap")]
    public void Unknown_action_names_list_the_valid_names(string name)
    {
        var e = Assert.Throws<UnknownActionError>(() => Actions.Get(name));
        Assert.Equal(name, e.Name);
        Assert.Contains($"unknown action '{name}'", e.Message);
        Assert.All(Actions.All, a => Assert.Contains(a.Name, e.Message));
        var list = Assert.Throws<UnknownActionError>(() => Actions.ParseList($"up,{name}x,down"));
        Assert.Equal($"{name}x", list.Name);
    }

    [Fact]
    public void Up_and_down_move_only_the_cursor()
    {
        var n = Nest.Initial(Computation.Parse("mm 8 16 32"));
        var d = Do(n, "down");
        Assert.Equal(1, d.Cursor);
        Assert.Equal(n.Loops.ToArray(), d.Loops.ToArray());
        Assert.Equal(2, Do(n, "down,down").Cursor);
        Assert.Equal(n, Do(n, "down,down,up,up"));
    }

    [Fact]
    public void Swaps_exchange_neighbours_and_the_cursor_follows_the_moved_loop()
    {
        var n = N("mm 8 16 32", "m:8 >n:16 k:32");
        Assert.Equal("m:8 k:32 >n:16", Do(n, "swap_down").Serialize());
        Assert.Equal(">n:16 m:8 k:32", Do(n, "swap_up").Serialize());
        Assert.Equal(n, Do(n, "swap_down,swap_up"));
        Assert.Equal(n, Do(n, "swap_up,swap_down"));
        // a loop can pass another variable's split loops; names are recomputed by position
        var t = N("mm 64 16 32", "m:16 >n:16 m:4u k:32");
        var s = Do(t, "swap_down");
        Assert.Equal("m:16 m:4u >n:16 k:32", s.Serialize());
        Assert.Equal("m'", s.LoopName(1));
    }

    [Theory]
    [InlineData("mm 100 64 64", ">m:100 n:64 k:64", "split_16", ">m:6+4 m:16 n:64 k:64")]
    [InlineData("mm 100 64 64", ">m:100 n:64 k:64", "split_64", ">m:1+36 m:64 n:64 k:64")]
    [InlineData("mm 100 64 64", ">m:100 n:64 k:64", "split_2", ">m:50 m:2 n:64 k:64")]
    [InlineData("mm 100 64 64", "m:6+4 >m:16 n:64 k:64", "split_4", "m:6+4 >m:4 m:4 n:64 k:64")]
    [InlineData("mm 100 64 64", ">m:6+4 m:16 n:64 k:64", "split_4", ">m:1+36 m:4 m:16 n:64 k:64")]   // 100 / (4*16)
    [InlineData("mm 100 64 64", ">m:6+4 m:16 n:64 k:64", "split_2", ">m:3+4 m:2 m:16 n:64 k:64")]
    [InlineData("mm 13 64 7", "n:64 >m:13 k:7", "split_4", "n:64 >m:3+1 m:4 k:7")]
    [InlineData("mm 100 64 64", "m:6+4 n:64 >m:16 k:64", "split_8", "m:6+4 n:64 >m:2 m:8 k:64")]
    [InlineData("mm 100 64 64", ">m:6+4 n:64 m:16 k:64", "split_2", ">m:3+4 m:2 n:64 m:16 k:64")]
    [InlineData("mm 64 64 64", "m:64 n:64 >k:64", "split_64", "m:64 n:64 >k:1 k:64")]
    public void Split_makes_outer_extent_over_N_steps_with_the_tail_and_an_inner_loop_of_N(string spec, string before, string action, string after)
    {
        var n = N(spec, before);
        var s = Do(n, action);
        Assert.Equal(after, s.Serialize());
        int c = n.Cursor, factor = Actions.Get(action).Factor, step = n.InnerStep(c), extent = n.Extent(c);
        Assert.Equal(new Loop(n[c].Var, extent / (factor * step), extent % (factor * step)), s[c]);
        Assert.Equal(new Loop(n[c].Var, factor), s[c + 1]);
        Assert.Equal(c, s.Cursor);
        Assert.Equal(extent, s.Extent(c));
        // merge on the new inner loop undoes the split exactly
        Assert.Equal(n, Do(s, "down,merge"));
    }

    [Theory]
    [InlineData("mm 256 256 256", "m:64 n:256 k:256 >m:4", ">m:256 n:256 k:256")]
    [InlineData("mm 100 64 64", "m:1+36 m:4 >m:16 n:64 k:64", "m:1+36 >m:64 n:64 k:64")]
    [InlineData("mm 100 64 64", "m:1+36 >m:4 m:16 n:64 k:64", ">m:6+4 m:16 n:64 k:64")]
    [InlineData("mm 100 64 64", "m:3+4 n:64 m:2 k:64 >m:16", "m:3+4 n:64 >m:32 k:64")]
    public void Merge_widens_the_nearest_enclosing_loop_of_the_variable(string spec, string before, string after)
    {
        var n = N(spec, before);
        var m = Do(n, "merge");
        Assert.Equal(after, m.Serialize());
        Assert.Equal(n.Extent(n.PreviousOfVar(n.Cursor)), m.Extent(m.Cursor));
    }

    [Fact]
    public void Unroll_and_vectorize_toggle_the_annotation()
    {
        var n = N("mm 8 8 8", "m:8 n:8 >k:8");
        Assert.Equal("m:8 n:8 >k:8u", Do(n, "unroll").Serialize());
        Assert.Equal("m:8 n:8 >k:8v", Do(n, "vectorize").Serialize());
        Assert.Equal(n, Do(n, "unroll,unroll"));
        Assert.Equal(n, Do(n, "vectorize,vectorize"));
        Assert.Equal("m:8 n:8 >k:8v", Do(n, "unroll,unroll,vectorize").Serialize());
        Assert.Equal(">m:8u n:8 k:8", Do(n, "up,up,unroll").Serialize());
    }

    // ---- one test per rule ------------------------------------------------------------------------------------

    static TError AssertBreaks<TError>(string spec, string nest, string action, Rule rule, string loopName) where TError : ScheduleError
    {
        var n = N(spec, nest);
        var a = Actions.Get(action);
        Assert.Equal(rule, Transforms.Check(n, a));
        Assert.False(Transforms.IsLegal(n, a));
        Assert.False(Transforms.Mask(n)[a.Id]);
        var e = Assert.Throws<TError>(() => Transforms.Apply(n, a));   // exactly this subtype
        Assert.Equal(rule, e.Rule);
        Assert.Equal(a, e.Action);
        Assert.Equal(loopName, e.LoopName);
        Assert.Same(n, e.Nest);
        Assert.Null(e.Step);
        Assert.StartsWith($"{action} on loop {loopName} (position {n.Cursor}): ", e.Message);
        return e;
    }

    [Theory]
    [InlineData(">m:8 n:8 k:8", "up")]
    [InlineData(">m:8 n:8 k:8", "swap_up")]
    public void NoLoopAbove(string nest, string action) =>
        Assert.Contains("outermost", AssertBreaks<NoLoopAboveError>("mm 8 8 8", nest, action, Rule.NoLoopAbove, "m").Message);

    [Theory]
    [InlineData("m:8 n:8 >k:8", "down", "k")]
    [InlineData("m:8 n:8 >k:8", "swap_down", "k")]
    [InlineData("m:4 n:8 k:8 >m:2", "down", "m'")]
    public void NoLoopBelow(string nest, string action, string loop) =>
        Assert.Contains("innermost", AssertBreaks<NoLoopBelowError>("mm 8 8 8", nest, action, Rule.NoLoopBelow, loop).Message);

    [Theory]
    [InlineData(">m:4 m:2 n:8 k:8", "swap_down", "m")]
    [InlineData("m:4 >m:2 n:8 k:8", "swap_up", "m'")]
    public void SameVariable(string nest, string action, string loop) =>
        AssertBreaks<SameVariableError>("mm 8 8 8", nest, action, Rule.SameVariable, loop);

    [Theory]
    [InlineData("m:8 n:8 >k:8v", "swap_up", "k")]
    [InlineData("m:8 >n:8 k:8v", "swap_down", "n")]
    public void VectorizedMustStayInnermost(string nest, string action, string loop) =>
        AssertBreaks<VectorizedMustStayInnermostError>("mm 8 8 8", nest, action, Rule.VectorizedMustStayInnermost, loop);

    [Theory]
    [InlineData(">m:8u n:8 k:8", "split_2", "m", "cannot be split or merged")]
    [InlineData("m:8 n:8 >k:8v", "split_4", "k", "cannot be split or merged")]
    [InlineData("m:2 n:8 k:8 >m:4u", "merge", "m'", "cannot be split or merged")]
    [InlineData("m:2u n:8 k:8 >m:4", "merge", "m'", "cannot be split or merged")]
    [InlineData("m:2 n:8 k:8 >m:4v", "merge", "m'", "cannot be split or merged")]
    [InlineData("m:8 n:8 >k:8v", "unroll", "k", "remove vectorize first")]
    [InlineData("m:8 n:8 >k:8u", "vectorize", "k", "remove unroll first")]
    public void Annotated(string nest, string action, string loop, string why) =>
        Assert.Contains(why, AssertBreaks<AnnotatedLoopError>("mm 8 8 8", nest, action, Rule.Annotated, loop).Message);

    [Theory]
    [InlineData("mm 8 8 8", ">m:8 n:8 k:8", "split_16", "m", "the loop has 8 iterations, fewer than the split factor 16")]
    [InlineData("mm 8 8 8", "m:8 n:8 >k:8", "split_1024", "k", "the loop has 8 iterations, fewer than the split factor 1024")]
    [InlineData("mm 100 8 8", "m:6+4 >m:16 n:8 k:8", "split_32", "m'", "16 iterations, fewer than the split factor 32")]
    [InlineData("mm 100 8 8", ">m:6+4 m:16 n:8 k:8", "split_8", "m", "6 iterations, fewer than the split factor 8")]
    public void SplitTooLarge(string spec, string nest, string action, string loop, string why) =>
        Assert.Contains(why, AssertBreaks<SplitTooLargeError>(spec, nest, action, Rule.SplitTooLarge, loop).Message);

    [Fact]
    public void TooManyLoops() =>
        Assert.Contains("already has 10 loops", AssertBreaks<TooManyLoopsError>(
            "mm 256 64 64", "m:2 m:2 m:2 m:2 m:2 m:2 m:2 m:2 >n:64 k:64", "split_2", Rule.TooManyLoops, "n").Message);

    [Theory]
    [InlineData(">m:8 n:8 k:8", "m")]
    [InlineData("m:2 n:8 >k:8 m:4", "k")]
    public void NothingToMerge(string nest, string loop) =>
        Assert.Contains("no enclosing loop", AssertBreaks<NothingToMergeError>("mm 8 8 8", nest, "merge", Rule.NothingToMerge, loop).Message);

    [Theory]
    [InlineData(">m:8 n:8 k:8", "m")]
    [InlineData("m:8 >n:8 k:8", "n")]
    public void NotInnermost(string nest, string loop) =>
        Assert.Contains("only the innermost", AssertBreaks<NotInnermostError>("mm 8 8 8", nest, "vectorize", Rule.NotInnermost, loop).Message);

    [Theory]
    [InlineData("mm 65 8 8", ">m:65 n:8 k:8", "m", 65)]
    [InlineData("mm 129 8 8", ">m:64+1 m:2 n:8 k:8", "m", 65)]    // 64 iterations plus the tail
    [InlineData("mm 8 8 100", "m:8 n:8 >k:100", "k", 100)]
    public void UnrollTooLarge(string spec, string nest, string loop, int iterations) =>
        Assert.Contains($"the loop has {iterations} iterations; at most 64", AssertBreaks<UnrollTooLargeError>(spec, nest, "unroll", Rule.UnrollTooLarge, loop).Message);

    [Theory]
    [InlineData("mm 64 8 8", ">m:64 n:8 k:8")]
    [InlineData("mm 127 8 8", ">m:63+1 m:2 n:8 k:8")]
    public void Unroll_of_exactly_64_iterations_is_legal(string spec, string nest) =>
        Assert.True(Do(N(spec, nest), "unroll")[0].IsUnrolled);

    [Fact]
    public void ApplyAll_reports_the_one_based_step()
    {
        var n = Nest.Initial(Computation.Parse("mm 8 8 8"));
        var e = Assert.Throws<NoLoopBelowError>(() => Do(n, "down,down,down"));
        Assert.Equal(3, e.Step);
        Assert.StartsWith("step 3: down on loop k (position 2): ", e.Message);
        var a = Assert.Throws<AnnotatedLoopError>(() => Do(n, "split_2,unroll,split_2"));
        Assert.Equal(3, a.Step);
        Assert.Equal("m", a.LoopName);
        Assert.StartsWith("step 3: split_2 on loop m (position 0)", a.Message);
        var first = Assert.Throws<NoLoopAboveError>(() => Do(n, "up"));
        Assert.Equal(1, first.Step);
    }

    // ---- properties on random walks -------------------------------------------------------------------------

    public static TheoryData<string, int> Walks()
    {
        var d = new TheoryData<string, int>();
        foreach (var kind in new[] { "mm", "conv", "strided", "other" })
            for (int batch = 0; batch < 3; batch++) d.Add(kind, batch);
        return d;
    }

    [Theory]
    [MemberData(nameof(Walks))]
    public void Mask_agrees_with_Apply_and_every_reached_nest_is_valid(string kind, int batch)
    {
        int checkedStates = 0;
        for (int seed = batch * 60; seed < batch * 60 + 60; seed++)
        {
            var rng = new Random(seed);
            var c = RandomSchedules.Of(kind, rng);
            var trace = new List<LoopAction>();
            var nest = Nest.Initial(c);
            for (int step = 0; step <= 40; step++)
            {
                string where = $"seed {seed}, {RandomSchedules.Describe(c, trace)}, nest '{nest.Serialize()}'";
                CheckState(nest, where);
                checkedStates++;
                var legal = RandomSchedules.Legal(nest);
                Assert.True(legal.Length > 0, where);
                var a = Actions.All[legal[rng.Next(legal.Length)]];
                nest = Transforms.Apply(nest, a);
                trace.Add(a);
            }
        }
        Assert.Equal(60 * 41, checkedStates);
    }

    static void CheckState(Nest n, string where)
    {
        AssertInvariants(n, where, enumerate: true);
        var mask = Transforms.Mask(n);
        foreach (var a in Actions.All)
        {
            var rule = Transforms.Check(n, a);
            Nest? result = null;
            ScheduleError? error = null;
            try { result = Transforms.Apply(n, a); }
            catch (ScheduleError e) { error = e; }
            Assert.True(mask[a.Id] == (error is null), $"{where}: mask says {a.Name} is {(mask[a.Id] ? "legal" : "illegal")} but Apply {(error is null ? "succeeded" : "threw " + error.Message)}");
            if (error is not null)
            {
                Assert.NotEqual(Rule.None, rule);
                Assert.Equal(rule, error.Rule);
                Assert.Equal(a, error.Action);
                Assert.Equal(ErrorType(rule), error.GetType());
                Assert.Contains(a.Name, error.Message);
                Assert.Contains($"loop {n.LoopName(n.Cursor)} ", error.Message);
                continue;
            }
            Assert.Equal(Rule.None, rule);
            AssertInvariants(result!, $"{where} then {a.Name}");
            AssertEffect(n, a, result!, where);
        }
    }

    static Type ErrorType(Rule rule) => rule switch
    {
        Rule.NoLoopAbove => typeof(NoLoopAboveError),
        Rule.NoLoopBelow => typeof(NoLoopBelowError),
        Rule.SameVariable => typeof(SameVariableError),
        Rule.VectorizedMustStayInnermost => typeof(VectorizedMustStayInnermostError),
        Rule.Annotated => typeof(AnnotatedLoopError),
        Rule.SplitTooLarge => typeof(SplitTooLargeError),
        Rule.TooManyLoops => typeof(TooManyLoopsError),
        Rule.NothingToMerge => typeof(NothingToMergeError),
        Rule.NotInnermost => typeof(NotInnermostError),
        Rule.UnrollTooLarge => typeof(UnrollTooLargeError),
        Rule.NothingToPack => typeof(NothingToPackError),
        Rule.NotPackable => typeof(NotPackableError),
        Rule.ParallelReduction => typeof(ParallelReductionError),
        Rule.SecondParallel => typeof(SecondParallelError),
        Rule.ParallelInsideSpelledOut => typeof(ParallelInsideSpelledOutError),
        _ => throw new ArgumentOutOfRangeException(nameof(rule)),
    };

    /// <summary>What each legal action must do, from the documented semantics.</summary>
    static void AssertEffect(Nest n, LoopAction a, Nest r, string where)
    {
        where = $"{where} then {a.Name} gave '{r.Serialize()}'";
        int c = n.Cursor;
        var before = n.Loops.ToList();
        var after = r.Loops.ToList();
        switch (a.Kind)
        {
            case ActionKind.Up or ActionKind.Down:
                Assert.True(before.SequenceEqual(after), where);
                Assert.True(r.Cursor == c + (a.Kind == ActionKind.Up ? -1 : 1), where);
                break;
            case ActionKind.SwapUp or ActionKind.SwapDown:
                int upper = a.Kind == ActionKind.SwapUp ? c - 1 : c;
                (before[upper], before[upper + 1]) = (before[upper + 1], before[upper]);
                Assert.True(before.SequenceEqual(after), where);
                Assert.True(r.Cursor == (a.Kind == ActionKind.SwapUp ? c - 1 : c + 1), where);
                Assert.Equal(n, Transforms.Apply(r, Actions.Get(a.Kind == ActionKind.SwapUp ? "swap_down" : "swap_up")));
                break;
            case ActionKind.Split:
                int step = n.InnerStep(c), extent = n.Extent(c), f = a.Factor;
                before[c] = new Loop(n[c].Var, extent / (f * step), extent % (f * step));
                before.Insert(c + 1, new Loop(n[c].Var, f));
                Assert.True(before.SequenceEqual(after), where);
                Assert.True(r.Cursor == c, where);
                Assert.True(Transforms.ApplyAll(r, Actions.ParseList("down,merge")).Equals(n), $"{where}: down,merge does not restore it");
                break;
            case ActionKind.Merge:
                int p = n.PreviousOfVar(c);
                before[p] = new Loop(n[p].Var, n.Extent(p) / n.InnerStep(c), n.Extent(p) % n.InnerStep(c));
                before.RemoveAt(c);
                Assert.True(before.SequenceEqual(after), where);
                Assert.True(r.Cursor == p, where);
                break;
            case ActionKind.Unroll or ActionKind.Vectorize or ActionKind.Parallel:
                var ann = a.Kind switch { ActionKind.Unroll => Annotation.Unroll, ActionKind.Vectorize => Annotation.Vectorize, _ => Annotation.Parallel };
                before[c] = before[c] with { Annotation = before[c].Annotation == ann ? Annotation.None : ann };
                Assert.True(before.SequenceEqual(after), where);
                Assert.True(r.Cursor == c, where);
                Assert.Equal(n, Transforms.Apply(r, a));
                break;
            case ActionKind.Pack:
                // the inputs the cursor's variable does not index toggle together; loops and cursor stay
                int v = n[c].Var, reused = 0;
                for (int t = 1; t < 3; t++) if (n.Computation.Tensors[t].VarStrides[v] == 0) reused |= 1 << t;
                Assert.NotEqual(0, reused);
                Assert.Equal((n.Packed & reused) == reused ? n.Packed & ~reused : n.Packed | reused, r.Packed);
                Assert.True(before.SequenceEqual(after) && r.Cursor == c, where);
                Assert.Equal(n, Transforms.Apply(r, a));
                break;
        }
    }

    /// <summary>The invariants, recomputed independently: coverage arithmetic per variable, tails, the vectorized loop
    /// innermost, at most 10 loops; and for small computations, that the nest visits every iteration point exactly once.</summary>
    internal static void AssertInvariants(Nest n, string where, bool enumerate = false)
    {
        var c = n.Computation;
        Assert.True(n.Count is >= 1 and <= Nest.MaxLoops, where);
        Assert.True(n.Cursor >= 0 && n.Cursor < n.Count, where);
        var covered = new long[c.Vars.Length];
        var step = new long[n.Count];
        for (int i = n.Count - 1; i >= 0; i--)
        {
            var l = n[i];
            bool innermostOfVar = covered[l.Var] == 0;
            step[i] = innermostOfVar ? 1 : covered[l.Var];
            Assert.True(l.Size >= 1 && l.Tail >= 0 && l.Tail < step[i], $"{where}: loop {i} size {l.Size} tail {l.Tail} step {step[i]}");
            Assert.True(!innermostOfVar || l.Tail == 0, where);
            Assert.True(!l.IsVectorized || i == n.Count - 1, where);
            covered[l.Var] = l.Size * step[i] + l.Tail;
            Assert.True(n.InnerStep(i) == step[i] && n.Extent(i) == covered[l.Var], $"{where}: loop {i} InnerStep/Extent");
        }
        for (int v = 0; v < covered.Length; v++)
            Assert.True(covered[v] == c.Sizes[v], $"{where}: '{c.Vars[v]}' covered {covered[v]} of {c.Sizes[v]}");
        var parallel = Enumerable.Range(0, n.Count).Where(i => n[i].IsParallel).ToArray();
        Assert.True(parallel.Length <= 1 && n.ParallelLoop == (parallel.Length == 0 ? -1 : parallel[0]), $"{where}: parallel loops {string.Join(",", parallel)}");
        Assert.True(parallel.All(p => !c.IsReduction[n[p].Var] && n.Loops.Take(p).All(l => l.Annotation is Annotation.None)), $"{where}: parallel on a reduction or inside an annotated loop");

        long points = c.Sizes.Aggregate(1L, (p, s) => p * s);
        if (!enumerate || points > 20_000) return;
        var seen = new int[points];
        Enumerate(n, step, 0, [.. c.Sizes], new int[c.Vars.Length], idx =>
        {
            long flat = 0;
            for (int v = 0; v < idx.Length; v++)
            {
                Assert.True(idx[v] >= 0 && idx[v] < c.Sizes[v], $"{where}: index out of range");
                flat = flat * c.Sizes[v] + idx[v];
            }
            seen[flat]++;
        });
        Assert.True(seen.All(s => s == 1), $"{where}: some iteration point is visited {seen.Min()}..{seen.Max()} times");
    }

    /// <summary>Runs the nest as an interpreter: each loop does remaining/step full iterations then one partial.</summary>
    static void Enumerate(Nest n, long[] step, int level, int[] remaining, int[] idx, Action<int[]> visit)
    {
        if (level == n.Count) { visit(idx); return; }
        int v = n[level].Var, s = (int)step[level], full = remaining[v] / s, rem = remaining[v] % s, r0 = remaining[v], i0 = idx[v];
        for (int i = 0; i <= full; i++)
        {
            int count = i < full ? s : rem;
            if (count == 0) break;
            remaining[v] = count;
            idx[v] = i0 + i * s;
            Enumerate(n, step, level + 1, remaining, idx, visit);
        }
        remaining[v] = r0;
        idx[v] = i0;
    }
}
