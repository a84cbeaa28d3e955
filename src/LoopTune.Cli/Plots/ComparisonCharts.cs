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
    static void PeakLine(Plot plot, double? peak, double x)
    {
        if (peak is not double p) return;
        plot.Add.HorizontalLine(p, 1.5f, Colors.DarkRed, LinePattern.Dotted);
        var label = plot.Add.Text($"peak of one core {p:F1}", x, p);
        label.LabelFontSize = 13;
        label.LabelFontColor = Colors.DarkRed;
        label.LabelAlignment = Alignment.LowerLeft;
    }

    /// <summary>Grouped bars: for each benchmark, the unscheduled nest, each method's best schedule, and OpenBLAS.</summary>
    static Plot Bars(Comparison c, string title, double? peak)
    {
        var plot = NewPlot();
        var series = new List<(string Name, Func<string, double?> Gflops)> { (Comparison.Unscheduled, b => Row(c, b, c.Methods[0]).BaseGflops) };
        series.AddRange(c.Methods.Select(m => (m, (Func<string, double?>)(b => Row(c, b, m).BestGflops))));
        if (c.Summaries.Any(s => s.Method == Comparison.OpenBlas)) series.Add((Comparison.OpenBlas, b => Row(c, b, c.Methods[0]).OpenBlasGflops));
        int group = series.Count + 1;
        var ticks = new List<Tick>();
        for (int s = 0; s < series.Count; s++)
        {
            var color = Color(series[s].Name, s);
            var bars = new List<Bar>();
            for (int b = 0; b < c.Benchmarks.Length; b++)
                if (series[s].Gflops(c.Benchmarks[b]) is double g)
                    bars.Add(new Bar { Position = b * group + s, Value = g, FillColor = color, LineWidth = 0, Size = 0.9 });
            var plottable = plot.Add.Bars(bars);
            plottable.LegendText = series[s].Name;
        }
        for (int b = 0; b < c.Benchmarks.Length; b++) ticks.Add(new Tick(b * group + (series.Count - 1) / 2.0, c.Benchmarks[b]));
        PeakLine(plot, peak, -0.5);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks]);
        plot.Axes.Margins(bottom: 0);
        plot.Grid.XAxisStyle.MajorLineStyle.Width = 0;
        plot.YLabel("GFLOPS (re-timed, median)");
        plot.Title($"{title}: GFLOPS per benchmark");
        plot.Legend.Alignment = Alignment.UpperLeft;
        plot.Legend.Orientation = Orientation.Horizontal;
        plot.ShowLegend(Edge.Top);
        return plot;
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
        foreach (var s in c.Summaries.Where(s => s.MeanSeconds is null))
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
    static Plot NewPlot()
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
        Comparison.OpenBlas => Colors.Black,
        _ => new ScottPlot.Palettes.Category10().GetColor(index),
    };
}
