using LoopTune.Compare;
using LoopTune.Search;

namespace LoopTune.Tests.Search;

public sealed class BudgetAndRegistryTests
{
    [Theory]
    [InlineData("10s", 10.0)]
    [InlineData("500ms", 0.5)]
    [InlineData("2m", 120.0)]
    [InlineData("1.5h", 5400.0)]
    [InlineData("1.5s", 1.5)]
    [InlineData(" 3S ", 3.0)]
    public void BudgetsParse(string text, double seconds) => Assert.Equal(seconds, SearchBudget.Parse(text).Time.TotalSeconds, 9);

    [Theory]
    [InlineData("10")]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("-1s")]
    [InlineData("0s")]
    [InlineData("10d")]
    [InlineData("1e3s")]
    [InlineData("s")]
    public void BadBudgetsSayWhatIsAccepted(string text)
    {
        var e = Assert.Throws<SearchError>(() => SearchBudget.Parse(text));
        Assert.Contains($"bad budget '{text}'", e.Message);
        Assert.Contains("500ms, 10s, 2m or 1h", e.Message);
    }

    [Fact]
    public void TheRegistryHasTheSixMethods()
    {
        Assert.Equal(["random", "greedy1", "greedy2", "beam_bfs", "beam_dfs", "genetic", "cost_model"], Searches.Names.AsEnumerable());
        foreach (var name in Searches.Names) Assert.Equal(name, Searches.Get(name).Name);
        Assert.NotSame(Searches.Get("random"), Searches.Get("random"));
    }

    [Fact]
    public void UnknownMethodListsTheValidNames()
    {
        var e = Assert.Throws<SearchError>(() => Searches.Get("beam"));
        Assert.Contains("unknown search method 'beam'", e.Message);
        Assert.Contains("random, greedy1, greedy2, beam_bfs, beam_dfs, genetic, cost_model", e.Message);
        Assert.Throws<SearchError>(() => ComparisonMethods.Parse("random,random", "default"));
        Assert.Equal(["greedy2", "random"], ComparisonMethods.Parse("greedy2, random", "default").Select(s => s.Name));
    }
}
