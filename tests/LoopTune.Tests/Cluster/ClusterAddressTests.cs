using LoopTune.Cluster;
using Npgsql;

namespace LoopTune.Tests.Cluster;

/// <summary><c>--cluster</c> values with credentials: what reaches the store's client library, and that the password is
/// never in a printed form of the address or in an error about it.</summary>
public sealed class ClusterAddressTests
{
    const string Secret = "s3cr;et=,x";

    static ClusterAddress Parse(string text, string? fromEnvironment = null) =>
        ClusterAddress.Parse(text, name => name == ClusterAddress.PasswordVariable ? fromEnvironment : null);

    [Theory]
    [InlineData("redis://h:7000", "h", 7000, null, null, false, "redis://h:7000")]
    [InlineData("redis://h", "h", 6379, null, null, false, "redis://h")]
    [InlineData("redis://:pw@h:7000", "h", 7000, null, "pw", false, "redis://:***@h:7000")]
    [InlineData("rediss://:p%40ss%2Fw@10.0.0.1:6380", "10.0.0.1", 6380, null, "p@ss/w", true, "rediss://:***@10.0.0.1:6380")]
    [InlineData("rediss://app:pw@h:1/", "h", 1, "app", "pw", true, "rediss://app:***@h:1/")]
    [InlineData("rediss://h:6380", "h", 6380, null, null, true, "rediss://h:6380")]
    public void RedisAddressesCarryTheirCredentialsApartAndShowThePasswordMasked(string text, string host, int port, string? user, string? password, bool tls, string shown)
    {
        var a = Parse(text);
        Assert.Equal((Membership.Redis, host, port, user, password, tls), (a.Kind, a.Host, a.Port, a.User, a.Password, a.StoreTls));
        Assert.Equal($"{host}:{port}", a.ConnectionString); // the credentials go to StackExchange.Redis apart, never in a string
        Assert.Equal(shown, a.Text);
        Assert.Equal(shown, a.ToString());
        Assert.Equal($"the Redis membership store {shown}", a.Describe());
        var options = ClusterHost.StoreOptions(a);
        Assert.Equal((user, password, tls), (options.User, options.Password, options.Ssl));
    }

    [Fact]
    public void APasswordWithSeparatorsReachesNpgsqlWholeAndSslModeIsPassedOn()
    {
        var a = Parse($"postgres://me:{Uri.EscapeDataString(Secret)}@db.example:6543/orleans?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem");
        var cs = new NpgsqlConnectionStringBuilder(a.ConnectionString);
        Assert.Equal(("db.example", 6543, "orleans", "me", Secret), (cs.Host, cs.Port, cs.Database, cs.Username, cs.Password));
        Assert.Equal((SslMode.VerifyFull, "/etc/ca.pem"), (cs.SslMode, cs.RootCertificate));
        Assert.True(a.StoreTls);
        Assert.Equal("postgres://me:***@db.example:6543/orleans?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem", a.Text);
        Assert.DoesNotContain("s3cr", a.ToString());
        Assert.False(Parse("postgres://me@h/db?sslmode=prefer").StoreTls);
        Assert.Equal(SslMode.Require, new NpgsqlConnectionStringBuilder(Parse("postgresql://me@h/db?sslmode=require").ConnectionString).SslMode);
    }

    [Theory]
    [InlineData("redis://h:1", null)]
    [InlineData("postgres://me@h/db", "me")]
    public void APasswordMayComeFromTheEnvironmentAndTheAddressWins(string text, string? user)
    {
        var a = Parse(text, Secret);
        Assert.Equal((user, Secret), (a.User, a.Password));
        Assert.Equal(text, a.Text);
        Assert.Equal("given", Parse(text.Replace("//me@", "//me:given@", StringComparison.Ordinal).Replace("//h", "//:given@h", StringComparison.Ordinal), Secret).Password);
        Assert.Null(Parse(text, "").Password);
    }

    [Theory]
    [InlineData("redis://:hunter2@h:1/db", "(a redis address is redis[s]://[:PASSWORD@]HOST:PORT, nothing more)", "redis://:***@h:1/db")]
    [InlineData("redis://hunter2@h:1", "(give the password after a colon", "redis://hunter2@h:1")]
    [InlineData("rediss://:hunter2@h:1?ssl=1", "nothing more", "rediss://:***@h:1?ssl=1")]
    [InlineData("postgres://me:hunter2@h/db?sslmode=sometimes", "(sslmode 'sometimes': one of disable, allow, prefer, require, verify-ca, verify-full)", "postgres://me:***@h/db?sslmode=sometimes")]
    [InlineData("postgres://me:hunter2@h/db?password=x", "('password': a postgres address takes sslmode and sslrootcert only)", "postgres://me:***@h/db?password=x")]
    [InlineData("postgres://:hunter2@h/db", "(name the user", "postgres://:***@h/db")]
    [InlineData("mysql://me:hunter2@h/db", "be read: give localhost", "mysql://me:***@h/db")]
    public void BadAddressesAreNamedWithThePasswordMasked(string text, string why, string shown)
    {
        var e = Assert.Throws<ClusterError>(() => Parse(text));
        Assert.Contains(why, e.Message);
        Assert.StartsWith($"--cluster '{shown}' cannot be read", e.Message);
        if (text.Contains(":hunter2@", StringComparison.Ordinal)) Assert.DoesNotContain("hunter2", e.Message);
    }

    [Fact]
    public void ScrubTakesThePasswordOutOfALibrarysMessage()
    {
        var a = Parse("redis://:hunter2@h:1");
        Assert.Equal("AUTH *** failed for ***", a.Scrub("AUTH hunter2 failed for hunter2"));
        Assert.Equal("AUTH hunter2", Parse("redis://h:1").Scrub("AUTH hunter2"));
    }
}
