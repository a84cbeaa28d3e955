using System.Globalization;
using LoopTune.Ir;

namespace LoopTune.Jit;

/// <summary>
/// Turns a nest into a <see cref="Op"/> program. Every loop runs in a context: for each variable, how many
/// elements remain to cover (its full extent, or less inside a tail). All contexts are constants, so each tail
/// gets its own specialised copy of the code below it. Loop kinds:
/// <list type="bullet">
/// <item>vectorized (innermost): the lanes are cut into the widest vectors available, then narrower ones, then scalars;</item>
/// <item>unrolled, or a loop with one iteration: its body is spelled out once per iteration, offsets as constants; an
/// unrolled loop right above the vectorized one is fused with it into one run of lanes when <see cref="Fusion"/> allows;</item>
/// <item>otherwise a counted loop that bumps one pointer per tensor the variable moves.</item>
/// </list>
/// The parallel loop (<see cref="Nest.ParallelLoop"/>) is always a counted loop, whatever its trips, and runs only the
/// iterations [lo, hi) the kernel is called with (a thread's chunk; its tail is iteration <c>full</c>): every copy of it,
/// in every tail context of the loops around it, runs the iterations of that range it has.
/// The output tile: the loops below the "block" (the innermost run of unrolled or vectorized loops) produce a fixed
/// set of output elements. They live in locals (accumulators) from before the run of reduction loops directly above
/// the block to after it: loaded once, updated by every multiply-add, stored once, as LoopNest does.
/// </summary>
sealed class Lowering
{
    readonly Nest nest;
    readonly JitOptions options;
    readonly long[][] strides; // [tensor][loop level]: elements one iteration moves the tensor (Layout)
    readonly Annotation[] annotation;
    readonly int hoist;
    readonly int block; // the innermost run of unrolled or vectorized loops starts here
    readonly int vectorVar;
    readonly int parallel;
    readonly int tensors; // 3, or 4 with the init tensor (Kernel.CompileInitialized)
    readonly bool zeroTiles; // the tile's element-wise accumulators start from zero (JitOptions.ZeroTiles): a sum's loop runs over it
    readonly bool epilogue; // the output's last stores apply the kernel's epilogue (OutputStore)
    int notLast; // sum loops around the tile whose code being lowered is not their last iteration (OutputStore)
    readonly List<(int Depth, int Counter)> lastDepths = []; // counted sum loops around the tile whose last iteration is their counter at 1
    int notFirst; // sum loops around the tile whose code being lowered is not their first iteration (an init tensor)
    readonly List<(int Depth, int Counter)> firstDepths = []; // counted sum loops around the tile whose first iteration is their counter at its trips
    readonly long[] ahead = new long[3]; // per input, elements to its next block (JitOptions.PrefetchBlockBytes), 0: none
    readonly bool[] spread = new bool[3]; // per input, whether its next block is prefetched spread over the reuse (JitOptions.PrefetchSpreadBytes)
    readonly bool[][] reuse = new bool[3][]; // per input, the levels that read its block again
    readonly int[] blockLevel = [-1, -1, -1, -1]; // per input, the level whose iterations copy a block of it (Layout.BlockLevel), -1: none
    readonly List<PackPlan> blockPlans = [];
    readonly Dictionary<(int Tensor, string Sizes), int> planIndex = [];
    readonly int[] depthAt, tripsAt; // per level, the counted loop open there (its depth, -1: none) and its trips in this context
    readonly bool[] laterAt; // per level, whether the code being lowered is a later unrolled copy of it, or its tail
    Tile? tile;
    int statements, operations, readsPast;
    readonly bool[] prefetched = new bool[3];
    const int LineFloats = 16;
    /// <summary>The word of the note a prefetching input leaves in the kernel's notes (<see cref="Kernel.Prefetches"/>).</summary>
    internal const string Prefetched = "prefetched";
    readonly List<string> remarks = []; // what the lowering did beyond the annotations (fused lanes, prefetches): the kernel's notes
    const int LoopCost = 8;

    Lowering(Nest nest, Annotation[] annotation, JitOptions options, long[]? init = null, OutputStore? store = null, InputViews? inputs = null)
    {
        this.nest = nest;
        this.options = options;
        this.annotation = annotation;
        strides = Layout.LoopStrides(nest);
        if (store?.Strides is not null) strides[0] = PerLevel(store.StridesFor(nest.Computation));
        epilogue = store?.HasEpilogue == true;
        for (int t = 1; t < 3; t++)
            if (inputs?.VarStridesFor(nest.Computation, t) is { } view)
            {
                if (nest.IsPacked(t)) throw new ArgumentException($"{nest.Serialize()}: {nest.Computation.Tensors[t].Name} is read through a view, which is never packed");
                strides[t] = PerLevel(view);
            }
        if (options.PackBlocks) BlockLevels();
        if (init is not null) strides = [.. strides, PerLevel(init)];
        tensors = strides.Length;
        int n = nest.Count;
        block = n;
        while (block > 0 && annotation[block - 1] != Annotation.None) block--;
        hoist = block;
        while (hoist > 0 && annotation[hoist - 1] == Annotation.None && nest.Computation.IsReduction[nest[hoist - 1].Var]) hoist--;
        (depthAt, tripsAt, laterAt) = ([.. Enumerable.Repeat(-1, n)], new int[n], new bool[n]);
        if (options.PrefetchBlockBytes > 0 || options.PrefetchSpreadBytes > 0) (ahead[1], ahead[2]) = (Ahead(1), Ahead(2));
        vectorVar = annotation[n - 1] == Annotation.Vectorize ? nest[n - 1].Var : -1;
        parallel = nest.ParallelLoop;
        zeroTiles = options.ZeroTiles && init is null && Enumerable.Range(hoist, block - hoist).Any(l => nest[l].Iterations > 1);
    }

