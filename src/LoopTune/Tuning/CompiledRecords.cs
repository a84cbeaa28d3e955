using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using LoopTune.Export;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;
using LoopTune.Store;

namespace LoopTune;

/// <summary>
/// Tuning records compiled to machine code: a record's schedule exported as C (<see cref="CExport"/>: the JIT's own
/// lowering of it, in intrinsics) and built by the machine's C compiler (<see cref="CCompiler"/>, <see cref="Flags"/>)
/// into a shared library kept in a <c>kernels</c> folder beside the records, so that a later recall loads the library
/// instead of compiling the schedule with RyuJIT.
/// <list type="table">
/// <item><term>why</term><description>a recall's RyuJIT compile grows with the code a schedule spells out: 0.5 ms for
/// 80 operations, 4-5.4 ms for 650-1,000 (the Zen 5, docs/results.md); loading a library is a fraction of a millisecond
/// at any size. The exported C ran at 1.00-1.06x the JIT's speed on the same schedules there.</description></item>
/// <item><term>when</term><description>a library is built after a tune, and after a recall that found none (the JIT
/// compiles that recall), on a background thread, one at a time, holding the process's search lock so that no search
/// times kernels while the compiler runs; <see cref="Tuner.Dispose"/> waits for builds in flight.</description></item>
/// <item><term>trust</term><description>a library is kept only once its function has matched the reference on random
/// inputs with guard zones (<see cref="Verifier"/>). Its SHA-256 is written beside it; a library whose bytes no longer
/// match, or whose description names another machine, ISA, computation or schedule, is not loaded: the JIT compiles the
/// schedule and the library is built again.</description></item>
/// <item><term>where not</term><description>no C compiler, one that refuses the ISA's flags, a JIT limited to a width no
/// ISA of the export has (128 bits), or a tuner on more than one thread (the exported function runs its parallel loop
/// sequentially): the JIT, as before.</description></item>
/// </list>
/// Files, named by a hash of what they hold (<see cref="Name"/>): <c>NAME.c</c> and <c>NAME.h</c> (the source and its
/// header), <c>NAME.so</c> and <c>NAME.txt</c> (what it is, and the library's SHA-256), each written under a temporary
/// name and renamed, the description last; and <c>pch-HASH/</c>, the headers precompiled (<see cref="PrecompiledHeader"/>).
/// </summary>
public sealed class CompiledRecords
{
    /// <summary>The compiler's flags, as <c>looptune export --time</c> measured the exported code with.</summary>
    public const string Flags = "-O3 -march=native";

    /// <summary>The exported function's name in every library.</summary>
    public const string Function = "looptune_kernel";

    /// <summary>Part of every name: a change to the export that should rebuild the libraries changes it.</summary>
    public const string Version = "compiled-records 1";

    readonly string folder, machine;
    readonly Isa? isa;

    /// <param name="folder">Where the libraries are kept.</param>
    /// <param name="machine">The records' machine key (<see cref="MeasurementStore.Machine"/>).</param>
    public CompiledRecords(string folder, string machine)
    {
        (this.folder, this.machine) = (folder, machine);
        int bits = JitOptions.Default.VectorBits;
        isa = Isas.All.Where(i => i.VectorBits() == bits).Select(i => (Isa?)i).FirstOrDefault();
    }

