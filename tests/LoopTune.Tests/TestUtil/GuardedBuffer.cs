using System.Runtime.InteropServices;

namespace LoopTune.Tests.TestUtil;

/// <summary>A float buffer placed in the middle of a larger array whose guard zones hold a sentinel NaN bit pattern,
/// so that any write (or, through NaN results, any read) outside the buffer is detected.</summary>
public sealed class GuardedBuffer
{
    /// <summary>A signalling-NaN bit pattern. It is written and compared as an int: going through a float register
    /// (e.g. BitConverter.Int32BitsToSingle) may quiet it to 0x7FE5A5A5.</summary>
    public const int SentinelBits = 0x7FA5A5A5;

    public GuardedBuffer(long length, Random rng, int minGuard = 64)
    {
        Length = checked((int)length);
        Offset = minGuard + rng.Next(0, 8);             // vary the alignment of the buffer inside the array
        Raw = new float[Offset + Length + minGuard + rng.Next(0, 8)];
        Bits.Fill(SentinelBits);
        for (int i = 0; i < Length; i++) Raw[Offset + i] = (float)(rng.NextDouble() * 2 - 1);
    }

    public float[] Raw { get; }
    /// <summary>Index in <see cref="Raw"/> of the first element of the buffer.</summary>
    public int Offset { get; }
    public int Length { get; }
    public Span<float> Data => Raw.AsSpan(Offset, Length);
    Span<int> Bits => MemoryMarshal.Cast<float, int>(Raw.AsSpan());

    /// <summary>Null when every guard float still has the sentinel bits, else where the first change is.</summary>
    public string? CheckGuards(string name)
    {
        int changed = 0;
        string? first = null;
        var bits = Bits;
        for (int i = 0; i < bits.Length; i++)
        {
            if (i >= Offset && i < Offset + Length) continue;
            if (bits[i] == SentinelBits) continue;
            changed++;
            first ??= i < Offset ? $"{Offset - i} floats before" : $"{i - Offset - Length + 1} floats after";
        }
        return changed == 0 ? null : $"{changed} guard floats of {name} were overwritten, first {first} the buffer";
    }
}