    /// <summary>A tensor's elements per variable (<paramref name="varStrides"/>) as the elements one iteration of each loop
    /// of the nest moves it.</summary>
    long[] PerLevel(IReadOnlyList<long> varStrides) => [.. Enumerable.Range(0, nest.Count).Select(l => varStrides[nest[l].Var] * nest.InnerStep(l))];

    /// <summary>Finds the inputs copied a block at a time (<see cref="Layout.BlockLevel"/>): the loops down to the block's
    /// move the input as given (its pointer is the input's), the loops inside it move it in the block's layout.</summary>
    void BlockLevels()
    {
        for (int t = 1; t < 3; t++)
        {
            int level = Layout.BlockLevel(nest, t);
            if (level < 0) continue;
            blockLevel[t] = level;
            var plain = nest.Computation.Tensors[t].VarStrides;
            for (int l = 0; l <= level; l++) strides[t][l] = plain[nest[l].Var] * nest.InnerStep(l);
            long floats = Layout.PackedLength(nest, t, level);
            remarks.Add(string.Create(CultureInfo.InvariantCulture, $"input {nest.Computation.Tensors[t].Name} packed a block at a time, in each of the {nest[level].Iterations} iterations of {nest.LoopName(level)}: {floats} floats ({floats * sizeof(float) / 1024.0:0.#} KiB) a block"));
        }
    }

    /// <summary>Lowers the nest. When the spelled-out code would pass <see cref="JitOptions.MaxOperations"/>, the outermost
    /// unrolled loops are kept as loops, one at a time, and a note says which.</summary>
    /// <param name="nest">The schedule.</param>
    /// <param name="options">How to generate code.</param>
    /// <param name="sizes">The elements each variable covers (default: the computation's sizes); smaller for a slice of the
    /// outermost loop (<see cref="Kernel.CompileSlice"/>).</param>
    /// <param name="init">The element strides, per variable, of the tensor the output tile's initial value is read from
    /// (<see cref="Kernel.CompileInitialized"/>), or null: the tile starts from the output itself.</param>
    /// <param name="floor">Skip the attempts sure to pass the budget (the default): one whose <see cref="Floor"/> is
    /// already past it, and one that would lower the same program as the attempt that just did; false lowers every
    /// attempt up to the budget, one unroll dropped at a time (the tests compare both).</param>
    /// <param name="store">Where the output is written and what its last stores do (<see cref="OutputStore"/>), or null:
    /// the output tensor itself, plain stores.</param>
    /// <param name="inputs">Where the inputs are read (<see cref="InputViews"/>), or null: the input tensors themselves.</param>
    public static (List<Op> Program, int Statements, int BlockStart, int ReadsPast, List<string> Notes, List<PackPlan> Blocks) Lower(Nest nest, JitOptions options, int[]? sizes = null, bool floor = true,
        long[]? init = null, OutputStore? store = null, InputViews? inputs = null)
    {
        if (init is not null && init.Length != nest.Computation.Vars.Length)
            throw new ArgumentException($"the init tensor needs a stride for each of the {nest.Computation.Vars.Length} variables, not {init.Length}", nameof(init));
        // the parallel loop is a plain loop to the code inside it: only its range comes from the call
        var annotation = nest.Loops.Select(l => l.IsParallel ? Annotation.None : l.Annotation).ToArray();
        var notes = new List<string>();
        if (options.VectorWidths.Count == 0 && annotation[^1] == Annotation.Vectorize)
        {
            annotation[^1] = Annotation.Unroll;
            notes.Add($"no vector unit in use: vectorized loop {nest.LoopName(nest.Count - 1)} is unrolled as scalars");
        }
        int[] covered = sizes is null ? [.. nest.Computation.Sizes] : [.. sizes];
        while (true)
        {
            var l = new Lowering(nest, annotation, options, init, store, inputs);
            var ops = new List<Op>();
            int outer = Array.IndexOf(annotation, Annotation.Unroll);
            try
            {
                if (floor && outer >= 0 && l.Floor(0, covered) > options.MaxOperations) throw new OverBudget();
                if (init is not null) l.CheckInitialized();
                if (l.epilogue && l.vectorVar >= 0 && nest.Computation.IsReduction[l.vectorVar])
                    throw new ArgumentException($"{nest.Serialize()}: the vectorized loop {nest.LoopName(nest.Count - 1)} runs a sum, whose lanes add onto the output: no store is the last, so no epilogue can run");
                l.Run(0, covered, default, new Scope(null, 0, new int[l.tensors]), ops, budget: outer >= 0);
                notes.AddRange(l.remarks.Distinct());
                return (ops, l.statements, l.hoist, l.readsPast, notes, l.blockPlans);
            }
            catch (OverBudget)
            {
                while (true)
                {
                    annotation[outer] = Annotation.None;
                    notes.Add($"unroll of {nest.LoopName(outer)} not applied: the kernel would spell out more than {options.MaxOperations} operations");
                    // the next attempt would lower the same program when the loop kept is spelled out anyway (one iteration
                    // at most in every context) and the tile stays where it was: it would pass the budget again, so its
                    // unroll goes too, without lowering it (h:1+12u above an unroll past the budget: three attempts to two)
                    int next = Array.IndexOf(annotation, Annotation.Unroll);
                    if (!floor || next < 0 || nest[outer].Size > 1 || !l.SameTile(new Lowering(nest, annotation, options))) break;
                    outer = next;
                }
            }
        }
    }

