using LoopTune.Compare;
using LoopTune.Search;
using ScottPlot;

namespace LoopTune.Cli.Plots;

/// <summary>The PNG charts of <c>compare-searches</c>, drawn with ScottPlot (SkiaSharp, no display needed).</summary>
static class ComparisonCharts
{
    public const string GflopsByBenchmark = "gflops_by_benchmark.png", TimeVsQuality = "time_vs_quality.png";

    /// <summary>Writes both charts into <paramref name="folder"/>; <paramref name="peakGflops"/> (the core's peak, when
    /// known) is drawn as a reference line next to OpenBLAS, so a reader sees how far each method is from both.</summary>
    public static void Write(Comparison c, string folder, string title, double? peakGflops = null)
    {
        Bars(c, title, peakGflops).SavePng(Path.Combine(folder, GflopsByBenchmark), Math.Max(1000, 120 + c.Benchmarks.Length * (c.Methods.Length + 3) * 14), 650);
        Scatter(c, title, peakGflops).SavePng(Path.Combine(folder, TimeVsQuality), 900, 600);
    }

    /// <summary>The peak as a dotted line with its label at <paramref name="x"/>.</summary>
    internal static void PeakLine(Plot plot, double? peak, double x)
    {
        if (peak is not double p) return;
        plot.Add.HorizontalLine(p, 1.5f, Colors.DarkRed, LinePattern.Dotted);
        var label = plot.Add.Text($"peak of one core {p:F1}", x, p);
        label.LabelFontSize = 13;
        label.LabelFontColor = Colors.DarkRed;
        label.LabelAlignment = Alignment.LowerLeft;
    }

    /// <summary>Grouped bars: for each benchmark, the unscheduled nest, each method's best schedule, OpenBLAS and the best library.</summary>
    static Plot Bars(Comparison c, string title, double? peak)
    {
        var plot = NewPlot();
        var series = new List<Series> { new(Comparison.Unscheduled, Color(Comparison.Unscheduled, 0), b => Row(c, c.Benchmarks[b], c.Methods[0]).BaseGflops) };
        series.AddRange(c.Methods.Select((m, i) => new Series(m, Color(m, i + 1), b => Row(c, c.Benchmarks[b], m).BestGflops)));
        if (c.Summaries.Any(s => s.Method == Comparison.OpenBlas))
            series.Add(new(Comparison.OpenBlas, Color(Comparison.OpenBlas, 0), b => Row(c, c.Benchmarks[b], c.Methods[0]).OpenBlasGflops));
        if (c.BestLibrarySummary is not null)
            series.Add(new(Comparison.BestLibrary, Color(Comparison.BestLibrary, 0), b => Row(c, c.Benchmarks[b], c.Methods[0]).BestLibrary?.Gflops));
        GroupedBars(plot, c.Benchmarks, series);
        PeakLine(plot, peak, -0.5);
        FitY(plot, series, c.Benchmarks.Length, peak);
        plot.YLabel("GFLOPS (re-timed, median)");
        plot.Title($"{title}: GFLOPS per benchmark");
        return plot;
    }

    /// <summary>The vertical axis from 0 to a little above the highest bar and every reference value (ScottPlot's
    /// autoscale leaves horizontal lines out).</summary>
    internal static void FitY(Plot plot, IEnumerable<Series> series, int benchmarks, params IEnumerable<double?> references)
    {
        double top = series.SelectMany(s => Enumerable.Range(0, benchmarks).Select(s.Value)).Concat(references).Max() ?? 1;
        plot.Axes.AutoScale();
        plot.Axes.SetLimitsY(0, top * 1.08);
    }

    /// <summary>One series of bars: its legend, colour, and value on the benchmark of an index (null: no bar).</summary>
    internal sealed record Series(string Name, ScottPlot.Color Color, Func<int, double?> Value);

