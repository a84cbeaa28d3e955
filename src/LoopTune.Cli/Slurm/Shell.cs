namespace LoopTune.Cli.Slurm;

/// <summary>Bash quoting.</summary>
static class Shell
{
    /// <summary><paramref name="word"/> as one bash word that expands to exactly it: as is when it has only characters bash
    /// gives no meaning to, else in single quotes (a quote inside becomes <c>'\''</c>). Bash words cannot hold NUL.</summary>
    public static string Quote(string word) =>
        word.Contains('\0') ? throw new LoopTuneException("a command word holds a NUL character, which no shell can pass on")
        : word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "_-+=./:,@%".Contains(c)) ? word
        : "'" + word.Replace("'", @"'\''", StringComparison.Ordinal) + "'";

    /// <summary>The words as a bash array literal, <c>(w1 w2 ...)</c>.</summary>
    public static string Array(IEnumerable<string> words) => "(" + string.Join(' ', words.Select(Quote)) + ")";
}
