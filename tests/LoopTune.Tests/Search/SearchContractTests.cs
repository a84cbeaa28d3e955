using System.Collections.Immutable;
using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Search;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Search;

/// <summary>What every search promises, checked with a deterministic evaluator: budgets, legal actions only, a path that
/// replays to the reported schedule and GFLOPS, one evaluation per schedule, and the same result for the same seed.</summary>
public sealed class SearchContractTests
{
    public static TheoryData<string> Methods => [.. Searches.Names];

    static readonly Nest Start = Nest.Initial(Computation.Matmul(64, 48, 32));

    /// <summary>A run from <see cref="Start"/> through four splits, each a new schedule: the start and the four reached states
    /// measure <paramref name="quick"/> (in the order reached), while the confirming evaluator's truth is
    /// <paramref name="truth"/>. Returns the run, finished, and the schedule keys in the order reached.</summary>
    static (SearchResult Result, ConfirmingFakeEvaluator Fake, List<string> Order) Walk(double[] quick, double[] truth)
    {
        var order = new List<string>();
        int Index(Nest n)
        {
            if (!order.Contains(n.ScheduleKey)) order.Add(n.ScheduleKey);
            return order.IndexOf(n.ScheduleKey);
        }
        var fake = new ConfirmingFakeEvaluator(n => quick[Index(n)], n => truth[Index(n)]);
        var run = new SearchRun("test", Start, fake, SearchBudget.Seconds(30), 0, ActionSpace.Cursor);
        var state = run.Root;
        foreach (var action in Actions.ParseList("split_2,split_2,split_2,split_2"))
            state = run.Step(state, action.Id)!;
        Assert.Equal(quick.Max(), run.Best.Gflops); // what the quick figures say, before the end
        return (run.Finish(), fake, order);
    }

    [Fact]
    public void The_end_of_a_run_asks_a_confirming_evaluator_about_its_three_fastest_schedules_and_takes_its_word()
    {
        // the start measures 10, the reached states 50, 40, 30, 20; in truth the third-fastest (30) is the fastest
        var (result, fake, order) = Walk([10, 50, 40, 30, 20], [1, 1, 1, 99, 1]);
        var asked = Assert.Single(fake.Asked);
        Assert.Equal(SearchRun.Finalists, asked.Count);
        Assert.Equal([order[1], order[2], order[3]], asked.Select(n => n.ScheduleKey)); // fastest first, the rest left out
        Assert.Equal(order[3], result.Best.ScheduleKey);
        Assert.Equal(30, result.BestGflops); // the search's own figure for it
        Assert.Equal(order[3], Transforms.ApplyAll(Start, result.Actions).ScheduleKey);
        // the timing is given what is left of the budget, no more
        var within = Assert.Single(fake.Within);
        Assert.InRange(within!.Value.TotalSeconds, 25, 30);
    }

    [Fact]
    public void The_finalists_stop_at_the_start_so_the_answer_never_measured_slower_than_it()
    {
        // the start measures 45: of the reached states (50, 40, 30, 20) only the 50 is above it; the truth prefers the 40
        var (result, fake, order) = Walk([45, 50, 40, 30, 20], [10, 1, 99, 1, 1]);
        Assert.Equal([order[1], order[0]], Assert.Single(fake.Asked).Select(n => n.ScheduleKey));
        Assert.Equal(order[0], result.Best.ScheduleKey);
        Assert.True(result.BestGflops >= result.BaseGflops);
    }

    [Fact]
    public void A_confirming_evaluator_gets_its_time_kept_inside_the_budget()
    {
        var confirming = new ConfirmingFakeEvaluator(_ => 1, _ => 1);
        double Reserve(LoopTune.Env.IEvaluator e, double seconds) => new SearchRun("test", Start, e, SearchBudget.Seconds(seconds), 0).Reserve.TotalSeconds;
        // the finalists and, in a loop space, the two layout variants and three cache-blocked variants of the fastest
        Assert.Equal(1.5 * (SearchRun.Finalists + 2 + 3) * LoopTune.Measure.MeasureOptions.Confirm.MinSeconds, Reserve(confirming, 10), 9);
        Assert.Equal(1.5 * SearchRun.Finalists * LoopTune.Measure.MeasureOptions.Confirm.MinSeconds,
            new SearchRun("test", Start, confirming, SearchBudget.Seconds(10), 0, LoopTune.Env.ActionSpace.Cursor).Reserve.TotalSeconds, 9);
        Assert.Equal(0.1 / 4, Reserve(confirming, 0.1), 9); // at most a quarter of a small budget
        Assert.Equal(0, Reserve(new FakeEvaluator(), 10));
    }

