using System.Diagnostics;

namespace LoopTune.Export;

/// <summary>The C compiler on this machine (<c>$CC</c>, else <c>gcc</c> on the PATH): whether it takes an ISA's flags, and a
/// build of exported sources into one shared library (what the tests and the measurements load).</summary>
public static class CCompiler
{
    /// <summary>The compiler command: <c>$CC</c> when set, else gcc.</summary>
    public static string Command => Environment.GetEnvironmentVariable("CC") is { Length: > 0 } cc ? cc : "gcc";

    /// <summary>True when the compiler runs at all.</summary>
    public static bool Available => Version is not null;

    /// <summary>The first line the compiler prints for <c>--version</c>, or null when it does not run (asked once).</summary>
    public static string? Version => version.Value;

    static readonly Lazy<string?> version = new(() =>
    {
        var (code, _, output) = RunWithOutput(Command, ["--version"], null);
        return code == 0 ? output.Split('\n')[0].Trim() : null;
    });

    /// <summary>Null when the compiler builds code using <paramref name="isa"/>'s intrinsics with its flags (and always for
    /// plain C, which needs no flag: a machine without a compiler may still write it); else why not (its error, or that
    /// it is missing).</summary>
    public static string? Refuses(Isa isa) => Refuses(isa, Command);

    /// <summary><see cref="Refuses(Isa)"/> for the compiler <paramref name="compiler"/>.</summary>
    public static string? Refuses(Isa isa, string compiler)
    {
        if (isa == Isa.Generic) return null;
        if (compiler == Command ? !Available : Run(compiler, ["--version"], null).Code != 0) return $"no C compiler: {compiler} does not run";
        var (code, error) = Run(compiler, [.. isa.CompilerFlags().Split(' '), "-x", "c", "-fsyntax-only", "-"],
            "#include <immintrin.h>\n" + string.Join("\n", isa.Macros().Select(m => $"#ifndef {m}\n#error {m} not defined\n#endif")) + "\n");
        return code == 0 ? null : $"{compiler} {isa.CompilerFlags()} fails: {error.Trim()}";
    }

    /// <summary>Compiles <paramref name="sources"/> into the shared library <paramref name="library"/> with
    /// <paramref name="flags"/> (besides -shared -fPIC); a failure is an exception carrying the compiler's messages.</summary>
    public static void SharedLibrary(IReadOnlyList<string> sources, string library, string flags) =>
        Compile([.. flags.Split(' ', StringSplitOptions.RemoveEmptyEntries), "-shared", "-fPIC", "-o", library, .. sources]);

    /// <summary>Runs the compiler with <paramref name="args"/>; a failure is an exception carrying its messages.</summary>
    public static void Compile(IReadOnlyList<string> args)
    {
        var (code, error) = Run(Command, args, null);
        if (code != 0) throw new InvalidOperationException($"{Command} {string.Join(" ", args.Take(12))} ... failed ({code}):\n{(error.Length > 4000 ? error[..4000] : error)}");
    }

    static (int Code, string Error) Run(string compiler, IReadOnlyList<string> args, string? input)
    {
        var (code, error, _) = RunWithOutput(compiler, args, input);
        return (code, error);
    }

    static (int Code, string Error, string Output) RunWithOutput(string compiler, IReadOnlyList<string> args, string? input)
    {
        var info = new ProcessStartInfo(compiler) { RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = input is not null, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(info)!;
            if (input is not null)
            {
                try
                {
                    p.StandardInput.Write(input);
                    p.StandardInput.Close();
                }
                catch (IOException) { } // it exited without reading its input: its exit code and messages say why
            }
            var error = p.StandardError.ReadToEndAsync();
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, error.Result, output);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message, "");
        }
    }
}
