using LoopTune.Models;
using Microsoft.ML.OnnxRuntime;

namespace LoopTune.Cli.Commands;

/// <summary>ONNX Runtime running one node alone (<see cref="SingleNodeModel"/>): one thread (<c>intra_op_num_threads</c> and
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
    {
        using var so = new SessionOptions
        {
            IntraOpNumThreads = 1, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        session = new InferenceSession(model.Bytes, so);
        inputNames = [.. model.Inputs.Select(i => i.Name)];
        inputs = [.. model.Inputs.Select(i => OrtValue.CreateTensorValueFromMemory(feeds[i.Name], i.Shape))];
        Output = new float[checked((int)model.OutputShape.Aggregate(1L, (p, d) => p * d))];
        outputNames = [model.Output];
        outputs = [OrtValue.CreateTensorValueFromMemory(Output, model.OutputShape)];
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
