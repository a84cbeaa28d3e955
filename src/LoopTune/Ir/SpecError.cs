namespace LoopTune.Ir;

/// <summary>A computation spec that does not parse or does not make sense. The message quotes the
/// spec and puts a caret under the offending part.</summary>
public sealed class SpecError : LoopTuneException
{
    public SpecError(string spec, int position, int length, string problem)
        : base(Format(spec, position, length, problem)) => (Spec, Position, Problem) = (spec, position, problem);

    public string Spec { get; }
    public int Position { get; }
    public string Problem { get; }

    static string Format(string spec, int position, int length, string problem)
    {
        position = Math.Clamp(position, 0, spec.Length);
        var caret = new string(' ', position) + new string('^', Math.Max(1, length));
        return $"bad spec: {problem} (at column {position + 1})\n  {spec}\n  {caret}";
    }
}