    /// <summary>Throws unless each output element can start from the init tensor once: no vectorized sum (whose lanes add
    /// onto the output). A sum whose loops run around the tile reads init at the tile's first visit only (<see cref="VisitOp"/>).</summary>
    void CheckInitialized()
    {
        var c = nest.Computation;
        if (vectorVar >= 0 && c.IsReduction[vectorVar])
            throw new ArgumentException($"{nest.Serialize()}: the vectorized loop {nest.LoopName(nest.Count - 1)} runs a sum, whose lanes add onto the output: it cannot start from an initial value");
    }

    /// <summary>
    /// The elements from a block of input <paramref name="t"/> to its next: the stride of the innermost loop above the tile
    /// that moves the input, when loops between it and the tile read the block again (they do not move the input), and
    /// either those loops run at most <see cref="JitOptions.PrefetchReuse"/> iterations and the block (that stride) is at
    /// most <see cref="JitOptions.PrefetchBlockBytes"/> (each of the iterations prefetches the next block), or the block
    /// holds at most <see cref="JitOptions.PrefetchSpreadBytes"/> (and more than <see cref="JitOptions.PrefetchSpreadMinBytes"/>), the input is read in vectors (<see cref="Streamed"/>) and the innermost of those loops is counted, not parallel
    /// (the prefetch is spread over its iterations: <see cref="Spread"/>); 0 otherwise.
    /// <code>
    /// g:8 c:64 h:7 | c:8 r:3 s:3 w:7u e:64v    W[g,c,r,s,e]: a block of 8 channels (18 KB) reused by h's 7 rows: c:64's stride
    /// k:4 n:8 m:128 | k:256 m:8u n:2u n:16v    B[k,n]: a block reused by m's 128 iterations: none (each would prefetch again)
    /// </code>
    /// With the first, a kernel reading its weights from memory (a forward pass: 9.4 MB of weights a layer, once) ran
    /// 1.29-1.30 ms instead of 1.38-1.43 on the Zen 5, the same hot (1.17-1.20 against 1.21-1.22); with prefetches on the
    /// second, 12.3-12.5 ms became 15.5-16.2.
    /// </summary>
    long Ahead(int t)
    {
        long reused = 1;
        reuse[t] = new bool[nest.Count];
        for (int level = hoist - 1; level >= 0; level--)
        {
            long trips = Trips(level);
            if (strides[t][level] == 0)
            {
                reused *= trips;
                reuse[t][level] = trips > 1;
            }
            else if (reused > 1)
            {
                if (level <= blockLevel[t]) return 0; // its next block is copied, not read where it is
                if (reused <= JitOptions.PrefetchReuse && Math.Abs(strides[t][level]) * sizeof(float) <= options.PrefetchBlockBytes) return strides[t][level];
                int inner = Array.LastIndexOf(reuse[t], true);
                long bytes = Footprint(t, level) * sizeof(float);
                spread[t] = bytes <= options.PrefetchSpreadBytes && bytes > options.PrefetchSpreadMinBytes && annotation[inner] == Annotation.None
                    && (parallel < 0 || !reuse[t][parallel]) && Streamed(t);
                return spread[t] ? strides[t][level] : 0;
            }
        }
        return 0;
    }

    /// <summary>Whether input <paramref name="t"/> is read in whole vectors along the vectorized loop (B of a product
    /// vectorized along n), a line a load: the only input whose next block is prefetched spread, since each of its
    /// prefetches costs a compare and a branch in every iteration of the tile's loop. A broadcast operand's rows (A's 8 rows
    /// of an 8 x 2 tile) would take one each per step, for a line that stays the same for 16 steps: on mm 1024 1024 1024
    /// <c>k:4 n:8 m:128 n:4 k:256 m:8u n:2u n:16v</c> that ran 78 GFLOPS instead of 141.</summary>
    bool Streamed(int t) => annotation[^1] == Annotation.Vectorize && strides[t][^1] == 1;

    long Trips(int level) => (nest.Computation.Sizes[nest[level].Var] + nest.InnerStep(level) - 1) / nest.InnerStep(level);

