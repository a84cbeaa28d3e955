using System.Text.Json.Nodes;
using LoopTune.Cli.Commands;
using LoopTune.Store;
using LoopTune.Tests.TestUtil;
using static LoopTune.Tests.Models.OnnxTestModels;

namespace LoopTune.Tests.Models;

/// <summary><c>looptune model</c> in-process on a small model written here (a strided, padded Conv, a Relu, a Conv, a
/// Flatten and a Gemm): every contraction tuned, checked against ONNX Runtime and timed next to it, the other nodes rows
/// with their reasons; and bad input.</summary>
public sealed class ModelCommandTests : IDisposable
{
    readonly TempFolder temp = new("looptune-model-cli");

    public void Dispose() => temp.Dispose();

    /// <summary>X [1,3,10,10] -> conv1 (4 filters 3x3, stride 2, pads 1, bias) [1,4,5,5] -> Relu -> conv2 (6 filters 3x3)
    /// [1,6,3,3] -> Flatten [1,54] -> Gemm (B [54,5], bias [5]) [1,5].</summary>
    static byte[] SmallModel() => Model(
        [
            Node("Conv", "conv1", ["X", "W1", "B1"], ["Y1"], Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1), Ints("kernel_shape", 3, 3)),
            Node("Relu", "relu", ["Y1"], ["R"]),
            Node("Conv", "conv2", ["R", "W2"], ["Y2"], Ints("kernel_shape", 3, 3)),
            Node("Flatten", "flatten", ["Y2"], ["F"], Int("axis", 1)),
            Node("Gemm", "fc", ["F", "B", "C"], ["Y"]),
        ],
        [Value("X", [1, 3, 10, 10])], [Value("Y", null)],
        [
            Floats("W1", [4, 3, 3, 3], Random(108, 1)), Floats("B1", [4], Random(4, 2)), Floats("W2", [6, 4, 3, 3], Random(216, 3)),
            Floats("B", [54, 5], Random(270, 4)), Floats("C", [5], Random(5, 5), raw: false),
        ]);

    [Fact]
    [Trait("Category", "Integration")]
    public void EveryContractionIsTunedVerifiedAndTimedNextToOnnxRuntimeAndTheReluIsARowWithItsReason()
    {
        var file = temp["small.onnx"];
        File.WriteAllBytes(file, SmallModel());
        var outDir = temp["report"];
        var (code, stdout, err) = TestHome.Run("model", file, "--budget", "0.2s", "--quick", "--json", "--out", outDir, "--db", temp["m.db"]);
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(stdout)!.AsObject();
        foreach (var key in new[] { "ops", "ops_seconds", "onnxruntime_ops_seconds", "machine" }) Assert.True(json.ContainsKey(key), key);
        var ops = json["ops"]!.AsArray().Select(o => o!.AsObject()).ToList();
        Assert.Equal(["conv1", "relu", "conv2", "flatten", "fc"], ops.Select(o => o["node"]!.GetValue<string>()));
        foreach (var o in ops)
            foreach (var key in new[] { "node", "op", "spec", "verified", "gflops", "seconds", "onnxruntime_gflops", "onednn_gflops", "schedule", "tuned", "reason" })
                Assert.True(o.ContainsKey(key), $"{o["node"]}: {key}");
        foreach (var o in ops.Where(o => o["op"]!.GetValue<string>() is "Conv" or "Gemm"))
        {
            Assert.True(o["tuned"]!.GetValue<bool>(), o.ToJsonString());
            Assert.True(o["verified"]!.GetValue<bool>(), o.ToJsonString());
            Assert.True(o["gflops"]!.GetValue<double>() > 0);
            Assert.True(o["seconds"]!.GetValue<double>() > 0);
            Assert.True(o["onnxruntime_gflops"]!.GetValue<double>() > 0, o.ToJsonString());
            Assert.True(o["max_error"]!.GetValue<double>() <= o["tolerance"]!.GetValue<double>());
            Assert.NotEmpty(o["schedule"]!.GetValue<string>());
            // oneDNN: a figure, or the reason there is none
            Assert.True(o["onednn_gflops"] is not null || o["onednn_note"] is not null, o.ToJsonString());
        }
        // conv1 has two lowerings, timed side by side with the Relu after it, as the pass runs them: the faster serves it
        var lowerings = new Dictionary<string, string>
        {
            ["direct"] = "O[f,h,w] += I[c,p,2*h+r,w+q] * W[f,c,r,p,q] f=4 h=5 w=5 c=3 p=2 r=3 q=2",
            ["columns"] = "C[m,n] += A[m,k] * B[k,n] m=4 n=25 k=27",
        };
        Assert.Equal(lowerings[ops[0]["lowering"]!.GetValue<string>()], ops[0]["spec"]!.GetValue<string>());
        Assert.Matches(@"^fastest of 2: direct [0-9.]+ ms, columns [0-9.]+ ms, each with its epilogue \(the Relu\)$", ops[0]["lowering_note"]!.GetValue<string>());
        // the GFLOPS count the conv's flops (2*4*5*5*3*3*3), not the phase-split contraction's zero taps (r=3 p=2 q=2)
        Assert.Equal(2.0 * 4 * 5 * 5 * 3 * 3 * 3, ops[0]["gflops"]!.GetValue<double>() * 1e9 * ops[0]["seconds"]!.GetValue<double>(), 1e-6 * 5400);
        var relu = ops[1];
        Assert.False(relu["tuned"]!.GetValue<bool>());
        Assert.Equal("Relu is not a contraction", relu["reason"]!.GetValue<string>());
        Assert.Null(relu["seconds"]);

        double sum = ops.Where(o => o["tuned"]!.GetValue<bool>()).Sum(o => o["seconds"]!.GetValue<double>());
        Assert.Equal(sum, json["ops_seconds"]!.GetValue<double>(), 1e-12);
        Assert.True(json["onnxruntime_ops_seconds"]!.GetValue<double>() > 0);
        Assert.NotNull(json["machine"]!["cpu"]);

        foreach (var f in new[] { ModelReport.Csv, ModelReport.Summary, ModelReport.Json, ModelReport.Chart })
            Assert.True(File.Exists(Path.Combine(outDir, f)), f);
        var csv = File.ReadAllLines(Path.Combine(outDir, ModelReport.Csv));
        Assert.Equal(6, csv.Length);
        var summary = File.ReadAllText(Path.Combine(outDir, ModelReport.Summary));
        Assert.Contains("relu (Relu): Relu is not a contraction", summary);
        Assert.Contains("## Totals", summary);
        Assert.Empty(Directory.EnumerateDirectories(temp.Path, ".report.tmp-*"));
        Assert.Contains("1/5 conv1 choosing among 2 lowerings of Conv: O[f,h,w] += I[c,p,2*h+r,w+q]", err);
    }

    /// <summary><c>model</c> on <see cref="SmallModel"/> (written once) with <paramref name="extra"/>, quick, its report
    /// as --json prints it; the run must succeed.</summary>
    JsonObject RunSmall(params string[] extra)
    {
        var file = temp["small.onnx"];
        if (!File.Exists(file)) File.WriteAllBytes(file, SmallModel());
        var (code, stdout, err) = TestHome.Run(["model", file, "--quick", "--json", "--out", temp["r"], .. extra]);
        Assert.True(code == 0, err);
        return JsonNode.Parse(stdout)!.AsObject();
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void A_second_run_recalls_every_contraction_from_its_tuning_record_and_retune_tunes_them_again()
    {
        var db = temp["records.db"];
        JsonObject Run(params string[] extra) => RunSmall(["--budget", "0.1s", "--db", db, .. extra]);
        static List<JsonObject> Contractions(JsonObject json) =>
            [.. json["ops"]!.AsArray().Select(o => o!.AsObject()).Where(o => o["tuned"]!.GetValue<bool>())];

        // the two convolutions have two lowerings each, all tuned; the second run recalls the chosen ones alone
        var first = Run();
        Assert.Equal((0, 5), (first["contractions_recalled"]!.GetValue<int>(), first["contractions_tuned"]!.GetValue<int>()));
        Assert.True(first["seconds"]!.GetValue<double>() > 0);
        Assert.Equal(Path.GetFullPath(db), first["store"]!.GetValue<string>());
        Assert.All(Contractions(first), o => Assert.Equal("tuned", o["schedule_from"]!.GetValue<string>()));
        Assert.Equal("cold", first["weights"]!.GetValue<string>());
        using (var store = new LoopTune.Store.MeasurementStore(db))
            foreach (var o in Contractions(first))
            {
                // tuned with its weights cold (the default): the record is that context's, and there is no hot one
                var c = LoopTune.Ir.Computation.Parse(o["spec"]!.GetValue<string>());
                Assert.True(store.TryGetRecord(c, 1, WeightsCold(o), out var record), o.ToJsonString());
                Assert.Equal(o["schedule"]!.GetValue<string>(), record.Schedule);
                Assert.Equal("0.1s", record.Budget);
                Assert.False(store.TryGetRecord(c, 1, out _), o.ToJsonString());
            }

        var second = Run();
        Assert.Equal((3, 0), (second["contractions_recalled"]!.GetValue<int>(), second["contractions_tuned"]!.GetValue<int>()));
        Assert.All(Contractions(second), o =>
        {
            Assert.Equal("record", o["schedule_from"]!.GetValue<string>());
            if (o["op"]!.GetValue<string>() == "Conv") Assert.Contains("(recorded ", o["lowering_note"]!.GetValue<string>()); // the choice too
            Assert.True(o["verified"]!.GetValue<bool>(), o.ToJsonString());
        });
        Assert.Equal(Contractions(first).Select(o => o["schedule"]!.GetValue<string>()), Contractions(second).Select(o => o["schedule"]!.GetValue<string>()));
        var summary = File.ReadAllText(Path.Combine(temp["r"], ModelReport.Summary));
        Assert.Contains("- distinct contractions: 3 recalled from tuning records, 0 tuned", summary);
        Assert.Contains("- wall time of the run: ", summary);

        var third = Run("--retune");
        Assert.Equal((0, 5), (third["contractions_recalled"]!.GetValue<int>(), third["contractions_tuned"]!.GetValue<int>()));
        Assert.All(Contractions(third), o => Assert.Equal("tuned", o["schedule_from"]!.GetValue<string>()));
    }

    /// <summary>The context a row's kernel was tuned in with cold weights: the columns lowering's weights are its left
    /// operand, every other's (the Gemm's B here) its right one.</summary>
    static LoopTune.Measure.TimingContext WeightsCold(JsonObject row) =>
        LoopTune.Measure.TimingContext.ColdOperand(row["lowering"]?.GetValue<string>() == "columns" ? LoopTune.Ir.Operand.Left : LoopTune.Ir.Operand.Right);

    [Fact]
    [Trait("Category", "Integration")]
    public void Hot_and_cold_runs_keep_records_of_their_own_and_each_recalls_only_its_own()
    {
        var db = temp["weights.db"];
        JsonObject Run(string weights) => RunSmall("--budget", "0", "--db", db, "--weights", weights);
        static (int, int) Counts(JsonObject json) => (json["contractions_recalled"]!.GetValue<int>(), json["contractions_tuned"]!.GetValue<int>());
        var hot = Run("hot");
        Assert.Equal((0, 5), Counts(hot));
        Assert.Equal("hot", hot["weights"]!.GetValue<string>());
        Assert.Equal((0, 5), Counts(Run("cold"))); // the hot records (and choices) do not answer a cold run
        Assert.Equal((3, 0), Counts(Run("cold")));
        Assert.Equal((3, 0), Counts(Run("hot")));
        Assert.Contains("tuned, with hot weights", TestHome.Run("model", temp["small.onnx"], "--budget", "0", "--quick", "--out", temp["r"], "--db", db, "--weights", "hot").Out);
    }

    [Fact]
    public void A_weights_setting_other_than_hot_or_cold_exits_2_naming_the_choices()
    {
        var file = temp["small.onnx"];
        File.WriteAllBytes(file, SmallModel());
        var (code, _, err) = TestHome.Run("model", file, "--weights", "warm", "--out", temp["r"]);
        Assert.Equal(2, code);
        Assert.Contains("warm", err);
        Assert.Contains("cold", err);
        Assert.DoesNotContain("   at ", err);
        Assert.False(Directory.Exists(temp["r"]));
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void A_record_that_no_longer_parses_is_tuned_again_with_a_warning_and_replaced()
    {
        var file = temp["small.onnx"];
        File.WriteAllBytes(file, SmallModel());
        var db = temp["bad.db"];
        var (code, stdout, err) = TestHome.Run("model", file, "--budget", "0", "--quick", "--json", "--out", temp["r"], "--db", db);
        Assert.True(code == 0, err);
        var gemm = JsonNode.Parse(stdout)!["ops"]!.AsArray().Single(o => o!["node"]!.GetValue<string>() == "fc")!;
        var spec = LoopTune.Ir.Computation.Parse(gemm["spec"]!.GetValue<string>());
        var cold = WeightsCold(gemm.AsObject()); // the default's records
        using (var store = new LoopTune.Store.MeasurementStore(db))
            store.PutRecord(spec, 1, cold, new LoopTune.Store.TuningRecord("zz:3 >nope:1", "policy", "0", 1, DateTime.UtcNow));
        (code, stdout, err) = TestHome.Run("model", file, "--budget", "0", "--quick", "--json", "--out", temp["r"], "--db", db);
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(stdout)!.AsObject();
        Assert.Equal((2, 1), (json["contractions_recalled"]!.GetValue<int>(), json["contractions_tuned"]!.GetValue<int>()));
        Assert.Contains($"warning: the tuning record of {spec.Text} (zz:3 >nope:1) is unusable", err);
        var row = json["ops"]!.AsArray().Single(o => o!["node"]!.GetValue<string>() == "fc")!;
        Assert.Equal("tuned", row["schedule_from"]!.GetValue<string>());
        using var reopened = new LoopTune.Store.MeasurementStore(db);
        Assert.True(reopened.TryGetRecord(spec, 1, cold, out var replaced));
        Assert.Equal(row["schedule"]!.GetValue<string>(), replaced.Schedule);
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void Run_checks_the_forward_pass_against_onnx_runtime_and_reports_it_end_to_end()
    {
        var file = temp["tiny.onnx"];
        File.WriteAllBytes(file, TinyModel());
        var outDir = temp["report"];
        var (code, stdout, err) = TestHome.Run("model", file, "--run", "--budget", "0", "--quick", "--json", "--out", outDir, "--db", temp["m.db"]);
        Assert.True(code == 0, err);
        var e2e = JsonNode.Parse(stdout)!["end_to_end"]!.AsObject();
        foreach (var key in new[] { "ours_ms", "onnxruntime_ms", "max_abs_error", "max_relative_error", "bound", "within_bound", "folded_batch_norms" })
            Assert.True(e2e.ContainsKey(key), key);
        Assert.True(e2e["ours_ms"]!.GetValue<double>() > 0);
        Assert.True(e2e["onnxruntime_ms"]!.GetValue<double>() > 0);
        Assert.True(e2e["within_bound"]!.GetValue<bool>(), e2e.ToJsonString());
        Assert.True(e2e["max_abs_error"]!.GetValue<double>() <= e2e["bound"]!.GetValue<double>());
        Assert.Equal(1, e2e["folded_batch_norms"]!.GetValue<int>());
        Assert.True(e2e["folds_verified"]!.GetValue<bool>());
        // the profile: every operator that runs, once, its shares summing to one (the folded BatchNormalization is in its Conv)
        var byOp = e2e["by_op"]!.AsArray().Select(o => o!.AsObject()).ToList();
        var ops = byOp.Select(o => o["op"]!.GetValue<string>()).ToList();
        Assert.Equal(ops.Distinct().Count(), ops.Count);
        Assert.Contains("Conv", ops);
        Assert.DoesNotContain("BatchNormalization", ops);
        Assert.Equal(1.0, byOp.Sum(o => o["share"]!.GetValue<double>()), 1e-9);
        Assert.All(byOp, o => Assert.True(o["ms"]!.GetValue<double>() >= 0));
        Assert.Contains("## End to end", File.ReadAllText(Path.Combine(outDir, ModelReport.Summary)));
        // node by node: the conv and the Gemm split into kernel and around it, each with ONNX Runtime's node doing its work
        var byNode = e2e["by_node"]!.AsArray().Select(o => o!.AsObject()).ToList();
        foreach (var n in byNode.Where(n => n["op"]!.GetValue<string>() is "Conv" or "Gemm"))
        {
            Assert.True(n["kernel_ms"]!.GetValue<double>() > 0, n.ToJsonString());
            Assert.True(n["onnxruntime_ms"]!.GetValue<double>() > 0, n.ToJsonString());
        }
        Assert.True(e2e["onnxruntime_profiled_ms"]!.GetValue<double>() > 0);
        Assert.True(File.Exists(Path.Combine(outDir, ModelReport.PassChart)));
    }

    /// <summary>X [1,C,S,S] -> conv1 (3x3, pads 1) -> Relu -> conv2 -> Add X -> Relu -> GlobalAveragePool -> Flatten -> Gemm
    /// [1,3]: a residual block whose channels (32 unless given) this machine's blocks divide.</summary>
    internal static byte[] ResidualModel(int c = 32, int size = 8) => Model(
        [
            Node("Conv", "conv1", ["X", "W1"], ["Y1"], Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1)),
            Node("Relu", "relu1", ["Y1"], ["R1"]),
            Node("Conv", "conv2", ["R1", "W2"], ["Y2"], Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1)),
            Node("Add", "add", ["Y2", "X"], ["A"]),
            Node("Relu", "relu2", ["A"], ["R2"]),
            Node("GlobalAveragePool", "gap", ["R2"], ["G"]),
            Node("Flatten", "flatten", ["G"], ["F"]),
            Node("Gemm", "fc", ["F", "B"], ["Y"]),
        ],
        [Value("X", [1, c, size, size])], [Value("Y", null)],
        [Floats("W1", [c, c, 3, 3], Random(c * c * 9, 1)), Floats("W2", [c, c, 3, 3], Random(c * c * 9, 2)), Floats("B", [c, 3], Random(c * 3, 3))]);

    [Theory]
    [Trait("Category", "Integration")]
    [InlineData("blocks")]
    [InlineData("nchw")]
    public void Run_keeps_the_activations_in_blocks_or_nchw_as_asked_and_checks_that_pass(string activations)
    {
        var file = temp["residual.onnx"];
        File.WriteAllBytes(file, ResidualModel());
        var (code, stdout, err) = TestHome.Run("model", file, "--run", "--budget", "0", "--quick", "--json", "--out", temp["report"], "--db", temp["m.db"], "--activations", activations);
        Assert.True(code == 0, err);
        var e2e = JsonNode.Parse(stdout)!["end_to_end"]!.AsObject();
        Assert.True(e2e["within_bound"]!.GetValue<bool>(), e2e.ToJsonString());
        if (activations == "nchw" || LoopTune.Models.ConvOp.Blocks(32).Length == 0) // no vectors: no blocks
        {
            Assert.Equal("NCHW", e2e["activations"]!.GetValue<string>());
            Assert.Null(e2e["blocks_vs_nchw"]);
            return;
        }
        // both convolutions linked: conv1 reads X copied into blocks once, conv2 adds that copy and stores blocks the pool reads
        Assert.StartsWith("blocks of ", e2e["activations"]!.GetValue<string>());
        Assert.Equal(2, e2e["linked_convolutions"]!.GetValue<int>());
        Assert.True(e2e["blocks_vs_nchw"]!.GetValue<double>() > 0);
        // each block tried (the nodes' likeliest), the kept one among them, its ratio the best
        var tried = e2e["blocks_tried"]!.AsArray().Select(t => t!.AsObject()).ToList();
        Assert.InRange(tried.Count, 1, 2);
        Assert.Contains(tried, t => e2e["activations"]!.GetValue<string>() == $"blocks of {t["block"]!.GetValue<int>()}");
        Assert.Equal(tried.Max(t => t["vs_nchw"]!.GetValue<double>()), e2e["blocks_vs_nchw"]!.GetValue<double>());
        Assert.Contains(e2e["by_node"]!.AsArray(), n => n!["op"]!.GetValue<string>() == "Reorder");
        Assert.Contains("Activations between convolutions: in blocks of", File.ReadAllText(Path.Combine(temp["report"], ModelReport.Summary)));
    }

    [Fact]
    public void An_unknown_activations_layout_is_refused_naming_the_choices()
    {
        var (code, _, err) = TestHome.Run("model", "x.onnx", "--run", "--activations", "nhwc");
        Assert.Equal(2, code);
        Assert.Contains("nhwc", err);
        Assert.Contains("fastest", err);
    }

    /// <summary>X [1,3,12,12] -> conv (16 filters 3x3, pads 1) -> bn -> Relu -> MaxPool (3x3, stride 2, pads 1) [1,16,6,6]
    /// -> GlobalAveragePool -> Flatten -> Gemm [1,3]: ResNet's stem in small.</summary>
    static byte[] PooledModel() => Model(
        [
            Node("Conv", "conv", ["X", "W"], ["Y1"], Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1)),
            BatchNorm("bn", "Y1", "N"),
            Node("Relu", "relu", ["N"], ["R"]),
            Node("MaxPool", "pool", ["R"], ["P"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1)),
            Node("GlobalAveragePool", "gap", ["P"], ["G"]),
            Node("Flatten", "flatten", ["G"], ["F"]),
            Node("Gemm", "fc", ["F", "B"], ["Y"]),
        ],
        [Value("X", [1, 3, 12, 12])], [Value("Y", null)], [Floats("W", [16, 3, 3, 3], Random(432, 7)), .. Norm("bn", 16, 8), Floats("B", [16, 3], Random(48, 9))]);

    [Fact]
    [Trait("Category", "Integration")]
    public void A_convolution_read_by_a_max_pool_is_lowered_as_the_pass_runs_it_with_the_pool()
    {
        // the lowerings are timed each followed by the pool as the forward pass runs them: a blocked one's output pooled
        // in its kernel's layout, the others written back and pooled; whichever wins, the pass matches ONNX Runtime's
        var file = temp["pooled.onnx"];
        File.WriteAllBytes(file, PooledModel());
        var (code, stdout, err) = TestHome.Run("model", file, "--run", "--budget", "0", "--quick", "--json", "--out", temp["report"], "--db", temp["m.db"]);
        Assert.True(code == 0, err);
        var json = JsonNode.Parse(stdout)!.AsObject();
        var conv = json["ops"]!.AsArray().Select(o => o!.AsObject()).Single(o => o["node"]!.GetValue<string>() == "conv");
        Assert.Matches(@"^fastest of [0-9]+: direct [0-9.]+ ms, columns [0-9.]+ ms, blocked [0-9]+ [0-9.]+ ms.*, each with the MaxPool after it$", conv["lowering_note"]!.GetValue<string>());
        var gemm = json["ops"]!.AsArray().Select(o => o!.AsObject()).Single(o => o["node"]!.GetValue<string>() == "fc");
        Assert.Null(gemm["lowering_note"]);
        Assert.True(json["end_to_end"]!["within_bound"]!.GetValue<bool>(), json["end_to_end"]!.ToJsonString());
    }

    /// <summary>X [1,3,8,8] -> conv (4 filters 3x3, pads 1) -> bn (folded) -> Relu -> GlobalAveragePool -> Flatten -> Gemm [1,3].</summary>
    static byte[] TinyModel() => Model(
        [
            Node("Conv", "conv", ["X", "W"], ["Y1"], Ints("kernel_shape", 3, 3), Ints("pads", 1, 1, 1, 1)),
            BatchNorm("bn", "Y1", "N"),
            Node("Relu", "relu", ["N"], ["R"]),
            Node("GlobalAveragePool", "gap", ["R"], ["G"]),
            Node("Flatten", "flatten", ["G"], ["F"]),
            Node("Gemm", "fc", ["F", "B"], ["Y"]),
        ],
        [Value("X", [1, 3, 8, 8])], [Value("Y", null)], [Floats("W", [4, 3, 3, 3], Random(108, 1)), .. Norm("bn", 4, 2), Floats("B", [4, 3], Random(12, 6))]);

    [Fact]
    [Trait("Category", "Integration")]
    public void A_resumed_run_makes_only_the_rows_it_lacks_and_runs_the_forward_pass_with_the_kept_kernels()
    {
        var file = temp["tiny.onnx"];
        File.WriteAllBytes(file, TinyModel());
        var onnx = LoopTune.Models.OnnxModel.Load(file);
        using var store = new LoopTune.Store.MeasurementStore(temp["m.db"]);
        var full = new ModelBench("0", LoopTune.Measure.MeasureOptions.Quick, _ => { }, store).Run(onnx);

        var kept = new Dictionary<int, ModelRow> { [0] = ModelRow.FromJson(full[0].ToJson(0)).Row, [1] = ModelRow.FromJson(full[1].ToJson(1)).Row };
        Assert.Equal(full[0], kept[0]); // a row read back from its journal line is the row
        var progress = new List<string>();
        var finished = new List<int>();
        var bench = new ModelBench("0", LoopTune.Measure.MeasureOptions.Quick, progress.Add, store);
        var rows = bench.Run(onnx, kept, (i, _) => finished.Add(i));
        Assert.Equal([2, 3, 4, 5], finished);
        Assert.Equal(4, progress.Count); // none for a kept node
        Assert.Same(kept[0], rows[0]);
        Assert.Equal(full.Select(r => (r.Node, r.Tuned, r.Spec, r.Schedule)), rows.Select(r => (r.Node, r.Tuned, r.Spec, r.Schedule)));
        // the kept convolution's kernel is back for the forward pass, which matches ONNX Runtime's
        Assert.Equal(["conv", "fc"], bench.Chosen.Keys.Select(n => n.Name).Order());
        Assert.True(ModelEndToEnd.Passed(ModelEndToEnd.Run(onnx, bench.Chosen, LoopTune.Measure.MeasureOptions.Quick, _ => { })));

        using var stop = new CancellationTokenSource();
        finished.Clear();
        Assert.Throws<OperationCanceledException>(() => new ModelBench("0", LoopTune.Measure.MeasureOptions.Quick, _ => { }, store)
            .Run(onnx, finished: (i, _) => { finished.Add(i); stop.Cancel(); }, stop: stop.Token));
        Assert.Equal([0], finished);

        var (code, _, err) = TestHome.Run("model", file, "--budget", "0", "--resume", "--out", temp["r"]);
        Assert.Equal(2, code);
        Assert.Contains($"--resume: {temp["r"]} has no journal (journal.jsonl) to resume from", err);
        Assert.False(Directory.Exists(temp["r"]));
    }

    [Fact]
    public void Run_refuses_a_model_with_an_op_it_cannot_run_before_tuning_with_exit_2_naming_it()
    {
        var file = temp["soft.onnx"];
        File.WriteAllBytes(file, Model(
            [Node("Conv", "conv", ["X", "W"], ["Y1"], Ints("kernel_shape", 1, 1)), Node("Softmax", "soft", ["Y1"], ["Y"])],
            [Value("X", [1, 2, 3, 3])], [Value("Y", null)], [Floats("W", [2, 2, 1, 1], Random(4, 1))]));
        var (code, _, err) = TestHome.Run("model", file, "--run", "--out", temp["r"]);
        Assert.Equal(2, code);
        Assert.Contains($"{file}: --run cannot run node soft (Softmax): Softmax is not an operator the forward pass runs", err);
        Assert.DoesNotContain("   at ", err);
        Assert.DoesNotContain("tuning", err);
        Assert.False(Directory.Exists(temp["r"]));
    }

    [Fact]
    public void A_truncated_file_exits_2_naming_it()
    {
        var file = temp["cut.onnx"];
        var bytes = SmallModel();
        File.WriteAllBytes(file, bytes[..(bytes.Length / 2)]);
        var (code, _, err) = TestHome.Run("model", file, "--out", temp["r"]);
        Assert.Equal(2, code);
        Assert.Contains(file, err);
        Assert.DoesNotContain("   at ", err);
        Assert.False(Directory.Exists(temp["r"]));
    }

    [Fact]
    public void An_unknown_model_name_and_a_missing_file_exit_2_naming_them()
    {
        var (code, _, err) = TestHome.Run("model", "resnet19", "--out", temp["r"]);
        Assert.Equal(2, code);
        Assert.Contains("resnet19: unknown model name (known: resnet18, resnet50)", err);
        (code, _, err) = TestHome.Run("model", temp["none.onnx"], "--out", temp["r"]);
        Assert.Equal(2, code);
        Assert.Contains("none.onnx: no such file", err);
        Assert.False(Directory.Exists(temp["r"]));
    }

    [Fact]
    public void A_file_that_is_not_onnx_exits_2_naming_it()
    {
        var file = temp["notes.txt"];
        File.WriteAllText(file, "this is not a model\n");
        var (code, _, err) = TestHome.Run("model", file, "--out", temp["r"]);
        Assert.Equal(2, code);
        Assert.Contains(file, err);
    }
}

