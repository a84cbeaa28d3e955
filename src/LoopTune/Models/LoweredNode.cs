using System.Collections.Immutable;
using System.Diagnostics;
using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Models;

/// <summary>What <see cref="ModelLowering"/> made of one node: a <see cref="ContractionOp"/> or <see cref="NotTuned"/>.</summary>
public abstract class LoweredNode(OnnxNode node)
{
    public OnnxNode Node { get; } = node;
}

/// <summary>A node left to other code, with the reason (an operator that is not a contraction, a grouped or dilated
/// convolution, an unknown shape).</summary>
public sealed class NotTuned(OnnxNode node, string reason) : LoweredNode(node)
{
    public string Reason { get; } = reason;
    public override string ToString() => $"{Node}: not tuned: {Reason}";
}

/// <summary>
/// A node that is one contraction (<see cref="Contraction"/>, the kernel's <c>out += left * right</c>) plus the work done
/// outside the kernel, listed in <see cref="OutsideKernel"/> (a padded copy of the input, the output's initial value
/// from a bias, a scale). <see cref="Run"/> does all of it around a compiled kernel of the contraction.
/// </summary>
public abstract class ContractionOp(OnnxNode node, OnnxModel model, Computation contraction, ImmutableArray<long> outputShape,
    ImmutableArray<string> outsideKernel) : LoweredNode(node)
{
    protected OnnxModel Model { get; } = model;
    /// <summary>The contraction the kernel computes; its text is the spec to tune.</summary>
    public Computation Contraction { get; } = contraction;
    /// <summary>The shape of the node's output, as ONNX lays it out (row-major).</summary>
    public ImmutableArray<long> OutputShape { get; } = outputShape;
    /// <summary>What is done around the kernel, in order, one line each.</summary>
    public ImmutableArray<string> OutsideKernel { get; } = outsideKernel;
    /// <summary>The node's floating-point operations (2 per multiply-add), for its GFLOPS: the contraction's, but a
    /// convolution's own where its contraction has taps of zeros (<see cref="ConvOp"/>'s phase split), so that the
    /// figure compares with another runtime's for the node.</summary>
    public virtual double Flops => Contraction.Flops;

    /// <summary>The variable whose loop is made parallel when the kernel runs on more than one thread, in place of the
    /// tuner's rule (<see cref="Transforms.Parallelize(Nest, int, string?)"/>), or null for the rule: a convolution that
    /// reads and writes activations kept in blocks splits its output rows, as every such kernel of a pass does.</summary>
    public virtual string? ParallelOver => null;

    /// <summary>The kernel's operand made from a constant of the model (the weights), which a forward pass reads once per
    /// pass, cold, while the rest of the model passes through the caches: the right one when it is (a convolution's W, a
    /// Gemm's or MatMul's B), else the left one when it is (the im2col lowering's weights, a constant A); null when both
    /// are fed.</summary>
    public Operand? ConstantOperand => OperandInputs() switch
    {
        (_, { } right) when Constant(right) is not null => Operand.Right,
        ({ } left, _) when Constant(left) is not null => Operand.Left,
        _ => null,
    };

    /// <summary>The node inputs the kernel's left and right operands are made from (copied, packed or as they are).</summary>
    protected abstract (string? Left, string? Right) OperandInputs();

    /// <summary>Runs the node: the node's inputs are taken from <paramref name="feeds"/> by name, or else from the
    /// model's initializers; returns the output, row-major in <see cref="OutputShape"/>. The kernel must be compiled
    /// from a nest of <see cref="Contraction"/> (any schedule).</summary>
    public float[] Run(Kernel kernel, IReadOnlyDictionary<string, float[]> feeds)
    {
        var output = new float[checked((int)Contraction.Output.Length)];
        Run(kernel, feeds, output);
        return output;
    }

    /// <summary><see cref="Run(Kernel, IReadOnlyDictionary{string, float[]})"/> into <paramref name="output"/> (whatever
    /// it holds is overwritten), with what the node makes besides kept for the next run: the padded copy of a
    /// convolution's input (its zeros are written once), and a constant input copied once when the kernel reads past its
    /// end (<see cref="Kernel.ReadsPast"/>), which the kernel would otherwise copy in every run. So a run allocates
    /// nothing large (at more than one thread, the small delegates that hand the work around the kernel to the kernel's
    /// threads) and repeated runs time the work of the node. One run at a time.</summary>
    public void Run(Kernel kernel, IReadOnlyDictionary<string, float[]> feeds, float[] output) => Run(kernel, feeds, output, default);

    /// <summary><see cref="Run(Kernel, IReadOnlyDictionary{string, float[]}, float[])"/>, then <paramref name="epilogue"/> on
    /// the output, done where the op writes it (<see cref="Finish(float[], Func{string, float[]}, Epilogue)"/>).</summary>
    public void Run(Kernel kernel, IReadOnlyDictionary<string, float[]> feeds, float[] output, Epilogue epilogue)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (epilogue.Residual is { } r && r.Length != output.Length) throw new ArgumentException($"the residual holds {r.Length} floats, the output {output.Length}");
        var value = RunKernel(kernel, feeds, output);
        long finished = Stopwatch.GetTimestamp();
        Finish(output, value, epilogue);
        LastRun = LastRun with { After = Stopwatch.GetTimestamp() - finished };
    }

    /// <summary>How the last run's time divided (<see cref="RunPhases"/>): what <see cref="ModelRunner.Profile"/> reports as
    /// the kernel's share of a node.</summary>
    public RunPhases LastRun { get; protected set; }

    /// <summary>All of <see cref="Run(Kernel, IReadOnlyDictionary{string, float[]}, float[], Epilogue)"/> but
    /// <see cref="Finish(float[], Func{string, float[]}, Epilogue)"/>: the checks, the output's initial value, the operands
    /// made, the kernel run; returns how the node's inputs are read.</summary>
    protected Func<string, float[]> RunKernel(Kernel kernel, IReadOnlyDictionary<string, float[]> feeds, float[] output)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(feeds);
        ArgumentNullException.ThrowIfNull(output);
        if (!kernel.Computation.Equals(Contraction))
            throw new ArgumentException($"the kernel computes {kernel.Computation.Text}, not {Contraction.Text}");
        if (kernel.Fraction != 1) throw new ArgumentException("the kernel is a slice of the contraction");
        if (output.Length != Contraction.Output.Length) throw new ArgumentException($"the output holds {output.Length} floats, not {Contraction.Output.Length}");
        Threads = kernel.Threads;
        long start = Stopwatch.GetTimestamp();
        Func<string, float[]> value = name => feeds.TryGetValue(name, out var v) ? v : Constant(name) ?? throw new ArgumentException($"no value for {name}: feed it");
        var initial = Initial(value);
        var run = ForPass(kernel, initial?.Strides);
        KernelInitializes = run.InitStrides is not null;
        if (!OverwritesOutput && !KernelInitializes) Array.Clear(output);
        var (left, right) = Prepare(output, value);
        // a constant operand the kernel packs whole (pack=W) is packed once, as the libraries lay theirs out once
        Operand? kept = run.CopiesWhole(Operand.Right) && IsConstant(right) ? Operand.Right : run.CopiesWhole(Operand.Left) && IsConstant(left) ? Operand.Left : null;
        var (o, l, r2) = (KernelOutput(output), Readable(left, Contraction.Left.Length, run.ReadsPast, kept == Operand.Left),
            Readable(right, Contraction.Right.Length, run.ReadsPast, kept == Operand.Right));
        long kernelStart = Stopwatch.GetTimestamp();
        if (kept is { } k) RunKept(run, o.AsSpan(StartOf(o)), l.AsSpan(StartOf(l)), r2.AsSpan(StartOf(r2)), KernelInitializes ? initial!.Value.Values : null, k);
        else if (KernelInitializes) run.Run(o.AsSpan(StartOf(o)), l.AsSpan(StartOf(l)), r2.AsSpan(StartOf(r2)), initial!.Value.Values);
        else run.Run(o.AsSpan(StartOf(o)), l.AsSpan(StartOf(l)), r2.AsSpan(StartOf(r2)));
        LastRun = new RunPhases(kernelStart - start, Stopwatch.GetTimestamp() - kernelStart, 0);
        return value;
    }

    /// <summary>The output's initial value as the kernel may read it (<see cref="Kernel.CompileInitialized"/>): the strides
    /// of the values per variable of <see cref="Contraction"/> and the values (a bias; zeros without one). Null (the default)
    /// when the op writes the initial value itself in <see cref="Prepare"/>.</summary>
    protected virtual (long[] Strides, float[] Values)? Initial(Func<string, float[]> value) => null;

    /// <summary>Whether the kernel of the run under way starts the output from <see cref="Initial"/>, so that
    /// <see cref="Prepare"/> writes no initial value: when the op has one and the kernel's nest has no vectorized sum
    /// (<see cref="Kernel.CanInitialize"/>; a sum split around the tile reads it at the tile's first visit). A bias written into the output before the kernel is a pass over the
    /// output (3.2 MB for ResNet-18's stem) that the kernel then reads back.</summary>
    protected bool KernelInitializes { get; private set; }

    Kernel? passFrom, pass;

    /// <summary>The largest block of an input that a forward pass's kernels prefetch ahead (<see cref="JitOptions.PrefetchBlockBytes"/>):
    /// the machine's L1d, which the layer that describes the machine sets (<c>looptune model</c> does, from
    /// <c>looptune machine</c>'s caches); 0, the default, prefetches nothing.</summary>
    public static int PrefetchBlockBytes { get; set; }

    /// <summary>What runs the node for <paramref name="kernel"/> (made once per kernel given, at its threads): its nest
    /// compiled for a forward pass, where the node's weights come from memory once per pass. It starts from the init values
    /// of <paramref name="strides"/> when the nest allows it (<see cref="Kernel.CanInitialize"/>), and it prefetches an
    /// input's next block where the nest reads it in blocks (<see cref="PrefetchBlockBytes"/>: the 512-channel layers'
    /// 9.4 MB of weights, 18 KB a block); <paramref name="kernel"/> itself when neither applies.</summary>
    Kernel ForPass(Kernel kernel, long[]? strides)
    {
        if (!ReferenceEquals(kernel, passFrom))
        {
            var options = JitOptions.Default with { PrefetchBlockBytes = PrefetchBlockBytes };
            var made = strides is not null && Kernel.CanInitialize(kernel.Nest, options) ? Kernel.CompileInitialized(kernel.Nest, strides, options) : Kernel.Compile(kernel.Nest, options);
            pass = made.InitStrides is not null || made.Prefetches ? made : kernel;
            passFrom = kernel;
        }
        if (pass!.Threads != kernel.Threads) pass.SetThreads(kernel.Threads);
        return pass;
    }

    /// <summary>The threads of the kernel of the run under way: the work around it (<see cref="Prepare"/>,
    /// <see cref="Finish(float[], Func{string, float[]}, Epilogue)"/>) runs on them too (<see cref="TeamWork"/>).</summary>
    protected int Threads { get; set; } = 1;

    /// <summary>Whether <see cref="Prepare"/> and <see cref="Finish(float[], Func{string, float[]})"/> write every float of
    /// the node's output whatever it held (a bias filled in, or a result written back from another layout), so that
    /// <see cref="Run(Kernel, IReadOnlyDictionary{string, float[]}, float[], Epilogue)"/> need not clear it first.</summary>
    protected virtual bool OverwritesOutput => false;

    /// <summary>Floats left readable after the arrays a node makes for its kernel (at least any kernel's
    /// <see cref="Kernel.ReadsPast"/>: one vector).</summary>
    protected const int Slack = 16;

    readonly Dictionary<float[], float[]> longer = new(ReferenceEqualityComparer.Instance);

    /// <summary>Where the kernel's operand starts in <paramref name="array"/>: 0, or, in an array the op made with
    /// <see cref="AlignedArray"/>, the first element on a 64-byte line.</summary>
    protected virtual int StartOf(float[] array) => 0;

    /// <summary>A pinned, zeroed array of <paramref name="length"/> floats (and <see cref="Slack"/> after) from an element on a
    /// 64-byte line on (<see cref="AlignedStart"/>): a kernel's vectors of 16 floats then never straddle two lines, where
    /// a managed array starts anywhere on its line (the 512-channel layer's kernel ran 1.278 ms aligned, 1.35-1.37 ms 16-48
    /// bytes off).</summary>
    protected internal static float[] AlignedArray(long length) => GC.AllocateArray<float>(checked((int)(length + Slack + LineFloats - 1)), pinned: true);

    /// <summary>The first element of the pinned <paramref name="array"/> on a 64-byte line.</summary>
    protected internal static unsafe int AlignedStart(float[] array)
    {
        ArgumentNullException.ThrowIfNull(array);
        long at = (long)System.Runtime.CompilerServices.Unsafe.AsPointer(ref array[0]) / sizeof(float);
        return (int)((LineFloats - at % LineFloats) % LineFloats);
    }

    const int LineFloats = AlignedBuffer.Alignment / sizeof(float);

    /// <summary>A constant too short for the kernel's reads past its end, or one the kernel keeps a packed copy of
    /// (<paramref name="kept"/>: it must stay at one address), copied once into a longer, pinned array; anything else as it is.</summary>
    float[] Readable(float[] input, long length, int readsPast, bool kept = false)
    {
        if (!kept && input.Length - StartOf(input) >= length + readsPast || !IsConstant(input)) return input;
        if (!longer.TryGetValue(input, out var copy) || copy.Length < length + readsPast)
        {
            copy = GC.AllocateArray<float>(checked((int)length + Math.Max(Slack, readsPast)), pinned: true);
            input.AsSpan(StartOf(input), (int)length).CopyTo(copy);
            longer[input] = copy;
        }
        return copy;
    }

    /// <summary>A run with operand <paramref name="kept"/> packed once (<see cref="Kernel.Run(float*, float*, float*, float*, Operand)"/>):
    /// its array is a pinned copy of a constant (<see cref="Readable"/>).</summary>
    static unsafe void RunKept(Kernel run, Span<float> output, ReadOnlySpan<float> left, ReadOnlySpan<float> right, float[]? init, Operand kept)
    {
        var c = run.Computation;
        Kernel.CheckLengths(c, output.Length, left.Length, right.Length);
        fixed (float* o = output, l = left, r = right, i = init) run.Run(o, l, r, i, kept);
    }

    /// <summary>Whether <paramref name="array"/> is one of the model's constants (or made from them once).</summary>
    protected virtual bool IsConstant(float[] array) => Model.Initializers.Values.Any(t => t.IsFloat && ReferenceEquals(t.Floats, array));

    /// <summary>Writes the output's initial value and returns the kernel's two inputs.</summary>
    protected abstract (float[] Left, float[] Right) Prepare(float[] output, Func<string, float[]> value);

    /// <summary>Where the kernel writes: the node's output (by default), or an array of the op's own in another layout that
    /// <see cref="Finish"/> writes into the node's output; <see cref="Prepare"/> sets its initial value.</summary>
    protected virtual float[] KernelOutput(float[] output) => output;

    /// <summary>Work on the output after the kernel (none by default).</summary>
    protected virtual void Finish(float[] output, Func<string, float[]> value) { }

    /// <summary><see cref="Finish(float[], Func{string, float[]})"/>, then the epilogue in one pass over the output (an op
    /// that writes its output from another layout does it as it writes).</summary>
    protected virtual void Finish(float[] output, Func<string, float[]> value, Epilogue epilogue)
    {
        Finish(output, value);
        if (!epilogue.None) TeamWork.For(Threads, output.Length, 1024, (_, start, end) => epilogue.Apply(output, start, end));
    }

    /// <summary>The float32 initializer of that name, or null.</summary>
    protected float[]? Constant(string name) => Model.Initializers.TryGetValue(name, out var t) && t.IsFloat ? t.Floats : null;

    /// <summary>Checks a value's length against its inferred shape.</summary>
    protected static float[] Sized(float[] value, string name, long length) =>
        value.Length == length ? value : throw new ArgumentException($"{name} holds {value.Length} floats, its shape {length}");

    /// <summary>The same lowering applied to another node of the same shapes: <paramref name="node"/> read from
    /// <paramref name="model"/> and <paramref name="shapes"/> (a Conv with other constants: BatchNormalization folded
    /// into its weights and bias). <see cref="ModelLowering"/>'s by default; a lowering of another kind overrides it, so
    /// that code given an op (<see cref="ModelRunner"/>) makes the other node as that op was made.</summary>
    public virtual LoweredNode LowerAgain(OnnxModel model, ModelShapes shapes, OnnxNode node) => ModelLowering.Lower(model, shapes, node);

    public override string ToString() => $"{Node}: {Contraction.Text}";
}

