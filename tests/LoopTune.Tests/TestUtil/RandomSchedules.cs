using LoopTune.Ir;

namespace LoopTune.Tests.TestUtil;

/// <summary>Random computations and random legal action walks (drawn uniformly from <see cref="Transforms.Mask"/>).</summary>
public static class RandomSchedules
{
    public static readonly int[] MmSizes = [1, 2, 3, 5, 7, 13, 16, 17, 31, 33, 64, 65];

    public static Computation Matmul(Random rng) =>
        Computation.Matmul(MmSizes[rng.Next(MmSizes.Length)], MmSizes[rng.Next(MmSizes.Length)], MmSizes[rng.Next(MmSizes.Length)]);

    /// <summary>conv C H W F R S with C in 1..4, H, W in 3..12, F in 1..5, R, S in 1..3.</summary>
    public static Computation Conv(Random rng)
    {
        int h = rng.Next(3, 13), w = rng.Next(3, 13);
        return Computation.Conv(rng.Next(1, 5), h, w, rng.Next(1, 6), rng.Next(1, 4), rng.Next(1, 4));
    }

    /// <summary>A stride-2 convolution written out in the long form (coefficients in the input index).</summary>
    public static Computation StridedConv(Random rng) => Computation.Parse(
        $"O[f,h,w] += I[c,2*h+r,2*w+s] * W[f,c,r,s] f={rng.Next(1, 4)} h={rng.Next(1, 7)} w={rng.Next(1, 7)} c={rng.Next(1, 4)} r={rng.Next(1, 4)} s={rng.Next(1, 4)}");

    /// <summary>Other contraction shapes: no reduction, a variable indexing one input twice, a variable only in the output,
    /// a reduction in one input only, transposes, dilation.</summary>
    static readonly string[] Templates =
    [
        "O[i,j] += A[i] * B[j] i={0} j={1}",
        "O[i] += A[i,k] * B[k] i={0} k={1}",
        "O[i,j] += A[i,j] * B[j,i] i={0} j={1}",
        "O[i] += A[i,i] * B[i] i={0}",
        "O[i,j] += A[i] * B[i] i={0} j={1}",
        "O[i] += A[i,k] * B[i] i={0} k={1}",
        "O[j,i] += A[k,i] * B[j,k] i={0} j={1} k={2}",
        "O[h] += I[h+2*r] * W[r] h={0} r={2}",
        "O[b,h] += I[b,3*h+r+s] * W[r,s] b={2} h={0} r={1} s={2}",
    ];

    public static Computation Other(Random rng)
    {
        int Size() => rng.Next(3) == 0 ? rng.Next(1, 4) : MmSizes[rng.Next(MmSizes.Length)];
        var t = Templates[rng.Next(Templates.Length)];
        return Computation.Parse(string.Format(t, Size(), Size(), rng.Next(1, 5)));
    }

    /// <summary>Five batches of random schedules for a theory (kind, batch): two of matmuls, one of each other kind.</summary>
    public static TheoryData<string, int> FiveBatches() => new() { { "mm", 0 }, { "mm", 1 }, { "conv", 0 }, { "strided", 0 }, { "other", 0 } };

    public static Computation Of(string kind, Random rng) => kind switch
    {
        "mm" => Matmul(rng),
        "conv" => Conv(rng),
        "strided" => StridedConv(rng),
        "other" => Other(rng),
        _ => throw new ArgumentException(kind),
    };

    /// <summary>Indices of the legal actions of <paramref name="nest"/>.</summary>
    public static int[] Legal(Nest nest)
    {
        var mask = Transforms.Mask(nest);
        return [.. Enumerable.Range(0, mask.Length).Where(i => mask[i])];
    }

    /// <summary>Up to <paramref name="steps"/> actions, each drawn uniformly from the mask of the current nest.</summary>
    public static (Nest Nest, List<LoopAction> Actions) Walk(Nest start, Random rng, int steps, Action<Nest>? visit = null)
    {
        var nest = start;
        var actions = new List<LoopAction>();
        visit?.Invoke(nest);
        for (int i = 0; i < steps; i++)
        {
            var legal = Legal(nest);
            if (legal.Length == 0) break;
            var a = Actions.All[legal[rng.Next(legal.Length)]];
            nest = Transforms.Apply(nest, a);
            actions.Add(a);
            visit?.Invoke(nest);
        }
        return (nest, actions);
    }

    /// <summary>Moves the cursor to the innermost loop and vectorizes it (removing an unroll or parallel first), recording the actions:
    /// a uniform walk seldom vectorizes, since that is legal only at the innermost loop.</summary>
    public static Nest FinishVectorized(Nest nest, List<LoopAction> actions)
    {
        Nest Do(Nest n, string name)
        {
            var a = Actions.Get(name);
            actions.Add(a);
            return Transforms.Apply(n, a);
        }
        while (nest.Cursor < nest.Count - 1) nest = Do(nest, "down");
        if (nest[nest.Cursor].Annotation is Annotation.Unroll or Annotation.Parallel) nest = Do(nest, Nest.Word(nest[nest.Cursor].Annotation));
        return nest[nest.Cursor].IsVectorized ? nest : Do(nest, "vectorize");
    }

    /// <summary>How to reproduce: the spec and the action list.</summary>
    public static string Describe(Computation c, IEnumerable<LoopAction> actions) =>
        $"spec '{c}' actions '{string.Join(",", actions)}'";
}
