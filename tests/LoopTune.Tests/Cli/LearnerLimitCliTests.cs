using LoopTune.Tests.TestUtil;

namespace LoopTune.Tests.Cli;

/// <summary><c>looptune learner-limit</c>'s bad input: exit 2 naming the option, before any row runs.</summary>
public sealed class LearnerLimitCliTests
{
    [Theory]
    [InlineData("--workers 0", "--workers '0'")]
    [InlineData("--workers 1,x", "--workers 'x'")]
    [InlineData("--modes sideways", "--modes 'sideways': expected async, phased")]
    [InlineData("--gemm mkl", "--gemm 'mkl': expected auto, managed, onednn, openblas")]
    [InlineData("--worker-rate 0", "--worker-rate 0")]
    [InlineData("--set NoSuchField=1", "--set NoSuchField")]
    public void BadInputExitsWithTwoNamingIt(string args, string message)
    {
        var (code, _, err) = TestHome.Run(["learner-limit", "--time", "1s", .. args.Split(' ')]);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
    }
}
