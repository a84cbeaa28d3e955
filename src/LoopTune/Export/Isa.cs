using LoopTune.Jit;

namespace LoopTune.Export;

/// <summary>The instruction set exported C is written for: <see cref="Generic"/> is plain C99 (scalars, any compiler, any
/// CPU); <see cref="Avx2"/> and <see cref="Avx512"/> use immintrin.h intrinsics of that width, lowered as the JIT lowers
/// the schedule at 256 and 512 bits.</summary>
public enum Isa { Generic, Avx2, Avx512 }

/// <summary>What each <see cref="Isa"/> needs: the vector width the lowering uses, the CPU flags (/proc/cpuinfo) a machine
/// must have to run it, the compiler flags that enable its intrinsics; and the checks that refuse an ISA this machine, its
/// JIT or its compiler cannot take.</summary>
public static class Isas
{
    public static readonly IReadOnlyList<Isa> All = [Isa.Generic, Isa.Avx2, Isa.Avx512];

    /// <summary>The option's spelling: generic, avx2, avx512.</summary>
    public static string Name(this Isa isa) => isa.ToString().ToLowerInvariant();

    /// <summary>Reads <c>--isa</c>; anything else is a <see cref="LoopTuneException"/> listing the choices.</summary>
    public static Isa Parse(string text) => All.Where(i => i.Name() == text.Trim().ToLowerInvariant()).Select(i => (Isa?)i).FirstOrDefault()
        ?? throw new LoopTuneException($"--isa {text}: unknown instruction set; choose {string.Join(", ", All.Select(Name))}");

    /// <summary>The widest vector in bits the lowering uses (0: scalar code).</summary>
    public static int VectorBits(this Isa isa) => isa switch { Isa.Avx512 => 512, Isa.Avx2 => 256, _ => 0 };

    /// <summary>The /proc/cpuinfo flags a CPU needs to run the code: AVX-512's masked 256- and 128-bit loads and stores are
    /// AVX512VL's, and every width's multiply-add is FMA's.</summary>
    public static IReadOnlyList<string> CpuFlags(this Isa isa) => isa switch
    {
        Isa.Avx512 => ["avx512f", "avx512vl", "fma"],
        Isa.Avx2 => ["avx2", "fma"],
        _ => [],
    };

    /// <summary>The gcc/clang flags that enable the intrinsics the code uses (<c>-march=native</c> on such a machine does too).</summary>
    public static string CompilerFlags(this Isa isa) => string.Join(" ", isa.CpuFlags().Select(f => "-m" + f));

    /// <summary>The preprocessor symbols those flags define; the exported source stops with #error when one is missing.</summary>
    public static IReadOnlyList<string> Macros(this Isa isa) => [.. isa.CpuFlags().Select(f => "__" + f.ToUpperInvariant() + "__")];

    /// <summary>The widest ISA this machine runs and its JIT lowers (what <c>--isa</c> defaults to).</summary>
    public static Isa Default(IReadOnlyCollection<string> cpuFlags) =>
        All.Reverse().First(i => Problem(i, cpuFlags) is null);

    /// <summary>Throws a <see cref="LoopTuneException"/> naming what is missing unless this machine (<paramref name="cpuFlags"/>)
    /// runs <paramref name="isa"/> and the JIT lowers at its width.</summary>
    public static Isa Check(Isa isa, IReadOnlyCollection<string> cpuFlags) =>
        Problem(isa, cpuFlags) is { } problem ? throw new LoopTuneException($"--isa {isa.Name()}: {problem}") : isa;

    static string? Problem(Isa isa, IReadOnlyCollection<string> cpuFlags)
    {
        var missing = isa.CpuFlags().Where(f => !cpuFlags.Contains(f)).ToList();
        if (missing.Count > 0) return $"this CPU lacks {string.Join(", ", missing)} (its flags in /proc/cpuinfo)";
        if (isa.VectorBits() > 0 && !JitOptions.AcceleratedBits.Contains(isa.VectorBits()))
            return $"the JIT does not use {isa.VectorBits()}-bit vectors in this process (it accelerates {(JitOptions.AcceleratedBits.Count == 0 ? "none" : string.Join(", ", JitOptions.AcceleratedBits))}), so it cannot lower for them";
        return null;
    }
}