    [Fact]
    public void The_finish_times_the_fastest_finalists_packed_variants_and_keeps_one_that_wins()
    {
        // quick figures put a packed schedule a hair below the same unpacked (no search prefers packing on its own here);
        // the side-by-side truth doubles it
        static double Unpacked(Nest n) => FakeEvaluator.Hashed(n.WithPacked(0));
        var confirming = new ConfirmingFakeEvaluator(n => n.Packed == 0 ? Unpacked(n) : 0.99 * Unpacked(n), n => n.Packed == 0 ? Unpacked(n) : 2 * Unpacked(n));
        var r = Searches.Get("greedy1").Run(Start, confirming, SearchBudget.Seconds(30), seed: 0);
        var asked = confirming.Asked.Last();
        var fastest = asked.Where(n => n.Packed == 0).MaxBy(Unpacked)!;
        Assert.Equal(["pack=A", "pack=B"], asked.Where(n => n.WithPacked(0).ScheduleKey == fastest.ScheduleKey && n.Packed != 0)
            .Select(n => n.ScheduleKey[(n.ScheduleKey.LastIndexOf(' ') + 1)..]).Order());
        Assert.NotEqual(0, r.Best.Packed);
        Assert.Equal(r.Best.ScheduleKey, Transforms.ApplyAll(Start, r.Actions).ScheduleKey); // its path replays to it
        // with a plain evaluator nothing is added past the budget
        var plain = new FakeEvaluator(n => n.Packed == 0 ? Unpacked(n) : 0.99 * Unpacked(n));
        Assert.Equal(0, Searches.Get("greedy1").Run(Start, plain, SearchBudget.Seconds(30), seed: 0).Best.Packed);
    }

    [Fact]
    public void The_finish_times_the_fastest_finalists_cache_blocked_variants_and_keeps_one_that_wins()
    {
        // caches of 1, 4 and 16 KiB, so that the start's loops pass each level's half: for each level, block_lN at the
        // innermost loop where it applies (n for L1 and L2, m for L3 here), each measured a hair above the start; the
        // side-by-side truth prefers the one blocked for L2
        var space = ActionSpace.TileFor(new LoopTune.Jit.CacheSizes(1, 4, 16, "test"));
        var variants = new[] { 1, 2, 3 }.Select(level => Enumerable.Range(0, Start.Count).Reverse()
            .Select(loop => space.TryApply(Start, space.IdOf(loop, space.BlockEdit(level)))).First(m => m is not null)!.Value.Result).ToList();
        Assert.Equal(3, variants.Select(v => v.ScheduleKey).Distinct().Count());
        var confirming = new ConfirmingFakeEvaluator(n => n.ScheduleKey == Start.ScheduleKey ? 10 : 10.5, n => n.ScheduleKey == variants[1].ScheduleKey ? 99 : 1);
        var run = new SearchRun("test", Start, confirming, SearchBudget.Seconds(30), 0, space);
        var r = run.Finish();
        var asked = confirming.Asked.Last().Select(n => n.ScheduleKey).ToList();
        Assert.All(variants, v => Assert.Contains(v.ScheduleKey, asked));
        Assert.Equal(variants[1].ScheduleKey, r.Best.ScheduleKey);
        Assert.Equal(r.Best.ScheduleKey, Transforms.ApplyAll(Start, r.Actions).ScheduleKey); // its path replays to it
        Assert.Equal(1 + 3 + 2, r.Evaluations); // the start, the three blocked, then the two layouts of the winner
        // caches the start's loops fit in: no blocking to try, no evaluation spent on it (the two layouts only)
        var roomy = ActionSpace.TileFor(new LoopTune.Jit.CacheSizes(1024, 4096, 16384, "test"));
        Assert.Equal(1 + 2, new SearchRun("test", Start, new ConfirmingFakeEvaluator(_ => 1, _ => 1), SearchBudget.Seconds(30), 0, roomy).Finish().Evaluations);
        // and none in a space without the macros
        Assert.Equal(-1, ActionSpace.Loop.BlockEdit(1));
    }

    [Fact]
    public void Without_a_confirming_evaluator_the_fastest_quick_figure_wins()
    {
        var seen = new List<double>();
        var fake = new FakeEvaluator(n =>
        {
            double g = FakeEvaluator.Hashed(n);
            seen.Add(g);
            return g;
        });
        var r = Searches.Get("greedy1").Run(Start, fake, SearchBudget.Seconds(30), seed: 0);
        Assert.True(seen.Count > 3);
        Assert.Equal(seen.Max(), r.BestGflops);
        Assert.Equal(FakeEvaluator.Hashed(r.Best), r.BestGflops);
    }

