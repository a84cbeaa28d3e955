using System.Buffers.Binary;
using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using LoopTune.Cli.Plots;
using LoopTune.Learning.Logging;
using LoopTune.Tests.Store;
using LoopTune.Tests.TestUtil;
using Xunit.Abstractions;

namespace LoopTune.Tests.Learning;

/// <summary>TensorBoard event files (checked by the public tfevents_check.py and by an independent protobuf reader here),
/// the metrics.csv of a training run (new series, resume, truncation, exact round trip, bad files) and its charts.</summary>
public sealed class TrainingLogTests(ITestOutputHelper output) : IDisposable
{
    readonly TempFolder folder = new("looptune-traininglog");

    public void Dispose() => folder.Dispose();

    // ---- CRC32C ----

    [Fact]
    public void Crc32C_matches_the_Castagnoli_check_value_and_the_mask_formula()
    {
        uint crc = TensorBoardWriter.Crc32C("123456789"u8);
        Assert.Equal(0xE3069283u, crc);
        Assert.Equal(unchecked(((crc >> 15) | (crc << 17)) + 0xA282EAD8u), TensorBoardWriter.Masked(crc));
        Assert.Equal(0u, TensorBoardWriter.Crc32C([]));
        var random = new Random(7);
        for (int n = 0; n < 300; n += 37)
        {
            var data = new byte[n];
            random.NextBytes(data);
            Assert.Equal(BitwiseCrc32C(data), TensorBoardWriter.Crc32C(data));
            uint c = BitwiseCrc32C(data);
            Assert.Equal((uint)((((ulong)c >> 15 | (ulong)c << 17) + 0xA282EAD8UL) & 0xFFFFFFFF), TensorBoardWriter.Masked(c));
        }
    }

    // ---- event files ----

    [Fact]
    public async Task An_event_file_passes_tfevents_check()
    {
        string path;
        using (var writer = new TensorBoardWriter(folder["tb"]))
        {
            path = writer.Path;
            for (int i = 0; i < 5; i++)
            {
                writer.Scalar("episode_reward", i * 1.5f, i * 100);
                writer.Scalar("loss", 1f / (i + 1), i * 100);
            }
        }
        var stdout = await TfEvents.Check(path, output, "brain.Event", "episode_reward", "loss");
        Assert.StartsWith("11 records;", stdout);
    }

    [Fact]
    public void An_event_file_decodes_to_exactly_what_was_written()
    {
        var t0 = new DateTimeOffset(2025, 3, 4, 5, 6, 7, 891, TimeSpan.Zero);
        var written = new (string Tag, float Value, long Step)[]
        {
            ("loss", 0f, 0), ("loss", -1.25e-7f, 1), ("episode_reward", 123456.78f, 2_000_000_000_000), ("épsilon/ε", float.MaxValue, 3),
            ("nan", float.NaN, 4), ("inf", float.NegativeInfinity, 5), ("neg_step", 42f, -9),
        };
        string path;
        using (var writer = new TensorBoardWriter(folder["tb"]))
        {
            path = writer.Path;
            for (int i = 0; i < written.Length; i++) writer.Scalar(written[i].Tag, written[i].Value, written[i].Step, t0.AddSeconds(i));
            writer.SessionStart(77, t0);
            writer.Flush();
        }
        Assert.Matches(@"^events\.out\.tfevents\.\d+\.[^/\\]+$", Path.GetFileName(path));

        var events = ReadEvents(path);
        Assert.Equal(written.Length + 2, events.Count);
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        Assert.InRange(events[0].WallTime, DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 60, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 60);
        for (int i = 0; i < written.Length; i++)
        {
            var e = events[i + 1];
            Assert.Equal(written[i].Step, e.Step);
            Assert.Equal(written[i].Tag, e.Tag);
            Assert.Equal(BitConverter.SingleToInt32Bits(written[i].Value), BitConverter.SingleToInt32Bits(e.Value!.Value));
            Assert.Equal((t0.AddSeconds(i) - DateTimeOffset.UnixEpoch).TotalSeconds, e.WallTime, 1e-6);
        }
        Assert.Equal((77L, 1UL), (events[^1].Step, events[^1].SessionStatus!.Value));
    }

    [Fact]
    public void Each_writer_makes_a_new_file_and_a_taken_name_gets_a_suffix()
    {
        using var a = new TensorBoardWriter(folder.Path);
        using var b = new TensorBoardWriter(folder.Path);
        Assert.NotEqual(a.Path, b.Path);
        if (b.Path.StartsWith(a.Path, StringComparison.Ordinal)) Assert.Equal(a.Path + ".1", b.Path);
        a.Scalar("x", 1, 1);
        b.Scalar("x", 2, 1);
        Assert.Equal(2, ReadEvents(a.Path).Count);
        Assert.Equal(2, ReadEvents(b.Path).Count);
        a.Dispose();
        a.Dispose();
        Assert.Throws<ObjectDisposedException>(() => a.Scalar("x", 1, 2));
    }

