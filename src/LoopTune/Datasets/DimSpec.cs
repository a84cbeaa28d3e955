using System.Collections.Immutable;
using System.Globalization;

namespace LoopTune.Datasets;

/// <summary>A generator argument that does not parse or does not make sense; the message names the option and the bad part.</summary>
public sealed class DatasetSpecError(string message) : LoopTuneException(message);

/// <summary>
/// The generator's syntax for the sizes of one dimension, and comma-separated lists of them (one per dimension):
/// <list type="table">
/// <listheader><term>form</term><description>sizes</description></listheader>
/// <item><term><c>64</c></term><description>a single size</description></item>
/// <item><term><c>64:256:16</c></term><description>start:end:step, end included when the step reaches it: 64, 80, ..., 256</description></item>
/// <item><term><c>16|24|64</c></term><description>a list; each item may also be a range (<c>8|64:128:32</c>)</description></item>
/// </list>
/// Sizes are whole numbers from 1 to <see cref="MaxSize"/>; a range needs start &lt;= end and a step &gt;= 1. The result is
/// the set of sizes, ascending, each once.
/// </summary>
public static class DimSpec
{
    /// <summary>Largest size a dimension may have (as in computation specs).</summary>
    public const int MaxSize = 1 << 20;

    /// <summary>The sizes <paramref name="text"/> describes; <paramref name="what"/> (e.g. "--dimA dimension 1") starts
    /// the error message.</summary>
    public static ImmutableArray<int> Parse(string text, string what)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new DatasetSpecError($"{what} is empty; give a size, start:end:step or a|b|c");
        var sizes = new SortedSet<int>();
        foreach (var item in text.Split('|')) sizes.UnionWith(Item(item.Trim(), text, what));
        return [.. sizes];
    }

    /// <summary>Reads <paramref name="text"/> as comma-separated dimension specs, between <paramref name="minDims"/> and
    /// <paramref name="maxDims"/> of them, named <paramref name="names"/> in messages (e.g. "m,k").</summary>
    public static ImmutableArray<ImmutableArray<int>> ParseList(string? text, string option, string names, int minDims, int maxDims)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new DatasetSpecError($"{option} is missing; give {names}");
        var parts = text.Split(',');
        if (parts.Length < minDims || parts.Length > maxDims)
            throw new DatasetSpecError($"{option} '{text}' has {parts.Length} comma-separated dimension{(parts.Length == 1 ? "" : "s")}; it needs {names}");
        return [.. parts.Select((p, i) => Parse(p.Trim(), parts.Length == 1 ? option : $"{option} dimension {i + 1} ({names.Split(',')[i]})"))];
    }

    static IEnumerable<int> Item(string item, string whole, string what)
    {
        string where = item == whole ? $"{what} '{whole}'" : $"{what} '{whole}': '{item}'";
        if (item.Length == 0) throw new DatasetSpecError($"{where} has an empty list item");
        var parts = item.Split(':');
        if (parts.Length == 1) return [Size(parts[0], where, "size")];
        if (parts.Length != 3) throw new DatasetSpecError($"{where} is not a range start:end:step (it has {parts.Length} parts)");
        return Range(Size(parts[0], where, "start"), Size(parts[1], where, "end"), Size(parts[2], where, "step"), where);
    }

    static IEnumerable<int> Range(int start, int end, int step, string where)
    {
        if (start > end) throw new DatasetSpecError($"{where}: the start {start} is greater than the end {end}");
        return Enumerable.Range(0, (end - start) / step + 1).Select(i => start + i * step);
    }

    static int Size(string token, string where, string role)
    {
        if (!int.TryParse(token.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < 1 || n > MaxSize)
            throw new DatasetSpecError($"{where}: {role} '{token}' is not a whole number from 1 to {MaxSize}");
        return n;
    }
}
