using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace LoopTune.Cluster;

/// <summary>
/// The certificate of a cluster that requires TLS (<c>--tls-cert FILE --tls-key FILE</c>, PEM): every silo and client of
/// the cluster holds the same certificate and its key, presents it on every connection (silo to silo, client to
/// gateway, and to a <c>rediss://</c> store that asks for one), and accepts a connection only from a peer that presents
/// that very certificate (mutual TLS, compared by SHA-256 hash: no CA and no host name are involved, so a self-signed
/// certificate made for one job, <see cref="Create"/>, is all a cluster needs). A silo or client without it is refused.
/// </summary>
public sealed class ClusterTls
{
    readonly byte[] hash;

    ClusterTls(X509Certificate2 certificate, string certFile) =>
        (Certificate, CertFile, hash) = (certificate, certFile, certificate.GetCertHash(HashAlgorithmName.SHA256));

    /// <summary>The certificate with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>Where it was read from (shown in messages; the key file is never shown).</summary>
    public string CertFile { get; }

    /// <summary>How long a TLS handshake may take before the connection is dropped.</summary>
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Whether <paramref name="remote"/> is the cluster's certificate.</summary>
    public bool Accepts(X509Certificate? remote) => remote is not null && remote.GetCertHash(HashAlgorithmName.SHA256).AsSpan().SequenceEqual(hash);

    /// <summary>Reads the certificate and key of <c>--tls-cert</c> and <c>--tls-key</c>; a <see cref="ClusterError"/> naming
    /// the option when one is given without the other, a file is missing or they do not hold a certificate and its key.</summary>
    public static ClusterTls? Load(string? certFile, string? keyFile)
    {
        if (certFile is null && keyFile is null) return null;
        if (certFile is null || keyFile is null) throw new ClusterError("--tls-cert and --tls-key go together: the cluster's certificate and its private key (PEM files)");
        foreach (var (option, file) in new[] { ("--tls-cert", certFile), ("--tls-key", keyFile) })
            if (!File.Exists(file)) throw new ClusterError($"{option} {file}: no such file");
        try
        {
            var certificate = X509Certificate2.CreateFromPemFile(certFile, keyFile);
            if (!certificate.HasPrivateKey) throw new ClusterError($"--tls-key: the key does not belong to the certificate {certFile}");
            return new ClusterTls(certificate, Path.GetFullPath(certFile));
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            throw new ClusterError($"--tls-cert {certFile} with --tls-key: not a PEM certificate and its private key ({e.Message})", e);
        }
    }

    /// <summary>Makes a self-signed certificate for one cluster (ECDSA P-256, valid for <paramref name="lifetime"/>, for
    /// both server and client authentication) and writes it as PEM to <paramref name="certFile"/> and its key to
    /// <paramref name="keyFile"/>, both readable by their owner only from the start.</summary>
    public static void Create(string certFile, string keyFile, string name, TimeSpan lifetime)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(name);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyCertSign, critical: true));
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false));
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now.AddMinutes(-5), now + lifetime);
        AtomicFile.WriteSecret(keyFile, key.ExportPkcs8PrivateKeyPem() + "\n");
        AtomicFile.WriteSecret(certFile, certificate.ExportCertificatePem() + "\n");
    }

    public override string ToString() => CertFile;
}
