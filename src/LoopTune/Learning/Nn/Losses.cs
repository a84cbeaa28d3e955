namespace LoopTune.Learning.Nn;

/// <summary>
/// Regression losses. Each returns the mean loss over the batch and writes dLoss/dPred into grad (same shape as pred;
/// grad may be pred itself). <c>weights</c> (optional, one per ROW, e.g. importance-sampling weights) multiply each
/// row's loss; <c>mask</c> (optional, one per ELEMENT, Rows*Cols) selects the elements that count: the loss is then
/// the sum over counted elements of w_row * l(elem) divided by the number of ROWS (a one-hot mask with one element
/// per row gives the mean over rows), and uncounted elements get gradient 0. Without a mask the loss is the mean over
/// all elements (weighted by the row weights if given). Sums are in double.
/// </summary>
public static class Losses
{
    /// <summary>Squared error l = (p - t)^2 (not halved), dl/dp = 2 (p - t).</summary>
    public static float Mse(Matrix pred, Matrix target, Matrix grad, ReadOnlySpan<float> weights = default, ReadOnlySpan<bool> mask = default) =>
        Reduce(pred, target, grad, weights, mask, static (d, _) => (d * d, 2 * d), 0);

    /// <summary>Huber loss l = 0.5 d^2 if |d| &lt;= delta else delta (|d| - 0.5 delta), d = p - t;
    /// dl/dp = d, clamped to [-delta, delta].</summary>
    public static float Huber(Matrix pred, Matrix target, Matrix grad, float delta = 1f, ReadOnlySpan<float> weights = default, ReadOnlySpan<bool> mask = default)
    {
        if (!(delta > 0)) throw new ArgumentOutOfRangeException(nameof(delta), delta, "Huber delta must be positive");
        return Reduce(pred, target, grad, weights, mask,
            static (d, delta) => Math.Abs(d) <= delta ? (0.5 * d * d, d) : (delta * (Math.Abs(d) - 0.5 * delta), Math.CopySign(delta, d)), delta);
    }

    static float Reduce(Matrix pred, Matrix target, Matrix grad, ReadOnlySpan<float> weights, ReadOnlySpan<bool> mask,
        Func<double, double, (double Loss, double Slope)> element, double parameter)
    {
        ArgumentNullException.ThrowIfNull(pred);
        Matrix.CheckShape(target, pred.Rows, pred.Cols, nameof(target));
        Matrix.CheckShape(grad, pred.Rows, pred.Cols, nameof(grad));
        if (!weights.IsEmpty && weights.Length != pred.Rows)
            throw new ArgumentException($"{weights.Length} row weights for {pred.Rows} rows", nameof(weights));
        if (!mask.IsEmpty && mask.Length != pred.Data.Length)
            throw new ArgumentException($"a mask of {mask.Length} elements for a {pred.Rows}x{pred.Cols} prediction", nameof(mask));
        if (pred.Data.Length == 0) return 0f;
        int cols = pred.Cols;
        double scale = 1.0 / (mask.IsEmpty ? pred.Data.Length : pred.Rows), total = 0;
        for (int r = 0; r < pred.Rows; r++)
        {
            double w = weights.IsEmpty ? 1.0 : weights[r], rowTotal = 0;
            for (int c = 0; c < cols; c++)
            {
                int i = r * cols + c;
                if (!mask.IsEmpty && !mask[i]) { grad.Data[i] = 0f; continue; }
                var (loss, slope) = element((double)pred.Data[i] - target.Data[i], parameter);
                rowTotal += loss;
                grad.Data[i] = (float)(w * slope * scale);
            }
            total += w * rowTotal;
        }
        return (float)(total * scale);
    }
}