    /// <summary>One group of bars per benchmark, one bar per series in order (none where a series has no value), the
    /// benchmarks' names under the groups and the legend on top; returns the positions a group spans (bar i of group b is at
    /// <c>b * span + i</c>).</summary>
    internal static int GroupedBars(Plot plot, IReadOnlyList<string> benchmarks, IReadOnlyList<Series> series)
    {
        int span = series.Count + 1;
        foreach (var (s, i) in series.Select((s, i) => (s, i)))
        {
            var bars = Enumerable.Range(0, benchmarks.Count).Where(b => s.Value(b) is not null)
                .Select(b => new Bar { Position = b * span + i, Value = s.Value(b)!.Value, FillColor = s.Color, LineWidth = 0, Size = 0.9 }).ToList();
            plot.Add.Bars(bars).LegendText = s.Name;
        }
        var ticks = benchmarks.Select((b, i) => new Tick(i * span + (series.Count - 1) / 2.0, b)).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks);
        // benchmark names are long: slanted, so that neighbours do not overlap
        plot.Axes.Bottom.TickLabelStyle.Rotation = 30;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.Bottom.MinimumSize = 110;
        plot.Axes.Margins(bottom: 0);
        plot.Grid.XAxisStyle.MajorLineStyle.Width = 0;
        plot.Legend.Alignment = Alignment.UpperLeft;
        plot.Legend.Orientation = Orientation.Horizontal;
        plot.ShowLegend(Edge.Top);
        return span;
    }

    /// <summary>Each method as a point: mean search seconds against geometric-mean GFLOPS, with the unscheduled nest,
    /// OpenBLAS and the peak as horizontal lines.</summary>
    static Plot Scatter(Comparison c, string title, double? peak)
    {
        var plot = NewPlot();
        int i = 0;
        foreach (var s in c.Summaries.Where(s => s.MeanSeconds is not null))
        {
            plot.Add.Marker(s.MeanSeconds!.Value, s.GeomeanGflops, MarkerShape.FilledCircle, 12, Color(s.Method, ++i));
            var label = plot.Add.Text($" {s.Method}", s.MeanSeconds.Value, s.GeomeanGflops);
            label.LabelFontSize = 14;
            label.LabelAlignment = Alignment.LowerLeft;
        }
        foreach (var s in c.Summaries.Where(s => s.MeanSeconds is null && (s.Method is Comparison.Unscheduled or Comparison.OpenBlas or Comparison.BestLibrary)))
        {
            plot.Add.HorizontalLine(s.GeomeanGflops, 1.5f, Color(s.Method, 0), LinePattern.Dashed);
            var label = plot.Add.Text($"{s.Method} {s.GeomeanGflops:F1}", 0, s.GeomeanGflops);
            label.LabelFontSize = 13;
            label.LabelFontColor = Color(s.Method, 0);
            label.LabelAlignment = Alignment.LowerLeft;
        }
        double maxSeconds = c.Summaries.Max(s => s.MaxSeconds ?? 0);
        double maxGflops = Math.Max(c.Summaries.Max(s => s.GeomeanGflops), peak ?? 0);
        PeakLine(plot, peak, 0);
        plot.Axes.SetLimits(0, Math.Max(1, c.Summaries.Max(s => s.MeanSeconds ?? 0)) * 1.25, 0, maxGflops * 1.15);
        plot.XLabel("mean search time per benchmark (s)");
        plot.YLabel("geometric-mean GFLOPS (re-timed)");
        plot.Title($"{title}: time against quality (budget up to {maxSeconds:F1} s)");
        return plot;
    }

    /// <summary>A plot in a sans-serif face (DejaVu Sans is on Debian machines, see scripts/setup.sh).</summary>
    internal static Plot NewPlot()
    {
        var plot = new Plot();
        plot.Font.Set("DejaVu Sans");
        return plot;
    }

    static ComparisonRow Row(Comparison c, string benchmark, string method) => c.Rows.First(r => r.Benchmark == benchmark && r.Method == method);

    /// <summary>Fixed colours for the two references, the Category10 palette for the methods.</summary>
    static ScottPlot.Color Color(string name, int index) => name switch
    {
        Comparison.Unscheduled => Colors.Gray,
        Comparison.OpenBlas => Colors.DimGray,
        Comparison.BestLibrary => Colors.Black,
        _ => new ScottPlot.Palettes.Category10().GetColor(index),
    };
}
