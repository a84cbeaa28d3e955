namespace LoopTune.CostModel;

/// <summary>Hyperparameters of <see cref="BoostedTrees"/>.</summary>
/// <param name="Trees">Trees fitted one after another, each to what the ones before it left unexplained.</param>
/// <param name="Depth">Most levels of splits per tree.</param>
/// <param name="LearningRate">How much of each tree's fit is added (shrinkage).</param>
/// <param name="MinLeaf">Fewest rows a leaf may hold.</param>
/// <param name="Lambda">L2 regularisation of the leaf values (a leaf of n rows shrinks by n / (n + lambda)).</param>
/// <param name="Subsample">Share of the rows each tree is grown on (drawn anew per tree).</param>
/// <param name="Bins">Most thresholds per feature (quantiles of the training values).</param>
/// <param name="Seed">Seed of the row sampling.</param>
public sealed record BoostingOptions(int Trees = 200, int Depth = 7, double LearningRate = 0.1, int MinLeaf = 20, double Lambda = 1,
    double Subsample = 0.5, int Bins = 64, int Seed = 0)
{
    /// <summary>What a search refits with after each round of measurements: a few shallow trees over tens of rows.</summary>
    public static BoostingOptions Online { get; } = new(Trees: 30, Depth: 3, LearningRate: 0.3, MinLeaf: 2, Lambda: 1, Subsample: 1, Bins: 32);

    /// <summary>Throws <see cref="CostModelError"/> unless the options make sense.</summary>
    public BoostingOptions Validate() =>
        Trees >= 1 && Depth >= 1 && LearningRate is > 0 and <= 1 && MinLeaf >= 1 && Lambda >= 0 && Subsample is > 0 and <= 1 && Bins is >= 2 and <= 255
            ? this : throw new CostModelError($"bad boosting options: {this}");
}

/// <summary>
/// A gradient-boosted regression tree ensemble for the squared loss, written for this project (no native library):
/// features are cut into at most <see cref="BoostingOptions.Bins"/> quantile bins once, each tree is grown level by level
/// on a fresh subsample of the rows from histograms of the residuals' sums per bin (the split of largest variance
/// reduction, as LightGBM and XGBoost's <c>hist</c> do), and its leaves are shrunk by the learning rate. A prediction
/// walks each tree comparing raw feature values with the thresholds, so a model reads features it never binned.
/// Deterministic given its seed.
/// </summary>
public sealed class BoostedTrees
{
    BoostedTrees(int features, float bias, List<RegressionTree> trees) => (Features, Bias, Trees) = (features, bias, trees);

    /// <summary>Floats per row.</summary>
    public int Features { get; }

    /// <summary>The prediction before any tree: the mean of the targets it was fitted to.</summary>
    public float Bias { get; }

    /// <summary>The trees, in the order they were fitted.</summary>
    public IReadOnlyList<RegressionTree> Trees { get; }

    /// <summary>The prediction for one row of <see cref="Features"/> floats.</summary>
    public float Predict(ReadOnlySpan<float> x)
    {
        if (x.Length != Features) throw new ArgumentException($"a row of {x.Length} features for a model of {Features}", nameof(x));
        float sum = Bias;
        foreach (var t in Trees) sum += t.Predict(x);
        return sum;
    }

    /// <summary>Fits an ensemble to <paramref name="y"/> from rows <paramref name="x"/> (row-major, <paramref name="features"/>
    /// floats each), or, with <paramref name="offset"/>, to what <paramref name="offset"/> leaves of <paramref name="y"/>
    /// (another model's predictions of the same rows: this one then learns that model's errors).</summary>
    public static BoostedTrees Fit(float[] x, int features, float[] y, BoostingOptions? options = null, float[]? offset = null)
    {
        var o = (options ?? new()).Validate();
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        int n = y.Length;
        if (n == 0 || x.Length != n * features || offset is { } f && f.Length != n)
            throw new ArgumentException($"{x.Length} feature values and {offset?.Length} offsets for {n} targets of {features} features");
        var target = offset is null ? y : [.. y.Select((v, i) => v - offset[i])];
        float bias = (float)target.Average(v => (double)v);
        var thresholds = Thresholds(x, features, n, o.Bins, o.Seed);
        var bins = Bin(x, features, n, thresholds);
        var residual = target.Select(v => v - bias).ToArray();
        var rng = new Random(o.Seed);
        var trees = new List<RegressionTree>(o.Trees);
        var grower = new Grower(bins, features, thresholds, o);
        for (int t = 0; t < o.Trees; t++)
        {
            var rows = Sample(n, o.Subsample, rng);
            var tree = grower.Grow(rows, residual);
            for (int r = 0; r < n; r++) residual[r] -= tree.PredictBinned(bins.AsSpan(r * features, features));
            trees.Add(tree.Tree);
        }
        return new BoostedTrees(features, bias, trees);
    }

