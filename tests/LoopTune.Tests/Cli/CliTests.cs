using System.Text.Json.Nodes;
using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Cli;

/// <summary>The looptune command in-process: exit codes, errors on bad input, and the --json contract.</summary>
[Trait("Category", "Integration")]
public sealed class CliTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => TestHome.Run(args);

    [Fact]
    public void HelpListsTheCommands()
    {
        var (code, output, _) = Run("--help");
        Assert.Equal(0, code);
        foreach (var command in new[] { "run", "peak", "bench", "demo" }) Assert.Contains(command, output);
    }

    [Theory]
    [InlineData("run", "mm 2 2")]
    [InlineData("run", "C[m,n] += A[m,k] * B[k,n] m=4 n=4")]
    [InlineData("run", "X[m] += ")]
    public void BadSpecExitsWithTwoAndPointsAtIt(params string[] args)
    {
        var (code, output, err) = Run(args);
        Assert.Equal(2, code);
        Assert.Contains("bad spec", err);
        Assert.Contains("^", err);
        Assert.Equal("", output);
    }

    [Fact]
    public void IllegalActionNamesTheStep()
    {
        var (code, _, err) = Run("run", "mm 8 8 8", "--actions", "down,down,down");
        Assert.Equal(2, code);
        Assert.Contains("step 3", err);
        Assert.Contains("down", err);
        Assert.Contains("innermost", err);
    }

    [Fact]
    public void UnknownActionIsBadInput()
    {
        var (code, _, err) = Run("run", "mm 8 8 8", "--actions", "split_3");
        Assert.Equal(2, code);
        Assert.Contains("unknown action 'split_3'", err);
    }

    [Theory]
    [InlineData("run")]
    [InlineData("run", "mm 4 4 4", "--bogus")]
    [InlineData("frobnicate")]
    [InlineData("demo", "--size", "3")]
    [InlineData("demo", "--size", "many")]
    public void BadCommandLinesExitWithTwo(params string[] args) => Assert.Equal(2, Run(args).Code);

    [Theory]
    [InlineData("0")]
    [InlineData("-3")]
    [InlineData("9999")]
    public void RunRefusesAThreadCountOutsideTheCores(string threads)
    {
        var (code, _, err) = Run("run", "mm 8 8 8", "--schedule", "m:8p n:8 k:8", "--threads", threads, "--quick", "--no-peers");
        Assert.Equal(2, code);
        Assert.Contains($"threads must be from 1 to {LoopTune.Jit.ThreadCountError.Max}, the cores this process may use; got {threads}", err);
    }

    [Fact]
    public void RunVerifiesAParallelScheduleAndRefusesAnIllegalOne()
    {
        var (code, output, err) = Run("run", "mm 24 16 8", "--schedule", "m:6p k:8 m:4u n:16v", "--threads", "1", "--json", "--quick", "--no-peers");
        Assert.True(code == 0, err);
        var json = System.Text.Json.Nodes.JsonNode.Parse(output)!;
        Assert.True(json["verified"]!.GetValue<bool>());
        Assert.Equal(">m:6p k:8 m:4u n:16v", json["schedule"]!.GetValue<string>());
        Assert.Equal(1, json["threads"]!.GetValue<int>());
        (code, _, err) = Run("run", "mm 24 16 8", "--schedule", "m:6 k:8p m:4u n:16v", "--quick", "--no-peers");
        Assert.Equal(2, code);
        Assert.Contains("parallel on loop k (position 1): 'k' is a reduction variable", err);
    }

    [Fact]
    public void RunJsonHasTheContractedFields()
    {
        var (code, output, err) = Run("run", "mm 33 17 9", "--actions", "down,swap_down,split_16,down,vectorize", "--json", "--quick", "--no-peers");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!.AsObject();
        Assert.True(json["verified"]!.GetValue<bool>());
        Assert.True(json["gflops"]!.GetValue<double>() > 0);
        Assert.True(json["compile_ms"]!.GetValue<double>() > 0);
        Assert.True(json["peak_gflops"]!.GetValue<double>() > 0);
        Assert.Equal("m:33 k:9 n:1+1 >n:16v", json["schedule"]!.GetValue<string>());
        var peers = json["peers"]!.AsObject();
        foreach (var key in new[] { "openblas", "blis", "onednn", "onnxruntime" })
        {
            Assert.True(peers.ContainsKey(key), $"peers lacks {key}");
            Assert.Null(peers[key]); // --no-peers: reported, not measured
        }
    }

    [Fact]
    public void RunMeasuresAvailablePeersOnAMatmul()
    {
        var (code, output, err) = Run("run", "mm 16 16 16", "--json", "--quick");
        Assert.True(code == 0, err);
        var peers = JsonNode.Parse(output)!["peers"]!.AsObject();
        // ONNX Runtime too: its one-node MatMul, checked against the reference, then timed
        foreach (var peer in LoopTune.Measure.Peers.All.Append<LoopTune.Measure.NativePeer>(LoopTune.Measure.OnnxRuntimePeer.Instance))
            Assert.Equal(peer.Available, peers[peer.Key] is not null);
        // a problem this small is never sliced: every library's figure is of the whole
        Assert.All(JsonNode.Parse(output)!["peer_estimated"]!.AsObject(), p => Assert.False(p.Value!.GetValue<bool>()));
    }

    [Fact]
    public void RunListsTheConvolutionPeersWithGflopsOrAReason()
    {
        var (code, output, err) = Run("run", "conv 8 10 10 8 3 3", "--json", "--quick");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!;
        var peers = json["peers"]!.AsObject();
        var problems = json["peer_problems"]!.AsObject();
        Assert.Equal(["onednn_conv", "im2col_openblas", "onnxruntime"], peers.Select(p => p.Key));
        foreach (var peer in LoopTune.Measure.Peers.Convolution.Append<LoopTune.Measure.NativePeer>(LoopTune.Measure.OnnxRuntimePeer.Instance))
        {
            if (peer.Available)
            {
                Assert.True(peers[peer.Key]?.GetValue<double>() > 0, $"{peer.Key}: {problems[peer.Key]}");
                Assert.Null(problems[peer.Key]);
            }
            else
            {
                Assert.Null(peers[peer.Key]);
                Assert.False(string.IsNullOrEmpty(problems[peer.Key]!.GetValue<string>()));
            }
        }
    }

    [Theory]
    [InlineData("conv 16 34 34 32 3 3")]
    [InlineData("conv 3 66 66 32 3 3")]
    [InlineData("conv 64 32 32 64 1 1")]
    [InlineData("conv 64 18 18 64 3 3")]   // 16-pixel rows: the register tile along them
    [InlineData("conv 64 12 56 64 3 3")]   // 54-pixel rows, a sum of 576 steps over 540 pixels: the tile along the channels
    [InlineData("conv 2 9 7 3 3 3")]
    [InlineData("conv 8 14 14 32 3 3 16")]
    [InlineData("conv 3 9 11 64 3 3 16")]
    public void BenchConvolutionHandSchedulesFitTheirShapesAndVerify(string spec)
    {
        Assert.Contains("conv 16 34 34 32 3 3", LoopTune.Cli.Commands.BenchCommand.ConvSpecs);
        var c = LoopTune.Ir.Computation.Parse(spec);
        var nest = LoopTune.Cli.Commands.BenchCommand.ConvHandSchedule(c);
        Assert.Equal(c, nest.Computation);
        if (spec == "conv 64 12 56 64 3 3") Assert.Equal("f", c.Vars[nest[^1].Var]);
        if (spec == "conv 64 18 18 64 3 3") Assert.Equal("w", c.Vars[nest[^1].Var]); // 16 pixels: whole vectors of 4, 8 or 16
        var verification = LoopTune.Jit.Verifier.Verify(LoopTune.Jit.Kernel.Compile(nest));
        Assert.True(verification.Passed, $"{nest.ScheduleKey}: {verification.Problem}");
    }

    [Fact]
    public void Tune_hints_at_the_blocked_layout_for_a_plain_convolution_only()
    {
        var plain = LoopTune.Ir.Computation.Parse("conv 64 56 56 64 3 3");
        long e = LoopTune.Models.ConvOp.Block(64);
        string? hint = LoopTune.Cli.Commands.TuneCommand.BlockedHint(plain);
        if (e == 0) Assert.Null(hint); // no block of this machine's vectors divides 64
        else
        {
            Assert.Contains($"--spec \"conv 64 56 56 64 3 3 {e}\"", hint);
            Assert.Equal(plain.AsConv(), LoopTune.Ir.Computation.Parse($"conv 64 56 56 64 3 3 {e}").Convolution);
        }
        Assert.Null(LoopTune.Cli.Commands.TuneCommand.BlockedHint(LoopTune.Ir.Computation.Parse("conv 64 56 56 64 3 3 16")));
        Assert.Null(LoopTune.Cli.Commands.TuneCommand.BlockedHint(LoopTune.Ir.Computation.Parse("mm 64 64 64")));
        Assert.Null(LoopTune.Cli.Commands.TuneCommand.BlockedHint(LoopTune.Ir.Computation.Parse("conv 3 9 9 5 3 3"))); // 5 filters: no block
    }

    [Theory]
    [InlineData(64, 64, 64)]
    [InlineData(257, 129, 67)]
    [InlineData(97, 131, 211)]
    [InlineData(7, 17, 5)]
    [InlineData(4, 32, 3)]
    public void BenchMatmulHandSchedulesVerify(int m, int n, int k)
    {
        var nest = LoopTune.Cli.Commands.BenchCommand.HandSchedule(m, n, k);
        Assert.Equal(LoopTune.Ir.Computation.Matmul(m, n, k), nest.Computation);
        var verification = LoopTune.Jit.Verifier.Verify(LoopTune.Jit.Kernel.Compile(nest));
        Assert.True(verification.Passed, $"{nest.ScheduleKey}: {verification.Problem}");
    }

    [Fact]
    public void RunPrintsTheTreeAndTheCheck()
    {
        var (code, output, err) = Run("run", "conv 2 6 7 3 3 2", "--actions", "down,down,swap_down,swap_down,swap_down,vectorize", "--quick", "--no-peers");
        Assert.True(code == 0, err);
        Assert.Contains("for w in 6 vectorize", output);
        Assert.Contains("verified yes", output);
        Assert.Contains("GFLOPS", output);
    }

    [Fact]
    public void DemoWalksTheGoodScheduleAndEndsNextToThePeers()
    {
        var (code, output, err) = Run("demo", "--size", "32");
        Assert.True(code == 0, err);
        Assert.Contains("C[m,n] += A[m,k] * B[k,n]", output);
        var walk = LoopTune.Ir.Actions.ParseList(LoopTune.Cli.Commands.DemoCommand.GoodSchedule); // this machine's vector width
        Assert.Contains($"{walk.Length}. {walk[^1].Name}", output);
        Assert.Contains("final schedule", output);
        Assert.DoesNotContain("WRONG", output);

        (code, output, err) = Run("demo", "--size", "48", "--json");
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(output)!;
        Assert.Equal(walk.Length + 1, json["steps"]!.AsArray().Count);
        Assert.All(json["steps"]!.AsArray(), s => Assert.True(s!["verified"]!.GetValue<bool>()));
        // the walk ends in this machine's register tile
        var tile = LoopTune.Measure.RegisterTile.For(LoopTune.Measure.Machine.Current);
        Assert.EndsWith($"m:{tile.WalkRows}u >n:{tile.Width}v", json["schedule"]!.GetValue<string>());
    }

    [Fact]
    public void PeakJsonIsOneNumber()
    {
        var (code, output, _) = Run("peak", "--json");
        Assert.Equal(0, code);
        var json = JsonNode.Parse(output)!;
        double gflops = json["gflops"]!.GetValue<double>();
        Assert.True(gflops > 0 && double.IsFinite(gflops));
        // the FMA timing measured with it: at least one pipe, a latency of some cycles, a clock
        Assert.True(json["fma_pipes"]!.GetValue<int>() >= 1);
        Assert.InRange(json["fma_latency_cycles"]!.GetValue<double>(), 0.5, 50);
        Assert.True(json["clock_ghz"]!.GetValue<double>() > 0);
    }
}
