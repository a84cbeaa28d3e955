using System.Diagnostics;
using System.Globalization;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Tests.TestUtil;
using Xunit.Abstractions;

namespace LoopTune.Tests.Faults;

/// <summary>
/// Seeded mutations of specs, schedules and action lists (characters replaced, inserted, deleted, numbers made extreme,
/// tokens swapped, duplicated or cut, inputs spliced), run through the parsers and through the command line in-process.
/// The oracle: every input is either bad input (a <see cref="LoopTuneException"/>, exit code 2 with an "error:" line) or
/// good (the nest round-trips through its compact form, a small one compiles to a kernel the reference agrees with, and
/// <c>looptune run</c> exits 0); never any other exception, never exit code 1.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    const int Seed = 2026_12_05, ParserMutations = 4000, CliMutations = 1500, CliSuccesses = 20;

    static readonly string[] Specs =
    [
        "mm 64 64 64", "mm 7 13 5", "conv 3 8 8 4 3 3", "C[m,n] += A[m,k] * B[k,n] m=16 n=16 k=8",
        "O[f,h,w] += I[c,2*h+r,w+s] * W[f,c,r,s] f=4 h=5 w=6 c=2 r=3 s=3", "O[i] += A[i,k] * B[k] i=5 k=3",
        "C[b,m,n] += A[b,k,m] * B[b,n,k] b=2 m=8 n=8 k=4",
    ];

    static readonly string[] Extremes =
    [
        "0", "-1", "1", "2", "65", "1024", "2147483647", "2147483648", "-2147483648", "99999999999999999999", "1e3", "0x10",
        "\u0663", "", " ", "NaN", "+5", "3.5", "07",
    ];

    const string Alphabet = "mnkcshwrfpqbvuxyz0123456789[],+*=:>-_<.#;()' \t\"\\/\u00e9\u221e\u0000";

    /// <summary>A random legal walk of up to 12 actions from the initial nest of <paramref name="c"/> (the mask's choices).</summary>
    static (Nest Nest, List<LoopAction> Actions) Walk(Computation c, Random rng)
    {
        var nest = Nest.Initial(c);
        var taken = new List<LoopAction>();
        for (int i = rng.Next(13); i > 0; i--)
        {
            var mask = Transforms.Mask(nest);
            var legal = Enumerable.Range(0, mask.Length).Where(a => mask[a]).ToArray();
            if (legal.Length == 0) break;
            var action = Actions.All[legal[rng.Next(legal.Length)]];
            nest = Transforms.Apply(nest, action);
            taken.Add(action);
        }
        return (nest, taken);
    }

    /// <summary>One to three mutations of <paramref name="s"/>; <paramref name="other"/> is spliced in by one of them.</summary>
    static string Mutate(string s, string other, Random rng)
    {
        for (int m = rng.Next(1, 4); m > 0; m--)
        {
            int at = rng.Next(s.Length + 1);
            s = rng.Next(9) switch
            {
                0 when s.Length > 0 => s.Remove(Math.Min(at, s.Length - 1), 1),
                1 => s.Insert(at, Alphabet[rng.Next(Alphabet.Length)].ToString()),
                2 when s.Length > 0 => s.Remove(Math.Min(at, s.Length - 1), 1).Insert(Math.Min(at, s.Length - 1), Alphabet[rng.Next(Alphabet.Length)].ToString()),
                3 => Numbers(s, rng),
                4 => Tokens(s, rng, (t, i, j) => (t[i], t[j]) = (t[j], t[i])),
                5 => Tokens(s, rng, (t, i, _) => t.Insert(i, t[i])),
                6 => Tokens(s, rng, (t, i, _) => t.RemoveAt(i)),
                7 => s[..at] + other[Math.Min(rng.Next(other.Length + 1), other.Length)..],
                _ => s[..at],
            };
        }
        return s;
    }

    static string Numbers(string s, Random rng)
    {
        var numbers = System.Text.RegularExpressions.Regex.Matches(s, "[0-9]+");
        if (numbers.Count == 0) return s + Extremes[rng.Next(Extremes.Length)];
        var n = numbers[rng.Next(numbers.Count)];
        return s[..n.Index] + Extremes[rng.Next(Extremes.Length)] + s[(n.Index + n.Length)..];
    }

    static string Tokens(string s, Random rng, Action<List<string>, int, int> edit)
    {
        char separator = s.Contains(',') && !s.Contains(' ') ? ',' : ' ';
        var tokens = s.Split(separator).ToList();
        if (tokens.Count == 0) return s;
        edit(tokens, rng.Next(tokens.Count), rng.Next(tokens.Count));
        return string.Join(separator, tokens);
    }

    /// <summary>A mutated (spec, schedule or null, actions or null): one of the three mutated, sometimes two.</summary>
    static (string Spec, string? Schedule, string? Actions) Mutant(Random rng)
    {
        string spec = Specs[rng.Next(Specs.Length)], other = Specs[rng.Next(Specs.Length)];
        var (nest, actions) = Walk(Computation.Parse(spec), rng);
        bool bySchedule = rng.Next(2) == 0;
        string? schedule = bySchedule ? nest.Serialize() : null, list = bySchedule ? null : string.Join(',', actions.Select(a => a.Name));
        int what = rng.Next(4);
        if (what is 0 or 3) spec = Mutate(spec, other, rng);
        if (what is 1 or 3 && schedule is not null) schedule = Mutate(schedule, Walk(Computation.Parse(other), rng).Nest.Serialize(), rng);
        if (what is 1 or 2 or 3 && list is not null) list = Mutate(list, string.Join(',', Actions.All.Select(a => a.Name)), rng);
        if (what == 2 && schedule is not null) schedule = Mutate(schedule, list ?? "", rng);
        return (spec, schedule, list);
    }

    /// <summary>What the parsers make of a mutant: the nest, or null for bad input; anything else is thrown.</summary>
    static Nest? Parse(string spec, string? schedule, string? actions)
    {
        try
        {
            var c = Computation.Parse(spec);
            return schedule is not null ? Nest.Parse(c, schedule) : Transforms.ApplyAll(Nest.Initial(c), Actions.ParseList(actions));
        }
        catch (LoopTuneException) { return null; }
    }

    static string Describe((string Spec, string? Schedule, string? Actions) m) =>
        $"spec \"{m.Spec}\" {(m.Schedule is not null ? $"schedule \"{m.Schedule}\"" : $"actions \"{m.Actions}\"")}";

    [Fact]
    public void TheParsersNeverFailInternally()
    {
        var rng = new Random(Seed);
        var clock = Stopwatch.StartNew();
        var failures = new List<string>();
        int good = 0, compiled = 0;
        for (int i = 0; i < ParserMutations; i++)
        {
            var m = Mutant(rng);
            try
            {
                if (Parse(m.Spec, m.Schedule, m.Actions) is not { } nest) continue;
                good++;
                Assert.Equal(nest, Nest.Parse(nest.Computation, nest.Serialize()));
                Assert.Equal(nest.Computation, Computation.Parse(nest.Computation.Text));
                _ = nest.ToTree();
                _ = Transforms.Mask(nest);
                if (nest.Computation.Flops > 2e5) continue;
                var kernel = Kernel.Compile(nest);
                compiled++;
                Assert.Null(KernelCheck.Verify(kernel, new Random(i)));
            }
            catch (Exception e) when (e is not LoopTuneException)
            {
                failures.Add($"{Describe(m)}: {e.GetType().Name}: {e.Message}");
            }
        }
        output.WriteLine($"{ParserMutations} mutations: {good} good ({compiled} compiled and checked), the rest bad input; {failures.Count} internal errors; {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(20)));
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void TheCommandLineNeverFailsInternally()
    {
        var rng = new Random(Seed + 1);
        var clock = Stopwatch.StartNew();
        var failures = new List<string>();
        int bad = 0, ran = 0;
        for (int i = 0; i < CliMutations; i++)
        {
            var m = Mutant(rng);
            Nest? nest;
            try { nest = Parse(m.Spec, m.Schedule, m.Actions); }
            catch (Exception e)
            {
                failures.Add($"{Describe(m)}: {e.GetType().Name}: {e.Message}");
                continue;
            }
            // a good nest is run only while small and few: the command then compiles, verifies and times it
            if (nest is not null && (nest.Computation.Flops > 1e5 || ran >= CliSuccesses)) continue;
            string[] args = ["run", m.Spec, .. m.Schedule is not null ? (string[])["--schedule", m.Schedule] : ["--actions", m.Actions!], "--quick", "--no-peers", "--json"];
            var (code, _, err) = TestHome.Run(args);
            if (nest is null ? code != 2 || !err.StartsWith("error: ", StringComparison.Ordinal) : code != 0)
                failures.Add($"{Describe(m)}: exit {code}, expected {(nest is null ? 2 : 0)}: {err.Split('\n')[0]}");
            if (nest is null) bad++;
            else ran++;
        }
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{CliMutations} mutations: {bad} run as bad input (exit 2), {ran} good ones run (exit 0); {failures.Count} failures; {clock.Elapsed.TotalSeconds:F1} s"));
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(20)));
    }
}
