using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace LoopTune.Measure;

/// <summary>The peak microkernel, emitted as IL at run time: <c>float Run(long iterations, float x, float y)</c>
/// keeps <see cref="Chains"/> independent vector accumulators in locals and, per iteration, does
/// <c>acc = FusedMultiplyAdd(acc, x, y)</c> on each (or Multiply then Add without hardware FMA);
/// it returns the sum of all lanes so nothing is dead. With |x| &lt; 1 the accumulators converge
/// to y / (1 - x): no overflow, no denormals.</summary>
internal sealed class PeakKernel
{
    private PeakKernel(Func<long, float, float, float> run, int bits, int chains, bool fused) =>
        (Run, Bits, Chains, Fused) = (run, bits, chains, fused);

    /// <summary>Runs the loop; arguments: iterations, multiplier x, addend y.</summary>
    public Func<long, float, float, float> Run { get; }

    /// <summary>Vector width in bits: 128, 256 or 512.</summary>
    public int Bits { get; }

    /// <summary>Independent accumulator chains.</summary>
    public int Chains { get; }

    /// <summary>Whether one FusedMultiplyAdd (rather than Multiply + Add) is emitted per chain.</summary>
    public bool Fused { get; }

    /// <summary>Float lanes per vector.</summary>
    public int Lanes => Bits / 32;

    /// <summary>Flops per loop iteration, counting a multiply-add as two even when not fused.</summary>
    public double FlopsPerIteration => 2.0 * Chains * Lanes;

    /// <summary>Whether the vector FusedMultiplyAdd maps to one hardware instruction.</summary>
    public static bool HardwareFma => Fma.IsSupported || AdvSimd.IsSupported;

