namespace LoopTune;

/// <summary>Base of every error LoopTune reports for bad input (spec, schedule, action, file).
/// The CLI maps these to exit code 2; anything else is an internal failure (exit code 1).</summary>
public class LoopTuneException(string message, Exception? inner = null) : Exception(message, inner);