    public static TheoryData<string, string> MethodsAndSpaces
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var m in Searches.Names)
                foreach (var s in ActionSpace.Names) data.Add(m, s);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(MethodsAndSpaces))]
    public void Every_search_in_every_space_replays_to_its_result_through_the_environment(string method, string spaceName)
    {
        var space = ActionSpace.Get(spaceName);
        var fake = new FakeEvaluator();
        var r = Searches.Get(method).Run(Start, fake, SearchBudget.Seconds(30, 60), 2, space);
        Assert.Equal(spaceName, r.Space);
        var env = new LoopTuneEnv(new FakeEvaluator(), 100, Math.Max(1, r.Ids.Length), space);
        var (_, info) = env.Reset(Start.Computation);
        foreach (int id in r.Ids)
        {
            Assert.True(info.ActionMask[id], $"{method} in {spaceName}: {space.Describe(id)} is masked in {env.State}");
            info = env.Step(id).Info;
        }
        Assert.Equal(r.Best.ScheduleKey, env.State.ScheduleKey);
        Assert.Equal(r.Actions.AsEnumerable(), env.History);
        Assert.Equal(FakeEvaluator.Hashed(r.Best), r.BestGflops);
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void PathReplaysToTheReportedScheduleAndGflops(string method)
    {
        var fake = new FakeEvaluator();
        var r = Searches.Get(method).Run(Start, fake, SearchBudget.Seconds(30, 150), seed: 3);
        var nest = Start;
        int step = 0;
        foreach (var a in r.Actions)
        {
            Assert.True(Transforms.Mask(nest)[a.Id], $"{method}: step {++step} ({a.Name}) is masked in {nest}");
            nest = Transforms.Apply(nest, a);
        }
        Assert.Equal(r.Best.ScheduleKey, nest.ScheduleKey);
        Assert.Equal(r.Best.ScheduleKey, Transforms.ApplyAll(Start, r.Actions).ScheduleKey);
        Assert.Equal(FakeEvaluator.Hashed(nest), r.BestGflops);
        Assert.Equal(FakeEvaluator.Hashed(Start), r.BaseGflops);
        Assert.Equal(method, r.Method);
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void RespectsTheEvaluationBudgetAndEvaluatesEachScheduleOnce(string method)
    {
        var fake = new FakeEvaluator();
        var r = Searches.Get(method).Run(Start, fake, SearchBudget.Seconds(30, 40), seed: 1);
        Assert.InRange(r.Evaluations, 1, 40);
        Assert.Equal(fake.Total, r.Evaluations);
        Assert.Equal(r.Evaluations, r.Measured); // the fake never says "recalled"
        Assert.All(fake.Calls, c => Assert.Equal(1, c.Value));
        Assert.Equal(fake.Calls.Values.Count, r.Tree.Nodes.Count);
        Assert.Equal(fake.Calls.Keys.Max(k => FakeEvaluator.Hashed(Nest.Parse(Start.Computation, ">" + k))), r.BestGflops);
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void RespectsTheClock(string method)
    {
        var fake = new FakeEvaluator(delay: TimeSpan.FromMilliseconds(2));
        var r = Searches.Get(method).Run(Start, fake, SearchBudget.Seconds(0.3), seed: 1);
        // at most one evaluation (2 ms) past the limit, plus scheduling slack on a busy machine
        Assert.True(r.Seconds < 0.3 + 0.7, $"{method} took {r.Seconds:F2} s on a 0.3 s budget");
        Assert.InRange(r.Evaluations, 1, 151);
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void SameSeedSameResult(string method)
    {
        SearchResult Run(int seed) => Searches.Get(method).Run(Start, new FakeEvaluator(), SearchBudget.Seconds(60, 120), seed);
        var (a, b) = (Run(7), Run(7));
        Assert.Equal(a.Best, b.Best);
        Assert.Equal(a.Actions.AsEnumerable(), b.Actions.AsEnumerable());
        Assert.Equal((a.BestGflops, a.Evaluations), (b.BestGflops, b.Evaluations));
        Assert.Equal(a.Tree.ToDot(), b.Tree.ToDot());
    }

    [Fact]
    public void TreeExportsAsDotWithTheBestPathMarked()
    {
        var r = Searches.Get("greedy1").Run(Start, new FakeEvaluator(), SearchBudget.Seconds(30, 200), seed: 1);
        var dot = r.Tree.ToDot("greedy1 test");
        Assert.StartsWith("digraph \"greedy1 test\" {", dot);
        Assert.Equal(r.Evaluations, dot.Split('\n').Count(l => l.TrimStart().StartsWith('n') && l.Contains("[label=") && !l.Contains("->")));
        Assert.Contains("color=red", dot);
        Assert.Equal(r.Best.ScheduleKey, r.Tree.BestPath[^1]);
        Assert.Equal(Start.ScheduleKey, r.Tree.BestPath[0]);
        Assert.EndsWith("}\n", dot);
    }

    [Fact]
    public void In_a_loop_space_every_move_changes_the_kernel_and_every_loop_is_reachable()
    {
        var moves = ActionSpace.Loop.Expand(Start);
        Assert.All(moves, m => Assert.True(m.Actions.SkipWhile(a => !Moves.ChangesKernel(a)).All(Moves.ChangesKernel)));
        Assert.All(moves, m => Assert.NotEqual(Start.ScheduleKey, m.Result.ScheduleKey));
        Assert.Equal(moves.Count, moves.Select(m => m.Result.ScheduleKey).Distinct().Count());
        // a split of k (the last loop) needs the cursor walked down twice from m
        Assert.Contains(moves, m => string.Join(",", m.Actions.Select(a => a.Name)) == "down,down,split_4");
        // in the cursor space, a cursor move is a move of its own (a new state, the same kernel)
        Assert.Contains(ActionSpace.Cursor.Expand(Start), m => m.Result.ScheduleKey == Start.ScheduleKey && m.Result.Cursor == 1);
    }

    [Fact]
    public void PathsAreShortenedToMovesTheScheduleNeeds()
    {
        var path = Actions.ParseList("down,unroll,unroll,split_4,up,split_16,down,merge,down,down,down,vectorize");
        var start = Nest.Initial(Computation.Matmul(32, 16, 8));
        var full = Transforms.ApplyAll(start, path);
        var (best, ids, shortened) = SearchRun.Shorten(ActionSpace.Cursor, start, full, [.. path.Select(a => a.Id)]);
        Assert.Equal(full.ScheduleKey, best.ScheduleKey);
        Assert.Equal(best, Transforms.ApplyAll(start, shortened));
        Assert.Equal(shortened.Select(a => a.Id), ids);
        Assert.Equal("m:32 n:4 n:4 k:8v", best.ScheduleKey);
        Assert.Equal("down,split_4,down,down,vectorize", string.Join(",", shortened.Select(a => a.Name)));
    }

    [Fact]
    public void A_shortened_path_is_never_longer_and_replays_to_the_same_schedule()
    {
        // random walks of up to 6 moves in each space from a few computations, shortened as a search's result is
        var problems = new List<string>();
        foreach (var space in new[] { ActionSpace.Tile, ActionSpace.Loop, ActionSpace.Cursor })
            for (int w = 0; w < 150; w++)
            {
                var rng = new Random(w * 7 + space.Name.Length);
                var start = Nest.Initial(w % 3 == 0 ? RandomSchedules.Conv(rng) : RandomSchedules.Matmul(rng));
                var nest = start;
                var ids = ImmutableArray.CreateBuilder<int>();
                for (int step = rng.Next(1, 7); step > 0; step--)
                {
                    var moves = space.Expand(nest);
                    if (moves.Count == 0) break;
                    var m = moves[rng.Next(moves.Count)];
                    ids.Add(m.Id);
                    nest = m.Result;
                }
                var (best, shortIds, path) = SearchRun.Shorten(space, start, nest, ids.ToImmutable());
                if (shortIds.Length > ids.Count || best.ScheduleKey != nest.ScheduleKey || Transforms.ApplyAll(start, path).ScheduleKey != nest.ScheduleKey)
                    problems.Add($"{space.Name} {start.Computation}: {ids.Count} ids [{string.Join(",", ids.Select(space.Describe))}] became {shortIds.Length} [{string.Join(",", shortIds.Select(space.Describe))}]");
            }
        Assert.True(problems.Count == 0, string.Join("\n", problems.Take(5)));
    }

    [Fact]
    public void IdleSplitsAreSkipped()
    {
        var nest = Nest.Initial(Computation.Matmul(16, 8, 4));
        var names = ActionSpace.Loop.Expand(nest).Select(m => ActionSpace.Loop.Describe(m.Id)).ToList();
        Assert.DoesNotContain(names, n => n is "split_16@0" or "split_8@1" or "split_4@2");
        Assert.Contains("split_8@0", names);
    }
}
