using System.Security.Cryptography;
using LoopTune.Cluster;

namespace LoopTune.Cli.Slurm;

/// <summary>
/// What makes a SLURM job's cluster its own: a random password for its Redis store and a self-signed certificate that
/// its silos and command require of each other (mutual TLS, <see cref="ClusterTls"/>) and that the store requires of its
/// clients (TLS with client certificates). They are written into <see cref="SlurmJob.Secrets"/>, a folder of mode 700
/// whose files are mode 600 from their creation: <see cref="PasswordFile"/>, <see cref="CertFile"/>, <see cref="KeyFile"/>,
/// and <see cref="StoreConfig"/> (redis-server's configuration, with the password, so it is on no command line). The
/// batch script reads the password at run time into <see cref="ClusterAddress.PasswordVariable"/>, which srun passes to
/// the silos; the script itself, and what the launcher prints, never hold it. Each launch makes new ones.
/// </summary>
static class JobSecrets
{
    public const string PasswordFile = "store.password", CertFile = "tls.crt", KeyFile = "tls.key", StoreConfig = "redis.conf";

    /// <summary>The certificate's name (no host name is checked: peers compare the certificate itself).</summary>
    public const string CertificateName = "looptune-cluster";

    /// <summary>Writes a new password, certificate (valid for a year: how long the job waits in the queue is not known)
    /// and store configuration for <paramref name="job"/>.</summary>
    public static void Write(SlurmJob job)
    {
        string folder = job.Secrets;
        try
        {
            Directory.CreateDirectory(folder);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw FileWriteError.From(folder, e);
        }
        string password = RandomNumberGenerator.GetHexString(64, lowercase: true), cert = Path.Combine(folder, CertFile);
        ClusterTls.Create(cert, Path.Combine(folder, KeyFile), CertificateName, TimeSpan.FromDays(366));
        AtomicFile.WriteSecret(Path.Combine(folder, PasswordFile), password + "\n");
        AtomicFile.WriteSecret(Path.Combine(folder, StoreConfig), $"""
            # Written by `looptune slurm` for the job {job.JobName}: its membership store's password and TLS. Readable by you only.
            requirepass {password}
            tls-cert-file {ConfigValue(cert)}
            tls-key-file {ConfigValue(Path.Combine(folder, KeyFile))}
            tls-ca-cert-file {ConfigValue(cert)}
            tls-auth-clients yes

            """);
    }

    /// <summary>A path as a double-quoted redis.conf value (<see cref="SlurmJob"/> has ruled out '"' and '\' in the folder).</summary>
    static string ConfigValue(string path) => $"\"{path}\"";
}