/// <summary><c>looptune model --run --threads 2</c>: the convolutions of the pass whose activations stay in blocks, their
/// input larger than half their weights, split their output rows between the threads
/// (<see cref="LoopTune.Models.ConvOp.ParallelOver"/>), and a record of one from before, its parallel loop elsewhere, is
/// tuned again rather than recalled; where the weights outweigh the input, the tuner's rule stands.</summary>
[Collection(nameof(LoopTune.Tests.Jit.AllCores))]
public sealed class ModelThreadsTests : IDisposable
{
    readonly TempFolder temp = new("looptune-model-threads");

    public void Dispose() => temp.Dispose();

    /// <summary>The 2-thread records of the contractions that read their input in blocks (<c>I[d,...,k]</c>, or
    /// <c>I[...,k]</c> in a single block), as (computation, schedule).</summary>
    List<(string Computation, string Schedule)> BlockedInputRecords()
    {
        using var store = new MeasurementStore(temp["m.db"]);
        return [.. store.Records().Where(r => r.Threads == 2 && r.Spec.Contains(",k] * W[", StringComparison.Ordinal)).Select(r => (r.Spec, r.Record.Schedule))];
    }

    static string ParallelVariable(string computation, string schedule)
    {
        var nest = LoopTune.Ir.Nest.Parse(LoopTune.Ir.Computation.Parse(computation), schedule);
        return nest.Computation.Vars[nest[nest.ParallelLoop].Var];
    }

