using LoopTune.Models;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace LoopTune.Measure;

/// <summary>ONNX Runtime running one node alone (<see cref="SingleNodeModel"/>), or a whole model: one thread unless asked
/// for more (<c>intra_op_num_threads</c> N, <c>inter_op_num_threads</c> 1, sequential; the session, and so its pool, made
/// on every core the process may use so that its threads do not inherit one measuring core), every graph optimization on; its inputs and its output are bound to memory
/// given once (arrays, or a peer's buffers), so <see cref="Run"/> allocates nothing and times the operator alone.</summary>
public sealed class OnnxRuntimeNode : IDisposable
{
    readonly InferenceSession session;
    readonly RunOptions options = new();
    readonly string[] inputNames, outputNames;
    readonly OrtValue[] inputs, outputs;

    /// <summary>A session of <paramref name="model"/> fed with <paramref name="feeds"/> (by input name), writing
    /// <see cref="Output"/>.</summary>
    public OnnxRuntimeNode(SingleNodeModel model, IReadOnlyDictionary<string, float[]> feeds, int threads = 1)
        : this(model.Bytes, [.. model.Inputs.Select(i => (i.Name, i.Shape))], model.Output, model.OutputShape, feeds, threads) { }

    /// <summary>A session of the serialized model <paramref name="model"/> (a whole model, or one node) with
    /// <paramref name="inputs"/> (name, shape) fed from <paramref name="feeds"/>, and <paramref name="output"/> of
    /// <paramref name="outputShape"/> written to <see cref="Output"/>;
    /// <paramref name="profile"/> turns on ONNX Runtime's own profiler (its time per node of its optimized graph), read
    /// with <see cref="EndProfiling"/>.</summary>
    public OnnxRuntimeNode(byte[] model, IReadOnlyList<(string Name, long[] Shape)> inputs, string output, long[] outputShape,
        IReadOnlyDictionary<string, float[]> feeds, int threads = 1, bool profile = false)
        : this(model, [.. inputs.Select(i => i.Name)], output, [.. inputs.Select(i => OrtValue.CreateTensorValueFromMemory(feeds[i.Name], i.Shape))],
            new float[Length(outputShape)], outputShape, threads, profile)
    { }

    /// <summary>A session of <paramref name="model"/> reading its inputs (in <see cref="SingleNodeModel.Inputs"/>' order)
    /// from <paramref name="inputs"/> and writing its output to <paramref name="output"/>: native float32 buffers of the
    /// shapes' lengths that must outlive the session.</summary>
    internal unsafe OnnxRuntimeNode(SingleNodeModel model, IReadOnlyList<nint> inputs, float* output, int threads = 1)
        : this(model.Bytes, [.. model.Inputs.Select(i => i.Name)], model.Output, [.. model.Inputs.Select((i, k) => Native(inputs[k], i.Shape))],
            Native((nint)output, model.OutputShape), [], threads)
    { }

    OnnxRuntimeNode(byte[] model, string[] inputNames, string outputName, OrtValue[] inputs, float[] output, long[] outputShape, int threads, bool profile = false)
        : this(model, inputNames, outputName, inputs, OrtValue.CreateTensorValueFromMemory(output, outputShape), output, threads, profile) { }

    OnnxRuntimeNode(byte[] model, string[] inputNames, string outputName, OrtValue[] inputs, OrtValue output, float[] array, int threads, bool profile = false)
    {
        (this.inputs, outputs, this.inputNames, outputNames, Output) = (inputs, [output], inputNames, [outputName], array);
        try
        {
            using var so = Options(threads);
            if (profile)
            {
                so.EnableProfiling = true;
                so.ProfileOutputPathPrefix = Path.Combine(Path.GetTempPath(), $"looptune-ort-profile-{Environment.ProcessId}-{Guid.NewGuid():N}");
            }
            using var widened = threads > 1 ? Affinity.Widened() : default;
            session = new InferenceSession(model, so);
        }
        catch
        {
            foreach (var v in inputs.Concat(outputs)) v.Dispose();
            options.Dispose();
            throw;
        }
    }

    /// <summary><paramref name="threads"/> intra-op threads (ONNX Runtime's defaults otherwise: its pool spins while it
    /// waits), sequential, every graph optimization.</summary>
    static SessionOptions Options(int threads) => new()
    {
        IntraOpNumThreads = threads, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
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

    /// <summary>Ends the profiling a session made with <c>profile</c> did, and returns each node of the graph ONNX Runtime
    /// ran (after its fusions: a Conv with its BatchNormalization, Add and Relu is one node, named after its output), in
    /// order, with its median time per run (<see cref="ParseProfile"/>); the profile's file is deleted.</summary>
    public IReadOnlyList<ProfiledNode> EndProfiling()
    {
        string file = session.EndProfiling();
        try { return ParseProfile(File.ReadAllText(file)); }
        finally { File.Delete(file); }
    }

    /// <summary>The nodes of an ONNX Runtime profile (a JSON array of trace events; a node's run is an event of category
    /// <c>Node</c> named <c>NAME_kernel_time</c>, its <c>dur</c> in microseconds and its operator in <c>args.op_name</c>),
    /// in the order they first ran, each with the median of its durations.</summary>
    public static IReadOnlyList<ProfiledNode> ParseProfile(string json)
    {
        const string Suffix = "_kernel_time";
        var runs = new Dictionary<string, (string Op, List<double> Seconds)>(StringComparer.Ordinal);
        var order = new List<string>();
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            if (!e.TryGetProperty("cat", out var cat) || cat.GetString() != "Node" || e.GetProperty("name").GetString() is not { } name || !name.EndsWith(Suffix, StringComparison.Ordinal)) continue;
            name = name[..^Suffix.Length];
            if (!runs.TryGetValue(name, out var r))
            {
                string op = e.TryGetProperty("args", out var a) && a.TryGetProperty("op_name", out var o) ? o.GetString() ?? "" : "";
                runs[name] = r = (op, []);
                order.Add(name);
            }
            r.Seconds.Add(e.GetProperty("dur").GetDouble() / 1e6);
        }
        return [.. order.Select(n => new ProfiledNode(n, runs[n].Op, runs[n].Seconds.Order().ElementAt(runs[n].Seconds.Count / 2)))];
    }

    public void Dispose()
    {
        foreach (var v in inputs.Concat(outputs)) v.Dispose();
        options.Dispose();
        session.Dispose();
    }
}

/// <summary>One node of ONNX Runtime's optimized graph in its profile: its name, operator and median time per run.</summary>
public sealed record ProfiledNode(string Name, string Op, double Seconds);
