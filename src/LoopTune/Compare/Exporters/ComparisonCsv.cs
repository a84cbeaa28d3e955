using System.Globalization;
using System.Text;

namespace LoopTune.Compare.Exporters;

/// <summary>results.csv of a comparison: RFC 4180 quoting, invariant culture, empty cells for what does not apply.</summary>
public static class ComparisonCsv
{
    /// <summary>compare-searches' results.csv: one line per (benchmark, method): the method's schedule and
    /// figures, OpenBLAS (numpy's BLAS), the best library of the benchmark and its GFLOPS (timed side by side), the action
    /// space, and the machine that measured the row (<paramref name="machine"/> when the row does not name one); a comparison
    /// run on a cluster adds the host.</summary>
    public static string Write(Comparison c, string? machine = null)
    {
        ArgumentNullException.ThrowIfNull(c);
        var sb = new StringBuilder("benchmark,method,base_gflops,best_gflops,speedup,evaluations,seconds,actions,openblas_gflops,search_gflops,measured,schedule,best_sample_gflops,verified,best_library,best_library_gflops,ratio_to_best_library,action_space,machine,estimated")
            .Append(c.Distributed ? ",host\n" : "\n");
        foreach (var r in c.Rows)
        {
            sb.AppendJoin(',', [Field(r.Benchmark), Field(r.Method), F(r.BaseGflops), F(r.BestGflops), F(r.Speedup), I(r.Evaluations), F(r.Seconds),
                Field(string.Join(",", r.Actions.Select(a => a.Name))), r.OpenBlasGflops is double o ? F(o) : "", F(r.SearchGflops), I(r.Measured),
                Field(r.Schedule), double.IsFinite(r.BestSampleGflops) ? F(r.BestSampleGflops) : "", r.Verified ? "true" : "false",
                r.BestLibrary?.Key ?? "", r.BestLibrary is { } b ? F(b.Gflops) : "", r.VsBestLibrary is double v ? F(v) : "", r.Space, Field(r.Machine ?? machine ?? ""),
                Field(string.Join(",", new[] { r.BaseEstimated ? "base" : "", r.BestEstimated ? "best" : "" }.Where(x => x.Length > 0)))]);
            if (c.Distributed) sb.Append(',').Append(Field(r.Host ?? ""));
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>compare-libraries' results.csv: one line per benchmark and entry, in <see cref="LibraryComparison.Entries"/>' order.</summary>
    public static string Write(LibraryComparison lc, string machine = "")
    {
        ArgumentNullException.ThrowIfNull(lc);
        var sb = new StringBuilder("benchmark,spec,kind,name,gflops,ratio_to_best_library,status,seconds,evaluations,note,best_library,best_library_gflops,action_space,machine\n");
        foreach (var e in lc.Entries)
        {
            var best = lc.Best(e.Benchmark);
            sb.AppendJoin(',', [Field(e.Benchmark), Field(e.Spec), LibraryComparison.KindName(e.Kind), Field(e.Name), F(e.Gflops), F(e.VsBestLibrary), Field(e.Status), F(e.Seconds),
                e.Evaluations?.ToString(CultureInfo.InvariantCulture) ?? "", Field(e.Note), best?.Key ?? "", F(best?.Gflops), e.Space ?? "", Field(machine)]).Append('\n');
        }
        return sb.ToString();
    }

    static string F(double x) => x.ToString("0.####", CultureInfo.InvariantCulture);
    static string F(double? x) => x?.ToString("0.####", CultureInfo.InvariantCulture) ?? "";
    static string I(int x) => x.ToString(CultureInfo.InvariantCulture);
    /// <summary>One CSV field as RFC 4180 writes it: as it is, or quoted (quotes doubled) when it holds a comma, quote or
    /// line break; null as an empty field.</summary>
    public static string Field(string? s) => s is null ? "" : s.IndexOfAny([',', '"', '\n', '\r']) < 0 ? s : $"\"{s.Replace("\"", "\"\"")}\"";
}
