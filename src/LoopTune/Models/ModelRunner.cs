using System.Collections.Immutable;
using LoopTune.Jit;

namespace LoopTune.Models;

/// <summary>A BatchNormalization folded into a convolution, checked: the folded convolution's output against the
/// convolution's followed by the BatchNormalization, on random input.</summary>
/// <param name="MaxError">The largest |folded - unfolded|.</param>
/// <param name="Bound">What it must stay within: <see cref="ModelRunner.FoldTolerance"/> x max(1, max |unfolded|).</param>
public sealed record FoldCheck(string Conv, string BatchNorm, double MaxError, double Bound)
{
    public bool Passed => MaxError <= Bound;
}

/// <summary>
/// A model's forward pass: every node in the file's order (a topological order: <see cref="OnnxModel"/> checks that every
/// input is defined before it is read), each value in an array made once, so <see cref="Run"/> allocates nothing large;
/// a value takes the array of an earlier one whose readers all come before it (<see cref="Allocate"/>), and the
/// convolutions share their blocked outputs and padded copies (<see cref="ConvOp.ShareScratch"/>, on ops of the pass's own:
/// a given op is lowered again, and the ops given are not changed), so that a pass
/// writes into arrays still in the caches (ONNX Runtime plans its buffers so too). An intermediate value's array read
/// after a pass may hold a later value.
/// A Conv, Gemm or MatMul runs the op and kernel chosen for it (<see cref="ChosenKernel"/>); a BatchNormalization right
/// after a Conv whose output nothing else reads is folded into that Conv's weights and bias (the same lowering made again
/// from the folded constants, <see cref="ContractionOp.LowerAgain"/>, run with the same kernel, and checked:
/// <see cref="Folds"/>), any other runs as a per-channel affine map; an Add of a same-shaped value made earlier and a Relu
/// that are the only readers of a contraction's output run in its epilogue, on its output while it is in cache (as ONNX
/// Runtime fuses them); a MaxPool that is the only reader of a blocked convolution's output (after a Relu or not) pools
/// the kernel's blocked layout itself (<see cref="BlockedPool"/>); a blocked convolution whose output (after a Relu or
/// none) only the next convolution reads writes it straight into that one's padded input (<see cref="ConvOp.HandOff"/>,
/// on ops of the pass's own: the ops given are not changed); other Relu, Add/Sub/Mul/Div (broadcasting),
/// MaxPool/AveragePool (2-d), GlobalAveragePool run in plain vectorised C# (<see cref="ElementwiseOps"/>,
/// <see cref="Broadcast"/>, <see cref="Pool2d"/>); Flatten, Reshape, Identity and Dropout share their input's array.
/// Any other node is refused (<see cref="Unsupported"/>). Built with linked convolutions
/// (<see cref="Build(OnnxModel, ModelShapes, IReadOnlyDictionary{OnnxNode, ChosenKernel}, IReadOnlyDictionary{OnnxNode, ChosenKernel}?)"/>),
/// the values between them stay in blocks of channels (<see cref="BlockedLayout"/>, <see cref="PlanBlocks"/>): each such
/// convolution reads its input in place and stores its output, with its bias, Add and Relu, where the next one reads it.
/// </summary>
public sealed partial class ModelRunner
{
    /// <summary>A folded convolution's output may differ from the unfolded one by this much times max(1, max |unfolded|).</summary>
    public const double FoldTolerance = 1e-4;

    /// <summary>The operators a forward pass runs.</summary>
    public static readonly ImmutableArray<string> Operators =
        ["Conv", "Gemm", "MatMul", "BatchNormalization", "Relu", "Add", "Sub", "Mul", "Div", "MaxPool", "AveragePool",
         "GlobalAveragePool", "Flatten", "Reshape", "Identity", "Dropout", "Constant"];

    readonly OnnxModel model;
    readonly ModelShapes shapes;
    readonly IReadOnlyDictionary<OnnxNode, ChosenKernel> kernels;
    readonly Dictionary<string, float[]> values = new(StringComparer.Ordinal);
    readonly Dictionary<string, List<OnnxNode>> readers;
    readonly HashSet<OnnxNode> folded = [];
    /// <summary>Add and Relu nodes done in the epilogue of the contraction before them.</summary>
    readonly HashSet<OnnxNode> fused = [];
    readonly List<PassStep> steps = [];

