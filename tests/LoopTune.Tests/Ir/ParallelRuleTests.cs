using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.Tests.Ir;

/// <summary>The parallel annotation: its compact form, its rules from the action and from <see cref="Nest.Parse"/>, and
/// that the learned action spaces take it above one thread.</summary>
public class ParallelRuleTests
{
    static readonly LoopAction Parallel = Actions.Get("parallel");

    static Nest N(string spec, string nest) => Nest.Parse(Computation.Parse(spec), nest);

    [Fact]
    public void Parallel_marks_an_output_loop_and_its_compact_form_round_trips()
    {
        var nest = Transforms.Apply(N("mm 64 32 16", ">m:8 k:16 m:8u n:32v"), Parallel);
        Assert.Equal(">m:8p k:16 m:8u n:32v", nest.Serialize());
        Assert.Equal(0, nest.ParallelLoop);
        Assert.Contains("for m in 8 parallel  <- cursor", nest.ToTree());
        Assert.Equal(nest, Nest.Parse(nest.Computation, nest.Serialize()));
        Assert.Equal(nest, N("mm 64 32 16", "m:8p >k:16 m:8u n:32v").With(nest.Loops, 0));
        var off = Transforms.Apply(nest, Parallel);
        Assert.Equal(">m:8 k:16 m:8u n:32v", off.Serialize());
        Assert.Equal(-1, off.ParallelLoop);
    }

    [Fact]
    public void A_parallel_loop_with_a_tail_under_an_outer_loop_of_its_variable_round_trips()
    {
        var nest = N("conv 4 13 9 6 3 3", "f:6 h:2+1 c:4 >h:5p r:3 s:3 w:7v");
        Assert.Equal(3, nest.ParallelLoop);
        Assert.Equal(nest, Nest.Parse(nest.Computation, nest.Serialize()));
    }

    /// <summary>Each rule, from the action at the cursor and from the compact form.</summary>
    [Theory]
    [InlineData("mm 8 8 8", "m:8 n:8 >k:8", "m:8 n:8 k:8p", typeof(ParallelReductionError), "'k' is a reduction variable")]
    [InlineData("mm 8 8 8", "m:8p >n:8 k:8", "m:8p n:8p k:8", typeof(SecondParallelError), "loop m (position 0) is parallel already")]
    [InlineData("mm 8 8 8", "m:8u >n:8 k:8", "m:8u n:8p k:8", typeof(ParallelInsideSpelledOutError), "an enclosing loop is unrolled or vectorized")]
    public void An_illegal_parallel_is_its_rules_error_from_the_action_and_from_parse(string spec, string at, string text, Type error, string why)
    {
        var c = Computation.Parse(spec);
        var nest = Nest.Parse(c, at);
        Assert.False(Transforms.IsLegal(nest, Parallel));
        Assert.False(Transforms.Mask(nest)[Parallel.Id]);
        var fromAction = Assert.Throws(error, () => Transforms.Apply(nest, Parallel));
        Assert.Contains(why, fromAction.Message);
        var fromParse = Assert.Throws(error, () => Nest.Parse(c, ">" + text));
        Assert.StartsWith("parallel on loop", fromParse.Message);
        Assert.Contains(why, fromParse.Message);
    }

