using LoopTune.Models;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace LoopTune.Measure;

/// <summary>ONNX Runtime running one node alone (<see cref="SingleNodeModel"/>): one thread (<c>intra_op_num_threads</c> and
/// <c>inter_op_num_threads</c> 1, sequential), every graph optimization on; its inputs and its output are bound to memory
/// given once (arrays, or a peer's buffers), so <see cref="Run"/> allocates nothing and times the operator alone.</summary>
public sealed class OnnxRuntimeNode : IDisposable
{
    readonly InferenceSession session;
    readonly RunOptions options = new();
    readonly string[] inputNames, outputNames;
    readonly OrtValue[] inputs, outputs;

    /// <summary>A session of <paramref name="model"/> fed with <paramref name="feeds"/> (by input name), writing
    /// <see cref="Output"/>.</summary>
    public OnnxRuntimeNode(SingleNodeModel model, IReadOnlyDictionary<string, float[]> feeds)
        : this(model, [.. model.Inputs.Select(i => OrtValue.CreateTensorValueFromMemory(feeds[i.Name], i.Shape))], out var output) =>
        Output = output;

    /// <summary>A session of <paramref name="model"/> reading its inputs (in <see cref="SingleNodeModel.Inputs"/>' order)
    /// from <paramref name="inputs"/> and writing its output to <paramref name="output"/>: native float32 buffers of the
    /// shapes' lengths that must outlive the session.</summary>
    internal unsafe OnnxRuntimeNode(SingleNodeModel model, IReadOnlyList<nint> inputs, float* output)
        : this(model, [.. model.Inputs.Select((i, k) => Native(inputs[k], i.Shape))], Native((nint)output, model.OutputShape)) { }

    OnnxRuntimeNode(SingleNodeModel model, OrtValue[] inputs, out float[] output)
        : this(model, inputs, OrtValue.CreateTensorValueFromMemory(output = new float[Length(model.OutputShape)], model.OutputShape)) { }

    OnnxRuntimeNode(SingleNodeModel model, OrtValue[] inputs, OrtValue output)
    {
        (this.inputs, outputs) = (inputs, [output]);
        inputNames = [.. model.Inputs.Select(i => i.Name)];
        outputNames = [model.Output];
        Output = [];
        try
        {
            using var so = OneThread();
            session = new InferenceSession(model.Bytes, so);
        }
        catch
        {
            foreach (var v in inputs.Concat(outputs)) v.Dispose();
            options.Dispose();
            throw;
        }
    }

    /// <summary>One thread, sequential, every graph optimization.</summary>
    static SessionOptions OneThread() => new()
    {
        IntraOpNumThreads = 1, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
    };

    static long Length(long[] shape) => checked((int)shape.Aggregate(1L, (p, d) => p * d));

    static OrtValue Native(nint data, long[] shape) =>
        OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, TensorElementType.Float, shape, data, Length(shape) * sizeof(float));

    /// <summary>Where <see cref="Run"/> writes the node's output when the session was made with arrays (empty when it
    /// writes to a buffer given).</summary>
    public float[] Output { get; }

    /// <summary>Runs the node once.</summary>
    public void Run() => session.Run(options, inputNames, inputs, outputNames, outputs);

    public void Dispose()
    {
        foreach (var v in inputs.Concat(outputs)) v.Dispose();
        options.Dispose();
        session.Dispose();
    }
}
