using LoopTune.Ir;
using LoopTune.Models;
using Microsoft.ML.OnnxRuntime;

namespace LoopTune.Measure;

/// <summary>
/// ONNX Runtime as a peer library (key <c>onnxruntime</c>): the contraction as a one-node model
/// (<see cref="SingleNodeModel.Make"/>) run by <see cref="OnnxRuntimeNode"/> (one thread or N, sequential, every graph
/// optimization), its inputs and output bound to the peer's buffers. A convolution (<see cref="Computation.AsConv"/>) is a
/// <c>Conv</c> node on X [1,C,H,W] with its weights [F,C,R,S] an initializer (constant, as in a model: ONNX Runtime may
/// reorder them once, outside the timing, as oneDNN's weights reorder is), valid padding, stride 1, as oneDNN's
/// convolution peer is mapped. A matrix product with a BLAS form (<see cref="GemmForm"/>) and unit leading dimensions is
/// a <c>MatMul</c> of its two fed inputs (batched over one batch variable when the batch strides are the matrices'
/// sizes), or a <c>Gemm</c> with <c>transA</c>/<c>transB</c> when an operand is transposed. Anything else has no call (the
/// reason says why), as with the other peers.
/// </summary>
public sealed class OnnxRuntimePeer : NativePeer
{
    OnnxRuntimePeer(string? problem, string? version)
        : base(KeyName, "libonnxruntime (Microsoft.ML.OnnxRuntime 1.32.0)", problem, version, "intra_op_num_threads = N, inter_op_num_threads = 1, sequential execution") { }

    /// <summary>The peer's key and column: <c>onnxruntime</c>.</summary>
    public const string KeyName = "onnxruntime";

    static readonly Lazy<OnnxRuntimePeer> instance = new(Load);

    /// <summary>ONNX Runtime, loaded on first use; unavailable (with the problem) when its native library cannot be loaded.</summary>
    public static OnnxRuntimePeer Instance => instance.Value;

    static OnnxRuntimePeer Load()
    {
        try { return new OnnxRuntimePeer(null, OrtEnv.Instance().GetVersionString()); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or TypeInitializationException or OnnxRuntimeException or BadImageFormatException)
        {
            return new OnnxRuntimePeer($"ONNX Runtime cannot be loaded: {e.GetBaseException().Message}", null);
        }
    }

    /// <summary>One line on what is called and how its threads are set, or why it is missing.</summary>
    public string Describe() =>
        !Available ? $"{Key}: missing ({Problem})"
        : $"{Key}: ONNX Runtime {Version}, {Threading}, every graph optimization; a one-node Conv (weights an initializer), MatMul or Gemm";

    /// <summary>The node that computes <paramref name="c"/> in ONNX Runtime, or null and one line saying why there is none.
    /// A convolution's node computes its canonical form (<see cref="ConvShape.ToComputation"/>: image left, weights right),
    /// which the peer is checked and timed on, as oneDNN's is.</summary>
    public static (OnnxNodeForm? Form, string? Reason) Classify(Computation c)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (c.Convolution is { } s) return (OnnxNodeForm.Conv(s), null);
        var (form, reason) = GemmForm.Classify(c);
        if (form is null) return (null, reason);
        return OnnxNodeForm.Product(form) is { } product ? (product, null) : (null, OnnxNodeForm.ProductReason(form));
    }

    /// <summary>Prepares <paramref name="form"/> on the peer's buffers: a session reading <paramref name="left"/> and
    /// <paramref name="right"/> (a convolution's weights copied from <paramref name="right"/> into the model, as a constant)
    /// and writing <paramref name="output"/>, on <paramref name="threads"/> intra-op threads. ONNX Runtime's errors are
    /// <see cref="InvalidOperationException"/>s.</summary>
    internal unsafe PeerRun Prepare(OnnxNodeForm form, float* output, float* left, float* right, int threads = 1)
    {
        if (!Available) throw new InvalidOperationException($"peer {Key} is unavailable: {Problem}");
        try
        {
            var (model, fed) = form.Model(left, right);
            return new NodeRun(new OnnxRuntimeNode(model, fed, output, threads));
        }
        catch (OnnxRuntimeException e) { throw new InvalidOperationException($"ONNX Runtime: {e.Message}", e); }
    }

    sealed class NodeRun(OnnxRuntimeNode node) : PeerRun
    {
        public override void Run() => node.Run();

        protected override void Free() => node.Dispose();
    }
}

