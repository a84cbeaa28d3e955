using LoopTune.Cluster;

namespace LoopTune.Cli.Slurm;

/// <summary>The sbatch script of a <see cref="SlurmJob"/>. SLURM runs it on the job's first node, which is the head: it
/// starts a redis-server there (the Orleans membership store: all interfaces, no persistence, TLS only, with the job's
/// password and certificate of <see cref="JobSecrets"/>) and waits until that server answers, starts one silo per node
/// with srun in the background, then runs the command on the head with <c>--cluster rediss://HEAD:PORT --min-workers
/// NODES*CPUS --tls-cert CERT --tls-key KEY</c> appended, and exits with the command's exit code. The password goes to
/// the silos and the command in the environment (<see cref="ClusterAddress.PasswordVariable"/>), read from its file when
/// the job starts: it is in neither the script nor a command line. A trap
/// on EXIT stops, in this order, the command, the silos (SIGTERM to their step, so they leave the cluster cleanly) and
/// the store, each killed if it has not ended in a few seconds: on success, failure, scancel or the time limit alike,
/// within SLURM's default 30 s between SIGTERM and SIGKILL.</summary>
static class BatchScript
{
    /// <summary>The line that sets the command's words; tests read it back with bash.</summary>
    public const string CommandLine = "cmd=";

    public static string Render(SlurmJob job)
    {
        var sbatch = new List<string>
        {
            $"--job-name={job.JobName}", $"--nodes={job.Nodes}", "--ntasks-per-node=1", $"--cpus-per-task={job.CpusPerNode}",
            $"--time={job.Time}",
        };
        if (job.Partition is { } p) sbatch.Add($"--partition={p}");
        sbatch.Add($"--output={SbatchValue(job.Output)}");
        sbatch.Add($"--chdir={SbatchValue(job.WorkDir)}");
        return $$"""
            #!/usr/bin/env bash
            # Written by `looptune slurm`. On the first node: a redis-server (the membership store), one looptune silo per node
            # with {{job.WorkersPerNode}} measuring worker(s) of {{job.Threads}} thread(s) (srun), then the command below with --cluster and --min-workers. On any exit
            # (the end, a failure, scancel, the time limit) the command, the silos and the store are stopped, in that order.
            # The store, the silos and the command accept only this job: its password and certificate are in the secrets folder.
            {{string.Join('\n', sbatch.Select(o => $"#SBATCH {o}"))}}
            set -u
            looptune={{Shell.Array(job.Program)}}
            {{CommandLine}}{{Shell.Array(job.Command)}}
            nodes={{job.Nodes}} cpus={{job.CpusPerNode}} workers_per_node={{job.WorkersPerNode}} threads={{job.Threads}} port={{job.RedisPort}}
            secrets={{Shell.Quote(job.Secrets)}}
            command_pid='' silos_pid='' redis_pid=''

            say() { echo "looptune-slurm: $*" >&2; }
            ended() { ! kill -0 "$1" 2>/dev/null; }
            # await PID SECONDS: true once PID has ended, false if it still runs after SECONDS
            await() { local i; for ((i = 0; i < $2 * 10; i++)); do ended "$1" && return 0; sleep 0.1; done; ended "$1"; }
            # halt PID SECONDS: SIGTERM, then SIGKILL if it still runs after SECONDS
            halt() { [ -n "$1" ] || return 0; kill -TERM "$1" 2>/dev/null; await "$1" "$2" || kill -KILL "$1" 2>/dev/null; }
            stop() {
              local status=$?
              trap '' TERM INT
              [ -n "$command_pid$silos_pid$redis_pid" ] || return 0
              halt "$command_pid" 8
              if [ -n "$silos_pid" ]; then
                # SIGTERM to the silos' step (srun's first step, .0) lets them leave cleanly; SIGTERM to srun itself would SIGKILL them
                scancel --quiet --signal=TERM "$SLURM_JOB_ID.0" 2>/dev/null
                await "$silos_pid" 10 || halt "$silos_pid" 3
              fi
              halt "$redis_pid" 3
              say "stopped the store and the silos; exit $status"
            }
            trap stop EXIT
            trap 'exit 143' TERM
            trap 'exit 130' INT

            [ -n "${SLURM_JOB_NODELIST:-}" ] || { say "this script runs as a SLURM job: submit it with sbatch"; exit 2; }
            head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
            addr=$(scontrol show node "$head" 2>/dev/null | grep -o 'NodeAddr=[^ ]*' | head -n1 | cut -d= -f2)
            cluster="rediss://${addr:-$head}:$port"
            command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { say "redis-server and redis-cli are not installed on $head"; exit 2; }
            # the job's password, for the silos (srun passes the environment on) and the command; redis-cli reads REDISCLI_AUTH
            {{ClusterAddress.PasswordVariable}}=$(cat "$secrets/{{JobSecrets.PasswordFile}}") && [ -n "${{ClusterAddress.PasswordVariable}}" ] || { say "cannot read the job's password in $secrets"; exit 2; }
            export {{ClusterAddress.PasswordVariable}} REDISCLI_AUTH="${{ClusterAddress.PasswordVariable}}"
            tls=(--tls-cert "$secrets/{{JobSecrets.CertFile}}" --tls-key "$secrets/{{JobSecrets.KeyFile}}")
            redis-server "$secrets/{{JobSecrets.StoreConfig}}" --bind 0.0.0.0 --port 0 --tls-port "$port" --protected-mode no --save '' --appendonly no --loglevel warning &
            redis_pid=$!
            # it answers, and it is ours (not another server already on that port)
            for ((i = 0; i < 100; i++)); do
              redis-cli --tls --cacert "$secrets/{{JobSecrets.CertFile}}" --cert "$secrets/{{JobSecrets.CertFile}}" --key "$secrets/{{JobSecrets.KeyFile}}" -p "$port" info server 2>/dev/null \
                | tr -d '\r' | grep -qx "process_id:$redis_pid" && break
              ended "$redis_pid" && { redis_pid=''; say "redis-server could not start on port $port of $head (in use? choose --redis-port)"; exit 2; }
              sleep 0.1
            done
            [ "$i" -lt 100 ] || { say "redis-server on port $port of $head does not answer"; exit 2; }
            say "membership store $cluster; $nodes silo(s) of $workers_per_node worker(s)"

            srun --overlap --nodes="$nodes" --ntasks="$nodes" --ntasks-per-node=1 --cpus-per-task="$cpus" --kill-on-bad-exit=0 \
              "${looptune[@]}" silo --cluster "$cluster" --workers "$workers_per_node" --threads "$threads" "${tls[@]}" &
            silos_pid=$!

            "${looptune[@]}" "${cmd[@]}" --cluster "$cluster" --min-workers $((nodes * workers_per_node)) "${tls[@]}" &
            command_pid=$!
            wait "$command_pid"
            status=$?
            command_pid=''
            say "the command exited with $status"
            exit "$status"

            """;
    }

    /// <summary>A value of an <c>#SBATCH</c> line: in double quotes when it holds white space (<see cref="SlurmJob"/> has
    /// ruled out the characters sbatch would read otherwise).</summary>
    static string SbatchValue(string value) => value.Any(char.IsWhiteSpace) ? $"\"{value}\"" : value;
}
