using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using LoopTune.Datasets;
using LoopTune.Export;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Store;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune export (--spec S | --bench FILE) [--schedule S | --policy default [--budget 1s] [--records PATH]]
/// [--lang c] [--isa avx2|avx512|generic] [--name NAME] --out FILE.c [--time [--quick]] [--json]</c>: writes a schedule as a
/// C99 function and its header (<see cref="CExport"/>). The schedule is given, or with <c>--policy</c> the one a
/// <see cref="Tuner"/> over this machine's tuning records gives (<see cref="Tuner.Get(Computation)"/>: recalled from its
/// record, or tuned with the policy and budget and recorded), or the unscheduled nest when neither is given. A benchmark file holds one computation, so
/// <c>--bench</c> exports one function; a dataset folder is refused. Bad input (an unknown spec, a schedule that does not
/// parse or is for another computation, an ISA this CPU, its JIT or the C compiler cannot take, a bad name, an unwritable
/// path) is exit 2 with nothing written. <c>--time</c> then times the file compiled by gcc next to the JIT
/// (<see cref="ExportTiming"/>).</summary>
static class ExportCommand
{
    public static Command Create(Io io)
    {
        var spec = new Option<string?>("--spec") { Description = "The computation: \"mm M N K\", \"conv C H W F R S\" (\"conv C H W F R S E\": output channels in blocks of E, innermost) or a contraction." };
        var bench = new Option<string?>("--bench") { Description = "A benchmark file (one computation, as 'dataset gen' writes them): exports one function." };
        var schedule = new Option<string?>("--schedule", "-s") { Description = "The schedule as the reports print it, e.g. \"m:64 n:8 k:256 m:4u n:2u n:16v\" (default: the unscheduled nest, unless --policy)." };
        var policy = new Option<string?>("--policy") { Description = "Export this machine's tuned schedule, as the library's Tuner.Get gives it: recalled from the tuning records (--records), or tuned now with this policy ('default': the shipped one for the computation) and --budget, then recorded." };
        var budget = new Option<string>("--budget") { Description = "With --policy: the tuning budget (0: the policy's greedy rollout alone).", DefaultValueFactory = _ => "1s" };
        var records = new Option<string?>("--records", "--db") { Description = "With --policy: the tuning records (a SQLite measurement store, created when missing; default: measurements.db in the data folder). A computation recorded there for this machine is exported from its record without tuning, whatever policy and budget tuned it; one that is not is tuned and recorded there." };
        var lang = new Option<string>("--lang") { Description = "The language written: c (C99 with immintrin.h intrinsics).", DefaultValueFactory = _ => "c" };
        var isa = new Option<string?>("--isa") { Description = "avx512, avx2 or generic (plain C, no intrinsics); default: the widest this machine runs." };
        var name = new Option<string?>("--name") { Description = "The C function's name (default: the output file's name)." };
        var output = new Option<string>("--out", "-o") { Description = "The C file to write (FILE.c; the header goes to FILE.h).", Required = true };
        var time = new Option<bool>("--time") { Description = "Then compile the file with gcc -O3 -march=native, check it, and time it side by side with the JIT's kernel of the schedule, and the unscheduled nest both ways, on the pinned calling thread." };
        var quick = new Option<bool>("--quick") { Description = "With --time: shorter timing (less precise)." };
        var json = Options.Json();
        var command = new Command("export", "Write a schedule (given, or with --policy recalled from this machine's tuning records or tuned and recorded) as a C function and header: the JIT's lowering of it, in C with intrinsics.")
        {
            spec, bench, schedule, policy, budget, records, lang, isa, name, output, time, quick, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            if (p.GetValue(lang) is not "c") throw new LoopTuneException($"--lang {p.GetValue(lang)}: only c is written");
            string file = ExportFiles.CheckPath(p.GetValue(output)!);
            string fn = CExport.CheckName(p.GetValue(name) ?? CExport.NameFor(file));
            var target = p.GetValue(isa) is { } i ? Isas.Check(Isas.Parse(i), CpuInfo.Current.Flags) : Isas.Default(CpuInfo.Current.Flags);
            if (CCompiler.Refuses(target) is { } refusal) throw new LoopTuneException($"--isa {target.Name()}: {refusal}");
            var computation = Read(p.GetValue(spec), p.GetValue(bench));
            if (p.GetValue(records) is { } r && p.GetValue(policy) is null)
                throw new LoopTuneException($"--records {r}: the tuning records are read and written with --policy only");
            var chosen = (p.GetValue(schedule), p.GetValue(policy)) switch
            {
                ({ } s, null) => new Chosen(Parse(computation, s), "given"),
                (null, { } pol) => Tuned(computation, pol, p.GetValue(budget)!, p.GetValue(records), io),
                (null, null) => new Chosen(Nest.Initial(computation), "unscheduled"),
                _ => throw new LoopTuneException("give either --schedule or --policy, not both"),
            };
            var nest = chosen.Nest;
            var machine = Machine.Current;
            var exported = CExport.Write(nest, fn, target, $"{machine.Describe()} (key {machine.Key})", Path.GetFileName(ExportFiles.HeaderPath(file)));
            ExportFiles.Write(file, exported);
            var timed = p.GetValue(time) ? ExportTiming.Run(nest, file, fn, target, p.GetValue(quick) ? MeasureOptions.Quick : MeasureOptions.Default) : null;
            if (p.GetValue(json))
            {
                io.Stdout.WriteLine(new JsonObject
                {
                    ["source"] = file,
                    ["header"] = ExportFiles.HeaderPath(file),
                    ["function"] = fn,
                    ["spec"] = computation.Text,
                    ["schedule"] = nest.ScheduleKey,
                    ["schedule_from"] = chosen.From,
                    ["record"] = chosen.RecordJson(),
                    ["isa"] = target.Name(),
                    ["compile_flags"] = target.CompilerFlags(),
                    ["notes"] = new JsonArray([.. exported.Notes.Select(n => JsonValue.Create(n))]),
                    ["timed"] = timed?.ToJson(),
                    ["machine"] = machine.ToJson(),
                }.ToJsonString(Options.JsonStyle));
            }
            else
            {
                io.Stdout.WriteLine($"wrote {file} and {ExportFiles.HeaderPath(file)}: void {fn}(float *out, const float *in0, const float *in1), {computation.Statement}");
                io.Stdout.WriteLine($"schedule {nest.ScheduleKey}, isa {target.Name()}{(target == Isa.Generic ? "" : $" (compile with {target.CompilerFlags()} or -march=native)")}");
                if (chosen.Describe() is { } from) io.Stdout.WriteLine(from);
                foreach (var n in exported.Notes) io.Stdout.WriteLine($"note: {n}");
                foreach (var line in timed?.Lines(nest) ?? []) io.Stdout.WriteLine(line);
            }
            return Program.Ok;
        }));
        return command;
    }

    /// <summary>A schedule given on the command line; one without a cursor gets one on its outermost loop. A schedule of
    /// another computation fails to parse, naming the loop or variable that does not fit.</summary>
    static Nest Parse(Computation c, string text)
    {
        try
        {
            return Nest.Parse(c, text.TrimStart().StartsWith('>') || text.Contains(" >", StringComparison.Ordinal) ? text : ">" + text.TrimStart());
        }
        catch (LoopTuneException e)
        {
            throw new LoopTuneException($"--schedule \"{text}\" does not fit {c}: {e.Message}", e);
        }
    }

    /// <summary>The computation of <c>--spec</c> or of the benchmark file of <c>--bench</c> (one of them).</summary>
    static Computation Read(string? spec, string? bench) => (spec, bench) switch
    {
        ({ } s, null) => Computation.Parse(s),
        (null, { } b) when Directory.Exists(b) => throw new LoopTuneException($"--bench {b} is a folder: export takes one benchmark file (one computation, one function) at a time"),
        (null, { } b) => Benchmark.ReadFile(b).Computation,
        (null, null) => throw new LoopTuneException("give the computation with --spec \"mm 128 128 128\" or --bench FILE"),
        _ => throw new LoopTuneException("give either --spec or --bench, not both"),
    };

    /// <summary>The schedule a <see cref="Tuner"/> over <paramref name="records"/> (default: the data folder's store) gives
    /// <paramref name="c"/>, as a program's <c>Tuner.Get</c> would: its record's for this machine (one thread), whatever
    /// policy and budget made it, or tuned now with <paramref name="policy"/> in <paramref name="budget"/> and recorded,
    /// so that a later export or <c>Get</c> recalls it. One line on stderr says which.</summary>
    static Chosen Tuned(Computation c, string policy, string budget, string? records, Io io)
    {
        using var tuner = Tuner.Open(records, new TunerOptions { Policy = policy, Budget = budget });
        var kernel = tuner.Get(c);
        var chosen = new Chosen(kernel.Kernel.Nest, kernel.Recalled ? "recalled" : "tuned", kernel.Record, tuner.RecordsPath);
        io.Stderr.WriteLine(kernel.Recalled
            ? $"recalled {c} from the tuning records in {tuner.RecordsPath}: {kernel.Schedule}"
            : FormattableString.Invariant($"tuned {c} with {kernel.Record.Method} ({policy}, budget {budget}): {kernel.Schedule} at {kernel.Gflops:F1} GFLOPS, recorded in {tuner.RecordsPath}"));
        return chosen;
    }

    /// <summary>The schedule exported and where it came from: <c>given</c> (<c>--schedule</c>), <c>unscheduled</c>, or with
    /// <c>--policy</c> <c>recalled</c> from <paramref name="Records"/> or <c>tuned</c> and recorded there (<paramref name="Record"/>).</summary>
    sealed record Chosen(Nest Nest, string From, TuningRecord? Record = null, string? Records = null)
    {
        /// <summary>The record and its file for <c>--json</c> (null without <c>--policy</c>).</summary>
        public JsonObject? RecordJson() => Record is null ? null : new JsonObject
        {
            ["records"] = Records,
            ["method"] = Record.Method,
            ["budget"] = Record.Budget,
            ["gflops"] = Record.Gflops,
            ["tuned_at"] = Record.TunedAt.ToString("O", CultureInfo.InvariantCulture),
        };

        /// <summary>A line for the human output saying whether the schedule was recalled or tuned (null without
        /// <c>--policy</c>).</summary>
        public string? Describe() => Record is null ? null : From == "recalled"
            ? FormattableString.Invariant($"recalled from the tuning records in {Records} (tuned with {Record.Method}, budget {Record.Budget}, at {Record.Gflops:F1} GFLOPS, {Record.TunedAt:yyyy-MM-dd HH:mm} UTC)")
            : FormattableString.Invariant($"tuned now with {Record.Method} (budget {Record.Budget}) at {Record.Gflops:F1} GFLOPS, and recorded in {Records}");
    }
}
