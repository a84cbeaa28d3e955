using System.Runtime.InteropServices;

namespace LoopTune.Measure;

/// <summary>Another library's single-precision GEMM, loaded at run time with
/// <see cref="NativeLibrary.TryLoad(string, out IntPtr)"/> and called through a function pointer on the
/// calling thread only: OpenBLAS, BLIS or oneDNN. A missing library or symbol makes the peer
/// unavailable (<see cref="Problem"/> says why), never an exception at load time.</summary>
public sealed unsafe class Peer
{
    private const int CblasRowMajor = 101, CblasNoTrans = 111;
    private readonly Abi abi;
    private readonly nint gemm;
    private readonly nint ompSetNumThreads;
    private readonly nint bliSetNumThreads;

    private Peer(string key, string library, string problem) => (Key, Library, Problem, Threading) = (key, library, problem, "");

    private Peer(string key, string library, Abi abi, nint gemm, string? version, string threading,
                 nint ompSetNumThreads = 0, nint bliSetNumThreads = 0)
    {
        (Key, Library, Version, Threading, this.abi, this.gemm) = (key, library, version, threading, abi, gemm);
        (this.ompSetNumThreads, this.bliSetNumThreads) = (ompSetNumThreads, bliSetNumThreads);
    }

    private enum Abi { Cblas, Blis, Dnnl }

    /// <summary>Short name: "openblas", "blis" or "onednn".</summary>
    public string Key { get; }

    /// <summary>The library file loaded, or the files tried when none could be.</summary>
    public string Library { get; }

    /// <summary>Whether <see cref="Sgemm"/> can be called.</summary>
    public bool Available => Problem is null;

    /// <summary>Why the peer is unavailable (library not found, symbol missing); null when available.</summary>
    public string? Problem { get; }

    /// <summary>The library's own description of its version or build, when it exports one.</summary>
    public string? Version { get; }

    /// <summary>How the peer is kept to one thread.</summary>
    public string Threading { get; }

    /// <inheritdoc/>
    public override string ToString() => Available ? $"{Key} ({Library})" : $"{Key}: {Problem}";

    /// <summary>Row-major <c>C[m,n] += A[m,k] * B[k,n]</c> (alpha 1, beta 1, lda = k, ldb = n, ldc = n),
    /// on the calling thread only.</summary>
    public void Sgemm(int m, int n, int k, float* a, float* b, float* c)
    {
        if (!Available) throw new InvalidOperationException($"peer {Key} is unavailable: {Problem}");
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        if (m == 0 || n == 0 || k == 0) return;
        OneThread();
        switch (abi)
        {
            case Abi.Cblas:
                ((delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)gemm)(
                    CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1f, a, k, b, n, 1f, c, n);
                break;
            case Abi.Blis:
                float one = 1f;
                ((delegate* unmanaged<int, int, long, long, long, float*, float*, long, long, float*, long, long, float*, float*, long, long, void>)gemm)(
                    0, 0, m, n, k, &one, a, k, 1, b, n, 1, &one, c, n, 1);
                break;
            default:
                int status = ((delegate* unmanaged<byte, byte, long, long, long, float, float*, long, float*, long, float, float*, long, int>)gemm)(
                    (byte)'N', (byte)'N', m, n, k, 1f, a, k, b, n, 1f, c, n);
                if (status != 0) throw new InvalidOperationException($"dnnl_sgemm({m}, {n}, {k}) returned status {status}");
                break;
        }
    }

    /// <summary>The thread-count settings that are per calling thread (OpenMP's nthreads ICV, BLIS's
    /// runtime in versions where it is thread-local) are set before every call: it costs nanoseconds.</summary>
    private void OneThread()
    {
        if (ompSetNumThreads != 0) ((delegate* unmanaged<int, void>)ompSetNumThreads)(1);
        if (bliSetNumThreads != 0) ((delegate* unmanaged<long, void>)bliSetNumThreads)(1);
    }

    /// <summary>OpenBLAS: cblas_sgemm; openblas_set_num_threads(1) once (the setting is global).</summary>
    internal static Peer OpenBlas(string library = "libopenblas.so.0") => Probe("openblas", [library], (h, lib) =>
    {
        if (Export(h, "cblas_sgemm") is not (not 0 and var gemm)) return Missing("openblas", lib, "cblas_sgemm");
        string threading = "default (openblas_set_num_threads not exported)";
        if (Export(h, "openblas_set_num_threads") is not 0 and var set)
        {
            ((delegate* unmanaged<int, void>)set)(1);
            threading = "openblas_set_num_threads(1)";
        }
        return new Peer("openblas", lib, Abi.Cblas, gemm, CString(h, "openblas_get_config"), threading);
    });

