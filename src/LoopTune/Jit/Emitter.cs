using System.Reflection.Emit;

namespace LoopTune.Jit;

/// <summary>The signature of every emitted kernel: the output, left and right buffers, and the init buffer the output tile's
/// initial values come from (<see cref="Kernel.CompileInitialized"/>; unused otherwise); <c>go == 0</c> returns at once
/// (used to make RyuJIT compile the method before it is timed); the parallel loop, if any, runs its iterations
/// [<paramref name="lo"/>, <paramref name="hi"/>) only (0 and int.MaxValue: all of them); <paramref name="blocks"/> are the
/// calling thread's buffers for the inputs copied a block at a time (<see cref="PackOp"/>; null when there are none);
/// <paramref name="residual"/> is added at the output's last stores, laid out as the output (<see cref="OutputStore.Residual"/>;
/// unused otherwise).</summary>
unsafe delegate void KernelFn(float* output, float* left, float* right, float* init, int go, int lo, int hi, PackBlocks? blocks, float* residual);

/// <summary>Writes a lowered <see cref="Op"/> program as IL into a DynamicMethod. Pointers live in locals, one per tensor
/// per loop level that moves it; every address is such a pointer plus a constant byte offset.</summary>
sealed unsafe class Emitter
{
    readonly ILGenerator il;
    readonly bool fused;
    readonly Dictionary<Value, LocalBuilder> values = [];
    readonly Dictionary<(int Depth, int Tensor), LocalBuilder> pointerLocals = [];
    readonly Dictionary<int, LocalBuilder> counters = [];
    readonly LocalBuilder?[] current = new LocalBuilder?[4]; // null: the argument itself
    readonly Dictionary<Chunk, LocalBuilder> masks = [];
    readonly HashSet<(LocalBuilder? Pointer, long Line)> tileLines = []; // the output lines a tile starting from zero has prefetched
    readonly Dictionary<int, LocalBuilder> sums = []; // per width: a strided tile's value plus the output, scattered from there

    readonly bool relu;
    /// <summary>The residual's address less the output's, in bytes (<see cref="OutputStore.Residual"/>): the residual is laid
    /// out as the output, so an output element's residual is this far from it. Null without a residual.</summary>
    LocalBuilder? residual;

    Emitter(ILGenerator il, bool fused, bool relu) => (this.il, this.fused, this.relu) = (il, fused, relu);

