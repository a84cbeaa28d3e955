using System.Globalization;
using LoopTune.Learning.Logging;
using ScottPlot;

namespace LoopTune.Cli.Plots;

/// <summary>PNG charts of a training run's curves (metrics.csv rows), drawn with ScottPlot (SkiaSharp, no display needed).</summary>
public static class TrainingCharts
{
    /// <summary>The grid of all series (small multiples).</summary>
    public const string Grid = "curves.png";

    /// <summary>Series with more points than this get a moving-average line over the raw points.</summary>
    const int NoisyAbove = 50;

    /// <summary>Writes one PNG per series (x = env steps, y = value; named after the series, e.g. <c>loss.png</c>) and
    /// <c>curves.png</c> with all series in a grid, into <paramref name="folder"/> (created if missing). Each file is
    /// written to a temp file and renamed. Series without a finite value are left out; no rows, no files.</summary>
    /// <returns>The full paths written: the series' charts in order of first appearance, then the grid.</returns>
    public static IReadOnlyList<string> Write(IReadOnlyList<MetricRow> rows, string folder)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var series = Series(rows);
        if (series.Count == 0) return [];
        try { Directory.CreateDirectory(folder); }
        catch (Exception e) when (FileWriteError.IsIo(e)) { throw FileWriteError.From(folder, e); }

        var written = new List<string>();
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { Path.GetFileNameWithoutExtension(Grid) };
        (double Min, double Max) steps = (series.Min(s => s.Steps[0]), series.Max(s => s.Steps[^1]));
        foreach (var s in series)
        {
            var plot = NewPlot();
            Draw(plot, s, steps, small: false);
            plot.Title(s.Name);
            plot.XLabel("env steps");
            plot.YLabel(s.Name);
            written.Add(Save(plot.GetImageBytes(1000, 560, ImageFormat.Png), Path.Combine(folder, FileName(s.Name, names))));
        }