    static int[] Sample(int n, double share, Random rng)
    {
        if (share >= 1) return [.. Enumerable.Range(0, n)];
        var rows = new List<int>((int)(n * share) + 1);
        for (int r = 0; r < n; r++) if (rng.NextDouble() < share) rows.Add(r);
        return rows.Count > 0 ? [.. rows] : [rng.Next(n)];
    }

    /// <summary>Per feature, the ascending thresholds between its bins: the midpoints between its distinct values when it
    /// has few, else quantiles of a sample of its values.</summary>
    static float[][] Thresholds(float[] x, int features, int n, int bins, int seed)
    {
        var rng = new Random(seed ^ 0x5eed);
        int sample = Math.Min(n, 20_000);
        var rows = sample == n ? Enumerable.Range(0, n).ToArray() : [.. Enumerable.Range(0, sample).Select(_ => rng.Next(n))];
        var result = new float[features][];
        var values = new float[sample];
        for (int f = 0; f < features; f++)
        {
            for (int i = 0; i < sample; i++) values[i] = x[rows[i] * features + f];
            Array.Sort(values);
            var distinct = new List<float>();
            foreach (var v in values) if (distinct.Count == 0 || v != distinct[^1]) distinct.Add(v);
            var cuts = new List<float>();
            if (distinct.Count <= bins)
                for (int i = 0; i + 1 < distinct.Count; i++) cuts.Add(distinct[i] + (distinct[i + 1] - distinct[i]) / 2);
            else
                for (int b = 1; b < bins; b++)
                {
                    float q = values[(int)((long)b * (sample - 1) / bins)];
                    if (q < distinct[^1] && (cuts.Count == 0 || q > cuts[^1])) cuts.Add(q);
                }
            result[f] = [.. cuts];
        }
        return result;
    }

    /// <summary>The bin of every value: the first threshold it does not exceed (the count of thresholds when it exceeds all).</summary>
    static byte[] Bin(float[] x, int features, int n, float[][] thresholds)
    {
        var bins = new byte[n * features];
        for (int r = 0; r < n; r++)
            for (int f = 0; f < features; f++)
                bins[r * features + f] = (byte)BinOf(thresholds[f], x[r * features + f]);
        return bins;
    }

    static int BinOf(float[] cuts, float v)
    {
        int lo = 0, hi = cuts.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >> 1;
            if (v <= cuts[mid]) hi = mid;
            else lo = mid + 1;
        }
        return lo;
    }

    /// <summary>Grows one tree on binned rows: level by level, each node split where the residuals' variance drops most.</summary>
    sealed class Grower(byte[] bins, int features, float[][] thresholds, BoostingOptions o)
    {
        readonly double[] sums = new double[features * 256];
        readonly int[] counts = new int[features * 256];

        public Grown Grow(int[] rows, float[] residual)
        {
            var nodes = new List<Node>();
            var work = new Queue<(int Node, int Start, int End, int Depth)>();
            nodes.Add(Leaf(rows, 0, rows.Length, residual));
            work.Enqueue((0, 0, rows.Length, 0));
            while (work.Count > 0)
            {
                var (id, start, end, depth) = work.Dequeue();
                if (depth >= o.Depth || end - start < 2 * o.MinLeaf) continue;
                var (f, bin) = Best(rows, start, end, residual);
                if (f < 0) continue;
                int mid = Partition(rows, start, end, f, bin);
                nodes[id] = nodes[id] with { Feature = f, Bin = bin, Left = nodes.Count, Right = nodes.Count + 1 };
                nodes.Add(Leaf(rows, start, mid, residual));
                nodes.Add(Leaf(rows, mid, end, residual));
                work.Enqueue((nodes[id].Left, start, mid, depth + 1));
                work.Enqueue((nodes[id].Right, mid, end, depth + 1));
            }
            return new Grown([.. nodes], thresholds);
        }

        Node Leaf(int[] rows, int start, int end, float[] residual)
        {
            double sum = 0;
            for (int i = start; i < end; i++) sum += residual[rows[i]];
            return new Node(-1, 0, -1, -1, (float)(o.LearningRate * sum / (end - start + o.Lambda)));
        }

        /// <summary>The split (feature, last bin going left) of largest gain, or feature -1 when none gains.</summary>
        (int Feature, int Bin) Best(int[] rows, int start, int end, float[] residual)
        {
            Array.Clear(sums);
            Array.Clear(counts);
            double total = 0;
            for (int i = start; i < end; i++)
            {
                int r = rows[i];
                double g = residual[r];
                total += g;
                var row = bins.AsSpan(r * features, features);
                for (int f = 0; f < features; f++)
                {
                    int at = f * 256 + row[f];
                    sums[at] += g;
                    counts[at]++;
                }
            }
            int n = end - start;
            double parent = total * total / (n + o.Lambda), bestGain = 1e-9;
            (int, int) best = (-1, 0);
            for (int f = 0; f < features; f++)
            {
                double left = 0;
                int nLeft = 0;
                for (int b = 0; b < thresholds[f].Length; b++)
                {
                    left += sums[f * 256 + b];
                    nLeft += counts[f * 256 + b];
                    if (nLeft < o.MinLeaf) continue;
                    if (n - nLeft < o.MinLeaf) break;
                    double right = total - left, gain = left * left / (nLeft + o.Lambda) + right * right / (n - nLeft + o.Lambda) - parent;
                    if (gain > bestGain) (bestGain, best) = (gain, (f, b));
                }
            }
            return best;
        }

        int Partition(int[] rows, int start, int end, int f, int bin)
        {
            int i = start, j = end - 1;
            while (i <= j)
            {
                if (bins[rows[i] * features + f] <= bin) i++;
                else
                {
                    (rows[i], rows[j]) = (rows[j], rows[i]);
                    j--;
                }
            }
            return i;
        }
    }

    readonly record struct Node(int Feature, int Bin, int Left, int Right, float Value);

    /// <summary>A tree just grown, with its splits as bins (to update the residuals of binned rows) and as thresholds.</summary>
    sealed class Grown(Node[] nodes, float[][] thresholds)
    {
        public RegressionTree Tree { get; } = new(
            [.. nodes.Select(n => n.Feature)], [.. nodes.Select(n => n.Feature < 0 ? 0f : thresholds[n.Feature][n.Bin])],
            [.. nodes.Select(n => n.Left)], [.. nodes.Select(n => n.Right)], [.. nodes.Select(n => n.Value)]);

        public float PredictBinned(ReadOnlySpan<byte> row)
        {
            int i = 0;
            while (nodes[i].Feature >= 0) i = row[nodes[i].Feature] <= nodes[i].Bin ? nodes[i].Left : nodes[i].Right;
            return nodes[i].Value;
        }
    }

    /// <summary>Writes the ensemble (<see cref="Read"/> reads it back exactly).</summary>
    public void Write(BinaryWriter w)
    {
        ArgumentNullException.ThrowIfNull(w);
        w.Write(Features);
        w.Write(Bias);
        w.Write(Trees.Count);
        foreach (var t in Trees) t.Write(w);
    }

    /// <summary>Reads an ensemble <see cref="Write"/> wrote; an <see cref="InvalidDataException"/> when the bytes are no such ensemble.</summary>
    public static BoostedTrees Read(BinaryReader r)
    {
        ArgumentNullException.ThrowIfNull(r);
        int features = r.ReadInt32();
        float bias = r.ReadSingle();
        int count = r.ReadInt32();
        if (features is < 1 or > 100_000 || count is < 0 or > 1_000_000 || !float.IsFinite(bias)) throw new InvalidDataException("not a tree ensemble");
        var trees = new List<RegressionTree>(count);
        for (int i = 0; i < count; i++) trees.Add(RegressionTree.Read(r, features));
        return new BoostedTrees(features, bias, trees);
    }
}

