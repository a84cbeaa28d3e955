using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace LoopTune.Learning.Logging;

/// <summary>Writes a TensorBoard event file (scalars only) without TensorFlow or Google.Protobuf: the few protobuf fields
/// of <c>Event</c>, <c>Summary</c> and <c>SessionLog</c> (TensorFlow's event.proto and summary.proto) are encoded by
/// hand, and each record is framed as TensorBoard reads it: uint64 length, masked CRC32C of the length, the Event bytes,
/// masked CRC32C of the bytes.</summary>
/// <remarks>Every writer makes a new file (a resumed run gets a file of its own; TensorBoard merges all event files of a
/// folder, in file-name order). Not meant to be shared by processes; calls from several threads are serialised.</remarks>
public sealed class TensorBoardWriter : IDisposable
{
    const string FileVersion = "brain.Event:2";
    static readonly uint[] Table = MakeTable();

    readonly FileStream _file;
    readonly Lock _lock = new();
    readonly ArrayBufferWriter<byte> _event = new(256), _summary = new(128), _inner = new(128), _record = new(256);
    bool _disposed;

    /// <summary>Creates a new event file in <paramref name="folder"/> (created if missing), named
    /// <c>events.out.tfevents.&lt;unix seconds&gt;.&lt;host name&gt;</c>, with a suffix <c>.1</c>, <c>.2</c>, … when that
    /// name is taken, and writes the <c>brain.Event:2</c> file-version record. An existing file is never reopened or
    /// appended to: a resumed run makes a new writer, hence a new file. Each <see cref="Scalar"/> is flushed to the
    /// operating system at once, so a killed process loses nothing written before.</summary>
    public TensorBoardWriter(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        Directory.CreateDirectory(folder);
        var now = DateTimeOffset.UtcNow;
        string stem = System.IO.Path.Combine(folder, $"events.out.tfevents.{now.ToUnixTimeSeconds()}.{HostName()}");
        for (int suffix = 0; ; suffix++)
        {
            string candidate = suffix == 0 ? stem : $"{stem}.{suffix}";
            try
            {
                _file = new FileStream(candidate, FileMode.CreateNew, FileAccess.Write, FileShare.Read, bufferSize: 1);
                Path = System.IO.Path.GetFullPath(candidate);
                break;
            }
            catch (IOException) when (File.Exists(candidate) && suffix < 10_000) { /* taken: try the next suffix */ }
        }
        try
        {
            WallTime(_event, now);
            Bytes(_event, 3, Encoding.UTF8.GetBytes(FileVersion));
            WriteRecord();
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    /// <summary>The full path of the event file.</summary>
    public string Path { get; }

    /// <summary>Appends one scalar (<c>Event{wall_time, step, summary{value{tag, simple_value}}}</c>) and flushes it
    /// to the operating system. <paramref name="wallTime"/> defaults to now.</summary>
    public void Scalar(string tag, float value, long step, DateTimeOffset? wallTime = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(tag);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // Summary.Value{tag = 1, simple_value = 2}; simple_value sits in a oneof, so it is written even when 0.
            _inner.ResetWrittenCount();
            Bytes(_inner, 1, Encoding.UTF8.GetBytes(tag));
            Tag(_inner, 2, WireFixed32);
            BinaryPrimitives.WriteSingleLittleEndian(_inner.GetSpan(4), value);
            _inner.Advance(4);
            // Summary{value = 1}
            _summary.ResetWrittenCount();
            Bytes(_summary, 1, _inner.WrittenSpan);
            // Event{wall_time = 1, step = 2, summary = 5}
            WallTime(_event, wallTime ?? DateTimeOffset.UtcNow);
            Tag(_event, 2, WireVarint);
            Varint(_event, unchecked((ulong)step));
            Bytes(_event, 5, _summary.WrittenSpan);
            WriteRecord();
        }
    }

    /// <summary>Appends <c>Event{wall_time, step, session_log{status = START}}</c>: TensorBoard takes a START after the
    /// first one in a run as a restart and drops every point it has read (from this or earlier files) whose step is
    /// ≥ <paramref name="step"/>, which is how the curves of a run resumed from a checkpoint forget what came after it.</summary>
    internal void SessionStart(long step, DateTimeOffset? wallTime = null)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _inner.ResetWrittenCount();
            Tag(_inner, 1, WireVarint);
            Varint(_inner, 1); // SessionLog.SessionStatus.START
            WallTime(_event, wallTime ?? DateTimeOffset.UtcNow);
            Tag(_event, 2, WireVarint);
            Varint(_event, unchecked((ulong)step));
            Bytes(_event, 7, _inner.WrittenSpan);
            WriteRecord();
        }
    }

    /// <summary>Flushes the file to disk (fsync), beyond the flush to the operating system every record gets.</summary>
    public void Flush()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _file.Flush(flushToDisk: true);
        }
    }

    /// <summary>Flushes to disk and closes the file. Calling it again does nothing.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            try { _file.Flush(flushToDisk: true); }
            finally { _file.Dispose(); }
        }
    }

    /// <summary>CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven; CRC32C("123456789") = 0xE3069283.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }

    /// <summary>The masked CRC that TensorFlow record files store: rotate right by 15 bits, add 0xA282EAD8 (mod 2^32).</summary>
    public static uint Masked(uint crc) => unchecked(((crc >> 15) | (crc << 17)) + 0xA282EAD8);

    static uint[] MakeTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78 : c >> 1;
            table[i] = c;
        }
        return table;
    }

    /// <summary>Frames the Event in <c>_event</c> as one record, writes it with a single call, flushes it to the operating system, and clears <c>_event</c>.</summary>
    void WriteRecord()
    {
        var data = _event.WrittenSpan;
        _record.ResetWrittenCount();
        var header = _record.GetSpan(12);
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], Masked(Crc32C(header[..8])));
        _record.Advance(12);
        _record.Write(data);
        BinaryPrimitives.WriteUInt32LittleEndian(_record.GetSpan(4), Masked(Crc32C(data)));
        _record.Advance(4);
        _event.ResetWrittenCount();
        _file.Write(_record.WrittenSpan);
        _file.Flush(flushToDisk: false);
    }

    const int WireVarint = 0, WireFixed64 = 1, WireLengthDelimited = 2, WireFixed32 = 5;

    static void Tag(IBufferWriter<byte> w, int field, int wireType) => Varint(w, (ulong)((field << 3) | wireType));

    static void Varint(IBufferWriter<byte> w, ulong v)
    {
        var span = w.GetSpan(10);
        int n = 0;
        while (v >= 0x80)
        {
            span[n++] = (byte)(v | 0x80);
            v >>= 7;
        }
        span[n++] = (byte)v;
        w.Advance(n);
    }

    static void Bytes(IBufferWriter<byte> w, int field, ReadOnlySpan<byte> bytes)
    {
        Tag(w, field, WireLengthDelimited);
        Varint(w, (ulong)bytes.Length);
        w.Write(bytes);
    }

    /// <summary>Event.wall_time (field 1, double): seconds since the Unix epoch, with the fraction.</summary>
    static void WallTime(IBufferWriter<byte> w, DateTimeOffset time)
    {
        Tag(w, 1, WireFixed64);
        double seconds = (time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / (double)TimeSpan.TicksPerSecond;
        BinaryPrimitives.WriteDoubleLittleEndian(w.GetSpan(8), seconds);
        w.Advance(8);
    }

    /// <summary>The machine name, with anything that cannot sit in a file name replaced.</summary>
    static string HostName()
    {
        string name;
        try { name = Environment.MachineName; }
        catch (InvalidOperationException) { name = "localhost"; }
        var invalid = System.IO.Path.GetInvalidFileNameChars();
        var chars = name.Select(c => invalid.Contains(c) || char.IsWhiteSpace(c) ? '_' : c).ToArray();
        return chars.Length == 0 ? "localhost" : new string(chars);
    }
}