/// <summary>The one ONNX node of a contraction (<see cref="OnnxRuntimePeer.Classify"/>): a <c>Conv</c>, a <c>MatMul</c> or
/// a <c>Gemm</c>, with the shapes of its operands.</summary>
public sealed class OnnxNodeForm
{
    readonly Func<nint, nint, (SingleNodeModel, nint[])> model;

    OnnxNodeForm(string describe, Func<nint, nint, (SingleNodeModel, nint[])> model) => (Describe, this.model) = (describe, model);

    /// <summary>The node in words, for the peer's call (<c>Conv (weights an initializer)</c>, <c>MatMul [4,8,16] x [4,16,8]</c>).</summary>
    public string Describe { get; }

    /// <summary>The model on these buffers (left, right) and the buffers of its fed inputs, in order.</summary>
    internal unsafe (SingleNodeModel Model, nint[] Fed) Model(float* left, float* right) => model((nint)left, (nint)right);

    /// <summary>A <c>Conv</c> of <paramref name="s"/>: X fed from the left buffer, W a constant copied from the right one.</summary>
    internal static OnnxNodeForm Conv(ConvShape s) => new("Conv (weights an initializer)", (left, right) =>
    {
        long[] weights = [s.F, s.C, s.R, s.S];
        var w = new float[s.F * s.C * s.R * s.S];
        unsafe { new ReadOnlySpan<float>((void*)right, w.Length).CopyTo(w); }
        var m = SingleNodeModel.Make("Conv", [new("X", [1, s.C, s.H, s.W]), new("W", weights, w)], [1, s.F, s.OH, s.OW],
            new NodeAttribute("kernel_shape", [s.R, s.S]), new NodeAttribute("strides", [1, 1]), new NodeAttribute("pads", [0, 0, 0, 0]));
        return (m, [left]);
    });

    /// <summary>A <c>MatMul</c> (no transpose; batched over one batch variable of packed matrices) or a <c>Gemm</c> (a
    /// transpose, no batch) of a BLAS form whose leading dimensions are its stored rows' lengths; null otherwise.</summary>
    internal static OnnxNodeForm? Product(GemmForm f)
    {
        if (ProductReason(f) is not null) return null;
        long[] batch = [.. f.Batch.Select(b => (long)b.Size)];
        long[] a = [.. batch, .. f.TransA ? new long[] { f.K, f.M } : [f.M, f.K]], b = [.. batch, .. f.TransB ? new long[] { f.N, f.K } : [f.K, f.N]];
        long[] y = [.. batch, f.M, f.N];
        bool gemm = f.TransA || f.TransB;
        string op = gemm ? "Gemm" : "MatMul";
        var attributes = gemm ? new[] { NodeAttribute.Int("transA", f.TransA ? 1 : 0), NodeAttribute.Int("transB", f.TransB ? 1 : 0) } : [];
        return new($"{op}{(gemm ? $" transA={(f.TransA ? 1 : 0)} transB={(f.TransB ? 1 : 0)}" : "")} {ModelShapes.Format(a)} x {ModelShapes.Format(b)}", (left, right) =>
            (SingleNodeModel.Make(op, [new("A", a), new("B", b)], y, attributes), f.ALeft ? [left, right] : [right, left]));
    }

    /// <summary>Why a BLAS form has no ONNX node here, or null when it has one.</summary>
    internal static string? ProductReason(GemmForm f)
    {
        if (f.Lda != (f.TransA ? f.M : f.K) || f.Ldb != (f.TransB ? f.K : f.N) || f.Ldc != f.N)
            return $"{f}: a leading dimension is not its row's length (ONNX tensors are packed)";
        if (f.Batch.Length > 1) return $"{f}: {f.Batch.Length} batch variables (the onnxruntime peer batches over one)";
        if (f.Batch.Length == 1 && (f.TransA || f.TransB)) return $"{f}: a batched product with a transpose (Gemm has no batch)";
        if (f.Batch is [var d] && (d.StrideA != (long)f.M * f.K || d.StrideB != (long)f.K * f.N || d.StrideC != (long)f.M * f.N))
            return $"{f}: the batch strides are not the matrices' sizes (ONNX tensors are packed)";
        return null;
    }
}
