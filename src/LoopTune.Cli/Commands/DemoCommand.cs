using System.CommandLine;
using System.Text.Json.Nodes;
using LoopTune.Ir;
using LoopTune.Jit;
using LoopTune.Learning;
using LoopTune.Measure;
using LoopTune.Search;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune demo</c>: edits a matmul schedule one action at a time, compiling, verifying and timing every
/// step, and ends next to the peak and the peers.</summary>
static class DemoCommand
{
    /// <summary>The walk for this machine: a register tile sized from its FMA pipes, latency and registers
    /// (<see cref="RegisterTile.MatmulWalk"/>: m'(rows, unrolled) by n'(width, vectorized); 8 x 32 on a Zen 5, 6 x 16 on an
    /// AVX2 machine with 16 registers, 4 x 32 on a Zen 4).</summary>
    public static string GoodSchedule => RegisterTile.For(Machine.Current).MatmulWalk();

    public static Command Create(Io io)
    {
        var size = new Option<int>("--size") { Description = "Matrix size N for mm N N N.", DefaultValueFactory = _ => 256 };
        var json = Options.Json();
        var command = new Command("demo", "Show a matmul schedule being edited, compiled, verified and measured against OpenBLAS.") { size, json };
        command.SetAction(p => io.Guard(() =>
        {
            int n = p.GetValue(size);
            if (n < 32 || n > 2048) throw new LoopTuneException($"--size must be between 32 and 2048, not {n}");
            var nest = Nest.Initial(Computation.Matmul(n, n, n));
            bool asJson = p.GetValue(json);
            double peak = PeakCache.GetOrMeasure();
            var steps = new JsonArray();
            if (!asJson) io.Out.MarkupLineInterpolated($"[bold]mm {n} {n} {n}[/]: {nest.Computation.Statement}; peak of this core {peak:F1} GFLOPS\n");
            var actions = Actions.ParseList(GoodSchedule);
            for (int i = 0; i <= actions.Length; i++)
            {
                if (i > 0) nest = Transforms.Apply(nest, actions[i - 1]);
                var kernel = Kernel.Compile(nest);
                var check = Verifier.Verify(kernel, seed: i + 1);
                var m = KernelTiming.Measure(kernel, MeasureOptions.Quick);
                peak = PeakCache.Checked(m.Gflops / kernel.Threads);
                string action = i == 0 ? "(start)" : actions[i - 1].Name;
                steps.Add(new JsonObject
                {
                    ["action"] = action, ["schedule"] = nest.Serialize(), ["verified"] = check.Passed,
                    ["gflops"] = m.Gflops, ["compile_ms"] = kernel.CompileTime.TotalMilliseconds,
                });
                if (!asJson)
                {
                    io.Out.MarkupLineInterpolated($"[yellow]{i,2}. {action}[/]  compiled in {kernel.CompileTime.TotalMilliseconds:F2} ms, {(check.Passed ? "verified" : "WRONG: " + check.Problem)}, [bold]{m.Gflops:F1} GFLOPS[/] ({m.Gflops / peak:P0} of peak)");
                    io.Out.Write(new Text(Indent(nest.ToTree())));
                }
                if (!check.Passed) { io.Stderr.WriteLine($"internal error: step {i} produced a wrong kernel: {check.Problem}"); return Program.Failure; }
            }
            var final = KernelReport.Run(nest, MeasureOptions.Default, peakGflops: peak);
            if (!asJson)
            {
                io.Out.MarkupLineInterpolated($"\nfinal schedule: [bold]{final.Gflops:F1} GFLOPS[/], {final.FractionOfPeak:P0} of peak");
                io.Out.Write(RunCommand.PeerTable(final.Gflops, final.Peers));
            }

            // then the policy tunes the same matmul on its own, within a second
            JsonObject? tuned = null;
            bool policyOk = true;
            if (File.Exists(Policy.DefaultFile("default")))
            {
                var pol = Policy.Load("default");
                var search = TuneCommand.Method(pol, "1s", 1, out var limit);
                var (r, e, policySeconds, measureSeconds) = TuneCommand.Tune(search, pol, nest.Computation, limit, MeasureOptions.Default, true);
                policyOk = e.Verification.Passed;
                if (asJson)
                {
                    tuned = RunCommand.ToJson(e, r.Actions);
                    // as tune --json: the actions replay to the search's best, the schedule is the answer (method)
                    tuned["method"] = PolicyTuning.MethodOf(r, e.Nest, e.Kernel.Threads);
                    tuned["search_schedule"] = r.Best.Serialize();
                    tuned["policy_seconds"] = policySeconds;
                    tuned["measure_seconds"] = measureSeconds;
                }
                else
                {
                    io.Out.MarkupLine("\n[bold]The policy[/] tunes the same matmul from scratch: its greedy rollout, then a search guided by its choices, within a second:\n");
                    TuneCommand.Print(io.Out, e, r, pol, policySeconds, measureSeconds);
                }
            }
            else if (!asJson) io.Out.MarkupLineInterpolated($"\n(no shipped policy at {Policy.DefaultPath}: train one with 'looptune train')");
            if (asJson)
            {
                var o = RunCommand.ToJson(final, actions);
                o["steps"] = steps;
                o["policy"] = tuned;
                io.Stdout.WriteLine(o.ToJsonString(Options.JsonStyle));
            }
            return final.Verification.Passed && policyOk ? Program.Ok : Program.Failure;
        }));
        return command;
    }

    static string Indent(string s) => string.Concat(s.Split('\n').Where(l => l.Length > 0).Select(l => "      " + l + "\n"));
}