    /// <summary>BLIS: its cblas_sgemm if exported (and <paramref name="preferCblas"/>), else bli_sgemm;
    /// bli_thread_set_num_threads(1) before every call.</summary>
    internal static Peer Blis(string library = "libblis.so.4", bool preferCblas = true) => Probe("blis", [library], (h, lib) =>
    {
        nint cblas = preferCblas ? Export(h, "cblas_sgemm") : 0, typed = Export(h, "bli_sgemm");
        if (cblas == 0 && typed == 0) return Missing("blis", lib, "cblas_sgemm and bli_sgemm");
        nint set = Export(h, "bli_thread_set_num_threads");
        string threading = set != 0 ? "bli_thread_set_num_threads(1) per call" : "default (bli_thread_set_num_threads not exported)";
        return new Peer("blis", lib, cblas != 0 ? Abi.Cblas : Abi.Blis, cblas != 0 ? cblas : typed,
                        CString(h, "bli_info_get_version_str") is { } v ? $"BLIS {v}" : null, threading, bliSetNumThreads: set);
    });

    /// <summary>oneDNN: dnnl_sgemm; its CPU runtime is read from dnnl_version(): with OpenMP,
    /// omp_set_num_threads(1) from the libgomp/libomp it loaded, before every call (the setting is per thread).</summary>
    internal static Peer OneDnn(params string[] libraries) => Probe("onednn", libraries, (h, lib) =>
    {
        if (Export(h, "dnnl_sgemm") is not (not 0 and var gemm)) return Missing("onednn", lib, "dnnl_sgemm");
        var (version, runtime) = DnnlVersion(h);
        nint omp = runtime == DnnlRuntimeOmp ? OmpSetNumThreads() : 0;
        string threading = runtime switch
        {
            DnnlRuntimeSeq => "sequential build",
            DnnlRuntimeOmp when omp != 0 => "omp_set_num_threads(1) per call",
            _ => $"not controlled (CPU runtime {runtime})",
        };
        return new Peer("onednn", lib, Abi.Dnnl, gemm, version, threading, ompSetNumThreads: omp);
    });

    private const uint DnnlRuntimeSeq = 1, DnnlRuntimeOmp = 2;

    private static Peer Probe(string key, string[] libraries, Func<nint, string, Peer> bind)
    {
        foreach (string lib in libraries)
            if (NativeLibrary.TryLoad(lib, out nint handle))
                return bind(handle, lib) is var peer && !peer.Available ? Free(handle, peer) : peer;
        return new Peer(key, string.Join(", ", libraries), $"library not found: {string.Join(", ", libraries)}");
    }

    private static Peer Free(nint handle, Peer peer)
    {
        NativeLibrary.Free(handle);
        return peer;
    }

    private static Peer Missing(string key, string library, string symbol) => new(key, library, $"symbol {symbol} missing in {library}");

    private static nint Export(nint handle, string name) => NativeLibrary.TryGetExport(handle, name, out nint f) ? f : 0;

    private static string? CString(nint handle, string function) =>
        Export(handle, function) is not 0 and var f ? Marshal.PtrToStringUTF8((nint)((delegate* unmanaged<byte*>)f)()) : null;

    private static (string? Version, uint CpuRuntime) DnnlVersion(nint handle)
    {
        if (Export(handle, "dnnl_version") is not (not 0 and var f)) return (null, 0);
        var v = *((delegate* unmanaged<DnnlVersionT*>)f)();
        return ($"oneDNN {v.Major}.{v.Minor}.{v.Patch}", v.CpuRuntime);
    }

    private static nint OmpSetNumThreads()
    {
        foreach (string lib in new[] { "libgomp.so.1", "libomp.so.5", "libiomp5.so" })
            if (NativeLibrary.TryLoad(lib, out nint h) && Export(h, "omp_set_num_threads") is not 0 and var f) return f;
        return 0;
    }

    /// <summary>dnnl_version_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private readonly struct DnnlVersionT
    {
        public readonly int Major, Minor, Patch;
        public readonly nint Hash;
        public readonly uint CpuRuntime, GpuRuntime;
    }
}
