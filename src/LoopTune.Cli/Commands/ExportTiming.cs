using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using LoopTune.Export;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Measure;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune export ... --time</c>: the exported file compiled with <c>gcc -O3 -march=native</c>, next to the JIT's
/// kernel of the same schedule, and the unscheduled nest both ways (its plain C, as <c>--isa generic</c> exports it, with
/// the same flags, against the JIT's): each checked against the reference, then each pair timed side by side on the
/// pinned calling thread (<see cref="Timing.MeasureTogether"/>: one sample of each per round, ratios within rounds).</summary>
static unsafe class ExportTiming
{
    /// <summary>The compiler flags the exported code is timed with.</summary>
    public const string Flags = "-O3 -march=native";

    /// <param name="Jit">The JIT's kernel of the schedule.</param>
    /// <param name="C">The exported C.</param>
    /// <param name="JitPlain">The JIT's kernel of the unscheduled nest.</param>
    /// <param name="CPlain">The unscheduled nest's plain C.</param>
    /// <param name="CVsJit">How many times faster the exported C ran than the JIT (median of the within-round ratios).</param>
    /// <param name="PlainCVsJit">The same for the unscheduled nest.</param>
    public sealed record Result(Measurement Jit, Measurement C, Measurement JitPlain, Measurement CPlain, double CVsJit, double PlainCVsJit)
    {
        public JsonObject ToJson() => new()
        {
            ["flags"] = Flags,
            ["jit_gflops"] = Jit.Gflops,
            ["c_gflops"] = C.Gflops,
            ["c_vs_jit"] = CVsJit,
            ["c_vs_jit_best"] = C.BestGflops / Jit.BestGflops,
            ["rounds"] = Jit.Samples,
            ["plain_jit_gflops"] = JitPlain.Gflops,
            ["plain_c_gflops"] = CPlain.Gflops,
            ["plain_c_vs_jit"] = PlainCVsJit,
            ["plain_c_vs_jit_best"] = CPlain.BestGflops / JitPlain.BestGflops,
        };

        public IEnumerable<string> Lines(Nest nest) =>
        [
            $"timed side by side on one pinned core, gcc {Flags}:",
            $"  schedule   JIT {Jit.Gflops,7:F1} GFLOPS   exported C {C.Gflops,7:F1} GFLOPS   C/JIT {CVsJit:F2}x (fastest samples {C.BestGflops / Jit.BestGflops:F2}x, {Jit.Samples} rounds)   ({nest.ScheduleKey})",
            $"  unscheduled JIT {JitPlain.Gflops,6:F1} GFLOPS   plain C    {CPlain.Gflops,7:F1} GFLOPS   C/JIT {PlainCVsJit:F2}x (fastest samples {CPlain.BestGflops / JitPlain.BestGflops:F2}x, {JitPlain.Samples} rounds)",
            $"  speed-up of the schedule over the unscheduled nest: JIT {Jit.Gflops / JitPlain.Gflops:F1}x, C {C.Gflops / CPlain.Gflops:F1}x",
        ];
    }

    /// <summary>Compiles <paramref name="source"/> (exporting function <paramref name="name"/> of <paramref name="nest"/> for
    /// <paramref name="isa"/>, against the JIT's kernel at that ISA's vector width) and
    /// the unscheduled nest's C, checks both and times them next to the JIT. A wrong result is an exception (exit 1).</summary>
    public static Result Run(Nest nest, string source, string name, Isa isa, MeasureOptions options)
    {
        var c = nest.Computation;
        string folder = Directory.CreateTempSubdirectory("looptune-export-time").FullName;
        nint library = 0;
        try
        {
            string plain = Path.Combine(folder, "looptune_plain.c");
            ExportFiles.Write(plain, CExport.Write(Nest.Initial(c), "looptune_plain", Isa.Generic, "this machine"));
            string so = Path.Combine(folder, "timed.so");
            CCompiler.SharedLibrary([Path.GetFullPath(source), plain], so, Flags);
            library = NativeLibrary.Load(so);
            var fn = (delegate* unmanaged<float*, float*, float*, void>)NativeLibrary.GetExport(library, name);
            var fnPlain = (delegate* unmanaged<float*, float*, float*, void>)NativeLibrary.GetExport(library, "looptune_plain");
            foreach (var (f, what) in new[] { ((nint)fn, source), ((nint)fnPlain, "the unscheduled nest's C") })
            {
                var call = (delegate* unmanaged<float*, float*, float*, void>)f;
                var v = Verifier.Verify(c, (o, l, r) => call((float*)o, (float*)l, (float*)r));
                if (!v.Passed) throw new InvalidOperationException($"{what} compiled with gcc {Flags} is wrong: {v.Problem}");
            }
            var jit = Kernel.Compile(nest, JitOptions.Default with { MaxVectorBits = isa.VectorBits() }); // the ISA's width, as exported
            var jitPlain = Kernel.Compile(Nest.Initial(c));
            using var w = new KernelTiming.Workspace(c);
            float* o = w.Output.Pointer, l = w.Left.Pointer, r = w.Right.Pointer;
            using (ThreadPinning.Pin())
            {
                // samples of about 0.2 ms (or one run), many rounds: the two samples of a round lie well within one
                // scheduler time slice, so a neighbour sharing the core rarely lands on one side of a round only
                var fine = options with { SampleSeconds = Math.Min(options.SampleSeconds, 0.0002), MaxSamples = options.MaxSamples * 20 };
                var pair = Timing.MeasureTogether([() => jit.Run(o, l, r), () => fn(o, l, r)], [c.Flops, c.Flops], fine);
                var plainPair = Timing.MeasureTogether([() => jitPlain.Run(o, l, r), () => fnPlain(o, l, r)], [c.Flops, c.Flops], options);
                var (m, p) = (pair.Measurements, plainPair.Measurements);
                return new Result(m[0], m[1], p[0], p[1], pair.Ratio(1, 0), plainPair.Ratio(1, 0));
            }
        }
        finally
        {
            if (library != 0) NativeLibrary.Free(library);
            Directory.Delete(folder, recursive: true);
        }
    }
}
