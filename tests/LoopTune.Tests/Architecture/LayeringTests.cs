using System.Text.RegularExpressions;

namespace LoopTune.Tests.Architecture;

/// <summary>The README's layout table is the rule: every <c>using LoopTune.X</c> (and every fully qualified
/// <c>LoopTune.X.</c>) in a folder of <c>src/LoopTune</c> must name a layer its row allows, itself, or one of its subfolders.
/// The root namespace (<c>LoopTune</c>: errors, the data folder) is open to all.</summary>
public partial class LayeringTests
{
    [Fact]
    public void Every_import_of_a_layer_is_one_the_READMEs_layout_table_allows()
    {
        string root = RepositoryRoot();
        var allowed = LayoutTable(File.ReadAllText(Path.Combine(root, "README.md")));
        Assert.Contains("Ir", allowed.Keys);
        Assert.Empty(allowed["Ir"]);
        var src = Path.Combine(root, "src", "LoopTune");
        var broken = new List<string>();
        int files = 0;
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories).Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal) && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)))
        {
            var folder = Path.GetRelativePath(src, Path.GetDirectoryName(file)!).Replace('\\', '/');
            if (folder == ".") continue; // the root namespace
            string layer = allowed.Keys.Where(k => folder == k || folder.StartsWith(k + "/", StringComparison.Ordinal)).OrderByDescending(k => k.Length).FirstOrDefault()
                ?? throw new Xunit.Sdk.XunitException($"{folder} has no row in the README's layout table");
            files++;
            foreach (Match m in Import().Matches(File.ReadAllText(file)))
            {
                string used = m.Groups[1].Value.Replace('.', '/');
                if (allowed.Keys.Where(k => used == k || used.StartsWith(k + "/", StringComparison.Ordinal)).OrderByDescending(k => k.Length).FirstOrDefault() is not { } usedLayer)
                    continue; // a type of the root namespace (LoopTune.DataFolder)
                bool ok = usedLayer == layer || usedLayer.StartsWith(layer + "/", StringComparison.Ordinal) || allowed[layer].Contains(usedLayer);
                if (!ok) broken.Add($"{Path.GetRelativePath(root, file)}: {layer} uses {usedLayer} (allowed: {(allowed[layer].Count == 0 ? "nothing" : string.Join(", ", allowed[layer]))})");
            }
        }
        Assert.True(files > 50, $"only {files} files read");
        Assert.True(broken.Count == 0, string.Join("\n", broken.Distinct()));
    }

    [Fact]
    public void The_check_finds_an_import_the_table_does_not_allow()
    {
        var allowed = LayoutTable("""
            | folder | what | may use |
            |---|---|---|
            | `src/LoopTune/Ir` | loops | nothing |
            | `src/LoopTune/Jit` | code | Ir |
            """);
        Assert.Equal(["Ir"], allowed["Jit"]);
        Assert.Empty(allowed["Ir"]);
        Assert.Equal(["Jit"], Import().Matches("using LoopTune.Jit;\nvar x = 1;").Select(m => m.Groups[1].Value));
        Assert.Equal(["Measure.PeakCache"], Import().Matches("var p = LoopTune.Measure.PeakCache.GetOrMeasure();").Select(m => m.Groups[1].Value));
        Assert.Empty(Import().Matches("using LoopTune;\nthrow new LoopTuneException(\"x\");"));
    }

    /// <summary>Rows <c>| `src/LoopTune/X` | what | may use |</c>: X to the layers its last cell names ("nothing": none).</summary>
    static Dictionary<string, List<string>> LayoutTable(string readme)
    {
        var table = new Dictionary<string, List<string>>();
        foreach (Match m in Row().Matches(readme))
        {
            string uses = m.Groups[2].Value.Trim();
            table[m.Groups[1].Value] = uses == "nothing" ? [] : [.. uses.Split(',').Select(u => u.Trim().Split(' ')[0])];
        }
        return table;
    }

    internal static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "LoopTune.sln"))) return d.FullName;
        throw new InvalidOperationException($"no LoopTune.sln above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"^\| `src/LoopTune/([A-Za-z/]+)` \|[^|\n]*\|([^|\n]*)\|\s*$", RegexOptions.Multiline)]
    private static partial Regex Row();

    [GeneratedRegex(@"(?:^using|\bglobal::|(?<![\w.]))\s*LoopTune\.([A-Z]\w*(?:\.[A-Z]\w*)?)(?=[;.\s])", RegexOptions.Multiline)]
    private static partial Regex Import();
}
