using System.Globalization;

namespace LoopTune;

/// <summary>Durations as the commands take them: a positive number and a unit, <c>ms</c>, <c>s</c>, <c>m</c> or <c>h</c>
/// (<c>500ms</c>, <c>10s</c>, <c>1.5s</c>, <c>2m</c>, <c>1h</c>): a search's budget, a training's time, a checkpoint's
/// interval, a wait for workers.</summary>
public static class Duration
{
    /// <summary>The duration <paramref name="text"/> gives; a <see cref="LoopTuneException"/> naming <paramref name="what"/>
    /// (an option, or "budget") and showing the accepted forms otherwise.</summary>
    public static TimeSpan Parse(string? text, string what)
    {
        var t = text?.Trim().ToLowerInvariant() ?? "";
        var (number, scale) = t.EndsWith("ms", StringComparison.Ordinal) ? (t[..^2], 1e-3)
            : t.EndsWith('s') ? (t[..^1], 1.0)
            : t.EndsWith('m') ? (t[..^1], 60.0)
            : t.EndsWith('h') ? (t[..^1], 3600.0)
            : (null, 0);
        if (number is null || !double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double value)
            || !double.IsFinite(value) || value <= 0 || value * scale > TimeSpan.MaxValue.TotalSeconds / 2)
            throw new LoopTuneException($"bad {what} '{text}': give a positive number with a unit, such as 500ms, 10s, 2m or 1h");
        return TimeSpan.FromSeconds(value * scale);
    }
}
