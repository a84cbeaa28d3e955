namespace LoopTune.Tests.TestUtil;

/// <summary>A fresh folder under the system temp folder, deleted on dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder(string prefix = "looptune") =>
        Path = Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}")).FullName;

    public string Path { get; }

    public string this[string name] => System.IO.Path.Combine(Path, name);

    /// <summary>The Unix permissions of a file or folder (the tests that read them run where there are any).</summary>
    public static UnixFileMode Mode(string path) => OperatingSystem.IsWindows() ? throw new PlatformNotSupportedException("no Unix modes") : File.GetUnixFileMode(path);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
