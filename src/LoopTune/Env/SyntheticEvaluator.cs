using LoopTune.Ir;

namespace LoopTune.Env;

/// <summary>
/// A deterministic stand-in for a measurement, for throughput runs that must not time kernels (simulated Ape-X workers:
/// <c>looptune learner-limit</c>). A schedule's "GFLOPS" is <paramref name="peak"/> scaled by three factors a real
/// kernel's speed also grows with: a vectorized innermost loop (over a variable the output is contiguous in, best), a
/// register tile (the product of the unrolled loops' sizes, up to 16), and the share of loops whose footprint fits in
/// 32 KiB (<see cref="Footprint"/>). Microseconds a call, no state, thread-safe. Not a speed: it does not claim to rank
/// schedules as a machine would. A learned cost model is another <see cref="IEvaluator"/> and plugs in where this does.
/// </summary>
public sealed class SyntheticEvaluator(double peak) : IEvaluator
{
    const long L1Bytes = 32 * 1024;
    const int RegisterTile = 16;

    public Evaluated Evaluate(Nest nest)
    {
        ArgumentNullException.ThrowIfNull(nest);
        var inner = nest[nest.Count - 1];
        double vector = !inner.IsVectorized ? 0.15 : nest.Computation.Output.VarStrides[inner.Var] == 1 ? 1 : 0.4;
        long tile = 1;
        foreach (var loop in nest.Loops)
            if (loop.IsUnrolled) tile *= loop.Size;
        double register = 0.3 + 0.7 * Math.Min(RegisterTile, tile) / RegisterTile;
        int inL1 = Enumerable.Range(0, nest.Count).Count(i => Footprint.Bytes(nest, i) <= L1Bytes);
        double gflops = peak * vector * register * (0.2 + 0.8 * inL1 / nest.Count);
        return new Evaluated(gflops, nest.Computation.Flops / (gflops * 1e9), false);
    }
}
