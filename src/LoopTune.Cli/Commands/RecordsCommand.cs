using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using LoopTune.Ir;
using LoopTune.Measure;
using LoopTune.Store;
using Spectre.Console;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune records list|export FILE|import FILE [--db PATH] [--json]</c>: this machine's tuning records (the
/// schedules <c>looptune model</c> and the library's <c>Tuner</c> chose, kept in the measurement store per machine key,
/// runtime and thread count), listed, written to a JSON lines file (<see cref="RecordsFile"/>), or read from one written
/// on a machine of the same key. A file with records of another machine key or runtime is refused whole (exit 2).</summary>
static class RecordsCommand
{
    public static Command Create(Io io) => new("records", "List, export and import this machine's tuning records (the schedules a tuner chose, recalled instead of tuned again).")
    {
        List(io), Export(io), Import(io),
    };

    static Command List(Io io)
    {
        var (db, json) = (SearchCommand.DbOption(), Options.Json());
        var command = new Command("list", "List this machine's tuning records: computation, threads, schedule, GFLOPS when tuned, search, budget, time, and whether a compiled library of it is kept (a library's recall loads it instead of compiling).") { db, json };
        command.SetAction(p => io.Guard(() =>
        {
            using var store = Existing(p.GetValue(db), "list");
            var (mine, others) = Split(store);
            var compiled = new CompiledRecords(CompiledRecords.FolderFor(store.Path), store.Machine);
            string? Library(KeyedRecord k) => k.Threads == 1 ? compiled.Library(Computation.Parse(k.Spec), k.Record.Schedule) : null;
            if (p.GetValue(json))
            {
                var o = Header(store);
                o["records"] = new JsonArray([.. mine.Select(k =>
                {
                    var line = Line(k);
                    line["compiled"] = Library(k);
                    return line;
                })]);
                o["other_records"] = others;
                io.Stdout.WriteLine(o.ToJsonString(Options.JsonStyle));
                return Program.Ok;
            }
            io.Out.MarkupLineInterpolated($"[bold]{mine.Count}[/] tuning record(s) of [bold]{store.Machine}[/] in {store.Path}");
            if (mine.Count > 0)
            {
                var t = new Table().AddColumn("computation").AddColumn(new TableColumn("threads").RightAligned()).AddColumn("timed").AddColumn("schedule")
                    .AddColumn(new TableColumn("GFLOPS").RightAligned()).AddColumn("method").AddColumn("budget").AddColumn("tuned (UTC)").AddColumn("compiled");
                foreach (var k in mine)
                    t.AddRow(Markup.Escape(k.Spec), $"{k.Threads}", $"{k.Context}", Markup.Escape(k.Record.Schedule), k.Record.Gflops.ToString("F1", CultureInfo.InvariantCulture),
                        Markup.Escape(k.Record.Method), Markup.Escape(k.Record.Budget), $"{k.Record.TunedAt:yyyy-MM-dd HH:mm}", Library(k) is null ? "no" : "yes");
                io.Out.Write(t);
            }
            if (others > 0) io.Out.MarkupLineInterpolated($"[grey]{others} record(s) of other machines or runtimes in the file, not listed: they answer only there[/]");
            return Program.Ok;
        }));
        return command;
    }

    /// <summary>The store a reading command names: <paramref name="db"/> must exist (a mistyped path would otherwise be made
    /// into an empty store, and its folder with it, and listed as holding nothing); the data folder's store is opened, or
    /// made, as every command does.</summary>
    static MeasurementStore Existing(string? db, string verb) =>
        db is null || File.Exists(db) ? new MeasurementStore(db)
        : throw new LoopTuneException($"records {verb} --db {db}: no measurement store there (give an existing file, or no --db for this machine's store in the data folder)");

    static Command Export(Io io)
    {
        var file = new Argument<string>("FILE") { Description = "The JSON lines file to write (written to a temporary name, then renamed)." };
        var (db, json) = (SearchCommand.DbOption(), Options.Json());
        var command = new Command("export", "Write this machine's tuning records to a JSON lines file: spec, threads, schedule, GFLOPS, method, budget, time, runtime and the machine block, one record a line.")
        {
            file, db, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            using var store = Existing(p.GetValue(db), "export");
            var (mine, _) = Split(store);
            string path = p.GetValue(file)!;
            RecordsFile.Write(path, mine, Machine.Current.ToJson());
            if (p.GetValue(json))
            {
                var o = Header(store);
                (o["file"], o["exported"]) = (Path.GetFullPath(path), mine.Count);
                io.Stdout.WriteLine(o.ToJsonString(Options.JsonStyle));
            }
            else io.Out.MarkupLineInterpolated($"exported {mine.Count} tuning record(s) of {store.Machine} to [bold]{Path.GetFullPath(path)}[/]");
            return Program.Ok;
        }));
        return command;
    }

    static Command Import(Io io)
    {
        var file = new Argument<string>("FILE") { Description = "A JSON lines file that 'records export' wrote on a machine of this key." };
        var (db, json) = (SearchCommand.DbOption(), Options.Json());
        var command = new Command("import", "Read tuning records exported on a machine of this key; a record is kept where this store's own is faster. "
            + "Records of another machine key or runtime are refused: the whole file, exit 2, nothing imported.")
        {
            file, db, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            using var store = new MeasurementStore(p.GetValue(db));
            string path = p.GetValue(file)!;
            var (read, written) = RecordsFile.Import(store, path);
            if (p.GetValue(json))
            {
                var o = Header(store);
                (o["file"], o["read"], o["imported"], o["kept"]) = (Path.GetFullPath(path), read, written, read - written);
                io.Stdout.WriteLine(o.ToJsonString(Options.JsonStyle));
            }
            else io.Out.MarkupLineInterpolated($"imported {written} of the {read} tuning record(s) of [bold]{Path.GetFullPath(path)}[/] into {store.Path}{(read > written ? $" ({read - written} kept as they were: as fast or faster here)" : "")}");
            return Program.Ok;
        }));
        return command;
    }

    /// <summary>The store's records of its machine and runtime, and how many others it holds.</summary>
    static (List<KeyedRecord> Mine, int Others) Split(MeasurementStore store)
    {
        var all = store.Records();
        var mine = all.Where(store.IsOurs).ToList();
        return (mine, all.Count - mine.Count);
    }

    static JsonObject Header(MeasurementStore store) => new() { ["db"] = store.Path, ["machine"] = store.Machine, ["runtime"] = MeasurementStore.BaseRuntime(store.Runtime) };

    /// <summary>A record as <c>list --json</c> shows it: its line of an exported file without the machine block.</summary>
    static JsonObject Line(KeyedRecord k)
    {
        var o = RecordsFile.ToJson(k, []);
        o.Remove("machine");
        return o;
    }
}