    // ---- metrics.csv ----

    static readonly double[] Tricky = [0.1 + 0.2, 1e-300, double.MaxValue, double.Epsilon, -0.0, Math.PI, -123456789.123456789, 1.0 / 3, double.NaN, double.PositiveInfinity, double.NegativeInfinity];

    /// <summary>Bit for bit (so 0 and -0 differ), except that a NaN is any NaN: the CSV keeps neither its sign nor payload.</summary>
    static void AssertSame(double expected, double actual)
    {
        if (double.IsNaN(expected)) Assert.True(double.IsNaN(actual), $"{actual} is not NaN");
        else Assert.Equal(BitConverter.DoubleToInt64Bits(expected), BitConverter.DoubleToInt64Bits(actual));
    }

    [Fact]
    public void TrainingLog_keeps_new_series_resumes_truncates_and_round_trips_exactly()
    {
        string run = folder["run"];
        using (var log = new TrainingLog(run))
        {
            Assert.Equal(Path.Combine(run, "metrics.csv"), log.CsvPath);
            Assert.Equal(Path.Combine(run, "tb"), log.TensorBoardFolder);
            for (int i = 0; i < Tricky.Length; i++)
                log.Log(i * 10, new Dictionary<string, double> { ["episode_reward"] = Tricky[i], ["loss"] = -Tricky[i] });
            Assert.Equal("step,time,episode_reward,loss", File.ReadLines(log.CsvPath).First());
            log.Log(200, new Dictionary<string, double> { ["loss"] = 0.5, ["eval_gflops_geomean"] = 12.25 }); // a series appears later
            Assert.Equal(Tricky.Length + 1, log.Rows.Count);
        }
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.csv"));
        Assert.Equal("step,time,episode_reward,loss,eval_gflops_geomean", lines[0]);
        Assert.Matches(@"^0,\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z,0\.30000000000000004,-0\.30000000000000004,$", lines[1]);
        Assert.Matches(@"^200,[^,]+,,0\.5,12\.25$", lines[^1]);

        var rows = TrainingLog.ReadCsv(Path.Combine(run, "metrics.csv"));
        Assert.Equal(Tricky.Length + 1, rows.Count);
        for (int i = 0; i < Tricky.Length; i++)
        {
            Assert.Equal(i * 10, rows[i].Step);
            AssertSame(Tricky[i], rows[i].Values["episode_reward"]);
            AssertSame(-Tricky[i], rows[i].Values["loss"]);
            Assert.False(rows[i].Values.ContainsKey("eval_gflops_geomean"));
            Assert.Equal(TimeSpan.Zero, rows[i].Time.Offset);
        }
        Assert.Equal(["eval_gflops_geomean", "loss"], rows[^1].Values.Keys.Order());

        using (var log = new TrainingLog(run)) // resume: continues the CSV, then forgets what came after the checkpoint
        {
            Assert.Equal(rows.Count, log.Rows.Count);
            for (int i = 0; i < rows.Count; i++)
            {
                Assert.Equal(rows[i].Step, log.Rows[i].Step);
                Assert.Equal(rows[i].Time, log.Rows[i].Time);
            }
            log.TruncateAfter(40);
            Assert.Equal([0L, 10, 20, 30, 40], log.Rows.Select(r => r.Step));
            log.Log(50, new Dictionary<string, double> { ["episode_reward"] = 7, ["entropy"] = 0.75 });
            var back = TrainingLog.ReadCsv(log.CsvPath); // flushed at once: readable while the log is open
            Assert.Equal([0L, 10, 20, 30, 40, 50], back.Select(r => r.Step));
            Assert.Equal(log.Rows.Select(r => r.Time), back.Select(r => r.Time));
            Assert.Equal(0.75, back[^1].Values["entropy"]);
            Assert.Equal("step,time,episode_reward,loss,eval_gflops_geomean,entropy", File.ReadLines(log.CsvPath).First());
        }
        Assert.Empty(Directory.GetFiles(run, ".*tmp*"));

        // TensorBoard: one file per open; the fresh run starts a session at 0, the truncation restarts it at 41.
        var files = Directory.GetFiles(Path.Combine(run, "tb")).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(2, files.Length);
        var first = ReadEvents(files[0]);
        Assert.Equal((0L, 1UL), (first[1].Step, first[1].SessionStatus!.Value));
        Assert.Equal(2 * Tricky.Length + 2, first.Count(e => e.Tag is not null));
        Assert.Equal(12.25f, first.Single(e => e.Tag == "eval_gflops_geomean").Value);
        var second = ReadEvents(files[1]);
        Assert.Equal(["brain.Event:2", null, "episode_reward", "entropy"], second.Select(e => e.FileVersion ?? e.Tag));
        Assert.Equal((41L, 1UL), (second[1].Step, second[1].SessionStatus!.Value));
        Assert.All(second.Skip(2), e => Assert.Equal(50, e.Step));
    }