    public static KernelFn Emit(List<Op> program, bool fused, string name, OutputStore? store = null)
    {
        var method = new DynamicMethod(name, typeof(void), [typeof(float*), typeof(float*), typeof(float*), typeof(float*), typeof(int), typeof(int), typeof(int), typeof(PackBlocks), typeof(float*)],
                                       typeof(Emitter).Module, skipVisibility: true);
        var il = method.GetILGenerator();
        var run = il.DefineLabel();
        il.Emit(OpCodes.Ldarg_S, Go);
        il.Emit(OpCodes.Brtrue, run);
        il.Emit(OpCodes.Ret);
        il.MarkLabel(run);
        var emitter = new Emitter(il, fused, store?.Relu == true);
        if (store?.Residual == true)
        {
            emitter.residual = il.DeclareLocal(typeof(nint));
            il.Emit(OpCodes.Ldarg_S, Residual);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Sub);
            il.Emit(OpCodes.Stloc, emitter.residual);
        }
        emitter.Masks(program);
        emitter.Scratch(program);
        emitter.Block(program);
        il.Emit(OpCodes.Ret);
        return method.CreateDelegate<KernelFn>();
    }

    void Block(List<Op> ops)
    {
        foreach (var op in ops)
        {
            switch (op)
            {
                case LoopOp { Parallel: true } l: ParallelLoop(l); break;
                case LoopOp l: Loop(l); break;
                case PackOp p: Pack(p); break;
                case LoadOp l: Load(l); break;
                case FmaOp f: Fma(f); break;
                case PrefetchOp p: Prefetch(p); break;
                case BlendOp b: Blend(b); break;
                case TileLoadOp t: TileLoad(t.Acc, t.FromOutput); break;
                case TileStoreOp t: TileStore(t.Acc, t.Epilogue); break;
                case TileRowsStoreOp t: TileRowsStore(t.Runs, t.Epilogue); break;
                case VisitOp v: Visit(v); break;
                default: throw new InvalidOperationException($"unknown op {op}");
            }
        }
    }

    /// <summary>Builds every mask the program uses once, at the start: all bits set in the live lanes, clear in the others.</summary>
    void Masks(List<Op> ops)
    {
        foreach (var op in ops)
        {
            var chunk = op switch
            {
                LoadOp l when l.LaneStride == 1 => new Chunk(l.Dst.Width, l.Lanes),
                TileLoadOp t when t.Acc.LaneStride == 1 || !t.FromOutput && t.Acc.Init is { LaneStride: 1 } => new Chunk(t.Acc.Value.Width, t.Acc.Lanes), // its store's mask too
                _ => default,
            };
            if (op is LoopOp loop) { Masks(loop.Body); Masks(loop.After); }
            if (op is PackOp pack) Masks(pack.Body);
            if (op is VisitOp visit) { Masks(visit.Then); Masks(visit.Else); }
            if (!chunk.IsMasked || masks.ContainsKey(chunk)) continue;
            for (int i = 0; i < chunk.Width; i++) il.Emit(OpCodes.Ldc_R4, BitConverter.Int32BitsToSingle(i < chunk.Lanes ? -1 : 0));
            il.Emit(OpCodes.Call, VectorApi.Of(chunk.Width).Gather);
            il.Emit(OpCodes.Stloc, masks[chunk] = il.DeclareLocal(VectorApi.Of(chunk.Width).Type));
        }
    }

    /// <summary>Pushes the address, then loads a contiguous vector whose lanes past <paramref name="lanes"/> read as zero. A
    /// whole vector is an <c>ldobj</c> of the vector type, not a call of <c>Vector512.Load&lt;float&gt;</c>: the same
    /// unaligned load to RyuJIT, without inlining a generic method at every load (which cost about 7 us of compile time a
    /// load, up to half of a large kernel's).</summary>
    void VectorLoad(int tensor, long offset, int width, int lanes)
    {
        var api = VectorApi.Of(width);
        Address(tensor, offset);
        if (lanes == width) { il.Emit(OpCodes.Ldobj, api.Type); return; }
        il.Emit(OpCodes.Ldloc, masks[new Chunk(width, lanes)]);
        if (width == 16) il.Emit(OpCodes.Call, api.Zero);
        il.Emit(OpCodes.Call, api.MaskLoad!);
    }

    /// <summary>Gives each tensor the loop moves a pointer local of the loop's depth, starting where the current pointer is
    /// (lo iterations further for the parallel loop); returns the pointers to restore after the loop.</summary>
    LocalBuilder?[] LoopPointers(LoopOp loop)
    {
        var saved = (LocalBuilder?[])current.Clone();
        foreach (var (t, bytes) in loop.Bumps)
        {
            var p = Local(pointerLocals, (loop.Depth, t), typeof(float*));
            Pointer(t);
            if (loop.Parallel)
            {
                il.Emit(OpCodes.Ldarg_S, Lo);
                il.Emit(OpCodes.Conv_I);
                il.Emit(OpCodes.Ldc_I8, bytes);
                il.Emit(OpCodes.Conv_I);
                il.Emit(OpCodes.Mul);
                il.Emit(OpCodes.Add);
            }
            il.Emit(OpCodes.Stloc, p);
            current[t] = p;
        }
        return saved;
    }

    void Loop(LoopOp loop)
    {
        var saved = LoopPointers(loop);
        var counter = Local(counters, loop.Depth, typeof(int));
        il.Emit(OpCodes.Ldc_I4, loop.Trips);
        il.Emit(OpCodes.Stloc, counter);
        var top = il.DefineLabel();
        il.MarkLabel(top);
        Iteration(loop, counter, OpCodes.Sub);
        il.Emit(OpCodes.Dup);
        il.Emit(OpCodes.Stloc, counter);
        il.Emit(OpCodes.Brtrue, top);
        Block(loop.After);
        Array.Copy(saved, current, current.Length);
    }

    const byte Go = 4, Lo = 5, Hi = 6, Blocks = 7, Residual = 8;

    /// <summary>The code of <paramref name="v"/>'s iterations (every counter named at its value), the other code otherwise.</summary>
    void Visit(VisitOp v)
    {
        var (other, end) = (il.DefineLabel(), il.DefineLabel());
        foreach (var (depth, counter) in v.When)
        {
            il.Emit(OpCodes.Ldloc, counters[depth]);
            il.Emit(OpCodes.Ldc_I4, counter);
            il.Emit(OpCodes.Bne_Un, other);
        }
        Block(v.Then);
        il.Emit(OpCodes.Br, end);
        il.MarkLabel(other);
        Block(v.Else);
        il.MarkLabel(end);
    }

    /// <summary>With the value to store on the stack (<paramref name="width"/> lanes, stored at <paramref name="offset"/>, lanes
    /// <paramref name="laneStride"/> apart, the first <paramref name="lanes"/> live), the epilogue on it: the residual's
    /// elements at the same places added, then the Relu.</summary>
    void Epilogue(long offset, long laneStride, int width, int lanes)
    {
        if (residual is not null)
        {
            Push(ResidualTensor, offset, laneStride, width, lanes);
            if (width == 1) il.Emit(OpCodes.Add);
            else il.Emit(OpCodes.Call, VectorApi.Of(width).Add);
        }
        if (!relu) return;
        if (width == 1)
        {
            il.Emit(OpCodes.Ldc_R4, 0f);
            il.Emit(OpCodes.Call, VectorApi.ScalarMax);
        }
        else
        {
            il.Emit(OpCodes.Call, VectorApi.Of(width).Zero);
            il.Emit(OpCodes.Call, VectorApi.Of(width).Max);
        }
    }

    /// <summary>The tensor index <see cref="Address"/> (and so <see cref="Push"/>) takes for the residual: laid out as the
    /// output, its element is the output's address plus <see cref="residual"/>.</summary>
    const int ResidualTensor = 4;

    static readonly System.Reflection.MethodInfo PackBlock = typeof(PackBlocks).GetMethod(nameof(PackBlocks.Pack))!;

    /// <summary>The block's copy, then the body on a pointer local at the copy.</summary>
    void Pack(PackOp p)
    {
        il.Emit(OpCodes.Ldarg_S, Blocks);
        il.Emit(OpCodes.Ldc_I4, p.Plan);
        Address(p.Tensor, p.Offset);
        il.Emit(OpCodes.Callvirt, PackBlock);
        var block = il.DeclareLocal(typeof(float*));
        il.Emit(OpCodes.Stloc, block);
        var saved = current[p.Tensor];
        current[p.Tensor] = block;
        Block(p.Body);
        current[p.Tensor] = saved;
    }

    /// <summary>The parallel loop: iterations [lo, hi) of its Trips (arguments <see cref="Lo"/> and <see cref="Hi"/>), then
    /// its tail (iteration Trips) when lo &lt;= Trips &lt; hi. The pointers start lo iterations in.</summary>
    void ParallelLoop(LoopOp loop)
    {
        var saved = LoopPointers(loop);
        var counter = Local(counters, loop.Depth, typeof(int));
        var end = il.DeclareLocal(typeof(int));
        il.Emit(OpCodes.Ldarg_S, Lo);
        il.Emit(OpCodes.Stloc, counter);
        il.Emit(OpCodes.Ldarg_S, Hi);
        il.Emit(OpCodes.Ldc_I4, loop.Trips);
        il.Emit(OpCodes.Call, typeof(Math).GetMethod(nameof(Math.Min), [typeof(int), typeof(int)])!);
        il.Emit(OpCodes.Stloc, end);
        var (top, test) = (il.DefineLabel(), il.DefineLabel());
        il.Emit(OpCodes.Br, test);
        il.MarkLabel(top);
        Iteration(loop, counter, OpCodes.Add);
        il.Emit(OpCodes.Stloc, counter);
        il.MarkLabel(test);
        il.Emit(OpCodes.Ldloc, counter);
        il.Emit(OpCodes.Ldloc, end);
        il.Emit(OpCodes.Blt, top);
        if (loop.After.Count > 0)
        {
            var skip = il.DefineLabel();
            il.Emit(OpCodes.Ldarg_S, Lo);
            il.Emit(OpCodes.Ldc_I4, loop.Trips);
            il.Emit(OpCodes.Bgt, skip);
            il.Emit(OpCodes.Ldarg_S, Hi);
            il.Emit(OpCodes.Ldc_I4, loop.Trips);
            il.Emit(OpCodes.Ble, skip);
            Block(loop.After);
            il.MarkLabel(skip);
        }
        Array.Copy(saved, current, current.Length);
    }

    /// <summary>One iteration: the body, the pointer bumps, then the counter, stepped by <paramref name="step"/> (add or
    /// sub of 1), left on the stack.</summary>
    void Iteration(LoopOp loop, LocalBuilder counter, OpCode step)
    {
        Block(loop.Body);
        Bump(loop.Bumps);
        il.Emit(OpCodes.Ldloc, counter);
        il.Emit(OpCodes.Ldc_I4_1);
        il.Emit(step);
    }

    /// <summary>Advances the pointer of every tensor in <paramref name="bumps"/> by its byte step.</summary>
    void Bump((int Tensor, long Bytes)[] bumps)
    {
        foreach (var (t, bytes) in bumps)
        {
            il.Emit(OpCodes.Ldloc, current[t]!);
            Offset(bytes);
            il.Emit(OpCodes.Stloc, current[t]!);
        }
    }

    /// <summary>A prefetch, under its guards: each a compare of its loop's counter, which counts down from the trips.</summary>
    void Prefetch(PrefetchOp p)
    {
        var skip = il.DefineLabel();
        foreach (var (depth, trips, iteration) in p.Guards ?? [])
        {
            il.Emit(OpCodes.Ldloc, counters[depth]);
            il.Emit(OpCodes.Ldc_I4, trips - iteration);
            il.Emit(OpCodes.Bne_Un, skip);
        }
        Address(p.Tensor, p.Offset);
        il.Emit(OpCodes.Call, VectorApi.Prefetch);
        il.MarkLabel(skip);
    }

    void Load(LoadOp op)
    {
        Push(op.Tensor, op.Offset, op.LaneStride, op.Dst.Width, op.Lanes);
        il.Emit(OpCodes.Stloc, ValueLocal(op.Dst));
    }

    /// <summary>Pushes <paramref name="width"/> lanes of tensor <paramref name="tensor"/> from element
    /// <paramref name="offset"/>, <paramref name="laneStride"/> elements apart: a scalar, a broadcast (stride 0), a
    /// contiguous vector (stride 1, lanes past <paramref name="lanes"/> zero) or a gather.</summary>
    void Push(int tensor, long offset, long laneStride, int width, int lanes)
    {
        if (width == 1 || laneStride == 0)
        {
            Address(tensor, offset);
            il.Emit(OpCodes.Ldind_R4);
            if (width > 1) il.Emit(OpCodes.Call, VectorApi.Of(width).Broadcast);
        }
        else if (laneStride == 1) VectorLoad(tensor, offset, width, lanes);
        else Gather(tensor, offset, laneStride, width, lanes);
    }

    /// <summary>Builds a vector from <paramref name="lanes"/> elements <paramref name="lane"/> apart; the rest are zero.</summary>
    void Gather(int tensor, long offset, long lane, int width, int lanes)
    {
        for (int i = 0; i < width; i++)
        {
            if (i >= lanes) { il.Emit(OpCodes.Ldc_R4, 0f); continue; }
            Address(tensor, offset + i * lane);
            il.Emit(OpCodes.Ldind_R4);
        }
        il.Emit(OpCodes.Call, VectorApi.Of(width).Gather);
    }

    /// <summary>Lane i of the result is B's when bit i of the mask is set, else A's: SSE4.1 / AVX's blend under an immediate
    /// for 4 and 8 lanes; for 16, a select under a constant vector (RyuJIT makes it one vpternlogd or vblendmps).</summary>
    void Blend(BlendOp op)
    {
        var api = VectorApi.Of(op.Dst.Width);
        if (api.Blend is { } blend)
        {
            il.Emit(OpCodes.Ldloc, ValueLocal(op.A));
            il.Emit(OpCodes.Ldloc, ValueLocal(op.B));
            il.Emit(OpCodes.Ldc_I4, op.Mask);
            il.Emit(OpCodes.Call, blend);
        }
        else
        {
            for (int lane = 0; lane < op.Dst.Width; lane++) il.Emit(OpCodes.Ldc_I4, (op.Mask >> lane & 1) != 0 ? -1 : 0);
            il.Emit(OpCodes.Call, api.MaskOf!);
            il.Emit(OpCodes.Call, api.AsFloat!);
            il.Emit(OpCodes.Ldloc, ValueLocal(op.B));
            il.Emit(OpCodes.Ldloc, ValueLocal(op.A));
            il.Emit(OpCodes.Call, api.Select!);
        }
        il.Emit(OpCodes.Stloc, ValueLocal(op.Dst));
    }

    void Fma(FmaOp op)
    {
        var acc = ValueLocal(op.Acc);
        int w = op.Acc.Width;
        il.Emit(OpCodes.Ldloc, ValueLocal(op.A));
        il.Emit(OpCodes.Ldloc, ValueLocal(op.B));
        if (fused)
        {
            il.Emit(OpCodes.Ldloc, acc);
            il.Emit(OpCodes.Call, w == 1 ? VectorApi.ScalarFma : VectorApi.Of(w).Fma);
        }
        else if (w == 1)
        {
            il.Emit(OpCodes.Mul);
            il.Emit(OpCodes.Ldloc, acc);
            il.Emit(OpCodes.Add);
        }
        else
        {
            il.Emit(OpCodes.Call, VectorApi.Of(w).Multiply);
            il.Emit(OpCodes.Ldloc, acc);
            il.Emit(OpCodes.Call, VectorApi.Of(w).Add);
        }
        il.Emit(OpCodes.Stloc, acc);
    }

    void TileLoad(Accumulator a, bool fromOutput)
    {
        int w = a.Value.Width;
        if (a.Init is { } init && !fromOutput) Push(3, init.Offset, init.LaneStride, w, a.Lanes); // tensor 3: the init tensor
        else if (a.ReducesLanes) il.Emit(OpCodes.Call, VectorApi.Of(w).Zero);
        else if (a.FromZero)
        {
            // each line of the output the tile holds asked for once (strided lanes: a line per lane, most shared by the
            // tile's other accumulators)
            for (int i = 0; i < (a.LaneStride > 1 ? a.Lanes : 1); i++)
            {
                long at = a.Offset + i * a.LaneStride;
                if (!tileLines.Add((current[0], at >> 4))) continue;
                Address(0, at);
                il.Emit(OpCodes.Call, VectorApi.Prefetch);
            }
            if (w == 1) il.Emit(OpCodes.Ldc_R4, 0f);
            else il.Emit(OpCodes.Call, VectorApi.Of(w).Zero);
        }
        else Push(0, a.Offset, a.LaneStride, w, a.Lanes);
        il.Emit(OpCodes.Stloc, ValueLocal(a.Value));
    }

    void TileStore(Accumulator a, bool epilogue)
    {
        tileLines.Clear();
        int w = a.Value.Width;
        var local = ValueLocal(a.Value);
        if (a.ReducesLanes)
        {
            Address(0, a.Offset);
            il.Emit(OpCodes.Dup);
            il.Emit(OpCodes.Ldind_R4);
            il.Emit(OpCodes.Ldloc, local);
            il.Emit(OpCodes.Call, VectorApi.Of(w).Sum);
            il.Emit(OpCodes.Add);
            if (epilogue) Epilogue(a.Offset, 0, 1, 1);
            il.Emit(OpCodes.Stind_R4);
        }
        else if (w == 1)
        {
            Address(0, a.Offset);
            Stored(a, local);
            if (epilogue) Epilogue(a.Offset, 0, 1, 1);
            il.Emit(OpCodes.Stind_R4);
        }
        else if (a.LaneStride == 1 && a.Lanes == w)
        {
            Address(0, a.Offset);
            Stored(a, local);
            if (epilogue) Epilogue(a.Offset, 1, w, w);
            il.Emit(OpCodes.Stobj, VectorApi.Of(w).Type); // as VectorLoad's ldobj: no generic Store to inline
        }
        else if (a.LaneStride == 1)
        {
            Address(0, a.Offset);
            il.Emit(OpCodes.Ldloc, masks[new Chunk(w, a.Lanes)]);
            Stored(a, local);
            if (epilogue) Epilogue(a.Offset, 1, w, a.Lanes);
            il.Emit(OpCodes.Call, VectorApi.Of(w).MaskStore!);
        }
        else
        {
            if (a.FromZero || epilogue)
            {
                Stored(a, local);
                if (epilogue) Epilogue(a.Offset, a.LaneStride, w, a.Lanes);
                local = Local(sums, w, VectorApi.Of(w).Type); // one scratch local per width, not one per store
                il.Emit(OpCodes.Stloc, local);
            }
            for (int i = 0; i < a.Lanes; i++)
            {
                Address(0, a.Offset + i * a.LaneStride);
                il.Emit(OpCodes.Ldloc, local);
                il.Emit(OpCodes.Ldc_I4, i);
                il.Emit(OpCodes.Call, VectorApi.Of(w).GetElement);
                il.Emit(OpCodes.Stind_R4);
            }
        }
    }

    /// <summary>Runs of rows of a tile whose lanes are apart in the output (<see cref="TileRowsStoreOp"/>): every row's vector
    /// into the kernel's scratch (on the stack, made once: <see cref="Scratch"/>), then, for each run,
    /// <see cref="TileRows.Add16"/> adds each lane's values of its rows to the output.</summary>
    void TileRowsStore(Accumulator[][] runs, bool epilogue)
    {
        tileLines.Clear();
        // made at the kernel's entry (Scratch): a localloc inside a loop would grow the stack each iteration
        var at = scratch ?? throw new InvalidOperationException("a tile's rows are stored without the kernel's scratch");
        long floats = 0;
        var starts = new List<long>();
        foreach (var run in runs)
        {
            starts.Add(floats);
            foreach (var row in run)
            {
                int w = row.Value.Width;
                il.Emit(OpCodes.Ldloc, at);
                Offset(floats * sizeof(float));
                il.Emit(OpCodes.Ldloc, ValueLocal(row.Value));
                il.Emit(OpCodes.Stobj, VectorApi.Of(w).Type);
                floats += w;
            }
        }
        for (int r = 0; r < runs.Length; r++)
        {
            Address(0, runs[r][0].Offset);
            il.Emit(OpCodes.Ldc_I8, runs[r][0].LaneStride);
            il.Emit(OpCodes.Ldc_I4, runs[r].Length);
            il.Emit(OpCodes.Ldloc, at);
            Offset(starts[r] * sizeof(float));
            if (epilogue && residual is not null) Address(ResidualTensor, runs[r][0].Offset);
            else
            {
                il.Emit(OpCodes.Ldc_I4_0);
                il.Emit(OpCodes.Conv_U);
            }
            il.Emit(epilogue && relu ? OpCodes.Ldc_I4_1 : OpCodes.Ldc_I4_0);
            il.Emit(OpCodes.Call, TileRows.Add16Method);
        }
    }

    /// <summary>The kernel's scratch for <see cref="TileRowsStore"/>; null when it has none.</summary>
    LocalBuilder? scratch;

    /// <summary>Makes the scratch on the stack at the kernel's entry when the program has rows to store
    /// (<see cref="TileRowsStoreOp"/>): the most floats one of them puts aside (a tile may hold more accumulators than the
    /// registers), and the rows past them that <see cref="TileRows.Add16"/> reads but never stores.</summary>
    void Scratch(List<Op> ops)
    {
        long floats = Most(ops);
        if (floats == 0) return;
        scratch = il.DeclareLocal(typeof(float*));
        il.Emit(OpCodes.Ldc_I4, checked((int)(floats + TileRows.MostRows * 16) * sizeof(float)));
        il.Emit(OpCodes.Conv_U);
        il.Emit(OpCodes.Localloc);
        il.Emit(OpCodes.Stloc, scratch);

        static long Most(List<Op> ops) => ops.Select(op => op switch
        {
            TileRowsStoreOp t => t.Runs.Sum(r => r.Sum(a => (long)a.Value.Width)),
            LoopOp l => Math.Max(Most(l.Body), Most(l.After)),
            PackOp p => Most(p.Body),
            VisitOp v => Math.Max(Most(v.Then), Most(v.Else)),
            _ => 0,
        }).DefaultIfEmpty(0).Max();
    }

    /// <summary>Pushes what an element-wise accumulator writes: its value, plus the output's elements when it started from
    /// zero (<see cref="Accumulator.FromZero"/>; a masked one's dead lanes read as zero and are not stored).</summary>
    void Stored(Accumulator a, LocalBuilder local)
    {
        il.Emit(OpCodes.Ldloc, local);
        if (!a.FromZero) return;
        int w = a.Value.Width;
        Push(0, a.Offset, a.LaneStride, w, a.Lanes);
        if (w == 1) il.Emit(OpCodes.Add);
        else il.Emit(OpCodes.Call, VectorApi.Of(w).Add);
    }

    void Pointer(int tensor)
    {
        if (current[tensor] is { } p) il.Emit(OpCodes.Ldloc, p);
        else il.Emit(tensor switch { 0 => OpCodes.Ldarg_0, 1 => OpCodes.Ldarg_1, 2 => OpCodes.Ldarg_2, _ => OpCodes.Ldarg_3 });
    }

    /// <summary>Pushes the address of element <paramref name="offset"/> past the tensor's current pointer.</summary>
    void Address(int tensor, long offset)
    {
        if (tensor == ResidualTensor)
        {
            Address(0, offset);
            il.Emit(OpCodes.Ldloc, residual!);
            il.Emit(OpCodes.Add);
            return;
        }
        Pointer(tensor);
        Offset(offset * sizeof(float));
    }

    void Offset(long bytes)
    {
        if (bytes == 0) return;
        if (bytes is >= int.MinValue and <= int.MaxValue) il.Emit(OpCodes.Ldc_I4, (int)bytes);
        else il.Emit(OpCodes.Ldc_I8, bytes);
        il.Emit(OpCodes.Conv_I);
        il.Emit(OpCodes.Add);
    }

    LocalBuilder ValueLocal(Value v) =>
        Local(values, v, v.Width == 1 ? typeof(float) : VectorApi.Of(v.Width).Type);

    LocalBuilder Local<TKey>(Dictionary<TKey, LocalBuilder> cache, TKey key, Type type) where TKey : notnull
    {
        if (!cache.TryGetValue(key, out var local)) cache[key] = local = il.DeclareLocal(type);
        return local;
    }
}
