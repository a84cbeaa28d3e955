using System.CommandLine;
using LoopTune.Measure;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune machine [--vector-bits N] [--json]</c>: what tuning depends on here (<see cref="MachineInfo"/>): the
/// processor, vector width and registers, FMA pipes and latency and the peak (measured once and remembered), the caches,
/// and which kernels OpenBLAS, BLIS and oneDNN run. The same block goes into every report.</summary>
static class MachineCommand
{
    public static Command Create(Io io)
    {
        var bits = Options.VectorBits();
        var json = Options.Json();
        var command = new Command("machine", "Describe this machine as tuning sees it: vectors, registers, FMA pipes (measured), peak, caches, and the kernels the peer libraries run. The measured figures are remembered; `looptune peak` measures them again.") { bits, json };
        command.SetAction(p => io.Guard(() =>
        {
            Options.ApplyVectorBits(p, bits);
            var m = Machine.Current;
            if (p.GetValue(json)) io.Stdout.WriteLine(m.ToJson().ToJsonString(Options.JsonStyle));
            else Print(io.Out, m);
            return Program.Ok;
        }));
        return command;
    }

    static void Print(IAnsiConsole o, MachineInfo m)
    {
        var t = new Table().Border(TableBorder.None).HideHeaders().AddColumn("").AddColumn("");
        t.AddRow("cpu", Markup.Escape($"{m.Cpu.Model} ({m.Cpu.Vendor}, family {m.Cpu.Family}, model {m.Cpu.ModelNumber}), {m.Cpus} cpus, {m.Cpu.Isa}"));
        t.AddRow("cores", Markup.Escape($"this process may use {CpuTopology.Current.Describe()} (--threads up to {CpuTopology.Current.Cpus})"));
        t.AddRow("vectors", $"{m.VectorBits}-bit{(m.VectorBits < m.CpuVectorBits ? $" (the CPU has {m.CpuVectorBits}: limited by --vector-bits or the runtime's settings)" : "")}, {m.VectorRegisters} registers");
        t.AddRow("fma", $"{m.FmaPipes} pipe(s) of {m.VectorBits}-bit FMAs, latency {m.Fma.LatencyCycles:F1} cycles at {m.Fma.ClockGhz:F2} GHz: a register tile needs {m.Fma.Accumulators} independent accumulators");
        t.AddRow("peak", $"[bold]{m.PeakGflops:F1} GFLOPS[/] on one core");
        t.AddRow("caches", $"L1d {Kib(m.Caches.L1dKib)}, L2 {Kib(m.Caches.L2Kib)}, L3 {Kib(m.Caches.L3Kib)} (from {m.Caches.Source})");
        foreach (var l in m.Libraries)
            t.AddRow(l.Key, l.Available
                ? Markup.Escape($"{l.Kernels ?? "kernels unknown"}{(l.VectorBits is int b ? $" ({b}-bit)" : "")}{(l.ForcedBy is { } f ? $", set by {f}" : "")}")
                  + (m.LibraryNote(l.Key) is { } note ? $"  [yellow]{Markup.Escape(note)}[/]" : "")
                : "[grey]missing[/]");
        t.AddRow("key", Markup.Escape(m.Key));
        o.Write(t);
    }

    static string Kib(int? k) => k is int x ? x >= 4096 ? $"{x / 1024} MiB" : $"{x} KiB" : "unknown";
}
