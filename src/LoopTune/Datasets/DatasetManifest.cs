using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LoopTune.Datasets;

/// <summary>
/// <c>manifest.json</c> of a dataset folder: the kind, the generator arguments, the seed and split fraction, every
/// benchmark name in generation order, and the train / test split. It holds nothing that varies between runs (no time,
/// no folder name), so the same arguments and seed always give the same bytes.
/// </summary>
public sealed record DatasetManifest(string Kind, ImmutableArray<KeyValuePair<string, string>> Arguments, ulong Seed, double Split,
                                     ImmutableArray<string> Benchmarks, ImmutableArray<string> Train, ImmutableArray<string> Test)
{
    /// <summary>The manifest's file name inside a dataset folder.</summary>
    public const string FileName = "manifest.json";

    /// <summary>The manifest format this code writes and reads.</summary>
    public const int Format = 1;

    /// <summary>Shuffles <paramref name="benchmarks"/> with <see cref="SplitMix64"/> seeded by <paramref name="seed"/> and
    /// puts the first round(split * count) (halves away from zero) in the training set, the rest in the test set; both keep
    /// the shuffled order.</summary>
    public static DatasetManifest Create(string kind, ImmutableArray<KeyValuePair<string, string>> arguments, ImmutableArray<string> benchmarks,
                                         double split, ulong seed)
    {
        if (!(split >= 0 && split <= 1)) throw new DatasetSpecError($"--split {split} is not a fraction between 0 and 1");
        var shuffled = benchmarks.ToList();
        new SplitMix64(seed).Shuffle(shuffled);
        int train = (int)Math.Round(split * shuffled.Count, MidpointRounding.AwayFromZero);
        return new DatasetManifest(kind, arguments, seed, split, benchmarks, [.. shuffled.Take(train)], [.. shuffled.Skip(train)]);
    }

    /// <summary>Indented JSON with '\n' line ends and a final newline.</summary>
    public string ToJson()
    {
        var json = new JsonObject
        {
            ["format"] = Format,
            ["kind"] = Kind,
            ["arguments"] = new JsonObject(Arguments.Select(a => KeyValuePair.Create(a.Key, (JsonNode?)a.Value))),
            ["seed"] = Seed,
            ["split"] = Split,
            ["count"] = Benchmarks.Length,
            ["benchmarks"] = Names(Benchmarks),
            ["train"] = Names(Train),
            ["test"] = Names(Test),
        };
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true, NewLine = "\n" }) + "\n";
    }

    /// <summary>Reads a manifest; <paramref name="path"/> names the file in errors.</summary>
    public static DatasetManifest Parse(string text, string path)
    {
        try
        {
            var o = JsonNode.Parse(text)?.AsObject() ?? throw new DatasetError($"{path} is empty");
            int format = o["format"]?.GetValue<int>() ?? 0;
            if (format != Format) throw new DatasetError($"{path} has format {format}; this LoopTune reads format {Format}");
            var arguments = o["arguments"]?.AsObject().Select(p => KeyValuePair.Create(p.Key, p.Value?.GetValue<string>() ?? "")) ?? [];
            var benchmarks = List(o, "benchmarks", path);
            if (benchmarks.FirstOrDefault(n => n.Length == 0 || n is "." or ".." || n.IndexOfAny(['/', '\\', '\0']) >= 0) is { } bad)
                throw new DatasetError($"{path}: \"benchmarks\" holds '{bad}', which is not a file name");
            if (benchmarks.GroupBy(n => n, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
                throw new DatasetError($"{path}: \"benchmarks\" holds '{twice.Key}' twice");
            return new DatasetManifest(Required(o, "kind", path).GetValue<string>(), [.. arguments], Required(o, "seed", path).GetValue<ulong>(),
                                       Required(o, "split", path).GetValue<double>(), benchmarks, List(o, "train", path), List(o, "test", path));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or ArgumentException or OverflowException)
        {
            throw new DatasetError($"{path} is not a dataset manifest: {e.Message}", e);
        }
    }

    static JsonArray Names(ImmutableArray<string> names) => [.. names.Select(n => (JsonNode?)n)];

    static JsonNode Required(JsonObject o, string key, string path) => o[key] ?? throw new DatasetError($"{path} has no \"{key}\"");

    static ImmutableArray<string> List(JsonObject o, string key, string path) =>
        [.. Required(o, key, path).AsArray().Select(n => n?.GetValue<string>() ?? throw new DatasetError($"{path}: \"{key}\" holds a null"))];

    /// <summary>Writes the manifest's bytes (UTF-8, no byte-order mark), atomically (<see cref="AtomicFile"/>).</summary>
    public void WriteTo(string path) => AtomicFile.WriteText(path, ToJson());
}