    /// <summary>The elements of input <paramref name="t"/> one iteration of <paramref name="level"/> reads at most: the
    /// product of the iterations of the loops inside it that move the input.</summary>
    long Footprint(int t, int level)
    {
        long elements = 1;
        for (int l = level + 1; l < nest.Count; l++)
            if (strides[t][l] != 0) elements *= nest[l].Iterations;
        return elements;
    }

    /// <summary>
    /// Whether a prefetch of input <paramref name="t"/>'s next block is made here, and under which guards: always, without
    /// guards, for a block prefetched by every reuse (<see cref="JitOptions.PrefetchBlockBytes"/>); for a spread one
    /// (<see cref="JitOptions.PrefetchSpreadBytes"/>), the <paramref name="line"/>-th line the region prefetches goes to
    /// iteration <c>line mod trips</c> of the innermost reuse loop, and only to the first iteration of the reuse loops
    /// further out (counted ones by a guard, unrolled ones by being lowered in their first copy only: none in a later
    /// copy or a tail).
    /// <code>
    /// n:36 m:21+2 k:768 m:6u n:64v    B's panel of 64 columns (196 KB) is read by m's 23 tiles: in m's iteration i (i &lt; 4)
    ///                                  each k step prefetches line i of the next panel's row k (4 lines a row)
    /// </code>
    /// </summary>
    (bool Made, (int Depth, int Trips, int Iteration)[]? Guards) Spread(int t, int line)
    {
        if (!spread[t]) return (true, null);
        var levels = Enumerable.Range(0, nest.Count).Where(l => reuse[t][l]).ToList();
        if (levels.Any(l => laterAt[l])) return (false, null);
        int inner = levels[^1];
        var counted = levels.Where(l => depthAt[l] >= 0);
        return (true, [.. counted.Select(l => (depthAt[l], tripsAt[l], l == inner ? line % tripsAt[l] : 0))]);
    }

    /// <summary>True when <paramref name="other"/> (of the same nest, other annotations) holds the same output tile: the
    /// same innermost run of unrolled or vectorized loops and the same loops around it that it is hoisted above.</summary>
    bool SameTile(Lowering other) => block == other.block && hoist == other.hoist && vectorVar == other.vectorVar;

    /// <summary>
    /// The fewest operations <see cref="Run"/> spends from <paramref name="level"/> in the context
    /// <paramref name="remaining"/>: one per multiply-add statement and <see cref="LoopCost"/> per counted loop, counted
    /// once per context and multiplied by the iterations that share it, without lowering anything (the loads, blends and
    /// accumulators come on top). Above <see cref="JitOptions.MaxOperations"/>, the lowering is sure to pass the budget, so
    /// an unroll that far over it is dropped without first lowering up to the budget and throwing that away (about a
    /// millisecond of a recall: <c>m:16 n:4 k:64u k:2 m:8u n:32v</c> spells out 64 loops of 16 statements). Past the floor
    /// but within the budget, the lowering itself still decides: the choice is the same either way.
    /// </summary>
    long Floor(int level, int[] remaining)
    {
        if (level == nest.Count) return 1;
        if (FusedRows(level, remaining) is { } fused) return fused.Vectors;
        int v = nest[level].Var, step = nest.InnerStep(level), full = remaining[v] / step, rem = remaining[v] % step;
        if (annotation[level] == Annotation.Vectorize) return options.Chunks(remaining[v]).Count();
        long body = full > 0 ? Floor(level + 1, With(remaining, v, step)) : 0, after = rem > 0 ? Floor(level + 1, With(remaining, v, rem)) : 0;
        if (level != parallel && (annotation[level] == Annotation.Unroll || full <= 1)) return full * body + after;
        return LoopCost + body + after;
    }

    sealed class OverBudget : Exception;

    /// <summary>A straight-line region: operand loads already made in it (or in enclosing regions), keyed by what they load.
    /// <paramref name="PointerDepth"/> says, per tensor, which loop level's pointer local is current.</summary>
    sealed record Scope(Scope? Parent, int Depth, int[] PointerDepth)
    {
        readonly Dictionary<(int Tensor, int PtrDepth, long Offset, Chunk Chunk, long Lane), Value> loads = [];
        Dictionary<(Value A, Value B, int Mask), Value>? blends; // made on the first blend: most scopes have none
        public int NextSlot { get; set; }

        public Value? Find((int, int, long, Chunk, long) key) =>
            loads.TryGetValue(key, out var v) ? v : Parent?.Find(key);

        public void Add((int, int, long, Chunk, long) key, Value v) => loads[key] = v;

        public Value? Find((Value, Value, int) key) => blends is not null && blends.TryGetValue(key, out var v) ? v : Parent?.Find(key);

        public void Add((Value, Value, int) key, Value v) => (blends ??= [])[key] = v;

        HashSet<(int, int, long)>? prefetched;

