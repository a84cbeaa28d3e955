using LoopTune.Measure;

namespace LoopTune.Tests.Measure;

public sealed class ThreadPinningTests
{
    /// <summary>Runs on a fresh thread so a failure never leaves a pool thread pinned.</summary>
    private static void OnOwnThread(Action body)
    {
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                body();
            }
            catch (Exception e)
            {
                error = e;
            }
        });
        thread.Start();
        thread.Join();
        if (error is not null) throw new Xunit.Sdk.XunitException(error.ToString());
    }

    [Fact]
    public void ImpossibleCoresReturnFalse() => OnOwnThread(() =>
    {
        Assert.False(ThreadPinning.PinCurrentThread(-1));
        Assert.False(ThreadPinning.PinCurrentThread(1 << 20));
    });

    [Fact]
    public void PinScopePinsThenRestores() => OnOwnThread(() =>
    {
        if (!OperatingSystem.IsLinux()) return;
        var before = ThreadPinning.CurrentAffinity();
        using (var scope = ThreadPinning.Pin())
        {
            Assert.True(scope.Pinned);
            Assert.Equal([scope.Core], ThreadPinning.CurrentAffinity()); // the core it was running on
            Assert.Contains(scope.Core, before);
            scope.Dispose();
            Assert.Equal(before, ThreadPinning.CurrentAffinity());
        }
        Assert.Equal(before, ThreadPinning.CurrentAffinity());
    });

    [Fact]
    public void PinAndUnpin() => OnOwnThread(() =>
    {
        if (!OperatingSystem.IsLinux()) return;
        var before = ThreadPinning.CurrentAffinity();
        Assert.True(ThreadPinning.PinCurrentThread(0));
        Assert.Equal([0], ThreadPinning.CurrentAffinity());
        ThreadPinning.Unpin();
        Assert.Equal(before, ThreadPinning.CurrentAffinity());
    });

    [Fact]
    public void ScopeDisposedFromAnotherThreadRestoresThePinnedThread()
    {
        if (!OperatingSystem.IsLinux()) return;
        ThreadPinning.PinScope? scope = null;
        IReadOnlyList<int>? before = null, after = null;
        using var pinned = new ManualResetEventSlim();
        using var released = new ManualResetEventSlim();
        var thread = new Thread(() =>
        {
            before = ThreadPinning.CurrentAffinity();
            scope = ThreadPinning.Pin(0);
            pinned.Set();
            released.Wait();
            after = ThreadPinning.CurrentAffinity();
        });
        thread.Start();
        pinned.Wait();
        Assert.True(scope!.Pinned);
        scope.Dispose();
        released.Set();
        thread.Join();
        Assert.Equal(before, after);
    }
}
