namespace LoopTune.Ir;

/// <summary>One of a contraction's two input operands (<c>out += left * right</c>, <see cref="Computation.Left"/> and
/// <see cref="Computation.Right"/>).</summary>
public enum Operand
{
    Left,
    Right,
}
