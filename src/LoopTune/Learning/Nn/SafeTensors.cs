using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Unicode;

namespace LoopTune.Learning.Nn;

/// <summary>A named float tensor, as stored in a checkpoint. Data has the product of Shape elements.</summary>
public sealed record NamedTensor(string Name, int[] Shape, float[] Data);

/// <summary>A checkpoint that cannot be read or written, or does not fit the network or optimizer.</summary>
public sealed class SafeTensorsError(string message, Exception? inner = null) : LoopTuneException(message, inner);

/// <summary>
/// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length N, then N
/// bytes of UTF-8 JSON header <c>{"__metadata__": {string: string}, "name": {"dtype": "F32", "shape": [..],
/// "data_offsets": [begin, end]}, ...}</c> padded with spaces to a multiple of 8, then the raw little-endian data
/// (offsets are relative to the start of the data). Only F32 is written; reading accepts F32 only. As the reference
/// implementation, reading rejects offsets that overlap or leave holes or trailing bytes in the data.
/// </summary>
public static class SafeTensors
{
    const string MetadataKey = "__metadata__";

    /// <summary>Writes atomically (<see cref="AtomicFile"/>: a temporary name, then renamed over <paramref name="path"/>); the
    /// directory must exist. Tensors are written in the given order with contiguous offsets. Bad tensors (duplicate or
    /// reserved names, data not matching the shape) are an <see cref="ArgumentException"/>; I/O failures (a missing folder,
    /// no space) a <see cref="FileWriteError"/> naming the file, the previous file left whole.</summary>
    public static void Save(string path, IReadOnlyList<NamedTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var names = new HashSet<string>();
        foreach (var t in tensors)
        {
            ArgumentNullException.ThrowIfNull(t, nameof(tensors));
            ArgumentException.ThrowIfNullOrEmpty(t.Name, nameof(tensors));
            if (t.Name == MetadataKey || !names.Add(t.Name)) throw new ArgumentException($"tensor name '{t.Name}' is reserved or repeated", nameof(tensors));
            if (t.Shape is null || t.Data is null || Parameter.Elements(t.Shape) != t.Data.Length)
                throw new ArgumentException($"tensor '{t.Name}' has {t.Data?.Length} floats for shape {Parameter.ShapeText(t.Shape ?? [])}", nameof(tensors));
        }

        var json = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(json, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata) w.WriteString(key, value);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in tensors)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", "F32");
                w.WriteStartArray("shape");
                foreach (int d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset += 4L * t.Data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        int headerLength = (json.WrittenCount + 7) / 8 * 8;

        AtomicFile.Write(path, file =>
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)headerLength);
            file.Write(prefix);
            file.Write(json.WrittenSpan);
            for (int i = json.WrittenCount; i < headerLength; i++) file.WriteByte((byte)' ');
            foreach (var t in tensors) WriteFloats(file, t.Data);
        });
    }

    /// <summary>Reads a file. A missing file, a truncated file, a bad header, offsets out of range or overlapping, a
    /// dtype other than F32: a <see cref="SafeTensorsError"/> naming the file and what is wrong. Tensors come in header order.</summary>
    public static (IReadOnlyList<NamedTensor> Tensors, IReadOnlyDictionary<string, string> Metadata) Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        { throw new SafeTensorsError($"{path}: no such checkpoint file", e); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new SafeTensorsError($"{path}: cannot read the checkpoint: {e.Message}", e); }
        return Parse(bytes, path);
    }

    /// <summary>Parses the bytes of a safetensors file; <paramref name="source"/> names it in errors.</summary>
    public static (IReadOnlyList<NamedTensor> Tensors, IReadOnlyDictionary<string, string> Metadata) Parse(byte[] bytes, string source)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        SafeTensorsError Bad(string problem, Exception? inner = null) => new($"{source}: not a valid safetensors file: {problem}", inner);

        if (bytes.Length < 8) throw Bad($"truncated: {bytes.Length} bytes, less than the 8-byte header length");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (n > (ulong)(bytes.Length - 8)) throw Bad($"the header length is {n} bytes but only {bytes.Length - 8} bytes follow (truncated file?)");
        var header = new ReadOnlyMemory<byte>(bytes, 8, (int)n);
        if (!Utf8.IsValid(header.Span)) throw Bad("the header is not valid UTF-8");
        long dataStart = 8 + (long)n, dataLength = bytes.Length - dataStart;

        var metadata = new Dictionary<string, string>();
        var entries = new List<(string Name, int[] Shape, long Begin, long End)>();
        var seen = new HashSet<string>();
        try
        {
            using var doc = JsonDocument.Parse(header);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad($"the header is a JSON {doc.RootElement.ValueKind}, not an object");
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                string name = property.Name;
                if (!seen.Add(name)) throw Bad($"'{name}' appears twice in the header");
                var e = property.Value;
                if (name == MetadataKey)
                {
                    if (e.ValueKind != JsonValueKind.Object) throw Bad($"{MetadataKey} is not an object");
                    foreach (var m in e.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : throw Bad($"metadata '{m.Name}' is not a string");
                    continue;
                }
                if (e.ValueKind != JsonValueKind.Object) throw Bad($"tensor '{name}' is not an object");
                if (!e.TryGetProperty("dtype", out var dtype) || dtype.ValueKind != JsonValueKind.String) throw Bad($"tensor '{name}' has no dtype");
                if (dtype.GetString() != "F32") throw Bad($"tensor '{name}' has dtype {dtype.GetString()}; only F32 is supported");
                var shape = Integers(e, "shape", name, Bad);
                var offsets = Integers(e, "data_offsets", name, Bad);
                if (offsets.Length != 2) throw Bad($"tensor '{name}' data_offsets has {offsets.Length} numbers, not 2");
                var (begin, end) = (offsets[0], offsets[1]);
                if (begin > end || end > dataLength)
                    throw Bad($"tensor '{name}' data_offsets [{begin}, {end}] are out of range: the data section has {dataLength} bytes (truncated file?)");
                if (shape.Any(d => d > int.MaxValue)) throw Bad($"tensor '{name}' has a dimension larger than {int.MaxValue}");
                long elements = 1, cap = 1L << 31;   // capped (no overflow): 4 * cap bytes exceeds any file read
                foreach (long d in shape) elements = Math.Min(elements * d, cap);
                if (end - begin != 4 * elements)
                    throw Bad($"tensor '{name}' of shape {Parameter.ShapeText(shape.Select(d => (int)d))} needs {(elements == cap ? "over 8 GiB" : 4 * elements + " bytes")} but data_offsets [{begin}, {end}] hold {end - begin}");
                entries.Add((name, [.. shape.Select(d => (int)d)], begin, end));
            }
        }
        catch (JsonException e) { throw Bad($"the header is not JSON: {e.Message}", e); }

        long expected = 0;
        string? previous = null;
        foreach (var (name, _, begin, end) in entries.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (begin < expected) throw Bad($"tensors '{previous}' and '{name}' overlap");
            if (begin > expected) throw Bad($"the data has a hole of {begin - expected} bytes before tensor '{name}'");
            (expected, previous) = (end, name);
        }
        if (expected != dataLength) throw Bad($"{dataLength - expected} bytes after the last tensor's data");

        var tensors = new List<NamedTensor>(entries.Count);
        foreach (var (name, shape, begin, end) in entries)
            tensors.Add(new NamedTensor(name, shape, ReadFloats(bytes.AsSpan((int)(dataStart + begin), (int)(end - begin)))));
        return (tensors, metadata);
    }

    /// <summary>The parameters' values as named tensors (copies).</summary>
    public static IReadOnlyList<NamedTensor> FromParameters(IEnumerable<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return [.. parameters.Select(p => new NamedTensor(p.Name, (int[])p.Shape.Clone(), (float[])p.Value.Clone()))];
    }

    /// <summary>Copies named tensors into the parameters of the same name. A missing name or a shape mismatch is a
    /// <see cref="SafeTensorsError"/> ("checkpoint X has 'trunk.0.weight' of shape [a, b], the network expects [c, d]"),
    /// and then no parameter is changed. Tensors without a parameter are ignored.</summary>
    public static void LoadInto(IEnumerable<Parameter> parameters, IReadOnlyList<NamedTensor> tensors, string source)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(tensors);
        var byName = ByName(tensors, source);
        var pairs = parameters.Select(p => (p, t: Find(byName, p.Name, p.Shape, source))).ToList();
        foreach (var (p, t) in pairs) t.Data.CopyTo(p.Value, 0);
    }

    internal static Dictionary<string, NamedTensor> ByName(IReadOnlyList<NamedTensor> tensors, string source)
    {
        var byName = new Dictionary<string, NamedTensor>();
        foreach (var t in tensors)
            if (!byName.TryAdd(t.Name, t)) throw new SafeTensorsError($"checkpoint {source} has two tensors named '{t.Name}'");
        return byName;
    }

    internal static NamedTensor Find(Dictionary<string, NamedTensor> byName, string name, int[] shape, string source)
    {
        if (!byName.TryGetValue(name, out var t)) throw new SafeTensorsError($"checkpoint {source} has no tensor '{name}'");
        if (!t.Shape.AsSpan().SequenceEqual(shape))
            throw new SafeTensorsError($"checkpoint {source} has '{name}' of shape {Parameter.ShapeText(t.Shape)}, the network expects {Parameter.ShapeText(shape)}");
        if (t.Data.Length != Parameter.Elements(shape))
            throw new SafeTensorsError($"checkpoint {source} has '{name}' with {t.Data.Length} floats for shape {Parameter.ShapeText(shape)}");
        return t;
    }

    static long[] Integers(JsonElement tensor, string field, string name, Func<string, Exception?, SafeTensorsError> bad)
    {
        if (!tensor.TryGetProperty(field, out var array) || array.ValueKind != JsonValueKind.Array) throw bad($"tensor '{name}' has no {field} array", null);
        var result = new long[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
            result[i++] = item.ValueKind == JsonValueKind.Number && item.TryGetInt64(out long x) && x >= 0 ? x
                : throw bad($"tensor '{name}' {field} holds {item.GetRawText()}, not a non-negative integer", null);
        return result;
    }

    static void WriteFloats(Stream file, float[] data)
    {
        if (BitConverter.IsLittleEndian) { file.Write(MemoryMarshal.AsBytes(data.AsSpan())); return; }
        Span<byte> four = stackalloc byte[4];
        foreach (float f in data)
        {
            BinaryPrimitives.WriteInt32LittleEndian(four, BitConverter.SingleToInt32Bits(f));
            file.Write(four);
        }
    }

    static float[] ReadFloats(ReadOnlySpan<byte> bytes)
    {
        if (BitConverter.IsLittleEndian) return MemoryMarshal.Cast<byte, float>(bytes).ToArray();
        var result = new float[bytes.Length / 4];
        for (int i = 0; i < result.Length; i++) result[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadInt32LittleEndian(bytes[(4 * i)..]));
        return result;
    }
}