    /// <summary>One step of the pass: the node it is named after, the ONNX nodes and values it covers (a folded
    /// BatchNormalization, a fused Add and Relu, their outputs: what another runtime's profile may name it by), and the
    /// contraction it runs, if any (whose <see cref="ContractionOp.LastRun"/> tells the kernel's share).</summary>
    sealed record PassStep(string Node, string Op, Action Run, ImmutableArray<string> Covers, ContractionOp? Contraction = null);
    readonly List<FoldCheck> folds = [];
    /// <summary>The most threads a kernel runs on: the pools run on as many.</summary>
    readonly int threads;

    ModelRunner(OnnxModel model, ModelShapes shapes, IReadOnlyDictionary<OnnxNode, ChosenKernel> kernels, IReadOnlyDictionary<OnnxNode, ChosenKernel>? linked = null)
    {
        (this.model, this.shapes, this.kernels) = (model, shapes, kernels);
        threads = kernels.Values.Select(k => k.Kernel.Threads).DefaultIfEmpty(1).Max();
        readers = Readers(model);
        if (linked is { Count: > 0 }) PlanBlocks(linked);
        for (int i = 0; i < model.Nodes.Length; i++)
            foreach (var input in model.Nodes[i].Inputs.Where(n => n.Length > 0)) lastRead[input] = i;
        foreach (var output in model.Outputs) lastRead[output.Name] = int.MaxValue;
        foreach (var input in model.Inputs)
            if (shapes.Of(input.Name) is not null) until[Allocate(input.Name)] = int.MaxValue;
        for (at = 0; at < model.Nodes.Length; at++) Add(model.Nodes[at]);
    }

    /// <summary>The graph inputs to fill (<see cref="Value"/>) before <see cref="Run"/>.</summary>
    public IEnumerable<string> Inputs => model.Inputs.Select(i => i.Name).Where(values.ContainsKey);
    /// <summary>The graph outputs, read with <see cref="Value"/> after <see cref="Run"/>.</summary>
    public IEnumerable<string> Outputs => model.Outputs.Select(o => o.Name);
    /// <summary>Every BatchNormalization folded into a convolution, with its check.</summary>
    public IReadOnlyList<FoldCheck> Folds => folds;
    /// <summary>The floating-point operations of one pass's contractions.</summary>
    public double Flops { get; private set; }

    /// <summary>The array of a value (a graph input to fill, a graph output to read).</summary>
    public float[] Value(string name) => values.TryGetValue(name, out var v) ? v : throw new ArgumentException($"no value {name}");

    /// <summary>One forward pass. One at a time.</summary>
    public void Run()
    {
        foreach (var step in steps) step.Run();
    }

    /// <summary>Where a pass spends its time: <paramref name="passes"/> passes with each node timed alone within them, its
    /// median, in the pass's order (a folded BatchNormalization, a fused Add and Relu are in their Conv's time), and for a
    /// contraction the medians of its kernel's time and of the work around it.</summary>
    public IReadOnlyList<NodeTime> Profile(int passes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(passes, 1);
        var times = new double[steps.Count, passes, 3];
        for (int pass = 0; pass < passes; pass++)
            for (int i = 0; i < steps.Count; i++)
            {
                long start = System.Diagnostics.Stopwatch.GetTimestamp();
                steps[i].Run();
                times[i, pass, 0] = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
                if (steps[i].Contraction is { } op) (times[i, pass, 1], times[i, pass, 2]) = (op.LastRun.KernelSeconds, op.LastRun.AroundSeconds);
            }
        double Median(int i, int k) => Enumerable.Range(0, passes).Select(p => times[i, p, k]).Order().ElementAt(passes / 2);
        return [.. steps.Select((s, i) => new NodeTime(s.Node, s.Op, Median(i, 0), s.Contraction is null ? null : Median(i, 1), s.Contraction is null ? null : Median(i, 2), s.Covers))];
    }

    /// <summary>The forward pass of <paramref name="model"/> with <paramref name="kernels"/> for its contractions. A node it
    /// cannot run (<see cref="Unsupported"/>) or a contraction without a kernel is an <see cref="OnnxError"/> naming it.</summary>
    public static ModelRunner Build(OnnxModel model, ModelShapes shapes, IReadOnlyDictionary<OnnxNode, ChosenKernel> kernels) => Build(model, shapes, kernels, null);

