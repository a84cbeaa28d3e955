using System.CommandLine;
using System.Text.Json;

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

    /// <summary>Ctrl+C and SIGTERM (kill, SLURM's scancel) cancel <paramref name="cancel"/> instead of ending the process,
    /// with a line on stderr ending in <paramref name="then"/>; until the result is disposed.</summary>
    public static IDisposable StopOnSignal(Io io, CancellationTokenSource cancel, string then)
    {
        ConsoleCancelEventHandler stop = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
            io.Stderr.WriteLine($"stopping after this iteration (a checkpoint will be saved){then}");
        };
        Console.CancelKeyPress += stop;
        var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true;
            cancel.Cancel();
            io.Stderr.WriteLine($"SIGTERM: stopping after this iteration (a checkpoint will be saved){then}");
        });
        return new Unhook(() =>
        {
            Console.CancelKeyPress -= stop;
            term.Dispose();
        });
    }

    sealed class Unhook(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    public static readonly JsonSerializerOptions JsonStyle = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