        int columns = series.Count <= 3 ? series.Count : series.Count == 4 ? 2 : 3;
        int gridRows = (series.Count + columns - 1) / columns;
        var multiplot = new Multiplot();
        multiplot.AddPlots(series.Count);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Grid(gridRows, columns);
        for (int i = 0; i < series.Count; i++)
        {
            var plot = multiplot.GetPlot(i);
            plot.Font.Set("DejaVu Sans");
            Draw(plot, series[i], steps, small: true);
            plot.Title(series[i].Name, size: 15);
            plot.XLabel("env steps", size: 12);
        }
        using var image = multiplot.Render(columns * 560, gridRows * 360);
        written.Add(Save(image.GetImageBytes(ImageFormat.Png), Path.Combine(folder, Grid)));
        return written;
    }

    /// <summary>One series: its name and its finite values, sorted by step.</summary>
    sealed record Curve(string Name, double[] Steps, double[] Values);

    /// <summary>The series in order of first appearance, each with its finite points sorted by step (stable).</summary>
    static List<Curve> Series(IReadOnlyList<MetricRow> rows)
    {
        var order = new List<string>();
        var points = new Dictionary<string, List<(double Step, double Value)>>(StringComparer.Ordinal);
        foreach (var row in rows)
            foreach (var (name, value) in row.Values)
            {
                if (!points.TryGetValue(name, out var list))
                {
                    points[name] = list = [];
                    order.Add(name);
                }
                if (double.IsFinite(value)) list.Add((row.Step, value));
            }
        return [.. order.Where(n => points[n].Count > 0).Select(n =>
        {
            var sorted = points[n].OrderBy(p => p.Step).ToArray();
            return new Curve(n, [.. sorted.Select(p => p.Step)], [.. sorted.Select(p => p.Value)]);
        })];
    }

    /// <summary>Draws a curve: a line with markers when it has few points; otherwise the raw points, faint, under a
    /// trailing moving average (the single charts have a legend above the data saying which is which). All charts share
    /// the x range of the run.</summary>
    static void Draw(Plot plot, Curve c, (double Min, double Max) steps, bool small)
    {
        var color = new ScottPlot.Palettes.Category10().GetColor(0);
        if (c.Values.Length <= NoisyAbove)
        {
            var line = plot.Add.Scatter(c.Steps, c.Values, color);
            line.LineWidth = small ? 1.5f : 2;
            line.MarkerSize = small ? 5 : 7;
        }
        else
        {
            var raw = plot.Add.Scatter(c.Steps, c.Values, color.WithAlpha(0.3));
            raw.LineWidth = 1;
            raw.MarkerSize = c.Values.Length <= 400 ? 3 : 0;
            raw.LegendText = "raw";
            int window = Math.Clamp(c.Values.Length / 20, 5, 500);
            var average = plot.Add.Scatter(c.Steps, MovingAverage(c.Values, window), new ScottPlot.Palettes.Category10().GetColor(1));
            average.LineWidth = small ? 2 : 2.5f;
            average.MarkerSize = 0;
            average.LegendText = $"mean of the last {window} points";
            if (small) plot.HideLegend(); // the grid is for shapes; the series' own chart has the legend
            else
            {
                plot.Legend.FontSize = 14;
                plot.Legend.Orientation = Orientation.Horizontal;
                plot.ShowLegend(Edge.Top); // above the data, never over it
            }
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = Steps };
        plot.Axes.AutoScale();
        if (FlatRange(c.Values) is var (lo, hi)) plot.Axes.SetLimitsY(lo, hi);
        double pad = Math.Max(1, (steps.Max - steps.Min) * 0.02);
        plot.Axes.SetLimitsX(steps.Min - pad, steps.Max + pad);
    }

    /// <summary>The y range of a constant series (a fixed epsilon, a learning rate): its value with 10 % of it (at least 0.1)
    /// either side, so the ticks differ; autoscaling would zoom into rounding noise and label every tick alike. Null when the
    /// series varies.</summary>
    internal static (double Lo, double Hi)? FlatRange(double[] values)
    {
        if (values.Length == 0) return null;
        double lo = values.Min(), hi = values.Max();
        if (hi - lo > 1e-9 * Math.Max(1, Math.Abs(hi))) return null;
        double half = Math.Max(Math.Abs(hi) * 0.1, 0.1);
        return (lo - half, hi + half);
    }

    /// <summary>Trailing moving average: each point is the mean of the last <paramref name="window"/> values up to it
    /// (of all of them, at the start), the usual "mean over the last N episodes" of training curves: smooth at the
    /// latest point, which is the one people look at, at the cost of some lag.</summary>
    internal static double[] MovingAverage(double[] values, int window)
    {
        var prefix = new double[values.Length + 1];
        for (int i = 0; i < values.Length; i++) prefix[i + 1] = prefix[i] + values[i];
        var result = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            int from = Math.Max(0, i + 1 - window);
            result[i] = (prefix[i + 1] - prefix[from]) / (i + 1 - from);
        }
        return result;
    }

    /// <summary>Step tick labels: 950, 2.5k, 12k, 1.5M.</summary>
    static string Steps(double x)
    {
        double a = Math.Abs(x);
        return a >= 1e6 ? (x / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + "M"
            : a >= 1e3 ? (x / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "k"
            : x.ToString("0.##", CultureInfo.InvariantCulture);
    }

    /// <summary>A file name for a series: characters outside [A-Za-z0-9._-] become '_', and a name already used (or
    /// the grid's) gets a number.</summary>
    static string FileName(string series, HashSet<string> used)
    {
        var stem = new string([.. series.Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '_' or '-' ? ch : '_')]).Trim('.');
        if (stem.Length == 0) stem = "series";
        string name = stem;
        for (int i = 2; !used.Add(name); i++) name = $"{stem}_{i}";
        return name + ".png";
    }

    /// <summary>Writes the bytes as <paramref name="path"/> (<see cref="AtomicFile"/>: a temporary file renamed over it).</summary>
    static string Save(byte[] png, string path)
    {
        string full = Path.GetFullPath(path);
        AtomicFile.WriteBytes(full, png);
        return full;
    }

    /// <summary>A plot in a sans-serif face (DejaVu Sans is on Debian machines, see scripts/setup.sh).</summary>
    static Plot NewPlot()
    {
        var plot = new Plot();
        plot.Font.Set("DejaVu Sans");
        return plot;
    }
}
