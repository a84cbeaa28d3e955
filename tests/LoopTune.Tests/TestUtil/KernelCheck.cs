using System.Text;
using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Tests.TestUtil;

/// <summary>Runs a compiled kernel on guarded random buffers and checks it against <see cref="Reference.Exact"/>.</summary>
public static class KernelCheck
{
    /// <summary>Null when the kernel is right; otherwise a description of everything wrong (result, inputs, guards).</summary>
    public static string? Verify(Kernel kernel, Random rng) => VerifyAs(kernel, kernel.Computation, rng);

    /// <summary>Like <see cref="Verify"/>, but judges the kernel against <paramref name="c"/> (same tensor sizes), to test the checker.</summary>
    public static unsafe string? VerifyAs(Kernel kernel, Computation c, Random rng)
    {
        if (Problems(c, rng, (o, l, r) => kernel.Run((float*)o, (float*)l, (float*)r)) is not string problems) return null;
        var sb = new StringBuilder();
        sb.Append("nest '").Append(kernel.Nest.Serialize()).Append("' statements ").Append(kernel.Statements)
          .Append(" block ").Append(kernel.BlockStart);
        if (kernel.Notes.Count > 0) sb.Append(" notes [").Append(string.Join("; ", kernel.Notes)).Append(']');
        return sb.Append(": ").Append(problems).ToString();
    }

    /// <summary>Calls <paramref name="run"/> (output, left, right pointers) once on guarded random buffers of
    /// <paramref name="c"/>: null when the output matches <see cref="Reference.Exact"/> within its tolerance, the inputs are
    /// unchanged and every guard is intact; otherwise everything wrong.</summary>
    public static unsafe string? Problems(Computation c, Random rng, Action<nint, nint, nint> run)
    {
        var o = new GuardedBuffer(c.Output.Length, rng);
        var l = new GuardedBuffer(c.Left.Length, rng);
        var r = new GuardedBuffer(c.Right.Length, rng);
        var (exact, magnitude) = Reference.Exact(c, o.Data, l.Data, r.Data);
        float[] left0 = l.Data.ToArray(), right0 = r.Data.ToArray();

        fixed (float* po = o.Raw, pl = l.Raw, pr = r.Raw)
            run((nint)(po + o.Offset), (nint)(pl + l.Offset), (nint)(pr + r.Offset));

        var problems = new List<string>();
        double tolerance = Reference.Tolerance(c);
        int bad = 0;
        string? first = null;
        var got = o.Data;
        for (int i = 0; i < got.Length; i++)
        {
            double err = Math.Abs(got[i] - exact[i]), bound = tolerance * magnitude[i] + 1e-30;
            if (err <= bound) continue;   // written so that NaN fails
            bad++;
            first ??= $"{c.Output.Name}[{Index(c.Output, i)}] = {got[i]:R}, exact {exact[i]:R}, error {err:G3} > bound {bound:G3}";
        }
        if (bad > 0) problems.Add($"{bad} of {got.Length} output elements wrong, first {first}");
        if (Changed(l.Data, left0) is string lc) problems.Add($"input {c.Left.Name} was modified at {lc}");
        if (Changed(r.Data, right0) is string rc) problems.Add($"input {c.Right.Name} was modified at {rc}");
        foreach (var (b, t) in new[] { (o, c.Output), (l, c.Left), (r, c.Right) })
            if (b.CheckGuards(t.Name) is string g) problems.Add(g);
        return problems.Count == 0 ? null : string.Join("; ", problems);
    }

    static string? Changed(ReadOnlySpan<float> now, float[] before)
    {
        int i = System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(now).CommonPrefixLength(System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(before.AsSpan()));
        return i == now.Length ? null : $"element {i}";
    }

    /// <summary>JitOptions without the machine-dependent computed properties.</summary>
    public static string Describe(JitOptions o) =>
        $"(MaxVectorBits: {o.MaxVectorBits}, UseFma: {o.UseFma}, MaxOperations: {o.MaxOperations}, MaskedTails: {o.MaskedTails}, WideInputLoads: {o.WideInputLoads}, FuseLanes: {o.FuseLanes})";

    /// <summary>The multi-index of flat element <paramref name="flat"/> of a row-major tensor, e.g. "3,1".</summary>
    public static string Index(Tensor t, long flat)
    {
        var idx = new long[t.Shape.Length];
        for (int d = t.Shape.Length - 1; d >= 0; d--) { idx[d] = flat % t.Shape[d]; flat /= t.Shape[d]; }
        return string.Join(",", idx);
    }

    /// <summary>Compiles <paramref name="nest"/> with <paramref name="options"/> and verifies it; compile errors are failures too.</summary>
    public static string? CompileAndVerify(Nest nest, JitOptions options, Random rng)
    {
        try { return Verify(Kernel.Compile(nest, options), rng); }
        catch (Exception e) { return $"nest '{nest.Serialize()}' does not compile: {e.GetType().Name}: {e.Message}"; }
    }
}