    /// <summary>The other actions keep the parallel loop outside every unrolled or vectorized loop.</summary>
    [Theory]
    [InlineData(">m:8 n:8p k:8", "unroll", typeof(ParallelInsideSpelledOutError), "encloses the parallel loop n")]
    [InlineData("m:8p >n:8u k:8", "swap_up", typeof(ParallelInsideSpelledOutError), "would put the parallel loop m inside an unrolled loop")]
    [InlineData(">m:8p n:8u k:8", "swap_down", typeof(ParallelInsideSpelledOutError), "would put the parallel loop m inside an unrolled loop")]
    [InlineData("m:8 k:8 >n:8v", "parallel", typeof(AnnotatedLoopError), "the loop is vectorized; remove vectorize first")]
    [InlineData("k:8 n:8 >m:8u", "parallel", typeof(AnnotatedLoopError), "the loop is unrolled; remove unroll first")]
    [InlineData("m:8 k:8 >n:8p", "vectorize", typeof(AnnotatedLoopError), "the loop is parallel; remove parallel first")]
    [InlineData(">m:8p n:8 k:8", "unroll", typeof(AnnotatedLoopError), "the loop is parallel")]
    [InlineData(">m:8p n:8 k:8", "split_2", typeof(AnnotatedLoopError), "cannot be split or merged")]
    public void Actions_that_would_break_the_parallel_rules_throw_them(string at, string action, Type error, string why)
    {
        var nest = Nest.Parse(Computation.Parse("mm 8 8 8"), at);
        var e = Assert.Throws(error, () => Transforms.Apply(nest, Actions.Get(action)));
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void A_directly_built_illegal_nest_is_refused()
    {
        const string why = "a nest has at most one parallel loop";
        var c = Computation.Parse("mm 8 8 8");
        var e = Assert.Throws<NestFormatError>(() => new Nest(c, [new Loop(0, 8, 0, Annotation.Parallel), new Loop(1, 8, 0, Annotation.Parallel), new Loop(2, 8)], 0));
        Assert.Contains(why, e.Message);
        Assert.Throws<NestFormatError>(() => new Nest(c, [new Loop(0, 8, 0, Annotation.Unroll), new Loop(1, 8, 0, Annotation.Parallel), new Loop(2, 8)], 0));
        Assert.Throws<NestFormatError>(() => new Nest(c, [new Loop(0, 8), new Loop(1, 8), new Loop(2, 8, 0, Annotation.Parallel)], 0));
    }

    /// <summary>parallel is the learned spaces' last action: at one thread no space, move or mask offers it (it would
    /// change no kernel); at two, every space does where its rules allow, and the observation shows it.</summary>
    [Fact]
    public void The_learned_spaces_take_parallel_only_above_one_thread_and_the_observation_shows_it()
    {
        Assert.Equal(Actions.LearnedCount - 1, Parallel.Id);
        Assert.Equal(Actions.LearnedCount, ActionSpace.Cursor.Count);
        Assert.Contains(Parallel, Moves.KernelActions);
        Assert.Equal(377, ObservationEncoder.Size);
        var nest = N("mm 64 32 16", ">m:64 n:32 k:16");
        ActionSpace[] spaces = [ActionSpace.Cursor, ActionSpace.Loop, ActionSpace.Tile];
        IEnumerable<int> Parallels(ActionSpace s) => Enumerable.Range(0, s.Count).Where(id => s.Describe(id).StartsWith("parallel", StringComparison.Ordinal));
        foreach (var s in spaces)
        {
            Assert.NotEmpty(Parallels(s));
            Assert.DoesNotContain(Parallels(s), id => s.Mask(nest)[id] || s.TryApply(nest, id) is not null);
            Assert.DoesNotContain(s.Expand(nest), m => m.Actions[^1] == Parallel);
        }
        Assert.DoesNotContain(Moves.All(nest), m => m.Action == Parallel);

        var cores = LoopTune.Affinity.ProcessCores();
        if (cores.Count < 2) return;
        LoopTune.Jit.RunThreads.Use(2);
        try
        {
            foreach (var s in spaces) Assert.Contains(Parallels(s), id => s.Mask(nest)[id]);
            var tile = ActionSpace.Tile;
            Assert.True(tile.Mask(nest)[tile.Parse("parallel@1")]);
            Assert.False(tile.Mask(nest)[tile.Parse("parallel@2")]); // k is a reduction
            var (actions, result) = tile.Apply(nest, tile.Parse("parallel@1"));
            Assert.Equal("m:64 >n:32p k:16", result.Serialize());
            Assert.Equal(["down", "parallel"], actions.Select(a => a.Name));
            Assert.DoesNotContain(Parallels(tile), id => tile.Mask(result)[id] && tile.Describe(id) != "parallel@1"); // one per nest
            var loops = Observations.LoopsTensor(result);
            Assert.Equal([0f, 1f, 0f], Enumerable.Range(0, 3).Select(i => loops[i * Observations.LoopFeatures + Observations.LoopFeatures - 1]));
            var o = new Observation(result, default, actions);
            Assert.Equal(1f, o.PrevActionsTensor[Parallel.Id]);
            Assert.Contains(Moves.All(nest), m => m.Action == Parallel);
        }
        finally { LoopTune.Jit.RunThreads.Use(1); }
    }
}
