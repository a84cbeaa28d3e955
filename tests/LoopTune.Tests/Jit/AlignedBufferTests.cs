using LoopTune.Jit;

namespace LoopTune.Tests.Jit;

public sealed unsafe class AlignedBufferTests
{
    [Theory]
    [InlineData(1, 0)]
    [InlineData(7, 3)]
    [InlineData(100, 16)]
    [InlineData(33, 17)]
    [InlineData(0, 5)]
    public void PointerIsAlignedAndGuardsStartIntact(long length, int guard)
    {
        using var buffer = new AlignedBuffer(length, guard);
        Assert.Equal(0, (long)buffer.Pointer % AlignedBuffer.Alignment);
        Assert.Equal(length, buffer.Length);
        Assert.Equal(length, buffer.Span.Length);
        Assert.True(buffer.GuardsIntact());
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(37, 4)]
    [InlineData(64, 16)]
    public void WritingOnePastTheEndBreaksTheGuard(long length, int guard)
    {
        using var buffer = new AlignedBuffer(length, guard);
        buffer.Fill(new Random(1));
        Assert.True(buffer.GuardsIntact());
        buffer.Pointer[length] = 0;
        Assert.False(buffer.GuardsIntact());
    }

    [Theory]
    [InlineData(5, 0)]
    [InlineData(37, 4)]
    [InlineData(16, 40)]
    public void A_vector_past_the_end_is_readable_guard_then_zeros(long length, int guard)
    {
        using var buffer = new AlignedBuffer(length, guard);
        for (int i = 0; i < AlignedBuffer.ReadableTail; i++)
            Assert.Equal(i < guard ? AlignedBuffer.Sentinel : 0u, ((uint*)buffer.Pointer)[length + i]);
    }

    [Fact]
    public void WritingOneBeforeTheStartBreaksTheGuard()
    {
        using var buffer = new AlignedBuffer(10, 2);
        buffer.Pointer[-1] = 1;
        Assert.False(buffer.GuardsIntact());
    }

    [Fact]
    public void FillStaysInRangeAndClearZeroes()
    {
        using var buffer = new AlignedBuffer(1000, 8);
        buffer.Fill(new Random(7), 2, 3);
        Assert.All(buffer.Span.ToArray(), x => Assert.InRange(x, 2f, 3f));
        buffer.Clear();
        Assert.All(buffer.Span.ToArray(), x => Assert.Equal(0f, x));
        Assert.True(buffer.GuardsIntact());
    }

    [Fact]
    public void SpanAndPointerAreTheSameMemory()
    {
        using var buffer = new AlignedBuffer(5);
        buffer.Span[3] = 42;
        Assert.Equal(42f, buffer.Pointer[3]);
    }

    [Fact]
    public void DisposeIsIdempotentAndUseAfterDisposeThrows()
    {
        var buffer = new AlignedBuffer(16, 4);
        buffer.Dispose();
        buffer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => buffer.GuardsIntact());
        Assert.Throws<ObjectDisposedException>(() => buffer.Clear());
    }

    [Fact]
    public void NegativeSizesAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new AlignedBuffer(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AlignedBuffer(1, -1));
    }

    /// <summary>A large buffer's block goes back to the process's kept blocks when disposed and is lent to the next buffer
    /// that fits; that buffer starts as a new one would (guards intact, a readable tail of zeros, alignment), whatever the
    /// block held.</summary>
    [Fact]
    public void A_reused_large_block_starts_clean()
    {
        long length = AlignedBuffer.HugeAbove / sizeof(float);
        for (int round = 0; round < 3; round++)
        {
            var dirty = new AlignedBuffer(length, 4);
            new Span<byte>((byte*)dirty.Pointer - 64, checked((int)(length * sizeof(float)) + 128)).Fill(0x5A); // guards and tail too
            dirty.Dispose();
            using var fresh = new AlignedBuffer(length, 4);
            Assert.Equal(0, (long)fresh.Pointer % AlignedBuffer.Alignment);
            Assert.True(fresh.GuardsIntact());
            for (int i = 4; i < AlignedBuffer.ReadableTail; i++) Assert.Equal(0u, ((uint*)fresh.Pointer)[length + i]);
        }
        AlignedBuffer.ReleaseKept();
    }

    /// <summary>Large sizes round up to a multiple of an eighth of their power of two (and of a huge page), at most an
    /// eighth more, so that the cold copies of different weights (256 MiB less one operand, or a little more) ask for the
    /// same block: a size just over a power of two and one an eighth over it round alike; a size just under it does not
    /// grow past it.</summary>
    [Theory]
    [InlineData(AlignedBuffer.HugeAbove)]
    [InlineData(AlignedBuffer.HugeAbove + 1)]
    [InlineData((256L << 20) - 147_456)]
    [InlineData((256L << 20) + 37_696)]
    [InlineData((256L << 20) + (32L << 20) - 1)]
    [InlineData(3L << 30)]
    public void Large_sizes_round_up_by_at_most_an_eighth(long bytes)
    {
        long rounded = AlignedBuffer.Granular(bytes);
        Assert.InRange(rounded, bytes, bytes + Math.Max(bytes / 8, AlignedBuffer.HugePage));
        Assert.Equal(0, rounded % AlignedBuffer.HugePage);
        Assert.Equal(rounded, AlignedBuffer.Granular(rounded));
        if (bytes > 256L << 20 && bytes <= (256L + 32) << 20) Assert.Equal((256L + 32) << 20, rounded);
        if (bytes > 224L << 20 && bytes <= 256L << 20) Assert.Equal(256L << 20, rounded);
    }
}
