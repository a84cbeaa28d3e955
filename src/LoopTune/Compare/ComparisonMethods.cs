using LoopTune.Env;
using LoopTune.Ir;
using LoopTune.Learning;
using LoopTune.Search;

namespace LoopTune.Compare;

/// <summary>The one parser of a comparison's <c>--methods</c>: the searches by name (<see cref="Searches"/>), "policy" / "policy_topK" as
/// <see cref="PolicySearch"/>es of a trained policy, "policy_search" as its <see cref="PolicyGuidedSearch"/>, and "tune" as that
/// search with the machine's own tiles beside it (<see cref="TuneMethod"/>, what <c>looptune tune</c> does).</summary>
public static class ComparisonMethods
{
    /// <summary>The methods of <paramref name="csv"/>, in its order (every search when empty); the policy <paramref name="policyPath"/> is
    /// read once, and only when a policy method is asked for ("default": the shipped policy for each benchmark's kind,
    /// <see cref="Policy.Choose"/>). A <see cref="SearchError"/> names a bad method.</summary>
    public static IReadOnlyList<ISearch> Parse(string? csv, string policyPath)
    {
        string[] names = string.IsNullOrWhiteSpace(csv) ? [.. Searches.Names] : csv.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (names.Distinct().Count() != names.Length) throw new SearchError($"--methods '{csv}' names a method twice");
        if (!names.Any(IsPolicy)) return [.. names.Select(Searches.Get)];
        foreach (var n in names) // every name checked before the policy is read, so a bad name is the error reported
        {
            if (n is PolicyGuidedSearch.MethodName or TuneMethod.MethodName) continue;
            if (IsPolicy(n)) _ = TopK(n);
            else _ = Searches.Get(n);
        }
        var loaded = new System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<Policy>>();
        Policy For(Computation c) => loaded.GetOrAdd(Policy.Choose(policyPath, c), path => new Lazy<Policy>(() =>
        {
            var pol = Policy.Load(path);
            pol.WarmUp();
            return pol;
        })).Value;
        _ = For(Computation.Matmul(8, 8, 8));   // a missing or broken policy is reported before any search runs
        return [.. names.Select(n => n == PolicyGuidedSearch.MethodName ? new PolicyGuidedSearch(For, policyPath)
            : n == TuneMethod.MethodName ? new TuneMethod(new PolicyGuidedSearch(For, policyPath))
            : IsPolicy(n) ? new PolicySearch(For, policyPath, TopK(n)) : Searches.Get(n))];
    }

    static bool IsPolicy(string name) => name is "policy" or PolicyGuidedSearch.MethodName or TuneMethod.MethodName || name.StartsWith("policy_top", StringComparison.Ordinal);

    static int TopK(string name) =>
        name == "policy" ? 1
        : int.TryParse(name["policy_top".Length..], System.Globalization.CultureInfo.InvariantCulture, out int k) && k is >= 2 and <= 17 ? k
        : throw new SearchError($"unknown method '{name}': a policy method is 'policy' or 'policy_topK' with K from 2 to 17 (e.g. policy_top4)");
}
