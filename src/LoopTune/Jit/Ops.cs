using LoopTune.Ir;

namespace LoopTune.Jit;

// The lowered form of a nest: straight-line operations and counted loops over pointer bumps, with every
// trip count, offset and vector width a constant. Lowering builds it; the emitter turns it into IL.

/// <summary>An IL local the program computes into: a temporary (an operand load) or an accumulator (a tile entry).
/// Width 1 is a scalar float; 4, 8, 16 are Vector128/256/512.</summary>
readonly record struct Value(bool IsAccumulator, int Depth, int Width, int Slot);

// Lanes: how many of a vector's lanes are live (the first ones); the others are masked off: loaded as zero, never stored.

abstract record Op;

/// <summary>A counted loop of <paramref name="Trips"/> &gt;= 2 iterations. Each iteration runs <paramref name="Body"/>
/// then advances the pointer of every tensor in <paramref name="Bumps"/> by its byte step. <paramref name="After"/>
/// runs once after the loop, still on the advanced pointers (the partial tail iteration). A <paramref name="Parallel"/>
/// loop (any trips, 0 included) runs only the iterations in the kernel's range [lo, hi), After being iteration Trips.</summary>
sealed record LoopOp(int Trips, int Depth, (int Tensor, long Bytes)[] Bumps, List<Op> Body, List<Op> After, bool Parallel = false) : Op;

/// <summary>Copies a block of input <paramref name="Tensor"/>, from <paramref name="Offset"/> elements past its current
/// pointer, with block plan <paramref name="Plan"/> of the kernel's <see cref="PackBlocks"/>, then runs
/// <paramref name="Body"/> with the tensor's pointer at the copy (<see cref="Layout.BlockLevel"/>).</summary>
sealed record PackOp(int Tensor, int Plan, long Offset, List<Op> Body) : Op;

/// <summary>Loads <paramref name="Width"/> elements of tensor <paramref name="Tensor"/> starting <paramref name="Offset"/>
/// elements past its current pointer, <paramref name="LaneStride"/> elements apart (0: broadcast, 1: contiguous, else gather).</summary>
sealed record LoadOp(Value Dst, int Tensor, long Offset, long LaneStride, int Lanes) : Op;

/// <summary>Dst = lanes of <paramref name="B"/> where <paramref name="Mask"/> has a bit set, of <paramref name="A"/> elsewhere
/// (bit i: lane i).</summary>
sealed record BlendOp(Value Dst, Value A, Value B, int Mask) : Op;

/// <summary>Hints the cache line of element <paramref name="Offset"/> past tensor <paramref name="Tensor"/>'s pointer into
/// the caches (a prefetch: never faults, changes nothing); with <paramref name="Guards"/>, only in the iteration
/// (0-based) each names of the enclosing counted loop of that depth, whose trips it gives.</summary>
sealed record PrefetchOp(int Tensor, long Offset, (int Depth, int Trips, int Iteration)[]? Guards = null) : Op;

/// <summary>Acc = A * B + Acc.</summary>
sealed record FmaOp(Value Acc, Value A, Value B) : Op;

/// <summary>An entry of the output tile kept in a local. Lanes are <paramref name="LaneStride"/> elements apart in the
/// output; LaneStride 0 with Width &gt; 1 means the lanes are partial sums of one element (a vectorized reduction).</summary>
sealed record Accumulator(Value Value, long Offset, long LaneStride, int Lanes)
{
    /// <summary>Where its initial value is read instead of the output (<see cref="Kernel.CompileInitialized"/>): elements of the
    /// init tensor past its pointer, lanes <c>LaneStride</c> apart (0: one element broadcast); null: the output's own.</summary>
    public (long Offset, long LaneStride)? Init { get; init; }

    /// <summary>Starts from zero, its output elements prefetched, and adds them when stored (<see cref="JitOptions.ZeroTiles"/>).</summary>
    public bool FromZero { get; init; }

    public bool ReducesLanes => Value.Width > 1 && LaneStride == 0;
}

/// <summary>Reads the accumulator's output elements into it (or zeroes it when it reduces lanes or starts from zero), or its
/// initial value from the init tensor (<see cref="Accumulator.Init"/>) unless <paramref name="FromOutput"/> (a later visit
/// of a tile the sum runs around: <see cref="VisitOp"/>).</summary>
sealed record TileLoadOp(Accumulator Acc, bool FromOutput = false) : Op;

/// <summary>Writes the accumulator back (adding its lane sum when it reduces lanes, itself to the output's elements when it
/// starts from zero); with <paramref name="Epilogue"/>, the output's last store, with the kernel's epilogue
/// (<see cref="OutputStore"/>: the residual added, then the Relu).</summary>
sealed record TileStoreOp(Accumulator Acc, bool Epilogue = false) : Op;

/// <summary>Writes runs of rows (<paramref name="Runs"/>): accumulators that start from zero, of whole vectors, their lanes
/// one <c>LaneStride</c> apart in the output and the offsets of a run's rows consecutive (a convolution's tile along its
/// output channels: a row per pixel, a lane per channel), so that lane i of every row of a run lands in one run of the
/// output, <c>Offset + i*LaneStride + [0, rows)</c>. Each run of the output is added to in one masked load and store
/// (<see cref="TileRows"/>), not lane by lane; every row is put aside before the first is added, so that no accumulator
/// is live across the calls that add them. With <paramref name="Epilogue"/>, the output's last store, with the kernel's
/// epilogue.</summary>
sealed record TileRowsStoreOp(Accumulator[][] Runs, bool Epilogue = false) : Op;

/// <summary>Code that runs only in some iterations of the sum's loops around a tile: <paramref name="Then"/> when the counter
/// of every counted loop of <paramref name="When"/> (its depth) is at the value given, <paramref name="Else"/> otherwise.
/// Counters count down from the loop's trips to 1: a tile's first loads (from an init tensor) run at the trips, the other
/// visits load the partial sums; its last stores (with the epilogue, <see cref="OutputStore"/>) run at 1, the others are plain.</summary>
sealed record VisitOp((int Depth, int Counter)[] When, List<Op> Then, List<Op> Else) : Op;