        /// <summary>The first time a line of a tensor (at its current pointer) is asked for in this straight-line region: how
        /// many lines of the tensor the region asked for before it; null after the first time.</summary>
        public int? Prefetch(int tensor, long line)
        {
            var lines = Region.Lines;
            return lines.Add((tensor, PointerDepth[tensor], line)) ? lines.Count(l => l.Item1 == tensor) - 1 : null;
        }

        Scope Region => Parent is null || Parent.Depth != Depth ? this : Parent.Region;
        HashSet<(int, int, long)> Lines => prefetched ??= [];
    }

    sealed class Tile
    {
        public readonly List<Accumulator> Accumulators = [];
        public readonly Dictionary<(long Offset, Chunk Chunk, long Lane), Accumulator> ByKey = [];
    }

    /// <summary>The stores of a tile's element-wise accumulators: the runs of accumulators whose lanes are apart in the output
    /// and whose offsets are consecutive (where <see cref="TileRows.Supports"/> their width) as one
    /// <see cref="TileRowsStoreOp"/>, the others one by one.</summary>
    static IEnumerable<Op> Stores(IEnumerable<Accumulator> accumulators, bool epilogue = false)
    {
        var single = new List<Accumulator>();
        var strided = new List<Accumulator>();
        foreach (var a in accumulators)
            (a.FromZero && a.Init is null && a.LaneStride > 1 && a.Lanes == a.Value.Width && TileRows.Supports(a.Value.Width) ? strided : single).Add(a);
        var runs = new List<Accumulator[]>();
        foreach (var group in strided.GroupBy(a => (a.LaneStride, a.Value.Width)))
        {
            var run = new List<Accumulator>();
            foreach (var a in group.OrderBy(a => a.Offset))
            {
                // a run ends where the next row is not the next element, or the runs of two lanes would meet
                if (run.Count > 0 && (a.Offset != run[^1].Offset + 1 || run.Count == TileRows.MostRows || run.Count + 1 > a.LaneStride))
                {
                    End(run);
                    run = [];
                }
                run.Add(a);
            }
            End(run);
        }
        if (runs.Count > 0) yield return new TileRowsStoreOp([.. runs], epilogue);
        foreach (var a in single) yield return new TileStoreOp(a, epilogue);

        void End(List<Accumulator> run)
        {
            if (run.Count > 1) runs.Add([.. run]);
            else single.AddRange(run);
        }
    }

    void Run(int level, int[] remaining, Offsets offset, Scope scope, List<Op> ops, bool budget)
    {
        if (tile is null && level == hoist)
        {
            tile = new Tile();
            var inner = new List<Op>();
            Run(level, remaining, offset, scope, inner, budget);
            // with an init tensor, the tile's first load of each element reads it, told apart by counters where the sum runs around the tile
            if (tensors < 4 || firstDepths.Count == 0 && notFirst == 0) ops.AddRange(tile.Accumulators.Select(a => new TileLoadOp(a)));
            else if (notFirst > 0) ops.AddRange(tile.Accumulators.Select(a => new TileLoadOp(a, FromOutput: true)));
            else ops.Add(new VisitOp([.. firstDepths], [.. tile.Accumulators.Select(a => new TileLoadOp(a))], [.. tile.Accumulators.Select(a => new TileLoadOp(a, FromOutput: true))]));
            ops.AddRange(inner);
            // Element-wise stores first: a lane-reducing accumulator then adds onto what they wrote.
            List<Op> plain = [.. Stores(tile.Accumulators.Where(a => !a.ReducesLanes)), .. tile.Accumulators.Where(a => a.ReducesLanes).Select(a => new TileStoreOp(a))];
            // the last stores of the output (no vectorized sum: refused) apply the epilogue, told apart by counters where need be
            if (!epilogue || notLast > 0) ops.AddRange(plain);
            else if (lastDepths.Count == 0) ops.AddRange(Stores(tile.Accumulators, epilogue: true));
            else ops.Add(new VisitOp([.. lastDepths], [.. Stores(tile.Accumulators, epilogue: true)], plain));
            tile = null;
            return;
        }
        if (level == nest.Count)
        {
            Statement(offset, new Chunk(1, 1), scope, ops, budget);
            return;
        }
        if (Fusion(level, remaining) is { } rows)
        {
            Fused(level, rows, remaining[vectorVar], offset, scope, ops, budget);
            return;
        }
        int v = nest[level].Var, step = nest.InnerStep(level), full = remaining[v] / step, rem = remaining[v] % step;
        if (annotation[level] == Annotation.Vectorize)
        {
            long lane = 0;
            foreach (var chunk in options.Chunks(remaining[v]))
            {
                Statement(Shift(offset, level, lane), chunk, scope, ops, budget);
                lane += chunk.Lanes;
            }
            return;
        }
        bool sum = epilogue && tile is null && nest.Computation.IsReduction[v]; // a loop of the sum around the tile: which store is last
        bool firstSum = tensors > 3 && tile is null && nest.Computation.IsReduction[v]; // and which load is first (an init tensor)
        if (level != parallel && (annotation[level] == Annotation.Unroll || full <= 1))
        {
            var each = With(remaining, v, step); // read only: one context for every full iteration
            bool later = laterAt[level];
            for (int i = 0; i < full; i++)
            {
                laterAt[level] = later || i > 0;
                int earlier = sum && (i < full - 1 || rem > 0) ? 1 : 0, again = firstSum && i > 0 ? 1 : 0;
                (notLast, notFirst) = (notLast + earlier, notFirst + again);
                Inside(level, each, Shift(offset, level, i), scope, ops, budget);
                (notLast, notFirst) = (notLast - earlier, notFirst - again);
            }
            laterAt[level] = later || full > 0;
            int tailAgain = firstSum && full > 0 ? 1 : 0;
            notFirst += tailAgain;
            if (rem > 0) Inside(level, With(remaining, v, rem), Shift(offset, level, full), scope, ops, budget);
            notFirst -= tailAgain;
            laterAt[level] = later;
            return;
        }
        int depth = scope.Depth + 1;
        var bumps = new List<(int, long)>(tensors);
        for (int t = 0; t < tensors; t++)
            if (strides[t][level] != 0) bumps.Add((t, strides[t][level] * sizeof(float)));
        var pointers = (int[])scope.PointerDepth.Clone();
        foreach (var (t, _) in bumps) pointers[t] = depth;
        var body = new List<Op>();
        (depthAt[level], tripsAt[level]) = (depth, full);
        // a sum's counted iterations: the last is the one with the counter at 1, unless a tail comes after them
        if (sum && rem == 0) lastDepths.Add((depth, 1));
        else if (sum) notLast++;
        // its first iteration is the one with the counter at its trips
        if (firstSum) firstDepths.Add((depth, full));
        if (full > 0) Inside(level, With(remaining, v, step), offset, new Scope(scope, depth, pointers), body, budget);
        if (sum && rem == 0) lastDepths.RemoveAt(lastDepths.Count - 1);
        else if (sum) notLast--;
        if (firstSum) firstDepths.RemoveAt(firstDepths.Count - 1);
        depthAt[level] = -1;
        var after = new List<Op>();
        bool wasLater = laterAt[level];
        laterAt[level] = true; // the tail: a spread prefetch's guards name the loop's iterations only
        if (firstSum && full > 0) notFirst++; // a tail after counted iterations is no first one
        if (rem > 0) Inside(level, With(remaining, v, rem), offset, new Scope(scope, depth, pointers), after, budget);
        if (firstSum && full > 0) notFirst--;
        laterAt[level] = wasLater;
        Spend(LoopCost, budget);
        ops.Add(new LoopOp(full, depth, [.. bumps], body, after, level == parallel));
    }

