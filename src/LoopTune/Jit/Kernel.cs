using System.Diagnostics;
using LoopTune.Ir;

namespace LoopTune.Jit;

/// <summary>
/// A nest compiled to machine code: IL emitted into a DynamicMethod and compiled by RyuJIT before
/// <see cref="Compile"/> returns. The kernel computes <c>Out += Left * Right</c> over the computation's iteration
/// space (it accumulates into the output; clear it first for a plain product). It writes nothing outside the output, and
/// reads nothing outside the inputs but up to <see cref="ReadsPast"/> floats past an input's end (whole vectors whose
/// extra lanes are never stored or are blended away; <see cref="JitOptions.WideInputLoads"/>, <see cref="JitOptions.FuseLanes"/>). Dynamic methods are collected with the
/// kernel, so compiling many in a row keeps memory flat.
/// <code>
/// var kernel = Kernel.Compile(Nest.Initial(Computation.Parse("mm 64 64 64")));
/// kernel.Run(c, a, b);   // spans of 64*64 floats each
/// </code>
/// </summary>
public sealed unsafe class Kernel
{
    readonly KernelFn fn;

    Kernel(Nest nest, KernelFn fn, int statements, int blockStart, int readsPast, IReadOnlyList<string> notes, TimeSpan compileTime)
    {
        Nest = nest;
        this.fn = fn;
        Statements = statements;
        BlockStart = blockStart;
        ReadsPast = readsPast;
        Notes = notes;
        CompileTime = compileTime;
    }

    public Nest Nest { get; }
    public Computation Computation => Nest.Computation;
    /// <summary>Multiply-add statements spelled out in the kernel.</summary>
    public int Statements { get; }
    /// <summary>Position of the outermost loop whose output tile is held in registers.</summary>
    public int BlockStart { get; }
    /// <summary>Floats past the end of each input the kernel may read (never more than a vector's width less one; 0 when no
    /// masked or fused vector is loaded whole). <see cref="Run(float*, float*, float*)"/> needs inputs readable that far.</summary>
    public int ReadsPast { get; }
    /// <summary>What the JIT did differently from the annotations, if anything (e.g. an unroll past the code budget, loops
    /// fused into one run of lanes).</summary>
    public IReadOnlyList<string> Notes { get; }
    /// <summary>Lowering, IL emission and RyuJIT compilation together.</summary>
    public TimeSpan CompileTime { get; }

    /// <summary>Compiles <paramref name="nest"/>.</summary>
    public static Kernel Compile(Nest nest, JitOptions? options = null)
    {
        options ??= JitOptions.Default;
        long start = Stopwatch.GetTimestamp();
        var (program, statements, blockStart, readsPast, notes) = Lowering.Lower(nest, options);
        var fn = Emitter.Emit(program, options.Fused, "looptune_kernel");
        fn(null, null, null, 0); // makes RyuJIT compile it now, doing no work
        return new Kernel(nest, fn, statements, blockStart, readsPast, notes, Stopwatch.GetElapsedTime(start));
    }

    /// <summary>Compiles one small kernel of every code path, so that later <see cref="CompileTime"/>s measure compiling the
    /// kernel, not the .NET JIT compiling LoopTune's own code generator on first use (about 50 ms, once per process).</summary>
    public static void WarmUp()
    {
        if (warm) return;
        var nest = Transforms.ApplyAll(Nest.Initial(Computation.Matmul(9, 37, 7)), Actions.ParseList("split_4,down,swap_down,swap_down,unroll,up,up,split_16,down,swap_down,swap_down,vectorize"));
        Compile(nest);
        Compile(nest, JitOptions.Default with { MaxVectorBits = 0 });
        warm = true;
    }

    static bool warm;

    /// <summary>Runs the kernel on raw buffers; each must hold its tensor's <see cref="Tensor.Length"/> floats, and the
    /// inputs must be readable <see cref="ReadsPast"/> floats further (<c>AlignedBuffer</c>s are).</summary>
    public void Run(float* output, float* left, float* right) => fn(output, left, right, 1);

    /// <summary>Runs the kernel on spans, after checking their lengths. An input span too short for
    /// <see cref="ReadsPast"/> is copied into one that is long enough first.</summary>
    public void Run(Span<float> output, ReadOnlySpan<float> left, ReadOnlySpan<float> right)
    {
        var c = Computation;
        Check(output.Length, c.Output, nameof(output));
        Check(left.Length, c.Left, nameof(left));
        Check(right.Length, c.Right, nameof(right));
        left = Readable(left, c.Left.Length);
        right = Readable(right, c.Right.Length);
        fixed (float* o = output, l = left, r = right) fn(o, l, r, 1);
    }

    ReadOnlySpan<float> Readable(ReadOnlySpan<float> input, long length)
    {
        if (input.Length >= length + ReadsPast) return input;
        var copy = new float[length + ReadsPast];
        input[..(int)length].CopyTo(copy);
        return copy;
    }

    static void Check(int length, Tensor t, string name)
    {
        if (length < t.Length)
            throw new ArgumentException($"{name} ({t.Name}) needs {t.Length} floats, got {length}", name);
    }
}
