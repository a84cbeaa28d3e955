using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using LoopTune.Learning.Nn;
using LoopTune.Tests.Store;

using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>The safetensors file: bit-exact round trips, the documented layout, and a clear error for each kind of bad file.</summary>
public sealed class SafeTensorsTests : IDisposable
{
    readonly TempFolder folder = new("looptune-safetensors");

    public void Dispose() => folder.Dispose();

    static float Bits(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    static readonly NamedTensor[] Sample =
    [
        new("trunk.0.weight", [2, 3], [1f, -0f, Bits(0x7FC12345), Bits(0xFF812345), float.Epsilon, 1e-40f]),   // -0, NaN payloads (quiet, signalling), denormals
        new("trunk.0.bias", [3], [float.PositiveInfinity, float.NegativeInfinity, float.MaxValue]),
        new("scalar", [], [42f]),
        new("empty", [0, 4], []),
        new("head.weight", [1, 1, 2], [0.1f, -3.5f]),
    ];

    [Fact]
    public void RoundTripsBitExactWithMetadata()
    {
        string path = folder["model.safetensors"];
        var metadata = new Dictionary<string, string> { ["steps"] = "12345", ["note"] = "quote \" backslash \\ ünïcode <&+>", ["empty"] = "" };
        SafeTensors.Save(path, Sample, metadata);
        var (tensors, read) = SafeTensors.Load(path);
        Assert.Equal(Sample.Select(t => t.Name), tensors.Select(t => t.Name));
        for (int i = 0; i < Sample.Length; i++)
        {
            Assert.Equal(Sample[i].Shape, tensors[i].Shape);
            Assert.Equal(Sample[i].Data.Select(BitConverter.SingleToUInt32Bits), tensors[i].Data.Select(BitConverter.SingleToUInt32Bits));
        }
        Assert.Equal(metadata.OrderBy(p => p.Key), read.OrderBy(p => p.Key));
        Assert.Equal([path], Directory.GetFiles(folder.Path)); // no temporary file left

        SafeTensors.Save(path, Sample[2..3]);   // overwrites, no metadata
        var (again, none) = SafeTensors.Load(path);
        Assert.Equal("scalar", Assert.Single(again).Name);
        Assert.Empty(none);
    }

    [Fact]
    public void TheLayoutIsTheDocumentedOne()
    {
        string path = folder["layout.safetensors"];
        SafeTensors.Save(path, Sample, new Dictionary<string, string> { ["format"] = "pt" });
        byte[] bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, (8 + n) % 8);
        string header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.EndsWith("}", header.TrimEnd(' '));
        Assert.True(header.Length - header.TrimEnd(' ').Length < 8, "padded with fewer than 8 spaces");
        using var doc = JsonDocument.Parse(header);
        Assert.Equal("pt", doc.RootElement.GetProperty("__metadata__").GetProperty("format").GetString());
        long expected = 0;
        foreach (var t in Sample)
        {
            var e = doc.RootElement.GetProperty(t.Name);
            Assert.Equal("F32", e.GetProperty("dtype").GetString());
            Assert.Equal(t.Shape, e.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
            var offsets = e.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            Assert.Equal([expected, expected + 4L * t.Data.Length], offsets);
            for (int i = 0; i < t.Data.Length; i++)
                Assert.Equal(BitConverter.SingleToUInt32Bits(t.Data[i]), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8 + (int)n + (int)expected + 4 * i)));
            expected = offsets[1];
        }
        Assert.Equal(8 + (long)n + expected, bytes.Length);
    }

    static byte[] Bytes(string header, int dataBytes, ulong? headerLength = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength ?? (ulong)json.Length);
        json.CopyTo(bytes, 8);
        for (int i = 0; i < dataBytes; i++) bytes[8 + json.Length + i] = (byte)(i * 7);
        return bytes;
    }

    [Fact]
    public void ReadsAFileWrittenByHand()
    {
        // no padding, tensors out of data order, an unknown dtype-free field ignored: what another writer may produce
        string path = folder["hand.safetensors"];
        var bytes = Bytes("""{"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}}""", 12);
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(bytes.Length - 12), 1.5f);
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(bytes.Length - 8), -2f);
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(bytes.Length - 4), 3.25f);
        File.WriteAllBytes(path, bytes);
        var (tensors, metadata) = SafeTensors.Load(path);
        Assert.Equal(["b", "a"], tensors.Select(t => t.Name));
        Assert.Equal([3.25f], tensors[0].Data);
        Assert.Equal([1.5f, -2f], tensors[1].Data);
        Assert.Empty(metadata);
    }

    const string Good = """{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}""";

    public static TheoryData<string, string> BadFiles => new()
    {
        { "truncated", "offsets" },
        { "short", "truncated" },
        { "header longer than the file", "header length" },
        { "bad json", "not JSON" },
        { "array header", "not an object" },
        { "f16", "dtype F16" },
        { "offsets out of range", "out of range" },
        { "overlapping", "overlap" },
        { "wrong size", "needs 16 bytes" },
        { "negative shape", "not a non-negative integer" },
        { "huge shape", "needs over 8 GiB" },
        { "trailing bytes", "after the last tensor" },
        { "metadata not strings", "metadata 'steps' is not a string" },
    };

    static byte[] Bad(string kind) => kind switch
    {
        "truncated" => Bytes(Good, 12),
        "short" => [1, 0, 0],
        "header longer than the file" => Bytes(Good, 16, headerLength: 1000),
        "bad json" => Bytes("""{"w":{"dtype":"F32",""", 16),
        "array header" => Bytes("[1, 2]", 0),
        "f16" => Bytes("""{"w":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}}""", 8),
        "offsets out of range" => Bytes("""{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[16,32]}}""", 16),
        "overlapping" => Bytes("""{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"v":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", 16),
        "wrong size" => Bytes("""{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}""", 12),
        "negative shape" => Bytes("""{"w":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}}""", 16),
        "huge shape" => Bytes("""{"w":{"dtype":"F32","shape":[2147483647,2147483647,2147483647,2],"data_offsets":[0,16]}}""", 16),
        "trailing bytes" => Bytes(Good, 20),
        "metadata not strings" => Bytes("""{"__metadata__":{"steps":3},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}""", 16),
        _ => throw new ArgumentException(kind),
    };

    [Theory, MemberData(nameof(BadFiles))]
    public void RejectsABadFileNamingIt(string kind, string problem)
    {
        string path = folder[kind.Replace(' ', '-') + ".safetensors"];
        File.WriteAllBytes(path, Bad(kind));
        var e = Assert.Throws<SafeTensorsError>(() => SafeTensors.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void TheGoodFileOfTheseTestsIsGood()
    {
        string path = folder["good.safetensors"];
        File.WriteAllBytes(path, Bytes(Good, 16));
        Assert.Equal([2, 2], Assert.Single(SafeTensors.Load(path).Tensors).Shape);
    }

    [Fact]
    public void AMissingFileIsAnErrorNamingIt()
    {
        string path = folder["absent.safetensors"];
        var e = Assert.Throws<SafeTensorsError>(() => SafeTensors.Load(path));
        Assert.Contains(path, e.Message);
        Assert.IsAssignableFrom<LoopTuneException>(e);
        Assert.Contains(folder["no-such-dir/x.safetensors"], Assert.Throws<FileWriteError>(() => SafeTensors.Save(folder["no-such-dir/x.safetensors"], Sample)).Message);
    }

    [Fact]
    public void ParametersRoundTripAndAShapeMismatchIsExplained()
    {
        var net = new Sequential(new Dense(4, 8, new Random(1), "trunk.0"), new Tanh(), new Dense(8, 2, new Random(2), "head"));
        string path = folder["net.safetensors"];
        SafeTensors.Save(path, SafeTensors.FromParameters(net.Parameters));
        var other = new Sequential(new Dense(4, 8, new Random(3), "trunk.0"), new Tanh(), new Dense(8, 2, new Random(4), "head"));
        var x = NnTestUtil.RandomMatrix(new Random(5), 3, 4);
        Assert.NotEqual(net.Forward(x).Data, other.Forward(x).Data);
        SafeTensors.LoadInto(other.Parameters, SafeTensors.Load(path).Tensors, path);
        Assert.Equal(net.Forward(x).Data, other.Forward(x).Data);

        var narrow = new Sequential(new Dense(4, 6, new Random(1), "trunk.0"), new Tanh(), new Dense(6, 2, new Random(2), "head"));
        var before = narrow.Parameters.Select(p => (float[])p.Value.Clone()).ToList();
        var e = Assert.Throws<SafeTensorsError>(() => SafeTensors.LoadInto(narrow.Parameters, SafeTensors.Load(path).Tensors, path));
        Assert.Equal($"checkpoint {path} has 'trunk.0.weight' of shape [4, 8], the network expects [4, 6]", e.Message);
        Assert.Equal(before, narrow.Parameters.Select(p => p.Value));   // nothing copied
        var renamed = new Dense(4, 8, new Random(1), "trunk.1");
        e = Assert.Throws<SafeTensorsError>(() => SafeTensors.LoadInto(renamed.Parameters, SafeTensors.Load(path).Tensors, path));
        Assert.Contains("'trunk.1.weight'", e.Message);
    }

    [Fact]
    public void SaveRejectsInconsistentTensors()
    {
        Assert.Throws<ArgumentException>(() => SafeTensors.Save(folder["x"], [new("a", [2], [1f])]));
        Assert.Throws<ArgumentException>(() => SafeTensors.Save(folder["x"], [new("a", [1], [1f]), new("a", [1], [2f])]));
        Assert.Throws<ArgumentException>(() => SafeTensors.Save(folder["x"], [new("__metadata__", [1], [1f])]));
    }
}
