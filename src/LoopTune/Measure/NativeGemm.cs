using System.Runtime.InteropServices;

namespace LoopTune.Measure;

/// <summary>Another library's single-precision GEMM, loaded at run time with
/// <see cref="NativeLibrary.TryLoad(string, out IntPtr)"/> and called through a function pointer on the
/// calling thread alone, or on the library's own threads when more are asked for: OpenBLAS, BLIS or oneDNN. The library is
/// loaded on every core the process may use (<see cref="Affinity.Widened"/>), so that a thread pool it starts when loaded
/// does not inherit one measuring core. A missing library or symbol makes the peer
/// unavailable (<see cref="NativePeer.Problem"/> says why), never an exception at load time.</summary>
public sealed unsafe class NativeGemm : GemmPeer
{
    private const int CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112, BlisNoTranspose = 0, OpenBlasOpenMp = 2;
    private const uint DnnlRuntimeSeq = 1, DnnlRuntimeOmp = 2;
    private readonly Abi abi;
    private readonly nint gemm;
    private readonly nint setThreadsInt;
    private readonly nint setThreadsLong;

    private NativeGemm(string key, string library, string problem) : base(key, library, problem, null, "") =>
        Kernels = new LibraryKernels(key, false, null, null, null, null);

    private NativeGemm(string key, string library, Abi abi, nint gemm, string? version, string threading, LibraryKernels kernels,
                 nint setThreadsInt = 0, nint setThreadsLong = 0) : base(key, library, null, version, threading)
    {
        (this.abi, this.gemm, Kernels) = (abi, gemm, kernels);
        (this.setThreadsInt, this.setThreadsLong) = (setThreadsInt, setThreadsLong);
    }

    /// <summary>Which kernels the library runs on this machine (its core, architecture or instruction set).</summary>
    public LibraryKernels Kernels { get; }

    private enum Abi { Cblas, Blis, Dnnl }

    /// <inheritdoc/>
    protected override void Call(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, int threads)
    {
        SetThreads(threads);
        switch (abi)
        {
            case Abi.Cblas: CallCblas(transA, transB, m, n, k, a, lda, b, ldb, c, ldc); break;
            case Abi.Blis: CallBlis(transA, transB, m, n, k, a, lda, b, ldb, c, ldc); break;
            default: CallDnnl(transA, transB, m, n, k, a, lda, b, ldb, c, ldc); break;
        }
    }

    /// <summary>cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), 32-bit ints.</summary>
    private void CallCblas(bool ta, bool tb, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc) =>
        ((delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)gemm)(
            CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1f, a, lda, b, ldb, 1f, c, ldc);

    /// <summary>bli_sgemm(transa, transb, m, n, k, &amp;alpha, a, rsa, csa, b, rsb, csb, &amp;beta, c, rsc, csc):
    /// row and column strides, 64-bit dims. A transposed operand is passed untransposed with its strides swapped
    /// (op(A)[i,p] = a[p * lda + i]: row stride 1, column stride lda).</summary>
    private void CallBlis(bool ta, bool tb, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc)
    {
        float one = 1f;
        ((delegate* unmanaged<int, int, long, long, long, float*, float*, long, long, float*, long, long, float*, float*, long, long, void>)gemm)(
            BlisNoTranspose, BlisNoTranspose, m, n, k, &one, a, ta ? 1 : lda, ta ? lda : 1, b, tb ? 1 : ldb, tb ? ldb : 1, &one, c, ldc, 1);
    }

    /// <summary>dnnl_sgemm(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc): row-major, returns a status.</summary>
    private void CallDnnl(bool ta, bool tb, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc)
    {
        int status = ((delegate* unmanaged<byte, byte, long, long, long, float, float*, long, float*, long, float, float*, long, int>)gemm)(
            (byte)(ta ? 'T' : 'N'), (byte)(tb ? 'T' : 'N'), m, n, k, 1f, a, lda, b, ldb, 1f, c, ldc);
        if (status != 0) throw new InvalidOperationException($"dnnl_sgemm({m}, {n}, {k}) returned status {status}");
    }