    [Theory]
    [InlineData(16, 16, "h")] // input 18x18x16 floats against weights 16x16x3x3: rows
    [InlineData(32, 8, null)] // 10x10x32 against 32x32x3x3, more than twice as many: the tuner's rule
    public void A_convolution_in_blocks_splits_its_rows_where_its_input_is_at_least_half_its_weights(int c, int size, string? over)
    {
        var model = LoopTune.Models.OnnxModel.Parse(ModelCommandTests.ResidualModel(c, size), "residual");
        var shapes = LoopTune.Models.ShapeInference.Infer(model);
        var conv = model.Nodes.First(n => n.OpType == "Conv");
        foreach (long block in LoopTune.Models.ConvOp.Blocks(c))
        {
            var op = Assert.IsType<LoopTune.Models.ConvOp>(LoopTune.Models.ConvOp.LowerBlockedInput(model, shapes, conv, block));
            Assert.Equal(over, op.ParallelOver);
        }
        // its own lowerings keep the rule
        Assert.All(LoopTune.Models.ModelLowering.Alternatives(model, shapes, conv).OfType<LoopTune.Models.ContractionOp>(), o => Assert.Null(o.ParallelOver));
    }

    [Fact]
    [Trait("Category", "Integration")]
    public void The_pass_in_blocks_splits_rows_between_the_threads_and_tunes_an_older_record_again()
    {
        if (LoopTune.Models.ConvOp.Blocks(16).Length == 0) return; // no vectors: no pass in blocks (as in the test above)
        var file = temp["residual.onnx"];
        File.WriteAllBytes(file, ModelCommandTests.ResidualModel(16, 16)); // input 18x18x16 floats, weights 16x16x9
        string[] args = ["model", file, "--run", "--budget", "0", "--quick", "--json", "--out", temp["report"], "--db", temp["m.db"], "--activations", "blocks", "--threads", "2"];
        var (code, _, err) = TestHome.Run(args);
        Assert.True(code == 0, err);
        var records = BlockedInputRecords();
        Assert.True(records.Count > 0, err);
        foreach (var (c, s) in records) Assert.True(ParallelVariable(c, s) == "h", $"{c}: {s}");

        // a record from before the rule: the unscheduled nest with its image columns (w) parallel, legal and not the rows
        var (computation, _) = records[0];
        string older = string.Join(' ', LoopTune.Ir.Nest.Initial(LoopTune.Ir.Computation.Parse(computation)).Serialize().Split(' ')
            .Select(l => l.TrimStart('>').StartsWith("w:", StringComparison.Ordinal) ? l + "p" : l));
        Assert.Equal("w", ParallelVariable(computation, older));
        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={temp["m.db"]};Pooling=False"))
        {
            db.Open();
            using var u = db.CreateCommand();
            u.CommandText = "UPDATE records SET schedule = $s WHERE computation = $c AND runtime LIKE '% | 2 threads'";
            u.Parameters.AddWithValue("$s", older);
            u.Parameters.AddWithValue("$c", computation);
            Assert.Equal(1, u.ExecuteNonQuery());
        }
        (code, _, err) = TestHome.Run(args);
        Assert.True(code == 0, err);
        Assert.Contains($"({older}) is unusable (its parallel loop is not over h", err);
        Assert.All(BlockedInputRecords(), r => Assert.Equal("h", ParallelVariable(r.Computation, r.Schedule)));
    }
}