    /// <summary><see cref="Build(OnnxModel, ModelShapes, IReadOnlyDictionary{OnnxNode, ChosenKernel})"/>, with the
    /// activations kept in blocks between the convolutions of <paramref name="linked"/> (each lowered
    /// <see cref="ConvLowering.BlockedInput"/>, all in one block of channels) wherever every reader of a value can read it so
    /// (<see cref="PlanBlocks"/>): each such convolution reads its input in place and stores its output, with the bias, a
    /// fused Add and Relu, into the next one's padded input (<see cref="ConvOp.RunLinked"/>), as ONNX Runtime keeps its
    /// activations in nChw16c. The other convolutions run as <paramref name="kernels"/> says.</summary>
    public static ModelRunner Build(OnnxModel model, ModelShapes shapes, IReadOnlyDictionary<OnnxNode, ChosenKernel> kernels, IReadOnlyDictionary<OnnxNode, ChosenKernel>? linked)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(shapes);
        ArgumentNullException.ThrowIfNull(kernels);
        return new ModelRunner(model, shapes, kernels, linked);
    }

    /// <summary>The nodes a forward pass cannot run, as "node (Op): reason"; empty when it can run them all.</summary>
    public static IReadOnlyList<string> Unsupported(OnnxModel model, ModelShapes shapes) =>
        [.. model.Nodes.Select(n => Problem(model, shapes, n) is { } p ? $"{n}: {p}" : null).OfType<string>()];

    /// <summary>Why <paramref name="node"/> cannot run, or null.</summary>
    static string? Problem(OnnxModel model, ModelShapes shapes, OnnxNode node)
    {
        if (node.Domain is not ("" or "ai.onnx")) return $"an operator of domain {node.Domain} does not run";
        if (node.OpType == "Constant") return null;
        if (!Operators.Contains(node.OpType)) return $"{node.OpType} is not an operator the forward pass runs ({string.Join(", ", Operators)})";
        foreach (var name in node.Inputs.Where(i => i.Length > 0).Append(node.Outputs[0]))
            if (shapes.Of(name) is null) return $"the shape of {name} is unknown";
        var constants = node.OpType == "Reshape" ? node.Inputs.Take(1) : node.Inputs;
        if (constants.FirstOrDefault(i => model.Initializers.TryGetValue(i, out var t) && !t.IsFloat) is { } notFloat)
            return $"its input {notFloat} is not float32";
        int rank = shapes.Of(node.Inputs[0])!.Value.Length;
        return node.OpType switch
        {
            "Conv" or "Gemm" or "MatMul" => ModelLowering.Lower(model, shapes, node) is NotTuned n ? $"not tuned: {n.Reason}" : null,
            "BatchNormalization" => BatchNorm.Problem(model, node) ?? (rank < 2 ? $"a rank-{rank} input" : null),
            "MaxPool" or "AveragePool" => PoolProblem(node, shapes.Of(node.Inputs[0])!.Value),
            "GlobalAveragePool" => rank < 3 ? $"a rank-{rank} input" : null,
            "Dropout" => node.Outputs.Skip(1).Any(o => o.Length > 0) ? "its mask output" : null,
            _ => null,
        };
    }

    static string? PoolProblem(OnnxNode node, ImmutableArray<long> x)
    {
        if (x.Length != 4) return $"a {x.Length - 2}-d pool (only 2-d ones run)";
        if (node.Outputs.Skip(1).Any(o => o.Length > 0)) return "its Indices output";
        var window = Window.Of(node, x[2..], null);
        return window.Dilations.Any(d => d != 1) ? $"dilations {ModelShapes.Format(window.Dilations)} (only 1 runs)" : null;
    }

    /// <summary>Makes the steps of one node.</summary>
    void Add(OnnxNode node)
    {
        if (Problem(model, shapes, node) is { } problem) throw Refuse(node, problem);
        if (node.OpType == "Constant" || folded.Contains(node) || fused.Contains(node)) return;
        string output = node.Outputs[0];
        if ((node.OpType == "GlobalAveragePool" || WholePlaneMean(node)) && inBlocks.TryGetValue(node.Inputs[0], out var held))
        {
            Step(output, y => held.Layout.PlaneMeans(held.Array, ContractionOp.AlignedStart(held.Array), y, threads), node);
            return;
        }
        float[] x = node.OpType is "Conv" or "Gemm" or "MatMul" ? [] : Read(node.Inputs[0]);
        var inShape = shapes.Of(node.Inputs[0])!.Value;
        int plane = (int)inShape.Skip(2).Aggregate(1L, (p, d) => p * d);
        switch (node.OpType)
        {
            case "Identity" or "Dropout" or "Flatten" or "Reshape": Alias(output, x); break;
            case "Conv" or "Gemm" or "MatMul": Contraction(node); break;
            case "Relu": Step(output, y => ElementwiseOps.Relu(x, y), node); break;
            case "BatchNormalization":
                var norm = BatchNorm.Of(model, node);
                Step(output, y => norm.Run(x, y, plane), node);
                break;
            case "GlobalAveragePool": Step(output, y => ElementwiseOps.PlaneMeans(x, y, plane), node); break;
            case "MaxPool" or "AveragePool":
                var pool = new Pool2d(node.OpType == "MaxPool", Window.Of(node, inShape[2..], null), node.Int("count_include_pad", 0) != 0, inShape[2], inShape[3]);
                Step(output, y => pool.Run(x, y, threads), node);
                break;
            default:
                var op = Enum.Parse<BinaryOp>(node.OpType);
                var (a, b) = (x, Read(node.Inputs[1]));
                var plan = Broadcast.Of(shapes.Of(node.Inputs[0])!.Value, shapes.Of(node.Inputs[1])!.Value);
                Step(output, y => plan.Run(op, a, b, y), node);
                break;
        }
    }

    /// <summary>A step writing <paramref name="output"/>'s array (made here).</summary>
    void Step(string output, Action<float[]> run, OnnxNode node)
    {
        var y = Allocate(output);
        steps.Add(new(node.Name, node.OpType, () => run(y), Covering(node)));
    }

    /// <summary>The names of <paramref name="nodes"/> and of their outputs.</summary>
    static ImmutableArray<string> Covering(params IEnumerable<OnnxNode?> nodes) =>
        [.. nodes.OfType<OnnxNode>().SelectMany(n => n.Outputs.Where(o => o.Length > 0).Prepend(n.Name)).Distinct()];

    /// <summary>A Conv, Gemm or MatMul with its chosen op and kernel, and the BatchNormalization after it folded in when it can be.</summary>
    void Contraction(OnnxNode node)
    {
        if (linkedKernels.TryGetValue(node, out var link) && (blockedValues.Contains(node.Inputs[0]) || blockedValues.Contains(fusedBy[node].Final)))
        {
            Linked(node, link);
            return;
        }
        if (!kernels.TryGetValue(node, out var chosen)) throw Refuse(node, "no tuned kernel was chosen for it");
        var covers = new List<OnnxNode> { node };
        bool own = false; // whether chosen's op was made here (so this pass may link it to others), not given
        if (FoldableNorm(node) is { } bn && Fold(chosen, bn) is { } f)
        {
            (chosen, own) = (f, true);
            folded.Add(bn);
            covers.Add(bn);
        }
        var (op, kernel) = chosen;
        // a convolution runs on an op of the pass's own (a given one lowered again), which the pass may link to others and
        // gives its shared arrays; the ops given are not changed
        if (!own && op is ConvOp && Own(op, node) is { } again) (op, own) = (again, true);
        var conv = own ? op as ConvOp : null;
        bool handedIn = false, afterItsProducer = false;
        // the convolution before, whose output only this one reads, may write it into this one's padded input (HandOff)
        if (conv is { TakesPaddedInput: true } && handOffs.Remove(node.Inputs[0], out var before) && shapes.Of(node.Inputs[0]) is { } xs
            && xs.SequenceEqual(before.Op.OutputShape))
        {
            (handedIn, afterItsProducer) = (true, before.Step == steps.Count - 1);
            before.Op.HandOff(conv);
            HandedOff++;
        }
        // a padded copy handed in is written in the producer's step: shared only when nothing runs between the two
        conv?.ShareScratch(scratch, privatePadded: handedIn && !afterItsProducer);
        var feeds = node.Inputs.Where(i => i.Length > 0 && !model.Initializers.ContainsKey(i)).Distinct().ToDictionary(i => i, Read);
        Flops += op.Flops;
        string output = op.Node.Outputs[0];
        float[]? residual = null;
        var add = Only(output, "Add");
        if (add is not null && add.Inputs.Where(i => i != output).ToList() is [var other] && values.TryGetValue(other, out var r)
            && shapes.Of(other) is { } otherShape && otherShape.SequenceEqual(shapes.Of(output)!.Value))
        {
            (residual, output) = (r, add.Outputs[0]);
            fused.Add(add);
        }
        else add = null;
        var relu = Only(output, "Relu");
        if (relu is not null)
        {
            output = relu.Outputs[0];
            fused.Add(relu);
        }
        if (residual is null && op is ConvOp { Lowering: ConvLowering.Blocked } blocked && Only(output, "MaxPool") is { } pool)
        {
            BlockedPool(blocked, kernel, feeds, relu is not null, pool, Covering([.. covers, relu]));
            if (relu is not null) Alias(relu.Outputs[0], values[op.Node.Outputs[0]]);
            return;
        }
        var epilogue = new Epilogue(residual, relu is not null);
        // a blocked convolution whose output only a convolution reads may write it into that one's padded input (HandOff)
        if (residual is null && conv is { CanHandOff: true } && Only(output, "Conv") is { } reader && reader.Inputs[0] == output)
            handOffs[output] = (conv, steps.Count);
        var y = Allocate(op.Node.Outputs[0]);
        steps.Add(new(op.Node.Name, op.Node.OpType, () => op.Run(kernel, feeds, y, epilogue), Covering([.. covers, add, relu]), op));
        foreach (var n in new[] { add, relu }.OfType<OnnxNode>()) Alias(n.Outputs[0], values[op.Node.Outputs[0]]);
    }

    /// <summary>A blocked convolution (<see cref="ConvLowering.Blocked"/>) whose only reader, after a Relu or none, is a
    /// MaxPool: the convolution leaves its output in its kernel's layout (<see cref="ConvOp.RunBlocked"/>) and the pool
    /// reads that, with the Relu done on the pooled pixels (<see cref="Pool2d.RunBlocked"/>): no write-back of the
    /// convolution's output into NCHW, which nothing else reads (ResNet's stem: 3.2 MB written and read again).</summary>
    void BlockedPool(ConvOp conv, Kernel kernel, Dictionary<string, float[]> feeds, bool relu, OnnxNode pool, ImmutableArray<string> covers)
    {
        var x = shapes.Of(pool.Inputs[0])!.Value;
        var y = Allocate(conv.Node.Outputs[0]); // the node's output in NCHW: never written, never read
        (float[] Array, int Start, int Block) made = ([], 0, 1);
        steps.Add(new(conv.Node.Name, conv.Node.OpType, () => made = conv.RunBlocked(kernel, feeds, y), covers, conv));
        var p = MaxPool(shapes, pool);
        int planes = checked((int)(x[0] * x[1]));
        fused.Add(pool);
        if (blockedValues.Contains(pool.Outputs[0]))
        {
            var (to, layout) = AllocateBlocked(pool.Outputs[0]);
            steps.Add(new(pool.Name, pool.OpType, () => p.RunBlocked(made.Array, made.Start, planes / made.Block, made.Block, to, ContractionOp.AlignedStart(to), layout, relu, threads), Covering(pool)));
            return;
        }
        Step(pool.Outputs[0], z => p.RunBlocked(made.Array, made.Start, planes / made.Block, made.Block, z, relu, threads), pool);
    }

    /// <summary>Blocked convolutions by the value they make, waiting for the convolution that is its only reader
    /// (<see cref="ConvOp.HandOff"/>), with the index of their step.</summary>
    readonly Dictionary<string, (ConvOp Op, int Step)> handOffs = new(StringComparer.Ordinal);

    /// <summary>The blocked outputs and padded copies the pass's own convolutions share (<see cref="ConvOp.ShareScratch"/>).</summary>
    readonly ScratchArrays scratch = new();

    /// <summary>The arrays the convolutions share, and the arrays of the values (<see cref="Allocate"/>): how many, and
    /// their floats.</summary>
    public (int Shared, int Values, long Floats) Arrays => (scratch.Size.Count, until.Count, scratch.Size.Floats + until.Keys.Sum(a => (long)a.Length));

    /// <summary>How many convolutions write their output straight into the next one's padded input
    /// (<see cref="ConvOp.HandOff"/>).</summary>
    public int HandedOff { get; private set; }

    /// <summary>An op of this pass's own for <paramref name="node"/>, lowered as <paramref name="op"/> was (the same
    /// contraction, so the same kernel serves it), so that linking it changes no op given; null when the lowering differs.</summary>
    ContractionOp? Own(ContractionOp op, OnnxNode node) =>
        op.LowerAgain(model, shapes, node) is ContractionOp again && again.Contraction.Equals(op.Contraction) ? again : null;

    /// <summary>Each value's readers, by name: the nodes that take it as an input.</summary>
    static Dictionary<string, List<OnnxNode>> Readers(OnnxModel model)
    {
        var readers = new Dictionary<string, List<OnnxNode>>(StringComparer.Ordinal);
        foreach (var node in model.Nodes)
            foreach (var input in node.Inputs.Where(i => i.Length > 0).Distinct())
                (readers.TryGetValue(input, out var list) ? list : readers[input] = []).Add(node);
        return readers;
    }

    OnnxNode? Only(string value, string op) => Only(model, shapes, readers, value, op);

    /// <summary>The node of type <paramref name="op"/> that is the only reader of <paramref name="value"/> (no graph output),
    /// reading it once; null when there is none.</summary>
    static OnnxNode? Only(OnnxModel model, ModelShapes shapes, Dictionary<string, List<OnnxNode>> readers, string value, string op) =>
        !model.Outputs.Any(o => o.Name == value) && readers.TryGetValue(value, out var r) && r is [var reader] && reader.OpType == op
        && reader.Domain is "" or "ai.onnx" && reader.Inputs.Count(i => i == value) == 1 && Problem(model, shapes, reader) is null ? reader : null;

    OnnxNode? FoldableNorm(OnnxNode conv) => FoldableNorm(model, shapes, readers, conv);

    /// <summary>The BatchNormalization that is the only reader of a Conv's output (which is no graph output), or null.</summary>
    static OnnxNode? FoldableNorm(OnnxModel model, ModelShapes shapes, Dictionary<string, List<OnnxNode>> readers, OnnxNode conv)
    {
        string y = conv.Outputs[0];
        if (conv.OpType != "Conv" || model.Outputs.Any(o => o.Name == y) || !readers.TryGetValue(y, out var r) || r.Count != 1) return null;
        var bn = r[0];
        return bn.OpType == "BatchNormalization" && bn.Domain is "" or "ai.onnx" && bn.Inputs[0] == y && bn.Inputs.Skip(1).All(i => i != y)
            && Problem(model, shapes, bn) is null ? bn : null;
    }

    /// <summary>The MaxPool a forward pass pools <paramref name="conv"/>'s output with when the convolution is lowered in
    /// blocks (<see cref="BlockedPool"/>), found as <see cref="Contraction"/> finds it: after the BatchNormalization folded
    /// into it (its weights and bias constants), no Add, a Relu or none, then a MaxPool, each the only reader; the pool as
    /// the pass makes it, and whether the Relu is there. Null when the pass would write the output back instead.</summary>
    public static (Pool2d Pool, bool Relu)? BlockedPoolAfter(OnnxModel model, ModelShapes shapes, OnnxNode conv) =>
        MaxPoolAfter(model, shapes, conv) is { } after ? (MaxPool(shapes, after.Pool), after.Relu) : null;

    /// <summary>The MaxPool node of <see cref="BlockedPoolAfter"/>, and whether the Relu is there.</summary>
    static (OnnxNode Pool, bool Relu)? MaxPoolAfter(OnnxModel model, ModelShapes shapes, OnnxNode conv)
    {
        var readers = CheckedReaders(model, shapes, conv);
        string output = AfterFold(model, shapes, readers, conv);
        if (Only(model, shapes, readers, output, "Add") is not null) return null;
        var relu = Only(model, shapes, readers, output, "Relu");
        if (relu is not null) output = relu.Outputs[0];
        return Only(model, shapes, readers, output, "MaxPool") is { } pool ? (pool, relu is not null) : null;
    }

    /// <summary>What a forward pass does to <paramref name="conv"/>'s output in its epilogue (<see cref="Epilogue"/>), found as
    /// <see cref="Contraction"/> finds it: after the BatchNormalization folded into it, an Add of a value of the same shape
    /// made before it (the residual: of two convolutions whose outputs are added, the later one adds), then a Relu, each
    /// the only reader. A choice among a node's lowerings times each with this epilogue, as the pass runs it: a blocked
    /// lowering does it in its write-back, the others in a pass of their own.</summary>
    public static (bool Residual, bool Relu) EpilogueAfter(OnnxModel model, ModelShapes shapes, OnnxNode conv)
    {
        var (_, residual, _, relu) = Fused(model, shapes, CheckedReaders(model, shapes, conv), conv);
        return (residual is not null, relu is not null);
    }

    /// <summary>The model's readers (<see cref="Readers(OnnxModel)"/>), after the arguments of a public question about
    /// <paramref name="conv"/> are checked.</summary>
    static Dictionary<string, List<OnnxNode>> CheckedReaders(OnnxModel model, ModelShapes shapes, OnnxNode conv)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(shapes);
        ArgumentNullException.ThrowIfNull(conv);
        return Readers(model);
    }

    /// <summary>The value a convolution's step writes: its output, or the output of the BatchNormalization folded into it
    /// (its weights and bias constants).</summary>
    static string AfterFold(OnnxModel model, ModelShapes shapes, Dictionary<string, List<OnnxNode>> readers, OnnxNode conv) =>
        FoldableNorm(model, shapes, readers, conv) is { } bn && ConstantWeights(model, conv) ? bn.Outputs[0] : conv.Outputs[0];

    /// <summary>The pool of a MaxPool node the pass runs.</summary>
    static Pool2d MaxPool(ModelShapes shapes, OnnxNode pool)
    {
        var x = shapes.Of(pool.Inputs[0])!.Value;
        return new Pool2d(true, Window.Of(pool, x[2..], null), false, x[2], x[3]);
    }

    /// <summary>Whether a Conv's weights, and its bias if any, are constants (so a BatchNormalization after it can fold in).</summary>
    static bool ConstantWeights(OnnxModel model, OnnxNode node) =>
        Constant(model, node.Inputs[1]) is not null && (node.Input(2) is not { } b || Constant(model, b) is not null);

    /// <summary>The initializer <paramref name="name"/> when it is one of floats, else null.</summary>
    static float[]? Constant(OnnxModel model, string? name) => name is not null && model.Initializers.TryGetValue(name, out var t) && t.IsFloat ? t.Floats : null;

    /// <summary>The convolution with <paramref name="bn"/> folded into constant weights and bias, writing the
    /// BatchNormalization's output: the chosen lowering made again (same contraction, so the same kernel), checked against
    /// the unfolded pair (<see cref="Folds"/>); null when the weights or bias are not constants.</summary>
    ChosenKernel? Fold(ChosenKernel conv, OnnxNode bn)
    {
        var node = conv.Op.Node;
        if (!ConstantWeights(model, node)) return null;
        var w = Constant(model, node.Inputs[1])!;
        var norm = BatchNorm.Of(model, bn);
        var (fw, fb) = norm.Fold(w, Constant(model, node.Input(2)));
        string wName = $"{node.Inputs[1]}*{bn.Name}", bName = $"{node.Input(2) ?? node.Name + ".bias"}*{bn.Name}";
        var wDims = shapes.Of(node.Inputs[1])!.Value;
        var foldedModel = model.WithConstants([OnnxTensor.FromFloats(wName, wDims, fw), OnnxTensor.FromFloats(bName, [fb.Length], fb)]);
        var foldedShapes = new ModelShapes(new Dictionary<string, ImmutableArray<long>>(shapes.Shapes) { [wName] = wDims, [bName] = [fb.Length] }, shapes.Unknown);
        var foldedNode = new OnnxNode(node.Name, node.OpType, node.Domain, [node.Inputs[0], wName, bName], [bn.Outputs[0]], node.Attributes);
        if (conv.Op.LowerAgain(foldedModel, foldedShapes, foldedNode) is not ContractionOp op || !op.Contraction.Equals(conv.Op.Contraction)) return null;
        var result = new ChosenKernel(op, conv.Kernel);
        folds.Add(Check(conv, result, norm, bn));
        return result;
    }

    /// <summary>The folded convolution against the convolution followed by the BatchNormalization, on random input.</summary>
    FoldCheck Check(ChosenKernel conv, ChosenKernel folded, BatchNorm norm, OnnxNode bn)
    {
        var feeds = RandomFeeds(model, shapes, conv.Op.Node, new Random(folds.Count + 1));
        var want = conv.Op.Run(conv.Kernel, feeds);
        norm.Run(want, want, (int)conv.Op.OutputShape.Skip(2).Aggregate(1L, (p, d) => p * d));
        var error = OutputError.Of(folded.Op.Run(folded.Kernel, feeds), want);
        return new FoldCheck(conv.Op.Node.Name, bn.Name, error.MaxAbs, error.Bound(FoldTolerance));
    }

    /// <summary>Uniform values in [-1, 1] (<see cref="Reference.FillUniform"/>) for the node's inputs that are not constants,
    /// with their inferred shapes.</summary>
    public static Dictionary<string, float[]> RandomFeeds(OnnxModel model, ModelShapes shapes, OnnxNode node, Random rng)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(shapes);
        ArgumentNullException.ThrowIfNull(node);
        var feeds = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var name in node.Inputs.Where(i => i.Length > 0 && !model.Initializers.ContainsKey(i)).Distinct())
        {
            var v = new float[checked((int)Length(shapes, name))];
            Reference.FillUniform(v, rng);
            feeds[name] = v;
        }
        return feeds;
    }

    static long Length(ModelShapes shapes, string name) => shapes.Of(name)!.Value.Aggregate(1L, (p, d) => p * d);

    /// <summary>A value's array: made by an earlier step, a graph input's, or a float constant's own.</summary>
    float[] Read(string name) => values.TryGetValue(name, out var v) ? v
        : model.Initializers.TryGetValue(name, out var t) && t.IsFloat ? values[name] = t.Floats
        : throw new OnnxError(model.Source, $"--run: no value for {name}");

    /// <summary>The array of a value made at the node under way: one made earlier whose values are all read by then (by
    /// nodes before this one) and of the same length (of those, the one read last), else a new one. So a pass writes into
    /// few arrays, which stay in the caches, rather than one per value (ResNet-18's ~20 MB of activations), each written
    /// once a pass from memory.</summary>
    float[] Allocate(string name)
    {
        int length = checked((int)Length(shapes, name));
        // of those free, the one read last: the likeliest still in cache
        var array = until.Keys.Where(a => a.Length == length && until[a] < at).MaxBy(a => until[a]) ?? new float[length];
        until[array] = LastRead(name);
        return values[name] = array;
    }

    /// <summary>Another name for <paramref name="array"/>, which then lives until that name's last reader too.</summary>
    void Alias(string name, float[] array)
    {
        values[name] = array;
        if (until.TryGetValue(array, out int last)) until[array] = Math.Max(last, LastRead(name));
    }

    /// <summary>The index of the last node that reads <paramref name="name"/> (<see cref="int.MaxValue"/> for a graph
    /// output, -1 for a value nothing reads).</summary>
    int LastRead(string name) => lastRead.GetValueOrDefault(name, -1);

    /// <summary>The node being made into steps (its index), while the constructor runs.</summary>
    int at = -1;
    readonly Dictionary<string, int> lastRead = new(StringComparer.Ordinal);
    /// <summary>The arrays <see cref="Allocate"/> made, and the last node that reads each.</summary>
    readonly Dictionary<float[], int> until = new(ReferenceEqualityComparer.Instance);

    OnnxError Refuse(OnnxNode node, string problem) => new(model.Source, $"the forward pass cannot run node {node}: {problem}");
}

/// <summary>One step of a forward pass in <see cref="ModelRunner.Profile"/>: its median time within passes, and for a
/// contraction its kernel's and the work around it (a padded copy, a write-back, the epilogue); <paramref name="Covers"/>
/// names the ONNX nodes and values the step does (its own, a folded BatchNormalization's, a fused Add's and Relu's).</summary>
public sealed record NodeTime(string Node, string Op, double Seconds, double? KernelSeconds, double? AroundSeconds, ImmutableArray<string> Covers);