    [Fact]
    public void A_row_cut_off_by_a_kill_is_dropped_on_resume()
    {
        string run = folder["run"];
        using (var log = new TrainingLog(run))
        {
            log.Log(1, new Dictionary<string, double> { ["loss"] = 1 });
            log.Log(2, new Dictionary<string, double> { ["loss"] = 2 });
        }
        string csv = Path.Combine(run, "metrics.csv");
        File.AppendAllText(csv, "3,2025-01-01T00:00:00.0"); // the newline never made it
        Assert.Equal(2, TrainingLog.ReadCsv(csv).Count);
        using (var log = new TrainingLog(run))
        {
            Assert.Equal(2, log.Rows.Count);
            log.Log(3, new Dictionary<string, double> { ["loss"] = 3 });
        }
        Assert.Equal([1.0, 2, 3], TrainingLog.ReadCsv(csv).Select(r => r.Values["loss"]));
    }

    [Fact]
    public void A_corrupt_csv_names_the_file_and_the_line()
    {
        string csv = folder["metrics.csv"];
        File.WriteAllText(csv, "step,time,loss\n1,2025-01-01T00:00:00.000Z,0.5\n2,2025-01-01T00:00:01.000Z,zero\n");
        var e = Assert.Throws<LoopTuneException>(() => TrainingLog.ReadCsv(csv));
        Assert.Contains(csv, e.Message);
        Assert.Contains("line 3", e.Message);
        Assert.Contains("line 3", Assert.Throws<LoopTuneException>(() => new TrainingLog(folder.Path)).Message);

        foreach (var (text, line) in new[]
        {
            ("step,when,loss\n", 1), ("step,time,loss,loss\n", 1),
            ("step,time,loss\n1,2025-01-01T00:00:00.000Z\n", 2), ("step,time,loss\n\nx,2025-01-01T00:00:00.000Z,1\n", 3),
            ("step,time,loss\n1,yesterday,1\n", 2),
        })
        {
            File.WriteAllText(csv, text);
            Assert.Contains($"line {line}:", Assert.Throws<LoopTuneException>(() => TrainingLog.ReadCsv(csv)).Message);
        }
        Assert.Contains("no such", Assert.Throws<LoopTuneException>(() => TrainingLog.ReadCsv(folder["missing.csv"])).Message);
    }

    [Fact]
    public void Bad_series_names_are_refused_before_anything_is_written()
    {
        using var log = new TrainingLog(folder.Path);
        foreach (var name in new[] { "", "a,b", "step", "time", "say \"hi\"", "two\nlines", " padded" })
            Assert.Throws<ArgumentException>(() => log.Log(1, new Dictionary<string, double> { ["ok"] = 1, [name] = 2 }));
        Assert.Empty(log.Rows);
        Assert.Equal("step,time", File.ReadAllText(log.CsvPath).TrimEnd());
    }

    // ---- charts ----

    [Fact]
    public void TrainingCharts_writes_one_png_per_series_and_a_grid()
    {
        var random = new Random(3);
        var rows = new List<MetricRow>();
        var t = DateTimeOffset.UtcNow;
        for (int i = 0; i < 120; i++)
        {
            var values = new Dictionary<string, double> { ["episode_reward"] = Math.Log(i + 1) + random.NextDouble() - 0.5 };
            if (i % 4 == 0) values["loss"] = 2.0 / (i + 1) + random.NextDouble() * 0.05;
            if (i % 30 == 29) values["eval_gflops_geomean"] = 10 + i / 10.0;
            if (i == 5) values["broken/name"] = double.NaN; // no finite value: no chart
            rows.Add(new MetricRow(i * 1000L, t.AddSeconds(i), values));
        }
        var paths = TrainingCharts.Write(rows, folder["charts"]);
        Assert.Equal(["episode_reward.png", "loss.png", "eval_gflops_geomean.png", "curves.png"], paths.Select(Path.GetFileName));
        foreach (var p in paths)
        {
            var bytes = File.ReadAllBytes(p);
            Assert.True(bytes.Length > 1000, $"{p} is {bytes.Length} bytes");
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
        }
        Assert.Equal(4, Directory.GetFiles(folder["charts"]).Length); // no temp files left
        Assert.Empty(TrainingCharts.Write([], folder["none"]));
    }