    /// <summary>The thread count is set before every call, whether the setting is global (OpenBLAS's pthreads, BLIS 0.9)
    /// or belongs to the calling thread (OpenMP's nthreads ICV, BLIS 1.0): it costs nanoseconds.</summary>
    private void SetThreads(int threads)
    {
        if (setThreadsInt != 0) ((delegate* unmanaged<int, void>)setThreadsInt)(threads);
        if (setThreadsLong != 0) ((delegate* unmanaged<long, void>)setThreadsLong)(threads);
    }

    /// <summary>OpenBLAS: cblas_sgemm; openblas_set_num_threads(N) before every call (global for a pthread build, the
    /// calling thread's for an OpenMP build).</summary>
    internal static NativeGemm OpenBlas(string library = "libopenblas.so.0") => Probe("openblas", [library], (h, lib) =>
    {
        nint gemm = Export(h, "cblas_sgemm"), set = Export(h, "openblas_set_num_threads"), parallel = Export(h, "openblas_get_parallel");
        if (gemm == 0) return Missing("openblas", lib, "cblas_sgemm");
        bool openmp = parallel != 0 && ((delegate* unmanaged<int>)parallel)() == OpenBlasOpenMp;
        if (set != 0) ((delegate* unmanaged<int, void>)set)(1);
        string threading = set == 0 ? "not controlled (openblas_set_num_threads not exported)"
            : $"openblas_set_num_threads(N) per call ({(openmp ? "OpenMP" : "pthreads")} build)";
        string? core = CString(h, "openblas_get_corename"), config = CString(h, "openblas_get_config");
        string? forced = Environment.GetEnvironmentVariable("OPENBLAS_CORETYPE") is { Length: > 0 } ct ? $"OPENBLAS_CORETYPE={ct}" : null;
        var kernels = new LibraryKernels("openblas", true, core, LibraryKernels.BitsOf("openblas", core), config, forced);
        return new NativeGemm("openblas", lib, Abi.Cblas, gemm, config, threading, kernels, setThreadsInt: set);
    });

    /// <summary>BLIS: its cblas_sgemm if exported (and <paramref name="preferCblas"/>), else bli_sgemm;
    /// bli_thread_set_num_threads(N) before every call (global in BLIS 0.9, per thread in 1.0).</summary>
    internal static NativeGemm Blis(string library = "libblis.so.4", bool preferCblas = true) => Probe("blis", [library], (h, lib) =>
    {
        nint cblas = preferCblas ? Export(h, "cblas_sgemm") : 0, typed = Export(h, "bli_sgemm"), set = Export(h, "bli_thread_set_num_threads");
        if (cblas == 0 && typed == 0) return Missing("blis", lib, "cblas_sgemm and bli_sgemm");
        string threading = set != 0 ? "bli_thread_set_num_threads(N) per call" : "not controlled (bli_thread_set_num_threads not exported)";
        string? version = CString(h, "bli_info_get_version_str") is { } v ? $"BLIS {v}" : null;
        string? arch = Export(h, "bli_arch_query_id") is not 0 and var q && Export(h, "bli_arch_string") is not 0 and var name
            ? Marshal.PtrToStringUTF8((nint)((delegate* unmanaged<int, byte*>)name)(((delegate* unmanaged<int>)q)())) : null;
        string? forced = Environment.GetEnvironmentVariable("BLIS_ARCH_TYPE") is { Length: > 0 } at ? $"BLIS_ARCH_TYPE={at}" : null;
        var kernels = new LibraryKernels("blis", true, arch, LibraryKernels.BitsOf("blis", arch), version, forced);
        return cblas != 0
            ? new NativeGemm("blis", lib, Abi.Cblas, cblas, version, threading, kernels, setThreadsLong: set)
            : new NativeGemm("blis", lib, Abi.Blis, typed, version, threading, kernels, setThreadsLong: set);
    });

