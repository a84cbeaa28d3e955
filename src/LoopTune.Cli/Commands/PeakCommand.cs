using System.CommandLine;
using System.Text.Json.Nodes;
using LoopTune.Measure;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune peak [--json]</c>: the FMA peak of one core, measured now by a microkernel we emit, and remembered.</summary>
static class PeakCommand
{
    public static Command Create(Io io)
    {
        var json = Options.Json();
        var command = new Command("peak", "Measure the single-core fused multiply-add peak (GFLOPS) with an emitted microkernel, and remember it.") { json };
        command.SetAction(p => io.Guard(() =>
        {
            double gflops = Peak.MeasureGflops(MeasureOptions.Thorough);
            PeakCache.Remember(gflops);
            if (p.GetValue(json))
                io.Stdout.WriteLine(new JsonObject { ["gflops"] = gflops, ["machine"] = PeakCache.MachineKey }.ToJsonString(Options.JsonStyle));
            else
                io.Out.MarkupLineInterpolated($"peak: [bold]{gflops:F1} GFLOPS[/] on one core ({PeakCache.MachineKey})");
            return Program.Ok;
        }));
        return command;
    }
}
