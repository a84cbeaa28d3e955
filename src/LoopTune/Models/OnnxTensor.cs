using System.Buffers.Binary;
using System.Collections.Immutable;
using Google.Protobuf;
using LoopTune.Models.Onnx;

namespace LoopTune.Models;

/// <summary>ONNX element types (<c>TensorProto.DataType</c>), with ONNX's numbers.</summary>
public enum OnnxDataType
{
    Undefined = 0, Float = 1, UInt8 = 2, Int8 = 3, UInt16 = 4, Int16 = 5, Int32 = 6, Int64 = 7, String = 8, Bool = 9,
    Float16 = 10, Double = 11, UInt32 = 12, UInt64 = 13,
}

/// <summary>A constant tensor of the model (an initializer or a <c>Constant</c>'s value): its dims and, for float32,
/// int32 and int64 tensors, its elements (read from <c>raw_data</c>, little-endian, or from the typed fields).</summary>
public sealed class OnnxTensor
{
    readonly float[]? floats;
    readonly long[]? integers;

    OnnxTensor(string name, ImmutableArray<long> dims, OnnxDataType type, float[]? floats, long[]? integers)
    {
        Name = name; Dims = dims; DataType = type; this.floats = floats; this.integers = integers;
    }

    public string Name { get; }
    public ImmutableArray<long> Dims { get; }
    public OnnxDataType DataType { get; }
    /// <summary>Number of elements: the product of the dims (1 for a scalar).</summary>
    public long Length => Dims.Aggregate(1L, (p, d) => p * d);

    /// <summary>The elements of a float32 tensor, row-major.</summary>
    public float[] Floats => floats ?? throw new InvalidOperationException($"tensor {Name} holds {DataType}, not float32");

    /// <summary>The elements of an int32 or int64 tensor (a shape, an axis list), row-major.</summary>
    public long[] Integers => integers ?? throw new InvalidOperationException($"tensor {Name} holds {DataType}, not integers");

    /// <summary>Whether <see cref="Floats"/> is available.</summary>
    public bool IsFloat => floats is not null;
    /// <summary>Whether <see cref="Integers"/> is available.</summary>
    public bool IsInteger => integers is not null;

    /// <summary>A float32 tensor made from elements (for tests and constants computed outside the file).</summary>
    public static OnnxTensor FromFloats(string name, IEnumerable<long> dims, float[] data)
    {
        var d = dims.ToImmutableArray();
        long n = d.Aggregate(1L, (p, x) => p * x);
        if (n != data.Length) throw new ArgumentException($"tensor {name}: {data.Length} floats for dims [{string.Join(",", d)}] ({n})");
        return new OnnxTensor(name, d, OnnxDataType.Float, data, null);
    }

    internal static OnnxTensor Read(TensorProto t, string source)
    {
        string name = t.HasName ? t.Name : "(unnamed)";
        OnnxError Bad(string problem) => new(source, $"tensor {name}: {problem}");
        if (t.HasDataLocation && t.DataLocation == TensorProto.Types.DataLocation.External)
            throw Bad("its data is in an external file, which is not supported");
        var dims = t.Dims.ToImmutableArray();
        if (dims.Any(d => d < 0)) throw Bad($"negative dim in [{string.Join(",", dims)}]");
        long count = dims.Aggregate(1L, (p, d) => p * d);
        if (count > int.MaxValue) throw Bad($"{count} elements are too many");
        var type = (OnnxDataType)t.DataType;
        float[]? floats = null;
        long[]? integers = null;
        switch (type)
        {
            case OnnxDataType.Float:
                floats = t.HasRawData ? Raw(t.RawData, 4, count, Bad, s => BinaryPrimitives.ReadSingleLittleEndian(s)) : [.. t.FloatData];
                Check(floats.Length, count, "floats", Bad);
                break;
            case OnnxDataType.Int64:
                integers = t.HasRawData ? Raw(t.RawData, 8, count, Bad, BinaryPrimitives.ReadInt64LittleEndian) : [.. t.Int64Data];
                Check(integers.Length, count, "int64s", Bad);
                break;
            case OnnxDataType.Int32:
                integers = t.HasRawData ? Raw(t.RawData, 4, count, Bad, s => (long)BinaryPrimitives.ReadInt32LittleEndian(s)) : [.. t.Int32Data.Select(x => (long)x)];
                Check(integers.Length, count, "int32s", Bad);
                break;
        }
        return new OnnxTensor(name, dims, type, floats, integers) { Proto = t };
    }

    /// <summary>The message it was read from (null for a tensor made in code): <see cref="SingleNodeModel"/> copies it.</summary>
    internal TensorProto? Proto { get; init; }

    delegate T Decode<T>(ReadOnlySpan<byte> bytes);

    static T[] Raw<T>(ByteString raw, int size, long count, Func<string, OnnxError> bad, Decode<T> decode)
    {
        var bytes = raw.Span;
        if (bytes.Length != count * size) throw bad($"raw_data holds {bytes.Length} bytes, the dims need {count} x {size}");
        var result = new T[count];
        for (int i = 0; i < result.Length; i++) result[i] = decode(bytes.Slice(i * size, size));
        return result;
    }

    static void Check(int got, long count, string what, Func<string, OnnxError> bad)
    {
        if (got != count) throw bad($"{got} {what} for {count} elements");
    }
}
