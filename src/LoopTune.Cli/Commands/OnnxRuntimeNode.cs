using LoopTune.Models;
using Microsoft.ML.OnnxRuntime;

namespace LoopTune.Cli.Commands;

/// <summary>ONNX Runtime running one node alone (<see cref="SingleNodeModel"/>), or a whole model: one thread (<c>intra_op_num_threads</c> and
/// <c>inter_op_num_threads</c> 1, sequential), every graph optimization on; its inputs and its output are bound to arrays
/// made once, so <see cref="Run"/> allocates nothing and times the operator alone.</summary>
sealed class OnnxRuntimeNode : IDisposable
{
    readonly InferenceSession session;
    readonly RunOptions options = new();
    readonly string[] inputNames, outputNames;
    readonly OrtValue[] inputs, outputs;

    /// <summary>A session of <paramref name="model"/> fed with <paramref name="feeds"/> (by input name).</summary>
    public OnnxRuntimeNode(SingleNodeModel model, IReadOnlyDictionary<string, float[]> feeds)
        : this(model.Bytes, model.Inputs, model.Output, model.OutputShape, feeds) { }

    /// <summary>A session of the serialized model <paramref name="model"/> with <paramref name="inputs"/> (name, shape) fed
    /// from <paramref name="feeds"/> and <paramref name="output"/> of <paramref name="outputShape"/> written to <see cref="Output"/>.</summary>
    public OnnxRuntimeNode(byte[] model, IReadOnlyList<(string Name, long[] Shape)> inputs, string output, long[] outputShape,
        IReadOnlyDictionary<string, float[]> feeds)
    {
        using var so = new SessionOptions
        {
            IntraOpNumThreads = 1, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        session = new InferenceSession(model, so);
        inputNames = [.. inputs.Select(i => i.Name)];
        this.inputs = [.. inputs.Select(i => OrtValue.CreateTensorValueFromMemory(feeds[i.Name], i.Shape))];
        Output = new float[checked((int)outputShape.Aggregate(1L, (p, d) => p * d))];
        outputNames = [output];
        outputs = [OrtValue.CreateTensorValueFromMemory(Output, outputShape)];
    }

    /// <summary>Where <see cref="Run"/> writes the node's output.</summary>
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