    [Fact]
    public void A_constant_series_gets_a_y_range_around_its_value_and_a_varying_one_keeps_autoscale()
    {
        var (lo, hi) = TrainingCharts.FlatRange([0.4, 0.4, 0.4]) ?? throw new Xunit.Sdk.XunitException("no range for a constant series");
        Assert.Equal(0.3, lo, 1e-12);
        Assert.Equal(0.5, hi, 1e-12);
        Assert.Equal((-0.1, 0.1), TrainingCharts.FlatRange([0, 0]));
        var (lo2, hi2) = TrainingCharts.FlatRange([250.0, 250.0])!.Value;
        Assert.Equal((225.0, 275.0), (lo2, hi2));
        Assert.Null(TrainingCharts.FlatRange([0.4, 0.41]));
        Assert.Null(TrainingCharts.FlatRange([]));
    }

    // ---- an independent reader of event files ----

    sealed record Event(double WallTime, long Step, string? FileVersion, string? Tag, float? Value, ulong? SessionStatus);

    static uint BitwiseCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = ~0u;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & (uint)-(int)(crc & 1));
        }
        return ~crc;
    }

    static uint Mask(uint crc) => unchecked(((crc >> 15) | (crc << 17)) + 0xA282EAD8u);

    /// <summary>Reads every record, checking both CRCs, and decodes the Event fields the writer uses; any other field
    /// or wire type fails the test.</summary>
    static List<Event> ReadEvents(string path)
    {
        var buf = File.ReadAllBytes(path);
        var events = new List<Event>();
        int i = 0;
        while (i < buf.Length)
        {
            Assert.True(i + 12 <= buf.Length, $"truncated header at {i}");
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(buf.AsSpan(i));
            Assert.Equal(Mask(BitwiseCrc32C(buf.AsSpan(i, 8))), BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(i + 8)));
            Assert.True((ulong)(buf.Length - i - 16) >= length, $"truncated record at {i}");
            var data = buf.AsSpan(i + 12, (int)length);
            Assert.Equal(Mask(BitwiseCrc32C(data)), BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(i + 12 + (int)length)));
            events.Add(DecodeEvent(data.ToArray()));
            i += 12 + (int)length + 4;
        }
        return events;
    }

    static Event DecodeEvent(byte[] data)
    {
        double wall = 0;
        long step = 0;
        string? version = null, tag = null;
        float? value = null;
        ulong? status = null;
        foreach (var (field, wire, number, bytes) in Fields(data))
            switch ((field, wire))
            {
                case (1, 1): wall = BitConverter.Int64BitsToDouble((long)number); break;
                case (2, 0): step = (long)number; break;
                case (3, 2): version = Encoding.UTF8.GetString(bytes!); break;
                case (5, 2): // Summary{value = 1: Value{tag = 1, simple_value = 2}}
                    var values = Fields(bytes!).ToList();
                    Assert.Equal([(1, 2)], values.Select(v => (v.Field, v.Wire)));
                    foreach (var (f, w, n, b) in Fields(values[0].Bytes!))
                        switch ((f, w))
                        {
                            case (1, 2): tag = Encoding.UTF8.GetString(b!); break;
                            case (2, 5): value = BitConverter.Int32BitsToSingle((int)n); break;
                            default: Assert.Fail($"unexpected Summary.Value field {f} (wire {w})"); break;
                        }
                    break;
                case (7, 2): // SessionLog{status = 1}
                    foreach (var (f, w, n, _) in Fields(bytes!))
                        if ((f, w) == (1, 0)) status = n;
                        else Assert.Fail($"unexpected SessionLog field {f} (wire {w})");
                    break;
                default: Assert.Fail($"unexpected Event field {field} (wire {wire})"); break;
            }
        return new Event(wall, step, version, tag, value, status);
    }

    /// <summary>The fields of a protobuf message: (number, wire type, varint or fixed value, bytes when length-delimited).</summary>
    static IEnumerable<(int Field, int Wire, ulong Number, byte[]? Bytes)> Fields(byte[] message)
    {
        int i = 0;
        while (i < message.Length)
        {
            ulong key = Varint(message, ref i);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: yield return (field, wire, Varint(message, ref i), null); break;
                case 1: yield return (field, wire, BinaryPrimitives.ReadUInt64LittleEndian(message.AsSpan(i, 8)), null); i += 8; break;
                case 5: yield return (field, wire, BinaryPrimitives.ReadUInt32LittleEndian(message.AsSpan(i, 4)), null); i += 4; break;
                case 2:
                    int n = checked((int)Varint(message, ref i));
                    yield return (field, wire, 0, message.AsSpan(i, n).ToArray());
                    i += n;
                    break;
                default: throw new InvalidDataException($"wire type {wire} at {i}");
            }
        }
    }

    static ulong Varint(byte[] message, ref int i)
    {
        ulong v = 0;
        for (int shift = 0; ; shift += 7)
        {
            if (shift > 63) throw new InvalidDataException("varint too long");
            byte b = message[i++];
            v |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return v;
        }
    }
}