    /// <summary>oneDNN: dnnl_sgemm. Its CPU runtime comes from dnnl_version(); with OpenMP,
    /// omp_set_num_threads(N) (from the OpenMP library it loaded) before every call, as that setting
    /// belongs to the calling thread.</summary>
    internal static NativeGemm OneDnn(params string[] libraries) => Probe("onednn", libraries, (h, lib) =>
    {
        nint gemm = Export(h, "dnnl_sgemm");
        if (gemm == 0) return Missing("onednn", lib, "dnnl_sgemm");
        string? limited = LimitDnnlIsa(h);
        var (version, runtime) = DnnlVersion(h);
        nint omp = runtime == DnnlRuntimeOmp ? OmpSetNumThreads() : 0;
        string threading = runtime switch
        {
            DnnlRuntimeSeq => "sequential build",
            DnnlRuntimeOmp when omp != 0 => "omp_set_num_threads(N) per call",
            _ => $"not controlled (CPU runtime {runtime})",
        };
        string? isa = Export(h, "dnnl_get_effective_cpu_isa") is not 0 and var eff && Export(h, "dnnl_cpu_isa2str") is not 0 and var str
            ? Marshal.PtrToStringUTF8((nint)((delegate* unmanaged<int, byte*>)str)(((delegate* unmanaged<int>)eff)()))?.Replace("cpu_isa_", "", StringComparison.Ordinal) : null;
        var kernels = new LibraryKernels("onednn", true, isa, LibraryKernels.BitsOf("onednn", isa), version, limited);
        return new NativeGemm("onednn", lib, Abi.Dnnl, gemm, version, threading, kernels, setThreadsInt: omp);
    });

    static readonly Lock isaGate = new();
    static string? isaLimit;
    static bool isaSet;

    /// <summary>When this process's kernels are limited to narrower vectors than the CPU has (<c>--vector-bits</c>, or the
    /// runtime's own settings such as <c>DOTNET_EnableAVX512=0</c>),
    /// limits oneDNN to the matching instruction set (<c>dnnl_set_max_cpu_isa</c>: AVX2 for 256 bits, SSE4.1 for 128), once,
    /// before any of its kernels is made, so that the yardstick runs on the same machine as ours. Returns what limited it,
    /// or null.</summary>
    internal static string? LimitDnnlIsa(nint handle)
    {
        lock (isaGate)
        {
            if (isaSet) return isaLimit;
            isaSet = true;
            int bits = Jit.JitOptions.Default.VectorBits;
            if (bits >= CpuInfo.Current.VectorBits || Export(handle, "dnnl_set_max_cpu_isa") is not (not 0 and var set)) return null;
            int isa = bits >= 256 ? 0x7 : 0x1; // dnnl_cpu_isa_avx2, dnnl_cpu_isa_sse41 (the same values in oneDNN 2 and 3)
            if (((delegate* unmanaged<int, int>)set)(isa) == 0) isaLimit = $"this process's {bits}-bit vectors";
            return isaLimit;
        }
    }

    /// <summary>Binds the first library that loads and has the symbols; otherwise an unavailable peer
    /// whose problem names what was missing.</summary>
    private static NativeGemm Probe(string key, string[] libraries, Func<nint, string, NativeGemm> bind)
    {
        using var widened = Affinity.Widened();
        string problem = $"library not found: {string.Join(", ", libraries)}";
        foreach (string lib in libraries)
        {
            if (!NativeLibrary.TryLoad(lib, out nint handle)) continue;
            NativeGemm peer = bind(handle, lib);
            if (peer.Available) return peer;
            problem = peer.Problem!;
            NativeLibrary.Free(handle);
        }
        return new NativeGemm(key, string.Join(", ", libraries), problem);
    }

    private static NativeGemm Missing(string key, string library, string symbol) => new(key, library, $"symbol {symbol} missing in {library}");

    internal static nint Export(nint handle, string name) => NativeLibrary.TryGetExport(handle, name, out nint f) ? f : 0;

    private static string? CString(nint handle, string function) =>
        Export(handle, function) is not 0 and var f ? Marshal.PtrToStringUTF8((nint)((delegate* unmanaged<byte*>)f)()) : null;

    internal static (string? Version, uint CpuRuntime) DnnlVersion(nint handle)
    {
        if (Export(handle, "dnnl_version") is not (not 0 and var f)) return (null, 0);
        var v = *((delegate* unmanaged<DnnlVersionT*>)f)();
        return ($"oneDNN {v.Major}.{v.Minor}.{v.Patch}", v.CpuRuntime);
    }

    internal static nint OmpSetNumThreads()
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