    /// <summary>The body of one iteration of loop <paramref name="level"/> (or of its tail), covering
    /// <paramref name="remaining"/>: first the copy of each input whose block is copied there (<see cref="Layout.BlockLevel"/>,
    /// from input <paramref name="from"/> on), the loops inside then reading the copy.</summary>
    void Inside(int level, int[] remaining, Offsets offset, Scope scope, List<Op> ops, bool budget, int from = 1)
    {
        for (int t = from; t < 3; t++)
        {
            if (blockLevel[t] != level) continue;
            var pointers = (int[])scope.PointerDepth.Clone();
            pointers[t] = -2 - level; // a depth no loop has: the block's loads are not those of the input as given
            var inner = new Scope(scope, scope.Depth, pointers) { NextSlot = scope.NextSlot };
            var body = new List<Op>();
            Inside(level, remaining, offset.With(t, 0), inner, body, budget, t + 1);
            scope.NextSlot = Math.Max(scope.NextSlot, inner.NextSlot);
            var key = (t, string.Join(',', remaining));
            if (!planIndex.TryGetValue(key, out int plan))
            {
                planIndex[key] = plan = blockPlans.Count;
                blockPlans.Add(new PackPlan(nest, t, remaining, level));
            }
            Spend(LoopCost, budget);
            ops.Add(new PackOp(t, plan, offset[t], body));
            return;
        }
        Run(level + 1, remaining, offset, scope, ops, budget);
    }

    /// <summary>The statements of the unrolled loop at <paramref name="level"/> fused with the vectorized one below it
    /// (<see cref="Fusion"/>): <paramref name="rows"/> rows of <paramref name="lanes"/> lanes as one run of vectors.</summary>
    void Fused(int level, int rows, int lanes, Offsets offset, Scope scope, List<Op> ops, bool budget)
    {
        if (tensors > 3) throw new ArgumentException($"{nest.Serialize()}: loops {nest.LoopName(level)} and {nest.LoopName(nest.Count - 1)} fuse into one run of lanes, which cannot start from an initial value");
        int k = 0;
        int u = nest[level].Var;
        foreach (var chunk in options.Chunks(rows * lanes))
        {
            int at = k; // the output's lanes are contiguous over the fused rows (Fusion), so lane k is offset[0] + k
            Statement(new Offsets(offset[0] + at, offset[1], offset[2], offset[3]), chunk, scope, ops, budget, (t, _) => FusedInput(t, offset[t], at, chunk, u, lanes, scope, ops));
            k += chunk.Lanes;
        }
    }

