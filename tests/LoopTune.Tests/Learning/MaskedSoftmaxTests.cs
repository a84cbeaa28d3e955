using LoopTune.Learning.Nn;
using static LoopTune.Tests.Learning.NnTestUtil;

namespace LoopTune.Tests.Learning;

/// <summary>The masked distribution: illegal entries never get probability, legal ones sum to 1.</summary>
public sealed class MaskedSoftmaxTests
{
    [Fact]
    public void IllegalEntriesAreExactlyZeroAndMinusInfinity()
    {
        var rng = new Random(20);
        var logits = RandomMatrix(rng, 5, 9, 3f);
        var mask = new bool[45];
        for (int i = 0; i < 45; i++)
        {
            mask[i] = i % 9 < 2 || rng.NextDouble() < 0.5;
            if (!mask[i]) logits.Data[i] = 1e30f;   // a huge illegal logit must not matter
        }
        var p = MaskedSoftmax.Softmax(logits, mask);
        var logp = MaskedSoftmax.LogSoftmax(logits, mask);
        for (int i = 0; i < 45; i++)
        {
            if (mask[i]) { Assert.True(p.Data[i] > 0); Assert.True(float.IsFinite(logp.Data[i])); Assert.Equal(MathF.Exp(logp.Data[i]), p.Data[i], 1e-6f); }
            else { Assert.Equal(0f, p.Data[i]); Assert.Equal(float.NegativeInfinity, logp.Data[i]); }
        }
        for (int r = 0; r < 5; r++)
        {
            Assert.Equal(1.0, p.Row(r).ToArray().Sum(x => (double)x), 1e-6);
            Assert.Equal(1.0, logp.Row(r).ToArray().Sum(x => Math.Exp(x)), 1e-6);
        }
    }

    [Fact]
    public void UniformOverSeventeenLegalActions()
    {
        var logits = new Matrix(2, 20);
        var mask = new bool[40];
        for (int j = 0; j < 20; j++)
        {
            logits[0, j] = 0.3f;
            logits[1, j] = j < 17 ? -4.25f : 50f;
            mask[j] = true;
            mask[20 + j] = j < 17;
        }
        var logp = MaskedSoftmax.LogSoftmax(logits, mask);
        var h = MaskedSoftmax.Entropy(logp, mask);
        for (int j = 0; j < 17; j++) Assert.Equal((float)-Math.Log(17), logp[1, j]);
        for (int j = 0; j < 20; j++) Assert.Equal((float)-Math.Log(20), logp[0, j]);
        Assert.Equal((float)Math.Log(20), h[0], 6);
        Assert.Equal((float)Math.Log(17), h[1], 6);
        Assert.Equal(1f / 17, MaskedSoftmax.Softmax(logits, mask)[1, 3], 7);
        // the entropy is at its maximum: no gradient
        Assert.All(MaskedSoftmax.EntropyBackward(logp, [1f, 1f], mask).Data, g => Assert.Equal(0f, g, 6));
    }

    [Fact]
    public void AnEmptyMaskMeansAllLegalAndLargeLogitsAreStable()
    {
        var logits = new Matrix(1, 3, [1000f, 999f, -1000f]);
        var logp = MaskedSoftmax.LogSoftmax(logits);
        Assert.Equal(logp.Data, MaskedSoftmax.LogSoftmax(logits, [true, true, true]).Data);
        Assert.Equal(-Math.Log(1 + Math.Exp(-1)), logp[0, 0], 6);
        Assert.Equal(-2000 - Math.Log(1 + Math.Exp(-1)), logp[0, 2], 3);
        Assert.Equal(0f, MaskedSoftmax.Softmax(logits)[0, 2]);   // underflows to 0, and the entropy stays finite
        Assert.True(float.IsFinite(MaskedSoftmax.Entropy(logp)[0]));
        Assert.All(MaskedSoftmax.EntropyBackward(logp, [1f]).Data, g => Assert.True(float.IsFinite(g)));
    }

    [Fact]
    public void ARowWithoutLegalEntryOrAWrongMaskLengthIsRejected()
    {
        var logits = new Matrix(2, 3);
        var e = Assert.Throws<ArgumentException>(() => MaskedSoftmax.Softmax(logits, [true, false, false, false, false, false]));
        Assert.Contains("row 1", e.Message);
        Assert.Throws<ArgumentException>(() => MaskedSoftmax.LogSoftmax(logits, [true, true]));
        Assert.Throws<ArgumentException>(() => MaskedSoftmax.EntropyBackward(logits, [1f]));
    }
}
