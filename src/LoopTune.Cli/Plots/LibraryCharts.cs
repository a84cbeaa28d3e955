using LoopTune.Compare;
using LoopTune.Search;
using ScottPlot;
using static LoopTune.Cli.Plots.ComparisonCharts;

namespace LoopTune.Cli.Plots;

/// <summary>The PNG charts of <c>compare-libraries</c>: GFLOPS per benchmark (the unscheduled nest, each method, each
/// library) and each method's and library's ratio to the best library; both with the core's peak and the best library
/// as reference lines.</summary>
static class LibraryCharts
{
    public const string GflopsByBenchmark = "gflops_by_benchmark.png", RatioToBestLibrary = "ratio_to_best_library.png";

    static readonly ScottPlot.Color BestColor = Colors.DarkGreen;

    /// <summary>Writes both charts into <paramref name="folder"/>.</summary>
    public static void Write(LibraryComparison lc, string folder, string title, double peakGflops)
    {
        int width = Math.Max(1000, 140 + lc.Comparison.Benchmarks.Length * (lc.Names.Count() + 1) * 14);
        Gflops(lc, title, peakGflops).SavePng(Path.Combine(folder, GflopsByBenchmark), width, 650);
        Ratios(lc, title, peakGflops).SavePng(Path.Combine(folder, RatioToBestLibrary), width, 650);
    }

    /// <summary>Bars of GFLOPS; the peak as a dotted line, each benchmark's best library as a dashed line over its group.</summary>
    static Plot Gflops(LibraryComparison lc, string title, double peak)
    {
        var plot = NewPlot();
        var series = SeriesOf(lc, includeUnscheduled: true, e => e.Gflops);
        int span = GroupedBars(plot, lc.Comparison.Benchmarks, series);
        PerGroup(plot, lc, span, series.Count, b => lc.Best(b)?.Gflops, LibraryComparison.BestLibrary);
        PeakLine(plot, peak, -0.5);
        FitY(plot, series, lc.Comparison.Benchmarks.Length, peak);
        plot.YLabel("GFLOPS (re-timed, median)");
        plot.Title($"{title}: GFLOPS per benchmark, methods and libraries");
        return plot;
    }

    /// <summary>Bars of the ratio to the best library; the best library as the line at 1, each benchmark's peak (as a ratio
    /// to that benchmark's best library) as a dotted line over its group.</summary>
    static Plot Ratios(LibraryComparison lc, string title, double peak)
    {
        var plot = NewPlot();
        var series = SeriesOf(lc, includeUnscheduled: false, e => e.VsBestLibrary);
        int span = GroupedBars(plot, lc.Comparison.Benchmarks, series);
        plot.Add.HorizontalLine(1, 1.5f, BestColor, LinePattern.Dashed);
        var label = plot.Add.Text($"{LibraryComparison.BestLibrary} = 1", -0.5, 1);
        label.LabelFontSize = 13;
        label.LabelFontColor = BestColor;
        label.LabelAlignment = Alignment.LowerLeft;
        Func<string, double?> peakRatio = b => lc.Best(b) is { } best ? peak / best.Gflops : null;
        PerGroup(plot, lc, span, series.Count, peakRatio, "peak of one core", Colors.DarkRed, LinePattern.Dotted);
        FitY(plot, series, lc.Comparison.Benchmarks.Length, [1.0, .. lc.Comparison.Benchmarks.Select(peakRatio)]);
        plot.YLabel("GFLOPS / the best library's on the benchmark");
        plot.Title($"{title}: ratio to the best library");
        return plot;
    }

    /// <summary>A series per method and library (and the unscheduled nest when asked), in the report's column order, each
    /// in the same colour in both charts.</summary>
    static List<Series> SeriesOf(LibraryComparison lc, bool includeUnscheduled, Func<LibraryEntry, double?> value)
    {
        var benchmarks = lc.Comparison.Benchmarks;
        return
        [
            .. lc.Names.Select((n, i) => (n.Name, n.Kind, Index: i))
                .Where(n => n.Kind is EntryKind.Method or EntryKind.Library || (includeUnscheduled && n.Kind == EntryKind.Unscheduled))
                .Select(n => new Series(n.Name, ColorOf(n.Name, n.Kind, n.Index), b => value(lc.Entry(benchmarks[b], n.Name)))),
        ];
    }

    /// <summary>A short horizontal line over each benchmark's group of bars at <paramref name="value"/> (none where it is
    /// null), with one legend entry.</summary>
    static void PerGroup(Plot plot, LibraryComparison lc, int span, int bars, Func<string, double?> value, string legend,
        ScottPlot.Color? color = null, LinePattern? pattern = null)
    {
        bool first = true;
        foreach (var (b, i) in lc.Comparison.Benchmarks.Select((b, i) => (b, i)))
        {
            if (value(b) is not double y) continue;
            var line = plot.Add.Line(i * span - 0.5, y, i * span + bars - 0.5, y);
            line.LineColor = color ?? BestColor;
            line.LineWidth = 2.5f;
            line.LinePattern = pattern ?? LinePattern.Dashed;
            line.MarkerSize = 0;
            line.LegendText = first ? legend : "";
            first = false;
        }
    }

    /// <summary>Fixed colours for the unscheduled nest and the libraries, the Category10 palette for the methods.</summary>
    static ScottPlot.Color ColorOf(string name, EntryKind kind, int index) => (kind, name) switch
    {
        (EntryKind.Unscheduled, _) => Colors.Gray,
        (EntryKind.Library, "openblas") => Colors.Black,
        (EntryKind.Library, "blis") => Colors.SaddleBrown,
        (EntryKind.Library, "onednn") => Colors.SlateBlue,
        (EntryKind.Library, _) => Colors.DimGray,
        _ => new ScottPlot.Palettes.Category10().GetColor(index),
    };
}
