using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Measure;

/// <summary>
/// What the caches hold when a kernel is timed: its measurement context, part of every key a figure is kept under.
/// <list type="table">
/// <item><term>hot</term><description>(the default) every run reads the same buffers, so whatever of them fits stays cached
/// from one run to the next: a kernel timed alone, or a loop over one product.</description></item>
/// <item><term>cold operand</term><description>(<see cref="Cold"/>) every run reads the next of several copies of one input
/// operand (<see cref="KernelTiming.Workspace"/>), together more than <see cref="ColdBytes"/>, so that the copy a run reads
/// has left the caches since it was last read: what a model's forward pass does to each node's weights, read once per pass
/// while the rest of the model's weights and activations pass through the caches. The other operand and the output stay
/// hot (a node's input was just written by the node before it).</description></item>
/// </list>
/// A hot and a cold figure of one schedule differ (a 512-channel 3x3 convolution ran 173-179 GFLOPS hot and 145 cold), so
/// they are never kept under one key: <see cref="Key"/> is part of the measurement store's runtime key.
/// </summary>
public readonly record struct TimingContext(Operand? Cold)
{
    /// <summary>Every run on the same buffers (the default).</summary>
    public static TimingContext Hot => default;

    /// <summary>Every run reading the next copy of <paramref name="operand"/>.</summary>
    public static TimingContext ColdOperand(Operand operand) => new(operand);

    /// <summary>Whether no operand is cold.</summary>
    public bool IsHot => Cold is null;

    /// <summary>The context in a key: empty when hot, else <c>cold left</c> or <c>cold right</c>.</summary>
    public string Key => Cold switch
    {
        null => "",
        Operand.Left => "cold left",
        _ => "cold right",
    };

    /// <summary>The context of <paramref name="key"/> (<see cref="Key"/>'s form); false for any other text.</summary>
    public static bool TryParseKey(string key, out TimingContext context)
    {
        context = key switch
        {
            "cold left" => ColdOperand(Operand.Left),
            "cold right" => ColdOperand(Operand.Right),
            _ => Hot,
        };
        return key is "" or "cold left" or "cold right";
    }

    public override string ToString() => IsHot ? "hot" : Key;

    /// <summary>The last-level cache figure <see cref="ColdBytes"/> believes at most: 128 MiB, above any one core's share
    /// on current CPUs (AMD's CCDs have 32 or 96 MiB; Intel's server parts share up to about 100 MiB per socket
    /// among cores that each reach it all, and more only across sub-NUMA clusters). A VM's CPUID may report a whole host's
    /// L3 (508 MiB here, where a core's CCD has 32).</summary>
    public const long MaxCacheBytes = 128L << 20;

    /// <summary>How many bytes of copies of a cold operand a run rotates among at least: twice the last-level cache
    /// (<paramref name="caches"/>: default this machine's, <see cref="CacheSizes.Current"/>), that figure capped at
    /// <see cref="MaxCacheBytes"/> and taken as the cap when unknown; twice, because caches do not evict strictly the least
    /// recently used line, so a copy's total just over the cache would leave parts of the next copy cached.</summary>
    public static long ColdBytes(CacheSizes? caches = null)
    {
        long? l3 = (caches ?? CacheSizes.Current).L3Kib * 1024L;
        return 2 * Math.Min(l3 is > 0 ? l3.Value : MaxCacheBytes, MaxCacheBytes);
    }

    /// <summary>How many copies of an operand of <paramref name="operandBytes"/> a cold run rotates among: enough that
    /// they pass <paramref name="coldBytes"/> together, and at least 2 (an operand that large by itself still must not be
    /// read twice in a row); 1 when hot.</summary>
    public int Copies(long operandBytes, long coldBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(operandBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(coldBytes);
        if (IsHot) return 1;
        return (int)Math.Max(2, Math.Min(int.MaxValue, (coldBytes + operandBytes - 1) / operandBytes));
    }
}
