using System.CommandLine;
using System.Text.Json.Nodes;
using LoopTune.Measure;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune peak [--json]</c>: the FMA peak of one core, measured now by a microkernel we emit, and remembered;
/// the FMA timing derived from it (clock, latency, pipes: <see cref="FmaTiming"/>) is measured again with it.</summary>
static class PeakCommand
{
    public static Command Create(Io io)
    {
        var json = Options.Json();
        var command = new Command("peak", "Measure the single-core fused multiply-add peak (GFLOPS) with an emitted microkernel, and the FMA clock, latency and pipes with it, and remember them (what `looptune machine` and every report then use).") { json };
        command.SetAction(p => io.Guard(() =>
        {
            double gflops = Peak.MeasureGflops(MeasureOptions.Thorough);
            PeakCache.Replace(gflops);
            var fma = Machine.Current.Fma;
            if (p.GetValue(json))
                io.Stdout.WriteLine(new JsonObject
                {
                    ["gflops"] = gflops, ["fma_pipes"] = fma.Pipes, ["fma_latency_cycles"] = Math.Round(fma.LatencyCycles, 2),
                    ["clock_ghz"] = Math.Round(fma.ClockGhz, 3), ["machine"] = PeakCache.MachineKey,
                }.ToJsonString(Options.JsonStyle));
            else
                io.Out.MarkupLineInterpolated($"peak: [bold]{gflops:F1} GFLOPS[/] on one core; {fma.Pipes} FMA pipe(s), latency {fma.LatencyCycles:F1} cycles at {fma.ClockGhz:F2} GHz ({PeakCache.MachineKey})");
            return Program.Ok;
        }));
        return command;
    }
}
