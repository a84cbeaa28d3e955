using System.Diagnostics;

namespace LoopTune.Tests.TestUtil;

/// <summary>
/// A small tmpfs mounted on a fresh folder, for writes that must fail: <see cref="Fill"/> leaves it without a free byte
/// (ENOSPC), <see cref="MakeReadOnly"/> remounts it read-only (EROFS, which stops root too, where chmod would not),
/// <see cref="Grow"/> gives it room again. Unmounted and deleted on dispose. Needs <c>mount</c> to be permitted (root, or
/// a container that allows it); <see cref="WhyNot"/> says why not where it is not.
/// </summary>
public sealed class SmallDisk : IDisposable
{
    /// <summary>Null when a tmpfs can be mounted here, else why not (tried once per run).</summary>
    public static string? WhyNot { get; } = Probe();

    public SmallDisk(int kilobytes)
    {
        Path = Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"looptune-small-disk-{Guid.NewGuid():N}")).FullName;
        if (Run("mount", "-t", "tmpfs", "-o", $"size={kilobytes}k", "tmpfs", Path) is { } why)
        {
            Directory.Delete(Path);
            throw new InvalidOperationException(why);
        }
    }

    public string Path { get; }

    public string this[string name] => System.IO.Path.Combine(Path, name);

    /// <summary>Writes a filler file until the disk has no free byte left.</summary>
    public void Fill()
    {
        using var filler = new FileStream(this["filler"], FileMode.Append, FileAccess.Write, FileShare.None, bufferSize: 1);
        var block = new byte[4096];
        try
        {
            for (int size = block.Length; size > 0;)
            {
                try { filler.Write(block, 0, size); }
                catch (IOException) { size /= 2; }
            }
        }
        finally
        {
            try { filler.Dispose(); }
            catch (IOException) { /* the last bytes had no room */ }
        }
    }

    /// <summary>Remounts the disk read-only.</summary>
    public void MakeReadOnly() => Check(Run("mount", "-o", "remount,ro", Path));

    /// <summary>Remounts the disk writable with <paramref name="kilobytes"/> of room.</summary>
    public void Grow(int kilobytes) => Check(Run("mount", "-o", $"remount,rw,size={kilobytes}k", Path));

    public void Dispose()
    {
        Run("umount", "-l", Path);
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    static void Check(string? why)
    {
        if (why is not null) throw new InvalidOperationException(why);
    }

    /// <summary>Runs <paramref name="program"/> (mount, umount) with <paramref name="args"/>: null when it worked, else what it said.</summary>
    static string? Run(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(start)!;
            string err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0 ? null : $"{program} {string.Join(' ', args)} exited with {p.ExitCode}: {err.Trim()}";
        }
        catch (System.ComponentModel.Win32Exception e) { return $"{program} cannot be run: {e.Message}"; }
    }

    static string? Probe()
    {
        if (!OperatingSystem.IsLinux()) return "a small tmpfs needs Linux";
        try
        {
            using var disk = new SmallDisk(64);
            disk.MakeReadOnly();
            return null;
        }
        catch (InvalidOperationException e) { return $"a small tmpfs cannot be mounted here, so no write can be made to fail for root ({e.Message})"; }
    }
}

/// <summary>A fact that needs a <see cref="SmallDisk"/>; skipped with the reason where one cannot be mounted.</summary>
public sealed class SmallDiskFactAttribute : FactAttribute
{
    public SmallDiskFactAttribute()
    {
        if (SmallDisk.WhyNot is { } why) Skip = why;
    }
}

/// <summary>A theory that needs a <see cref="SmallDisk"/>; skipped with the reason where one cannot be mounted.</summary>
public sealed class SmallDiskTheoryAttribute : TheoryAttribute
{
    public SmallDiskTheoryAttribute()
    {
        if (SmallDisk.WhyNot is { } why) Skip = why;
    }
}