    /// <summary>One multiply-add into the tile's accumulator for the output lanes at <c>offset[0]</c> (made on first use).
    /// The inputs' operands come from <paramref name="input"/> (tensor 1, then 2; fused lanes give their own), by default
    /// loads along the vectorized variable.</summary>
    void Statement(Offsets offset, Chunk chunk, Scope scope, List<Op> ops, bool budget, Func<int, Accumulator, Value>? input = null)
    {
        statements++;
        Spend(1, budget);
        int width = chunk.Width;
        var key = (offset[0], chunk, Lane(0, width));
        if (!tile!.ByKey.TryGetValue(key, out var acc))
        {
            Spend(2, budget);
            long laneStride = Lane(0, width);
            acc = new Accumulator(new Value(true, 0, width, tile.Accumulators.Count), offset[0], laneStride, chunk.Lanes)
            {
                Init = tensors > 3 ? (offset[3], Lane(3, width)) : null,
                FromZero = zeroTiles && (width == 1 || laneStride != 0), // element-wise: not Accumulator.ReducesLanes
            };
            tile.ByKey[key] = acc;
            tile.Accumulators.Add(acc);
        }
        int before = ops.Count;
        var left = input is null ? Input(1, offset, chunk, acc, scope, ops) : input(1, acc);
        var right = input is null ? Input(2, offset, chunk, acc, scope, ops) : input(2, acc);
        ops.Add(new FmaOp(acc.Value, left, right));
        Spend(ops.Count - before - 1, budget);
    }

    /// <summary>Elements apart in tensor <paramref name="t"/> of a <paramref name="width"/>-lane operand's lanes: the
    /// vectorized loop's stride, or 0 for a scalar (or without a vectorized loop).</summary>
    long Lane(int t, int width) => width == 1 || vectorVar < 0 ? 0 : strides[t][^1];

    /// <summary>A statement's operand from input <paramref name="t"/> by default: a load along the vectorized variable.</summary>
    Value Input(int t, Offsets offset, Chunk chunk, Accumulator acc, Scope scope, List<Op> ops)
    {
        long lane = Lane(t, chunk.Width);
        if (ahead[t] != 0 && scope.Prefetch(t, (offset[t] + ahead[t]) / LineFloats) is int line && Spread(t, line) is (true, var guards))
        {
            ops.Add(new PrefetchOp(t, offset[t] + ahead[t], guards));
            if (!prefetched[t]) remarks.Add($"input {t} {Prefetched} {ahead[t]} elements ahead (its next block{(spread[t] ? ", spread over the iterations that reuse the block" : "")})");
            prefetched[t] = true;
        }
        return Load(t, offset[t], InputChunk(chunk, acc, lane), lane, scope, ops);
    }

    /// <summary>
    /// How many rows the unrolled loop at <paramref name="level"/> fuses with the vectorized loop below it, or null when it
    /// does not (<see cref="JitOptions.FuseLanes"/>). It requires:
    /// <list type="bullet">
    /// <item>the loop is unrolled, over a variable u of its own, right above the vectorized (innermost) loop over v, with at
    /// least 2 rows left in this context;</item>
    /// <item>the output elements of the u x v block are contiguous: output strides 1 for v and (v's lanes) for u;</item>
    /// <item>each input either ignores both (a broadcast) or has stride 1 for v and at least v's lanes for u (each row of
    /// its lanes is contiguous, rows do not overlap backwards);</item>
    /// <item>the fused lanes take fewer vectors than the rows one by one, and every vector width they use can blend.</item>
    /// </list>
    /// Before, <c>h:4u w:6v</c> over <c>O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s]</c> with 6-wide rows: 4 accumulators with 6
    /// lanes live of 8, and 4 input loads. After: lanes 0-23 are <c>O[f,h..h+3,0..5]</c>, 3 full accumulators; the input
    /// vector of lanes 8-15 (rows h+1 and h+2) is a load of row h+1's elements 2-5 blended with a load that puts row h+2's
    /// elements 0-3 in lanes 12-15.
    /// </summary>
    int? Fusion(int level, int[] remaining)
    {
        if (FusedRows(level, remaining) is not { } fused) return null;
        remarks.Add($"loops {nest.LoopName(level)} and {nest.LoopName(nest.Count - 1)} fused: {fused.Rows} rows of {remaining[vectorVar]} lanes in {fused.Vectors} vectors instead of {fused.Apart}");
        return fused.Rows;
    }

    /// <summary><see cref="Fusion"/>'s decision alone: the rows fused, the vectors they take fused and apart; null when the
    /// loops are not fused.</summary>
    (int Rows, int Vectors, int Apart)? FusedRows(int level, int[] remaining)
    {
        if (!options.FuseLanes || !options.WideInputLoads || vectorVar < 0 || level != nest.Count - 2 || annotation[level] != Annotation.Unroll) return null;
        int u = nest[level].Var, rows = remaining[u], lanes = remaining[vectorVar];
        if (u == vectorVar || rows < 2 || nest.InnerStep(level) != 1 || strides[0][^1] != 1 || strides[0][level] != lanes) return null;
        for (int t = 1; t < 3; t++)
            if (!(strides[t][level] == 0 && strides[t][^1] == 0) && !(strides[t][^1] == 1 && strides[t][level] >= lanes)) return null;
        var fused = options.Chunks(rows * lanes).ToList();
        int apart = rows * options.Chunks(lanes).Count();
        if (fused.Any(c => c.Width > 1 && !JitOptions.Blends(c.Width)) || fused.Count >= apart) return null;
        return (rows, fused.Count, apart);
    }

