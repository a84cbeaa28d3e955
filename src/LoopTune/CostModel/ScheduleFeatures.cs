using LoopTune.Env;
using LoopTune.Ir;

namespace LoopTune.CostModel;

/// <summary>
/// What a cost model reads of a schedule: <see cref="Count"/> floats, a pure function of the nest and the machine's vector
/// lanes. A model is kept per machine (<see cref="ScheduleCostModel"/>), so of the machine only the lanes enter, through
/// the features that count vectors; the rest of the machine's description is the same in every row a model learns from.
/// <code>
/// | slice    | size | what                                                                                      |
/// |----------|------|-------------------------------------------------------------------------------------------|
/// | 0..5     | 6    | the computation: log2 FLOPs, log2 elements of the output and of each input, reductions,    |
/// |          |      | sliding windows (1 for an affine index such as h+r)                                        |
/// | 6..69    | 64   | the 8 innermost loops, innermost first, 8 each: log2(size+1), log2(tail+1), reduction,     |
/// |          |      | unrolled, vectorized, and the stride bucket (<see cref="Observations.Bucket"/>, / 16) of    |
/// |          |      | the output and each input one iteration moves (in a packed input's own layout)             |
/// | 70..81   | 12   | the register tile and around it: loops, vectors of the vectorized loop, its masked lanes,  |
/// |          |      | a vectorized reduction, unrolled loops, log2 of the tile's output elements and of its      |
/// |          |      | accumulator vectors, log2 iterations of the reductions right above the tile (held in       |
/// |          |      | registers across them), log2 bytes the innermost 1, 2, 3 and 4 loops touch                 |
/// |          |      | (<see cref="Footprint.Bytes"/>): what fits which cache                                     |
/// | 82..83   | 2    | packed inputs                                                                              |
/// | 84..115  | 32   | the stride_tensor (<see cref="Observations.StrideTensor"/>)                                |
/// </code>
/// The loops_tensor's stride histograms and positions from the outside are left out: a register tile is read from the
/// inside, and 116 features keep a tree's histograms small.
/// </summary>
public static class ScheduleFeatures
{
    /// <summary>The features' name, stored with every model: a model only reads features of its own version.</summary>
    public const string Version = "schedule-features/v1";

    const int Inner = 8, PerLoop = 8, ComputationFeatures = 6, TileFeatures = 12, Packed = 2;

    /// <summary>Floats per schedule.</summary>
    public static int Count { get; } = ComputationFeatures + Inner * PerLoop + TileFeatures + Packed + Observations.StrideBuckets;

    /// <summary>The features of <paramref name="nest"/> on a machine of <paramref name="lanes"/> floats per vector.</summary>
    public static float[] Of(Nest nest, int lanes)
    {
        ArgumentNullException.ThrowIfNull(nest);
        var x = new float[Count];
        Write(nest, lanes, x);
        return x;
    }

    /// <summary>What <paramref name="read"/> makes of the features of each of <paramref name="nests"/> (one buffer, reused:
    /// <paramref name="read"/> must not keep it).</summary>
    public static double[] Each(IReadOnlyList<Nest> nests, int lanes, Func<float[], double> read)
    {
        ArgumentNullException.ThrowIfNull(nests);
        ArgumentNullException.ThrowIfNull(read);
        var x = new float[Count];
        var y = new double[nests.Count];
        for (int i = 0; i < y.Length; i++)
        {
            Write(nests[i], lanes, x);
            y[i] = read(x);
        }
        return y;
    }

    /// <summary>Writes the features of <paramref name="nest"/> into <paramref name="x"/> (<see cref="Count"/> floats).</summary>
    public static void Write(Nest nest, int lanes, Span<float> x)
    {
        ArgumentNullException.ThrowIfNull(nest);
        ArgumentOutOfRangeException.ThrowIfLessThan(lanes, 1);
        x.Clear();
        var c = nest.Computation;
        x[0] = (float)Math.Log2(c.Flops);
        for (int t = 0; t < 3; t++) x[1 + t] = MathF.Log2(c.Tensors[t].Length);
        x[4] = c.IsReduction.Count(r => r);
        x[5] = c.HasWindows ? 1 : 0;
        var strides = Layout.LoopStrides(nest);
        for (int k = 0; k < Inner && k < nest.Count; k++)
        {
            int i = nest.Count - 1 - k;
            var l = nest[i];
            var row = x.Slice(ComputationFeatures + k * PerLoop, PerLoop);
            (row[0], row[1]) = (MathF.Log2(l.Size + 1), MathF.Log2(l.Tail + 1));
            (row[2], row[3], row[4]) = (c.IsReduction[l.Var] ? 1 : 0, l.IsUnrolled ? 1 : 0, l.IsVectorized ? 1 : 0);
            for (int t = 0; t < 3; t++) row[5 + t] = Observations.Bucket(strides[t][i], 15) / 16f;
        }
        Tile(nest, lanes, x.Slice(ComputationFeatures + Inner * PerLoop, TileFeatures));
        int p = ComputationFeatures + Inner * PerLoop + TileFeatures;
        (x[p], x[p + 1]) = (nest.IsPacked(1) ? 1 : 0, nest.IsPacked(2) ? 1 : 0);
        Observations.StrideTensor(nest).CopyTo(x[(p + Packed)..]);
    }

    /// <summary>The register tile's features: the run of unrolled and vectorized loops at the bottom of the nest, the
    /// reductions right above it, and the footprints of the innermost loops.</summary>
    static void Tile(Nest nest, int lanes, Span<float> x)
    {
        var c = nest.Computation;
        int n = nest.Count, top = nest.SpelledOutFrom;
        double elements = 1, reductions = 1;
        int unrolled = 0, vector = 0;
        bool vectorReduction = false;
        for (int i = top; i < n; i++)
        {
            var l = nest[i];
            if (l.IsUnrolled) unrolled++;
            if (l.IsVectorized) (vector, vectorReduction) = (nest.Extent(i), c.IsReduction[l.Var]);
            if (!c.IsReduction[l.Var]) elements *= l.Iterations;
        }
        for (int i = top - 1; i >= 0 && c.IsReduction[nest[i].Var]; i--) reductions *= nest[i].Iterations;
        x[0] = n;
        x[1] = vector / (float)lanes;
        x[2] = vector % lanes == 0 ? 0 : 1;
        x[3] = vectorReduction ? 1 : 0;
        x[4] = unrolled;
        x[5] = (float)Math.Log2(elements);
        x[6] = (float)Math.Log2(Math.Max(1, elements / (vector > 0 ? lanes : 1)));
        x[7] = (float)Math.Log2(reductions);
        for (int k = 0; k < 4; k++) x[8 + k] = (float)Math.Log2(Footprint.Bytes(nest, Math.Max(0, n - 1 - k)));
    }
}
