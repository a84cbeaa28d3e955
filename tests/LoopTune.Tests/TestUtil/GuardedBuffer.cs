namespace LoopTune.Tests.TestUtil;

/// <summary>A float buffer placed in the middle of a larger array whose guard zones hold a sentinel NaN bit pattern,
/// so that any write (or, through NaN results, any read) outside the buffer is detected.</summary>
public sealed class GuardedBuffer
{
    public const int SentinelBits = 0x7FA5A5A5;
    public static readonly float Sentinel = BitConverter.Int32BitsToSingle(SentinelBits);

    public GuardedBuffer(long length, Random rng, int minGuard = 64)
    {
        Length = checked((int)length);
        Offset = minGuard + rng.Next(0, 8);             // vary the alignment of the buffer inside the array
        Raw = new float[Offset + Length + minGuard + rng.Next(0, 8)];
        Raw.AsSpan().Fill(Sentinel);
        for (int i = 0; i < Length; i++) Raw[Offset + i] = (float)(rng.NextDouble() * 2 - 1);
    }

    public float[] Raw { get; }
    /// <summary>Index in <see cref="Raw"/> of the first element of the buffer.</summary>
    public int Offset { get; }
    public int Length { get; }
    public Span<float> Data => Raw.AsSpan(Offset, Length);

    /// <summary>Null when every guard float still has the sentinel bits, else where the first change is.</summary>
    public string? CheckGuards(string name)
    {
        int changed = 0;
        string? first = null;
        for (int i = 0; i < Raw.Length; i++)
        {
            if (i >= Offset && i < Offset + Length) continue;
            int bits = BitConverter.SingleToInt32Bits(Raw[i]);
            if (bits == SentinelBits) continue;
            changed++;
            first ??= i < Offset ? $"{Offset - i} floats before" : $"{i - Offset - Length + 1} floats after";
        }
        return changed == 0 ? null : $"{changed} guard floats of {name} were overwritten, first {first} the buffer";
    }
}
