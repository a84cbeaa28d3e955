namespace LoopTune.Models;

/// <summary>An ONNX file that cannot be used: missing, unreadable, not ONNX, truncated, or inconsistent (a shape that
/// does not fit its operator). The message names the file and what is wrong.</summary>
public sealed class OnnxError(string source, string problem, Exception? inner = null)
    : LoopTuneException($"{source}: {problem}", inner)
{
    /// <summary>The file (or the label given for bytes) the model came from.</summary>
    public string File { get; } = source;
    /// <summary>What is wrong, without the file name.</summary>
    public string Problem { get; } = problem;
}