    /// <summary>A kernel of the given vector width (128, 256, 512) and number of chains.</summary>
    public static PeakKernel Create(int bits, int chains, bool fused)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chains, 1);
        var ops = VectorOps.For(bits);
        var dm = new DynamicMethod($"peak{bits}x{chains}", typeof(float), [typeof(long), typeof(float), typeof(float)],
                                   typeof(PeakKernel).Module, skipVisibility: true);
        Emit(dm.GetILGenerator(), ops, chains, fused);
        return new PeakKernel(dm.CreateDelegate<Func<long, float, float, float>>(), bits, chains, fused);
    }

    private static void Emit(ILGenerator il, VectorOps ops, int chains, bool fused)
    {
        var acc = Enumerable.Range(0, chains).Select(_ => il.DeclareLocal(ops.Vector)).ToArray();
        LocalBuilder x = il.DeclareLocal(ops.Vector), y = il.DeclareLocal(ops.Vector);
        Splat(il, ops, () => il.Emit(OpCodes.Ldarg_1), x);
        Splat(il, ops, () => il.Emit(OpCodes.Ldarg_2), y);
        for (int c = 0; c < chains; c++) Splat(il, ops, () => il.Emit(OpCodes.Ldc_R4, (c + 1) / 1024f), acc[c]);
        CountedLoop(il, () =>
        {
            foreach (var a in acc) MultiplyAdd(il, ops, a, x, y, fused);
        });
        il.Emit(OpCodes.Ldloc, acc[0]);
        foreach (var a in acc.Skip(1))
        {
            il.Emit(OpCodes.Ldloc, a);
            il.Emit(OpCodes.Call, ops.Add);
        }
        il.Emit(OpCodes.Call, ops.Sum);
        il.Emit(OpCodes.Ret);
    }

    /// <summary>Emits <c>for (long i = 0; i &lt; arg0; i++) body</c>.</summary>
    internal static void CountedLoop(ILGenerator il, Action body)
    {
        var i = il.DeclareLocal(typeof(long));
        Label top = il.DefineLabel(), test = il.DefineLabel();
        il.Emit(OpCodes.Ldc_I8, 0L);
        il.Emit(OpCodes.Stloc, i);
        il.Emit(OpCodes.Br, test);
        il.MarkLabel(top);
        body();
        il.Emit(OpCodes.Ldloc, i);
        il.Emit(OpCodes.Ldc_I8, 1L);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Stloc, i);
        il.MarkLabel(test);
        il.Emit(OpCodes.Ldloc, i);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Blt, top);
    }

    private static void Splat(ILGenerator il, VectorOps ops, Action scalar, LocalBuilder into)
    {
        scalar();
        il.Emit(OpCodes.Call, ops.Create);
        il.Emit(OpCodes.Stloc, into);
    }

    /// <summary>acc = acc * x + y.</summary>
    private static void MultiplyAdd(ILGenerator il, VectorOps ops, LocalBuilder acc, LocalBuilder x, LocalBuilder y, bool fused)
    {
        il.Emit(OpCodes.Ldloc, acc);
        il.Emit(OpCodes.Ldloc, x);
        if (fused)
        {
            il.Emit(OpCodes.Ldloc, y);
            il.Emit(OpCodes.Call, ops.Fma);
        }
        else
        {
            il.Emit(OpCodes.Call, ops.Multiply);
            il.Emit(OpCodes.Ldloc, y);
            il.Emit(OpCodes.Call, ops.Add);
        }
        il.Emit(OpCodes.Stloc, acc);
    }

    /// <summary>The vector methods the kernel calls, for one width; RyuJIT treats them as intrinsics.</summary>
    private sealed record VectorOps(Type Vector, MethodInfo Create, MethodInfo Fma, MethodInfo Multiply, MethodInfo Add, MethodInfo Sum)
    {
        public static VectorOps For(int bits) => bits switch
        {
            128 => Of(typeof(Vector128), typeof(Vector128<float>)),
            256 => Of(typeof(Vector256), typeof(Vector256<float>)),
            512 => Of(typeof(Vector512), typeof(Vector512<float>)),
            _ => throw new ArgumentOutOfRangeException(nameof(bits), bits, "vector width must be 128, 256 or 512"),
        };

        private static VectorOps Of(Type statics, Type vector) => new(
            vector,
            statics.GetMethod("Create", [typeof(float)])!,
            statics.GetMethod("FusedMultiplyAdd", [vector, vector, vector])!,
            vector.GetMethod("op_Multiply", [vector, vector])!,
            vector.GetMethod("op_Addition", [vector, vector])!,
            statics.GetMethods().Single(m => m.Name == "Sum").MakeGenericMethod(typeof(float)));
    }
}

/// <summary>A chain of dependent 64-bit integer additions, emitted as IL: <c>long Run(long iterations, long y)</c> adds
/// <paramref name="y"/> to one accumulator <see cref="AddsPerIteration"/> times per iteration. An integer add has a latency of
/// one cycle on every x86 and Arm core, so the chain runs at one add per cycle: adds per second are the clock.</summary>
internal static class ClockKernel
{
    public const int AddsPerIteration = 64;

    static readonly Lazy<Func<long, long, long>> run = new(Create);

    public static Func<long, long, long> Run => run.Value;

    static Func<long, long, long> Create()
    {
        var dm = new DynamicMethod("clock", typeof(long), [typeof(long), typeof(long)], typeof(ClockKernel).Module, skipVisibility: true);
        var il = dm.GetILGenerator();
        LocalBuilder acc = il.DeclareLocal(typeof(long));
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Stloc, acc);
        PeakKernel.CountedLoop(il, () =>
        {
            for (int k = 0; k < AddsPerIteration; k++)
            {
                il.Emit(OpCodes.Ldloc, acc);
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Add);
                il.Emit(OpCodes.Stloc, acc);
            }
        });
        il.Emit(OpCodes.Ldloc, acc);
        il.Emit(OpCodes.Ret);
        return dm.CreateDelegate<Func<long, long, long>>();
    }
}
