namespace LoopTune.Models;

/// <summary>How far an output is from a reference output: the largest |got - want| and the largest |want|. The bound a
/// check uses is relative to the output's scale, <c>relative x max(1, max |want|)</c>: both sides sum in float32, in
/// different orders, so their difference grows with the values summed.</summary>
public readonly record struct OutputError(double MaxAbs, double MaxReference)
{
    /// <summary>The error of <paramref name="got"/> against <paramref name="want"/>: NaN when either holds a NaN there,
    /// infinite when the lengths differ.</summary>
    public static OutputError Of(ReadOnlySpan<float> got, ReadOnlySpan<float> want)
    {
        if (got.Length != want.Length) return new(double.PositiveInfinity, 0);
        double max = 0, scale = 0;
        for (int i = 0; i < got.Length; i++)
        {
            double d = Math.Abs((double)got[i] - want[i]);
            if (double.IsNaN(d)) return new(double.NaN, scale);
            max = Math.Max(max, d);
            scale = Math.Max(scale, Math.Abs(want[i]));
        }
        return new(max, scale);
    }

    /// <summary>The error relative to the output's scale (the norm-wise relative error, max |got - want| / max |want|).</summary>
    public double Relative => MaxReference > 0 ? MaxAbs / MaxReference : MaxAbs;

    /// <summary>The bound <c>relative x max(1, max |want|)</c>.</summary>
    public double Bound(double relative) => relative * Math.Max(1, MaxReference);

    /// <summary>Whether the error is within <see cref="Bound"/> (false for NaN).</summary>
    public bool Within(double relative) => MaxAbs <= Bound(relative);
}
