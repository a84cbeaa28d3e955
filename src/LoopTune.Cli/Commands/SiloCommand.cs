using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using LoopTune.Cluster;

namespace LoopTune.Cli.Commands;

/// <summary><c>looptune silo --cluster ADDR [--workers N | --cores LIST] [--threads N] [--host-id ID] [--silo-port P] [--gateway-port G]
/// [--advertise IP] [--json]</c>: runs an Orleans silo with one pinned measuring worker per core until SIGTERM or Ctrl+C,
/// printing one line (JSON with --json) when it is ready. The SLURM launcher runs one per node; commands given
/// <c>--cluster</c> spread their work over the workers of every silo.</summary>
static class SiloCommand
{
    public static Command Create(Io io)
    {
        var cluster = new Option<string>("--cluster") { Description = "The cluster's membership store: redis://HOST:PORT, postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, or localhost (a cluster of this one silo).", Required = true };
        var workers = new Option<int?>("--workers") { Description = "Workers: the first N cores this process may use, one worker pinned to each (default: all of them)." };
        var cores = new Option<string?>("--cores") { Description = "Workers on exactly these cores, e.g. 0,2 (instead of --workers)." };
        var hostId = new Option<string?>("--host-id") { Description = "The machine's name in the pinning bookkeeping (default: the host name); silos with one host id never share a core." };
        var siloPort = new Option<int>("--silo-port") { Description = "The port silos talk to each other on.", DefaultValueFactory = _ => 11111 };
        var gatewayPort = new Option<int>("--gateway-port") { Description = "The port clients (commands run with --cluster) connect to.", DefaultValueFactory = _ => 30000 };
        var advertise = new Option<string?>("--advertise") { Description = "The IP address other machines reach this silo at (default: 127.0.0.1 when the store is on loopback, else this machine's first IPv4 address)." };
        var threads = Options.Threads("Threads each worker's kernels run on (its core and the ones after it; runs asked for another count are refused)");
        var json = new Option<bool>("--json") { Description = "Print the ready line as one JSON object: silo, host_id, cores, threads, pinned, workers, cluster, silo_port, gateway_port, machine." };
        var command = new Command("silo", "Run a cluster silo with pinned measuring workers until SIGTERM or Ctrl+C (one per machine; see 'compare-searches --cluster').")
        {
            cluster, workers, cores, threads, hostId, siloPort, gatewayPort, advertise, json,
        };
        command.SetAction(p => io.Guard(() =>
        {
            var address = ClusterAddress.Parse(p.GetValue(cluster));
            int n = Options.ApplyThreads(p, threads);
            var settings = new SiloSettings(address, WorkerCores.Choose(p.GetValue(workers), p.GetValue(cores)), p.GetValue(hostId) ?? SiloSettings.DefaultHostId, ClusterHost.DefaultHandlers())
            {
                SiloPort = p.GetValue(siloPort),
                GatewayPort = p.GetValue(gatewayPort),
                Threads = n,
                Advertise = p.GetValue(advertise) is { } a ? IPAddress.TryParse(a, out var ip) ? ip : throw new ClusterError($"--advertise '{a}' is not an IP address") : null,
            };
            using var stop = new CancellationTokenSource();
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            HostedSilo silo;
            try { silo = Sync.Wait(() => ClusterHost.StartSiloAsync(settings, stop.Token)); }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { return Program.Ok; } // stopped while starting
            try
            {
                if (p.GetValue(json)) io.Stdout.WriteLine(Json(silo).ToJsonString());
                else io.Stdout.WriteLine($"silo ready: {silo.Address} host {settings.HostId}, cores {string.Join(",", settings.Cores)}{(n > 1 ? $", {n} threads each (teams {string.Join(" ", silo.Workers.Select(w => string.Join(",", w.Cores)))})" : "")}{(silo.Workers.All(w => w.Pinned) ? " (pinned)" : " (NOT pinned: the OS refused)")}, cluster {address}, gateway port {settings.GatewayPort}");
                io.Stdout.Flush();
                stop.Token.WaitHandle.WaitOne();
                try { io.Stderr.WriteLine("stopping the silo (its workers hand back what they hold)..."); }
                catch (IOException) { /* whoever read our output is gone; stop all the same */ }
            }
            finally { Sync.Wait(() => silo.StopAsync()); }
            return Program.Ok;

            void Stop(PosixSignalContext ctx)
            {
                ctx.Cancel = true;
                stop.Cancel();
            }
        }));
        return command;
    }

    static JsonObject Json(HostedSilo silo) => new()
    {
        ["silo"] = silo.Address.ToString(),
        ["host_id"] = silo.Settings.HostId,
        ["cores"] = new JsonArray([.. silo.Settings.Cores.Select(c => JsonValue.Create(c))]),
        ["threads"] = silo.Settings.Threads,
        ["pinned"] = new JsonArray([.. silo.Workers.Select(w => JsonValue.Create(w.Pinned))]),
        ["workers"] = new JsonArray([.. silo.Workers.Select(w => JsonValue.Create(w.Id))]),
        ["cluster"] = silo.Settings.Address.Text,
        ["silo_port"] = silo.Settings.SiloPort,
        ["gateway_port"] = silo.Settings.GatewayPort,
        ["machine"] = silo.Workers[0].Machine,
    };
}