/// <summary>What a forward pass does to a contraction's output right after it, while it is in cache (ONNX Runtime fuses
/// the same): <c>y = y + Residual</c> (a value of the output's shape made earlier) when there is one, then
/// <c>y = max(y, 0)</c> when <see cref="Relu"/>. The default does nothing.</summary>
public readonly record struct Epilogue(float[]? Residual, bool Relu)
{
    /// <summary>Whether it does nothing.</summary>
    public bool None => Residual is null && !Relu;

    /// <summary>Applies it to <paramref name="y"/>[start..end), in one pass.</summary>
    public void Apply(float[] y, int start, int end)
    {
        if (!None) ElementwiseOps.AddRelu(y.AsSpan(start..end), Residual is { } r ? r.AsSpan(start..end) : default, Relu, y.AsSpan(start..end));
    }
}

/// <summary>What a node runs with in a forward pass: the lowering chosen for it (<see cref="Op"/>) and the compiled kernel of
/// its contraction (<see cref="Kernel"/>), as the tuning chose and verified them (<c>looptune model</c>'s bench hands these to
/// <see cref="ModelRunner"/>).</summary>
public sealed record ChosenKernel(ContractionOp Op, Kernel Kernel);

/// <summary>How one run of a <see cref="ContractionOp"/> divided, in <see cref="Stopwatch"/> ticks: the
/// work before the kernel (checks, the output's initial value, the operands copied or packed), the kernel, and the work
/// after it (a write-back from the kernel's layout, the epilogue).</summary>
public readonly record struct RunPhases(long Before, long Kernel, long After)
{
    /// <summary>The kernel's time in seconds.</summary>
    public double KernelSeconds => (double)Kernel / Stopwatch.Frequency;

    /// <summary>The time around the kernel (before and after) in seconds.</summary>
    public double AroundSeconds => (double)(Before + After) / Stopwatch.Frequency;
}