    /// <summary>Input <paramref name="t"/> over fused lanes: a broadcast, one load when its rows are as long as the
    /// output's, else one whole-vector load per row the chunk touches, placed so that the row's lanes read its elements,
    /// blended together. Every load reads the whole vector: lanes beyond a row's read elements of the next row or (at most
    /// the vector's width less one) past the input.</summary>
    Value FusedInput(int t, long offset, int k, Chunk chunk, int u, int lanes, Scope scope, List<Op> ops)
    {
        long rowStride = strides[t][^2];
        if (rowStride == 0 && strides[t][^1] == 0) return Load(t, offset, chunk, 0, scope, ops);
        if (chunk.Width == 1) return Load(t, offset + rowStride * (k / lanes) + k % lanes, chunk, 0, scope, ops);
        var whole = chunk with { Lanes = chunk.Width };
        if (rowStride == lanes) // rows as long as the output's: one contiguous load holds every lane
        {
            readsPast = Math.Max(readsPast, chunk.Width - chunk.Lanes);
            return Load(t, offset + k, whole, 1, scope, ops);
        }
        Value? result = null;
        for (int row = k / lanes; row * lanes < k + chunk.Lanes; row++)
        {
            int from = Math.Max(k, row * lanes) - k, to = Math.Min(k + chunk.Lanes, (row + 1) * lanes) - k;
            readsPast = Math.Max(readsPast, chunk.Width - to);
            var part = Load(t, offset + (rowStride - lanes) * row + k, whole, 1, scope, ops);
            result = result is not { } sofar ? part : Blend(sofar, part, ((1 << to) - 1) & ~((1 << from) - 1), scope, ops);
        }
        return result!.Value;
    }

    static Value Blend(Value a, Value b, int mask, Scope scope, List<Op> ops)
    {
        if (scope.Find((a, b, mask)) is Value v) return v;
        v = new Value(false, scope.Depth, a.Width, scope.NextSlot++);
        scope.Add((a, b, mask), v);
        ops.Add(new BlendOp(v, a, b, mask));
        return v;
    }

    /// <summary>The chunk an input's contiguous load reads: the whole vector when <see cref="JitOptions.WideInputLoads"/>
    /// allows it and the accumulator's lanes are distinct output elements (its masked lanes are never stored, so whatever
    /// the extra lanes read stays there); the live lanes only when the accumulator sums its lanes.</summary>
    Chunk InputChunk(Chunk chunk, Accumulator acc, long lane)
    {
        if (!chunk.IsMasked || lane != 1 || acc.ReducesLanes || !options.WideInputLoads) return chunk;
        readsPast = Math.Max(readsPast, chunk.Width - chunk.Lanes);
        return chunk with { Lanes = chunk.Width };
    }

    void Spend(int cost, bool budget)
    {
        operations += cost;
        if (budget && operations > options.MaxOperations) throw new OverBudget();
    }

    static Value Load(int tensor, long offset, Chunk chunk, long lane, Scope scope, List<Op> ops)
    {
        if (lane == 0) chunk = chunk with { Lanes = chunk.Width }; // a broadcast reads one element whatever the mask
        var key = (tensor, scope.PointerDepth[tensor], offset, chunk, lane);
        if (scope.Find(key) is Value v) return v;
        v = new Value(false, scope.Depth, chunk.Width, scope.NextSlot++);
        scope.Add(key, v);
        ops.Add(new LoadOp(v, tensor, offset, lane, chunk.Lanes));
        return v;
    }

    /// <summary>The offsets <paramref name="iterations"/> iterations of loop <paramref name="level"/> further on.</summary>
    Offsets Shift(Offsets offset, int level, long iterations) =>
        iterations == 0 ? offset : new(offset[0] + strides[0][level] * iterations, offset[1] + strides[1][level] * iterations, offset[2] + strides[2][level] * iterations,
            tensors > 3 ? offset[3] + strides[3][level] * iterations : 0);

    /// <summary>Elements past each tensor's current pointer (output, left, right, init): a value, so that spelling out an
    /// iteration allocates nothing.</summary>
    readonly struct Offsets(long output, long left, long right, long init = 0)
    {
        public long this[int tensor] => tensor switch { 0 => output, 1 => left, 2 => right, _ => init };

        /// <summary>These offsets with tensor <paramref name="t"/>'s replaced by <paramref name="value"/>.</summary>
        public Offsets With(int t, long value) => new(t == 0 ? value : output, t == 1 ? value : left, t == 2 ? value : right, t == 3 ? value : init);
    }

    static int[] With(int[] remaining, int v, int value)
    {
        if (remaining[v] == value) return remaining;
        var r = (int[])remaining.Clone();
        r[v] = value;
        return r;
    }
}
