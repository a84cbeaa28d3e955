using System.CommandLine;
using LoopTune.Cli.Commands;
using Spectre.Console;

namespace LoopTune.Cli;

/// <summary>The <c>looptune</c> command. Exit codes: 0 ok, 2 bad input, 1 internal failure.</summary>
public static class Program
{
    public const int Ok = 0, Failure = 1, BadInput = 2;

    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the command line with the given writers (tests pass their own).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var io = new Io(stdout, stderr);
        using var warnings = Warnings.To(stderr); // a damaged cache moved aside and rebuilt, said on this command's stderr
        var root = new RootCommand("LoopTune for .NET: schedule tensor loop nests, JIT them to machine code, measure them.")
        {
            MachineCommand.Create(io), RunCommand.Create(io), PeakCommand.Create(io), BenchCommand.Create(io), DemoCommand.Create(io),
            DatasetCommand.Create(io), StoreStressCommand.Create(io),
            SearchCommand.Create(io), CompareSearchesCommand.Create(io), CompareLibrariesCommand.Create(io), TrainCommand.Create(io), AdaptCommand.Create(io), TuneCommand.Create(io), ModelCommand.Create(io), RecordsCommand.Create(io), CostModelCommand.Create(io),
            SiloCommand.Create(io), SlurmCommand.Create(io), ExportCommand.Create(io), LearnerLimitCommand.Create(io),
        };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var e in parsed.Errors) stderr.WriteLine($"error: {e.Message}");
            stderr.WriteLine("Run 'looptune --help' for usage.");
            return BadInput;
        }
        return parsed.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
    }
}

/// <summary>Where a command writes: <see cref="Out"/> for tables and trees, <see cref="Stdout"/> for JSON, <see cref="Stderr"/> for errors.</summary>
public sealed class Io(TextWriter stdout, TextWriter stderr)
{
    public TextWriter Stdout { get; } = stdout;
    public TextWriter Stderr { get; } = stderr;
    public IAnsiConsole Out { get; } = CreateConsole(stdout);

    static IAnsiConsole CreateConsole(TextWriter stdout)
    {
        bool terminal = stdout == Console.Out && !Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(stdout),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        if (!terminal) console.Profile.Width = 160; // files and pipes get whole lines, not an 80-column wrap
        return console;
    }

    /// <summary>Runs a command body, turning LoopTune's bad-input errors into exit code 2 and anything else into 1.</summary>
    public int Guard(Func<int> body)
    {
        try { return body(); }
        catch (LoopTuneException e)
        {
            Stderr.WriteLine($"error: {e.Message}");
            return Program.BadInput;
        }
        catch (RunStopped e)
        {
            Stderr.WriteLine(e.Message);
            return e.ExitCode;
        }
        catch (Exception e)
        {
            Stderr.WriteLine($"internal error: {e}");
            return Program.Failure;
        }
    }
}

/// <summary>A command stopped by a signal (<see cref="Commands.Options.StopOnSignal(Io, CancellationTokenSource, string, Action{int})"/>)
/// after keeping what it finished: <see cref="Exception.Message"/> says what was kept and how to resume, and the command
/// ends with <see cref="ExitCode"/> (130 for Ctrl+C, 143 for SIGTERM).</summary>
sealed class RunStopped(string message, int exitCode) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
