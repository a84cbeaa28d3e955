using System.CommandLine;
using System.Text.Json;
using LoopTune.Jit;

namespace LoopTune.Cli.Commands;

static class Options
{
    public static Option<bool> Json() => new("--json") { Description = "Print one JSON object instead of tables." };

    /// <summary>--vector-bits: one width for the whole command (the JIT, the machine's description and key, the peak, and
    /// oneDNN's instruction set), so that this machine tunes as a machine of that width would.</summary>
    public static Option<int?> VectorBits() => new("--vector-bits")
    {
        Description = $"Use vectors of at most this many bits (this machine accelerates {string.Join(", ", LoopTune.Jit.JitOptions.AcceleratedBits)}): kernels, the machine's description and peak, and oneDNN's instruction set follow it. Default: the widest.",
    };

    /// <summary>Applies --vector-bits when given; a width the machine lacks is bad input.</summary>
    public static void ApplyVectorBits(ParseResult p, Option<int?> option)
    {
        if (p.GetValue(option) is int bits) LoopTune.Jit.JitOptions.LimitVectorBits(bits);
    }

    /// <summary>--threads N|all (default 1): <paramref name="what"/> the option sets, then the range.</summary>
    public static Option<string> Threads(string what) => new("--threads")
    {
        Description = $"{what}: 1 to {ThreadCountError.Max} (the cores this process may use), or all. Default: 1.",
        DefaultValueFactory = _ => "1",
    };

    /// <summary>The thread count of --threads: a number from 1 to the cores this process may use, or <c>all</c> for them all;
    /// anything else is bad input naming the option and the range.</summary>
    public static int ThreadCount(string? text)
    {
        string t = (text ?? "").Trim();
        if (t.Equals("all", StringComparison.OrdinalIgnoreCase)) return ThreadCountError.Max;
        if (!int.TryParse(t, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int n))
            throw new LoopTuneException($"--threads must be a number from 1 to {ThreadCountError.Max} (the cores this process may use) or 'all'; got '{text}'");
        return ThreadCountError.Check(n);
    }

    /// <summary>Makes --threads the count of the command's kernels, evaluators and peers (<see cref="RunThreads.Use"/>);
    /// returns it.</summary>
    public static int ApplyThreads(ParseResult p, Option<string> option)
    {
        int n = ThreadCount(p.GetValue(option));
        RunThreads.Use(n);
        return n;
    }

    /// <summary>A comma-separated list of thread counts (<c>1,2</c>, <c>1,all</c>), each as <see cref="ThreadCount"/> takes
    /// it, in the order given, without repeats.</summary>
    public static int[] ThreadCounts(string? text) =>
        [.. (text ?? "").Split(',', StringSplitOptions.TrimEntries).Select(ThreadCount).Distinct()];

    /// <summary>Ctrl+C and SIGTERM (kill, SLURM's scancel) cancel <paramref name="cancel"/> instead of ending the process,
    /// with a line on stderr ending in <paramref name="then"/>; until the result is disposed.</summary>
    public static IDisposable StopOnSignal(Io io, CancellationTokenSource cancel, string then) =>
        StopOnSignal(io, cancel, $"stopping after this iteration (a checkpoint will be saved){then}", _ => { });

    /// <summary>The exit codes of a command stopped by Ctrl+C (SIGINT) or SIGTERM: 128 plus the signal's number, as a
    /// shell reports a process the signal ended.</summary>
    public const int StoppedBySigint = 130, StoppedBySigterm = 143;

    /// <summary>Ctrl+C and SIGTERM cancel <paramref name="cancel"/> instead of ending the process, with the line
    /// <paramref name="stopping"/> on stderr; <paramref name="heard"/> receives the exit code the command should end with
    /// (<see cref="StoppedBySigint"/> or <see cref="StoppedBySigterm"/>); until the result is disposed.</summary>
    public static IDisposable StopOnSignal(Io io, CancellationTokenSource cancel, string stopping, Action<int> heard)
    {
        void Stop(string signal, int code)
        {
            heard(code);
            cancel.Cancel();
            io.Stderr.WriteLine($"{signal}{stopping}");
        }
        ConsoleCancelEventHandler stop = (_, e) =>
        {
            e.Cancel = true;
            Stop("", StoppedBySigint);
        };
        Console.CancelKeyPress += stop;
        var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true;
            Stop("SIGTERM: ", StoppedBySigterm);
        });
        return new Unhook(() =>
        {
            Console.CancelKeyPress -= stop;
            term.Dispose();
        });
    }

    /// <summary>--resume of a journaled run (<see cref="RunJournal"/>), in <c>train --resume</c>'s words.</summary>
    public static Option<bool> Resume(string more = "") => new("--resume")
    {
        Description = $"Continue the run in --out from its journal ({RunJournal.FileName}: the rows it finished before a stop or a kill are kept, not run again); the same settings, on the same machine.{more}",
    };

    /// <summary>The command line of <paramref name="p"/> that continues its run: its words (quoted for bash), with --resume.</summary>
    public static string ResumeCommand(ParseResult p, Option<bool> resume) =>
        string.Join(' ', ["looptune", .. p.Tokens.Select(t => Slurm.Shell.Quote(t.Value)), .. p.GetValue(resume) ? Array.Empty<string>() : ["--resume"]]);

    /// <summary>What every journaled run must share with the journal it resumes, beyond its own settings: the threads, the
    /// vector width and the machine.</summary>
    public static Dictionary<string, string> JournalSettings(IReadOnlyDictionary<string, string> own) => new(own)
    {
        ["--threads"] = RunThreads.Default.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["--vector-bits"] = LoopTune.Jit.JitOptions.Default.VectorBits.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["machine"] = LoopTune.Measure.PeakCache.MachineKey,
    };

    /// <summary>Runs <paramref name="run"/>, a journaled run of <paramref name="total"/> rows, with Ctrl+C and SIGTERM
    /// cancelling its token (it stops between two rows; <paramref name="abandoned"/> says what becomes of the one under
    /// way); a stop is a <see cref="RunStopped"/> saying what the journal kept and that <paramref name="again"/> resumes it.</summary>
    public static T Journaled<T>(Io io, RunJournal journal, int total, string again, string abandoned, Func<CancellationToken, T> run)
    {
        if (journal.Resumed) io.Stderr.WriteLine($"resuming: {journal.Kept.Count} of {total} rows kept in {journal.Path}; running the other {total - journal.Kept.Count}");
        using var cancel = new CancellationTokenSource();
        int code = Program.Failure;
        using var signals = StopOnSignal(io, cancel, $"stopping: {abandoned}, the rows finished are kept", c => code = c);
        try { return run(cancel.Token); }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            throw new RunStopped($"kept {journal.Count} of {total} rows in {journal.Path}; resume with: {again}", code);
        }
    }

    sealed class Unhook(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    public static readonly JsonSerializerOptions JsonStyle = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