    /// <summary>The folder beside a records file: <c>kernels</c> in the records' folder.</summary>
    public static string FolderFor(string recordsPath) => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(recordsPath))!, "kernels");

    /// <summary>The files' name for <paramref name="c"/>'s <paramref name="schedule"/>: 32 hex digits of the SHA-256 of the
    /// machine key, the ISA, the computation, the schedule, <see cref="Version"/> and the JIT's
    /// (<see cref="MeasurementStore.JitVersion"/>: the export writes the JIT's lowering, so a new one builds anew).</summary>
    public string Name(Computation c, string schedule) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{machine}\n{isa}\n{c.Text}\n{schedule}\n{Version}\n{MeasurementStore.JitVersion}")))[..32];

    string PathOf(string name, string extension) => System.IO.Path.Combine(folder, name + extension);

    /// <summary>The path of the library built for <paramref name="c"/>'s <paramref name="schedule"/>, or null when there is
    /// none usable: missing, half-written, its bytes changed since it was checked, or describing something else.</summary>
    public string? Library(Computation c, string schedule)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (isa is null) return null;
        string name = Name(c, schedule), library = PathOf(name, ".so");
        try
        {
            var said = Description.Read(PathOf(name, ".txt"));
            if (said is null || !said.Describes(machine, isa.Value, c, schedule)) return null;
            return Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(library))) == said.Sha256 ? library : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The usable library (<see cref="Library"/>) of <paramref name="c"/>'s <paramref name="schedule"/>, loaded;
    /// null when there is none, or it does not load.</summary>
    internal NativeKernel? Load(Computation c, string schedule)
    {
        if (Library(c, schedule) is not { } library) return null;
        try
        {
            nint handle = NativeLibrary.Load(library);
            return NativeLibrary.TryGetExport(handle, Function, out nint function) ? new NativeKernel(c, function, library) : null;
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            return null;
        }
    }

    /// <summary>Why no library can be built here (no ISA at the JIT's width, no compiler that runs), or null. A compiler
    /// that refuses the ISA's flags fails the build itself, which says so.</summary>
    internal string? Refusal => isa is null ? $"no exported ISA has the JIT's {JitOptions.Default.VectorBits}-bit vectors"
        : CCompiler.Available ? null : $"no C compiler: {CCompiler.Command} does not run";

    /// <summary>Builds, checks and keeps the library of <paramref name="nest"/> unless a usable one is there. Returns what
    /// happened in words (kept, already there, or why not: the compiler's refusal or failure, a wrong result).</summary>
    internal string Build(Nest nest)
    {
        ArgumentNullException.ThrowIfNull(nest);
        if (Refusal is { } refusal) return $"not built: {refusal}";
        var c = nest.Computation;
        string schedule = nest.Serialize(), name = Name(c, schedule);
        if (Library(c, schedule) is not null) return "already built";
        Directory.CreateDirectory(folder);
        foreach (var stale in Directory.EnumerateFiles(folder, "*.tmp.*").Where(f => File.GetLastWriteTimeUtc(f) < DateTime.UtcNow.AddHours(-1)))
            AtomicFile.TryDelete(stale); // a build cut off with its process
        string temp = PathOf($"{name}.{Environment.ProcessId}.{Guid.NewGuid():N}", ".tmp");
        string source = temp + ".c", library = temp + ".so";
        try
        {
            var exported = CExport.Write(nest, Function, isa!.Value, $"{CpuInfo.Current.Model} (key {machine})", name + ".h");
            AtomicFile.WriteText(PathOf(name, ".h"), exported.Header); // the same text whoever writes it: the kept source includes it
            AtomicFile.WriteText(source, exported.Code);
            try { CCompiler.Compile([.. Flags.Split(' '), .. PrecompiledHeader(), "-shared", "-fPIC", "-o", library, source]); }
            catch (InvalidOperationException e) { return $"not built: {e.Message}"; }
            var check = Check(c, library);
            if (!check.Passed) return $"not kept: the compiled function is wrong ({check.Problem})";
            var bytes = File.ReadAllBytes(library);
            File.Move(library, PathOf(name, ".so"), overwrite: true);
            File.Move(source, PathOf(name, ".c"), overwrite: true);
            new Description(machine, isa.Value, c.Text, schedule, Convert.ToHexStringLower(SHA256.HashData(bytes)), check.MaxError).Write(PathOf(name, ".txt"));
            return "kept";
        }
        finally
        {
            foreach (var f in new[] { source, library }) AtomicFile.TryDelete(f);
        }
    }

    /// <summary>The headers every exported source includes (<c>immintrin.h</c> above all, whose parse is half of a
    /// kernel's build: 0.33-0.35 s with it, about 0.2 s without), precompiled once per compiler, flags and ISA into
    /// <c>pch-HASH/</c> of the folder and passed to each build as <c>-include</c>: the arguments for it, or none when it
    /// cannot be made (the build then parses the headers itself). gcc takes a precompiled header only when it was made with
    /// the same compiler and options (<c>-Winvalid-pch</c> says when not) and otherwise reads the header's text, so a
    /// stale one costs time, never correctness.</summary>
    string[] PrecompiledHeader()
    {
        string version = CCompiler.Version ?? "unknown";
        string dir = System.IO.Path.Combine(folder, "pch-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{version}\n{Flags}\n{isa}")))[..16]);
        string header = System.IO.Path.Combine(dir, "looptune_pch.h"), pch = header + ".gch";
        if (!File.Exists(pch))
        {
            try
            {
                Directory.CreateDirectory(dir);
                AtomicFile.WriteText(header, "#include <stddef.h>\n#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n#include <immintrin.h>\n");
                string temp = AtomicFile.TempSibling(pch);
                try
                {
                    CCompiler.Compile([.. Flags.Split(' '), "-fPIC", "-x", "c-header", header, "-o", temp]);
                    File.Move(temp, pch, overwrite: true);
                }
                finally
                {
                    AtomicFile.TryDelete(temp);
                }
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or LoopTuneException)
            {
                return [];
            }
        }
        return ["-include", header, "-Winvalid-pch"];
    }

    /// <summary>The library's function against the reference (the library loaded for the check alone).</summary>
    static unsafe Verification Check(Computation c, string library)
    {
        nint handle = NativeLibrary.Load(library);
        try
        {
            var fn = (delegate* unmanaged<float*, float*, float*, void>)NativeLibrary.GetExport(handle, Function);
            return Verifier.Verify(c, (o, l, r) => fn((float*)o, (float*)l, (float*)r));
        }
        finally
        {
            NativeLibrary.Free(handle);
        }
    }

    /// <summary>What a library is: the machine, ISA, computation and schedule it was built for, its SHA-256, and the
    /// largest relative error its check found. Lines of <c>key: value</c> (read without a JSON parser, whose first use costs
    /// a recall more than the rest of it).</summary>
    sealed record Description(string Machine, Isa Isa, string Spec, string Schedule, string Sha256, double MaxError)
    {
        public bool Describes(string machine, Isa isa, Computation c, string schedule) =>
            Machine == machine && Isa == isa && Spec == c.Text && Schedule == schedule;

        public void Write(string path) => AtomicFile.WriteText(path, string.Create(CultureInfo.InvariantCulture,
            $"version: {Version}\nmachine: {Machine}\nisa: {Isa.Name()}\nspec: {Spec}\nschedule: {Schedule}\nsha256: {Sha256}\nchecked_max_error: {MaxError:G6}\nflags: {Flags}\nbuilt_utc: {DateTime.UtcNow:O}\n"));

        /// <summary>The description at <paramref name="path"/>, or null when it is missing or not one of this version.</summary>
        public static Description? Read(string path)
        {
            if (!File.Exists(path)) return null;
            var lines = File.ReadAllLines(path).Select(l => l.Split(": ", 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
            string? Get(string key) => lines.TryGetValue(key, out var v) ? v : null;
            if (Get("version") != Version || Get("machine") is not { } m || Get("isa") is not { } i || Get("spec") is not { } s
                || Get("schedule") is not { } schedule || Get("sha256") is not { } sha) return null;
            var isa = Isas.All.FirstOrDefault(x => x.Name() == i);
            return isa.Name() != i ? null : new Description(m, isa, s, schedule, sha,
                double.TryParse(Get("checked_max_error"), NumberStyles.Float, CultureInfo.InvariantCulture, out double e) ? e : double.NaN);
        }
    }
}

/// <summary>A record's compiled library's function (<see cref="CompiledRecords"/>): <c>out += in0 * in1</c> in the
/// computation's operand order, reading nothing past its inputs. Loaded for the life of the process.</summary>
sealed unsafe class NativeKernel(Computation computation, nint function, string library)
{
    /// <summary>The library file it was loaded from.</summary>
    public string Library { get; } = library;

    public Computation Computation { get; } = computation;

    /// <summary>Runs it on raw buffers of the tensors' lengths.</summary>
    public void Run(float* output, float* left, float* right) => ((delegate* unmanaged<float*, float*, float*, void>)function)(output, left, right);
}
