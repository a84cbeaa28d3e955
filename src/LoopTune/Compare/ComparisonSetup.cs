using LoopTune.Search;

namespace LoopTune.Compare;

/// <summary>How a comparison was run, for the header of its summary.</summary>
/// <param name="Dataset">The dataset's name.</param>
/// <param name="Split">"test" or "train".</param>
/// <param name="Budget">The budget of each search.</param>
/// <param name="Seed">The seed of every search.</param>
/// <param name="Evaluator">One line on the evaluator (cold per search, or a shared store).</param>
/// <param name="Timing">One line on how the results were re-timed.</param>
/// <param name="Machine">The machine (<see cref="Measure.PeakCache.MachineKey"/>).</param>
/// <param name="Info">The machine's description (<see cref="Measure.MachineInfo"/>) when the comparison ran here.</param>
/// <param name="Space">The action space of the searches (a policy acts in its own, named in results.csv).</param>
/// <param name="Threads">The threads every schedule and library ran on (<see cref="Jit.RunThreads"/>).</param>
public sealed record ComparisonSetup(string Dataset, string Split, SearchBudget Budget, int Seed, string Evaluator, string Timing, string Machine,
    Measure.MachineInfo? Info = null, string Space = "tile", int Threads = 1)
{
    /// <summary>"one pinned core", or "2 threads on cores given to it alone" for a comparison at N threads.</summary>
    string Cores => Threads == 1 ? "one pinned core" : $"{Threads} threads (each schedule with an outer loop made parallel, each library given {Threads} threads, timed in turns)";

    /// <summary>The report's lines on the machine: its description, and a line per library that runs below its vectors
    /// (<see cref="Measure.MachineInfo.LibraryNote"/>), or just the key.</summary>
    public IEnumerable<string> MachineLines()
    {
        if (Info is null)
        {
            yield return $"- Machine: {Machine}, {Cores}.";
            yield break;
        }
        yield return $"- Machine: {Info.Describe()}; {Cores}. Key: {Info.Key}.";
        foreach (var l in Info.Libraries.Where(l => l.Available))
            yield return $"- {l.Key}: {l.Kernels ?? "kernels unknown"}{(l.VectorBits is int b ? $" ({b}-bit)" : "")}" + (Info.LibraryNote(l.Key) is { } note ? $" **{note}**" : "");
    }
}
