namespace LoopTune.Learning.Nn;

/// <summary>
/// Softmax and log-softmax of each row over the legal entries of an action mask (mask: Rows*Cols, true = legal;
/// an empty span = all legal). Illegal entries get probability exactly 0 and log-probability
/// <see cref="float.NegativeInfinity"/>, and gradient 0. A row with no legal entry is an <see cref="ArgumentException"/>.
/// Row sums are in double.
/// </summary>
public static class MaskedSoftmax
{
    /// <summary>Probabilities: exp(x - logsumexp(legal x)) on legal entries, exactly 0 on illegal ones.</summary>
    public static Matrix Softmax(Matrix logits, ReadOnlySpan<bool> mask = default) => Normalize(logits, mask, log: false);

    /// <summary>Log-probabilities: x - logsumexp(legal x) on legal entries, -infinity on illegal ones.</summary>
    public static Matrix LogSoftmax(Matrix logits, ReadOnlySpan<bool> mask = default) => Normalize(logits, mask, log: true);

    static Matrix Normalize(Matrix logits, ReadOnlySpan<bool> mask, bool log)
    {
        Check(logits, mask, nameof(logits));
        int cols = logits.Cols;
        var result = new Matrix(logits.Rows, cols);
        for (int r = 0; r < logits.Rows; r++)
        {
            ReadOnlySpan<float> x = logits.Row(r);
            var rowMask = RowMask(mask, r, cols);
            float max = float.NegativeInfinity;
            bool any = false;
            for (int j = 0; j < cols; j++)
                if (rowMask.IsEmpty || rowMask[j]) { max = any ? MathF.Max(max, x[j]) : x[j]; any = true; }
            if (!any) throw new ArgumentException($"row {r} of the action mask has no legal entry", nameof(mask));
            double sum = 0;
            for (int j = 0; j < cols; j++)
                if (rowMask.IsEmpty || rowMask[j]) sum += Math.Exp((double)x[j] - max);
            double logSum = max + Math.Log(sum);
            var y = result.Row(r);
            for (int j = 0; j < cols; j++)
                y[j] = !(rowMask.IsEmpty || rowMask[j]) ? (log ? float.NegativeInfinity : 0f)
                    : log ? (float)(x[j] - logSum) : (float)Math.Exp(x[j] - logSum);
        }
        return result;
    }

    /// <summary>Given logp = LogSoftmax(logits, mask) and dLoss/dlogp (illegal entries of dlogp are ignored), returns
    /// dLoss/dlogits = dlogp - p * sum(dlogp) over the legal entries, 0 on illegal ones.</summary>
    public static Matrix LogSoftmaxBackward(Matrix logp, Matrix dlogp, ReadOnlySpan<bool> mask = default)
    {
        Check(logp, mask, nameof(logp));
        Matrix.CheckShape(dlogp, logp.Rows, logp.Cols, nameof(dlogp));
        int cols = logp.Cols;
        var dx = new Matrix(logp.Rows, cols);
        for (int r = 0; r < logp.Rows; r++)
        {
            ReadOnlySpan<float> lp = logp.Row(r), g = dlogp.Row(r);
            var rowMask = RowMask(mask, r, cols);
            double sum = 0;
            for (int j = 0; j < cols; j++)
                if (rowMask.IsEmpty || rowMask[j]) sum += g[j];
            var d = dx.Row(r);
            for (int j = 0; j < cols; j++)
                if (rowMask.IsEmpty || rowMask[j]) d[j] = (float)(g[j] - Math.Exp(lp[j]) * sum);
        }
        return dx;
    }

    /// <summary>The entropy -sum p log p of each row's masked distribution (legal entries only).</summary>
    public static float[] Entropy(Matrix logp, ReadOnlySpan<bool> mask = default)
    {
        Check(logp, mask, nameof(logp));
        var h = new float[logp.Rows];
        for (int r = 0; r < logp.Rows; r++) h[r] = (float)RowEntropy(logp.Row(r), RowMask(mask, r, logp.Cols));
        return h;
    }

    /// <summary>dLoss/dlogits given dLoss/dEntropy per row: dH/dlogit_j = -p_j (log p_j + H), 0 on illegal entries.</summary>
    public static Matrix EntropyBackward(Matrix logp, ReadOnlySpan<float> dEntropy, ReadOnlySpan<bool> mask = default)
    {
        Check(logp, mask, nameof(logp));
        if (dEntropy.Length != logp.Rows) throw new ArgumentException($"{dEntropy.Length} entropy gradients for {logp.Rows} rows", nameof(dEntropy));
        int cols = logp.Cols;
        var dx = new Matrix(logp.Rows, cols);
        for (int r = 0; r < logp.Rows; r++)
        {
            ReadOnlySpan<float> lp = logp.Row(r);
            var rowMask = RowMask(mask, r, cols);
            double h = RowEntropy(lp, rowMask);
            var d = dx.Row(r);
            for (int j = 0; j < cols; j++)
            {
                if (!(rowMask.IsEmpty || rowMask[j])) continue;
                double p = Math.Exp(lp[j]);
                if (p > 0) d[j] = (float)(-dEntropy[r] * p * (lp[j] + h));
            }
        }
        return dx;
    }

    static double RowEntropy(ReadOnlySpan<float> lp, ReadOnlySpan<bool> rowMask)
    {
        double h = 0;
        for (int j = 0; j < lp.Length; j++)
        {
            if (!(rowMask.IsEmpty || rowMask[j])) continue;
            double p = Math.Exp(lp[j]);
            if (p > 0) h -= p * lp[j];
        }
        return h;
    }

    static ReadOnlySpan<bool> RowMask(ReadOnlySpan<bool> mask, int r, int cols) => mask.IsEmpty ? mask : mask.Slice(r * cols, cols);

    static void Check(Matrix m, ReadOnlySpan<bool> mask, string name)
    {
        ArgumentNullException.ThrowIfNull(m, name);
        if (!mask.IsEmpty && mask.Length != m.Data.Length)
            throw new ArgumentException($"an action mask of {mask.Length} entries for a {m.Rows}x{m.Cols} matrix", nameof(mask));
    }
}