/// <summary>One regression tree as arrays indexed by node (node 0 the root): an inner node sends a row to
/// <see cref="Left"/> when its <see cref="Feature"/> is at most <see cref="Threshold"/>, else to <see cref="Right"/>; a leaf
/// (feature -1) gives <see cref="Value"/>.</summary>
public sealed class RegressionTree(int[] feature, float[] threshold, int[] left, int[] right, float[] value)
{
    public IReadOnlyList<int> Feature => feature;
    public IReadOnlyList<float> Threshold => threshold;
    public IReadOnlyList<int> Left => left;
    public IReadOnlyList<int> Right => right;
    public IReadOnlyList<float> Value => value;

    /// <summary>The leaf value the row reaches.</summary>
    public float Predict(ReadOnlySpan<float> x)
    {
        int i = 0;
        while (feature[i] >= 0) i = x[feature[i]] <= threshold[i] ? left[i] : right[i];
        return value[i];
    }

    internal void Write(BinaryWriter w)
    {
        w.Write(feature.Length);
        for (int i = 0; i < feature.Length; i++)
        {
            w.Write(feature[i]);
            w.Write(threshold[i]);
            w.Write(left[i]);
            w.Write(right[i]);
            w.Write(value[i]);
        }
    }

    internal static RegressionTree Read(BinaryReader r, int features)
    {
        int n = r.ReadInt32();
        if (n is < 1 or > 1_000_000) throw new InvalidDataException("not a regression tree");
        var (f, t, l, g, v) = (new int[n], new float[n], new int[n], new int[n], new float[n]);
        for (int i = 0; i < n; i++) (f[i], t[i], l[i], g[i], v[i]) = (r.ReadInt32(), r.ReadSingle(), r.ReadInt32(), r.ReadInt32(), r.ReadSingle());
        // every inner node's children come after it (so a walk ends) and inside the tree; every feature is one of the row's
        for (int i = 0; i < n; i++)
            if (f[i] >= features || f[i] >= 0 && (l[i] <= i || g[i] <= i || l[i] >= n || g[i] >= n) || !float.IsFinite(v[i]))
                throw new InvalidDataException("not a regression tree");
        return new RegressionTree(f, t, l, g, v);
    }
}
