using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LoopTune.Measure;

/// <summary>
/// Products <c>c += op(a) op(b)</c> with a and b rounded to bfloat16 and the sums kept in float32: oneDNN's matmul primitive
/// (bfloat16 source and weights, float32 destination added to by a sum post-op), the mixed precision trainers use for a
/// network's batches. A bfloat16 keeps float32's exponent and 8 bits of its significand, so each factor is within
/// 2^-9 of its float32 value (<see cref="Round"/>: to nearest, ties to even); the CPU multiplies two of them per lane where
/// a float32 FMA does one (Zen 4's and Zen 5's <c>vdpbf16ps</c>, Intel's AMX).
/// <para>Offered only where the CPU has those instructions: <see cref="Create"/> asks oneDNN which implementation it
/// would run and refuses any without native bfloat16 (on AVX-512 without it oneDNN emulates, on AVX2 it has none).
/// Binds oneDNN 2's C API (<c>dnnl_matmul_desc_init</c>); oneDNN 3 is refused with that reason.</para>
/// <para>One thread: an instance keeps a primitive per shape and the rounded copies of the factors, reused by every call of
/// that shape; OpenMP's thread count (the caller's own) is set to one before each call.</para>
/// </summary>
public sealed unsafe class Bf16Gemm : IDisposable
{
    const int CpuEngine = 1, Bf16 = 2, F32 = 3, ArgSrc = 1, ArgDst = 17, ArgWeights = 33, QueryImplInfo = 8;
    const uint StreamDefault = 1;
    const int MemoryDescBytes = 4096, MatmulDescBytes = 32768;   // generous: oneDNN 2's structs are about 1.1 KB and 3.5 KB

    readonly Api api;
    readonly nint omp, engine, stream;
    readonly Dictionary<(int M, int N, int K, bool TA, bool TB, int Ldc), Product> products = [];
    ushort* roundedA, roundedB;
    long capacityA, capacityB;
    bool disposed;

    Bf16Gemm(Api api, nint omp, nint engine, nint stream, string library) =>
        (this.api, this.omp, this.engine, this.stream, Library) = (api, omp, engine, stream, library);

    /// <summary>oneDNN's name for what runs the products, e.g. <c>brg:avx512_core_bf16</c>.</summary>
    public string Implementation { get; private set; } = "";

    /// <summary>The library file bound.</summary>
    public string Library { get; }

    static readonly Lazy<string?> probe = new(() =>
    {
        try
        {
            using var g = Bind();
            return null;
        }
        catch (Exception e) when (e is LoopTuneException or InvalidOperationException)
        {
            return e.Message;
        }
    });

    /// <summary>Why bfloat16 products are not offered on this machine, or null when they are.</summary>
    public static string? Problem => probe.Value;

    /// <summary>A new instance for the calling thread; a <see cref="LoopTuneException"/> saying why where the library or the
    /// CPU has no native bfloat16 products.</summary>
    public static Bf16Gemm Create() => Problem is { } problem ? throw new LoopTuneException($"bfloat16 products: {problem}") : Bind();

    static Bf16Gemm Bind()
    {
        using var widened = Affinity.Widened();
        string problem = "oneDNN not found (libdnnl.so.2)";
        foreach (string lib in (string[])["libdnnl.so.2", "libdnnl.so.3"])
        {
            if (!NativeLibrary.TryLoad(lib, out nint h)) continue;
            if (NativeGemm.Export(h, "dnnl_matmul_desc_init") == 0)
            {
                problem = $"{lib} has no dnnl_matmul_desc_init (oneDNN 2's API; oneDNN 3's is not bound)";
                continue;
            }
            var api = Api.Bind(h);
            if (api.FirstMissing() is { } missing)
            {
                problem = $"symbol {missing} missing in {lib}";
                continue;
            }
            NativeGemm.LimitDnnlIsa(h);
            nint omp = NativeGemm.DnnlVersion(h).CpuRuntime == 2 ? NativeGemm.OmpSetNumThreads() : 0;
            nint eng, st;
            Check(((delegate* unmanaged<nint*, int, nuint, int>)api.EngineCreate)(&eng, CpuEngine, 0), "dnnl_engine_create");
            Check(((delegate* unmanaged<nint*, nint, uint, int>)api.StreamCreate)(&st, eng, StreamDefault), "dnnl_stream_create");
            var gemm = new Bf16Gemm(api, omp, eng, st, lib);
            try
            {
                gemm.Implementation = gemm.Get(64, 64, 64, false, false, 64).Implementation;
                if (!gemm.Implementation.Contains("bf16", StringComparison.Ordinal) && !gemm.Implementation.Contains("amx", StringComparison.Ordinal))
                    throw new LoopTuneException($"no native bfloat16 products here: oneDNN would run {gemm.Implementation} (the CPU, or ONEDNN_MAX_CPU_ISA, has no AVX512_BF16 or AMX); use Gemm=onednn or auto");
                return gemm;
            }
            catch
            {
                gemm.Dispose();
                throw;
            }
        }
        throw new LoopTuneException(problem);
    }

    /// <summary>c[m x n, rows of <paramref name="ldc"/>] += op(a) op(b), a and b rounded to bfloat16; a is stored m x k
    /// (k x m when <paramref name="transA"/>) with rows of <paramref name="lda"/>, b k x n (n x k when
    /// <paramref name="transB"/>) with rows of <paramref name="ldb"/>.</summary>
    public void Multiply(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (m <= 0 || n <= 0 || k <= 0) return;
        var p = Get(m, n, k, transA, transB, ldc);
        Ensure(ref roundedA, ref capacityA, (long)m * k);
        Ensure(ref roundedB, ref capacityB, (long)k * n);
        if (transA) Round(a, k, m, lda, roundedA);
        else Round(a, m, k, lda, roundedA);
        if (transB) Round(b, n, k, ldb, roundedB);
        else Round(b, k, n, ldb, roundedB);
        var setHandle = (delegate* unmanaged<nint, nint, int>)api.SetDataHandle;
        Check(setHandle(p.Src, (nint)roundedA), "dnnl_memory_set_data_handle");
        Check(setHandle(p.Weights, (nint)roundedB), "dnnl_memory_set_data_handle");
        Check(setHandle(p.Dst, (nint)c), "dnnl_memory_set_data_handle");
        if (omp != 0) ((delegate* unmanaged<int, void>)omp)(1);
        Check(((delegate* unmanaged<nint, nint, int, ExecArg*, int>)api.Execute)(p.Primitive, stream, 3, p.Args), "dnnl_primitive_execute");
        Check(((delegate* unmanaged<nint, int>)api.StreamWait)(stream), "dnnl_stream_wait");
    }

    /// <summary>Rounds the rows x cols floats at <paramref name="from"/> (rows of <paramref name="ld"/>) to bfloat16, written
    /// contiguously (rows of <paramref name="cols"/>) to <paramref name="to"/>: each float's upper 16 bits after adding
    /// half a unit of the last kept bit, ties to even. (Finite inputs; a NaN may come out as an infinity.)</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Round(float* from, int rows, int cols, int ld, ushort* to)
    {
        for (int r = 0; r < rows; r++)
        {
            uint* row = (uint*)(from + (long)r * ld);
            ushort* into = to + (long)r * cols;
            int j = 0;
            if (Avx512F.IsSupported)
                for (; j + 16 <= cols; j += 16)
                {
                    var u = Vector512.Load(row + j);
                    var rounded = (u + Vector512.Create(0x7FFFu) + ((u >> 16) & Vector512<uint>.One)) >> 16;
                    Avx512F.ConvertToVector256UInt16(rounded).Store(into + j);
                }
            for (; j < cols; j++) into[j] = (ushort)((row[j] + 0x7FFFu + ((row[j] >> 16) & 1)) >> 16);
        }
    }

    /// <summary>The float a bfloat16 stands for.</summary>
    public static float Widen(ushort bf16) => BitConverter.UInt32BitsToSingle((uint)bf16 << 16);

    static void Ensure(ref ushort* buffer, ref long capacity, long elements)
    {
        if (elements <= capacity) return;
        if (buffer != null) NativeMemory.AlignedFree(buffer);
        buffer = (ushort*)NativeMemory.AlignedAlloc((nuint)(elements * sizeof(ushort)), 64);
        capacity = elements;
    }

    /// <summary>The primitive of one shape, made on first use: dims [m, k] x [k, n] -> [m, n] with the rounded factors'
    /// contiguous layouts (a transposed factor by strides) and c's row length.</summary>
    Product Get(int m, int n, int k, bool ta, bool tb, int ldc)
    {
        if (products.TryGetValue((m, n, k, ta, tb, ldc), out var found)) return found;
        nint src = Desc(m, k, Bf16, ta ? 1 : k, ta ? m : 1), wei = Desc(k, n, Bf16, tb ? 1 : n, tb ? k : 1), dst = Desc(m, n, F32, ldc, 1);
        if (omp != 0) ((delegate* unmanaged<int, void>)omp)(1);
        nint desc = Zeroed(MatmulDescBytes), attr = 0, postOps = 0, pd = 0, primitive = 0;
        try
        {
            Check(((delegate* unmanaged<nint, nint, nint, nint, nint, int>)api.MatmulDescInit)(desc, src, wei, 0, dst), "dnnl_matmul_desc_init");
            Check(((delegate* unmanaged<nint*, int>)api.AttrCreate)(&attr), "dnnl_primitive_attr_create");
            Check(((delegate* unmanaged<nint*, int>)api.PostOpsCreate)(&postOps), "dnnl_post_ops_create");
            Check(((delegate* unmanaged<nint, float, int>)api.AppendSum)(postOps, 1f), "dnnl_post_ops_append_sum");
            Check(((delegate* unmanaged<nint, nint, int>)api.AttrSetPostOps)(attr, postOps), "dnnl_primitive_attr_set_post_ops");
            int status = ((delegate* unmanaged<nint*, nint, nint, nint, nint, int>)api.PdCreate)(&pd, desc, attr, engine, 0);
            if (status != 0) throw new LoopTuneException($"oneDNN offers no bfloat16 matmul on this CPU (dnnl_primitive_desc_create returned status {status}); use Gemm=onednn or auto");
            byte* info = null;
            Check(((delegate* unmanaged<nint, int, int, byte**, int>)api.Query)(pd, QueryImplInfo, 0, &info), "dnnl_primitive_desc_query");
            Check(((delegate* unmanaged<nint*, nint, int>)api.PrimitiveCreate)(&primitive, pd), "dnnl_primitive_create");
            var p = new Product(primitive, Memory(src), Memory(wei), Memory(dst), Marshal.PtrToStringUTF8((nint)info) ?? "?");
            products[(m, n, k, ta, tb, ldc)] = p;
            return p;
        }
        finally
        {
            if (pd != 0) _ = ((delegate* unmanaged<nint, int>)api.PdDestroy)(pd);
            if (postOps != 0) _ = ((delegate* unmanaged<nint, int>)api.PostOpsDestroy)(postOps);
            if (attr != 0) _ = ((delegate* unmanaged<nint, int>)api.AttrDestroy)(attr);
            foreach (nint block in (nint[])[desc, src, wei, dst]) NativeMemory.AlignedFree((void*)block);
        }
    }

    /// <summary>A 2-d memory descriptor by strides (oneDNN 2 fills our storage; freed once the primitive is made).</summary>
    nint Desc(long rows, long cols, int type, long rowStride, long colStride)
    {
        nint md = Zeroed(MemoryDescBytes);
        long* dims = stackalloc long[] { rows, cols };
        long* strides = stackalloc long[] { rowStride, colStride };
        Check(((delegate* unmanaged<nint, int, long*, int, long*, int>)api.MdInit)(md, 2, dims, type, strides), "dnnl_memory_desc_init_by_strides");
        return md;
    }

    nint Memory(nint md)
    {
        nint memory;
        Check(((delegate* unmanaged<nint*, nint, nint, nint, int>)api.MemoryCreate)(&memory, md, engine, 0), "dnnl_memory_create");
        return memory;
    }

    static nint Zeroed(int bytes)
    {
        nint block = (nint)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        NativeMemory.Clear((void*)block, (nuint)bytes);
        return block;
    }

    static void Check(int status, string call)
    {
        if (status != 0) throw new InvalidOperationException($"oneDNN {call} returned status {status}");
    }

    void FreeProducts()
    {
        foreach (var p in products.Values)
        {
            _ = ((delegate* unmanaged<nint, int>)api.PrimitiveDestroy)(p.Primitive);
            foreach (nint memory in (nint[])[p.Src, p.Weights, p.Dst]) _ = ((delegate* unmanaged<nint, int>)api.MemoryDestroy)(memory);
            NativeMemory.Free(p.Args);
        }
        products.Clear();
    }

    /// <summary>Frees the primitives, the rounded copies, the stream and the engine.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        FreeProducts();
        if (roundedA != null) NativeMemory.AlignedFree(roundedA);
        if (roundedB != null) NativeMemory.AlignedFree(roundedB);
        roundedA = roundedB = null;
        capacityA = capacityB = 0;
        _ = ((delegate* unmanaged<nint, int>)api.StreamDestroy)(stream);
        _ = ((delegate* unmanaged<nint, int>)api.EngineDestroy)(engine);
    }

    /// <summary>A matmul primitive and its three memories, whose data handles each call sets.</summary>
    sealed class Product
    {
        public Product(nint primitive, nint src, nint weights, nint dst, string implementation)
        {
            (Primitive, Src, Weights, Dst, Implementation) = (primitive, src, weights, dst, implementation);
            Args = (ExecArg*)NativeMemory.Alloc(3, (nuint)sizeof(ExecArg));
            Args[0] = new ExecArg { Arg = ArgSrc, Memory = src };
            Args[1] = new ExecArg { Arg = ArgWeights, Memory = weights };
            Args[2] = new ExecArg { Arg = ArgDst, Memory = dst };
        }

        public nint Primitive { get; }
        public nint Src { get; }
        public nint Weights { get; }
        public nint Dst { get; }
        public string Implementation { get; }
        public ExecArg* Args { get; }
    }

    /// <summary>dnnl_exec_arg_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    struct ExecArg
    {
        public int Arg;
        public nint Memory;
    }

    /// <summary>oneDNN 2's C entry points used.</summary>
    struct Api
    {
        public nint MdInit, MatmulDescInit, PdCreate, PdDestroy, Query, AttrCreate, AttrDestroy, PostOpsCreate, PostOpsDestroy, AppendSum;
        public nint AttrSetPostOps, PrimitiveCreate, PrimitiveDestroy, Execute, EngineCreate, EngineDestroy, StreamCreate, StreamDestroy;
        public nint StreamWait, MemoryCreate, MemoryDestroy, SetDataHandle;

        static readonly string[] Names =
        [
            "dnnl_memory_desc_init_by_strides", "dnnl_matmul_desc_init", "dnnl_primitive_desc_create", "dnnl_primitive_desc_destroy",
            "dnnl_primitive_desc_query", "dnnl_primitive_attr_create", "dnnl_primitive_attr_destroy", "dnnl_post_ops_create",
            "dnnl_post_ops_destroy", "dnnl_post_ops_append_sum", "dnnl_primitive_attr_set_post_ops", "dnnl_primitive_create",
            "dnnl_primitive_destroy", "dnnl_primitive_execute", "dnnl_engine_create", "dnnl_engine_destroy", "dnnl_stream_create",
            "dnnl_stream_destroy", "dnnl_stream_wait", "dnnl_memory_create", "dnnl_memory_destroy", "dnnl_memory_set_data_handle",
        ];

        public static Api Bind(nint h)
        {
            var f = Names.Select(n => NativeGemm.Export(h, n)).ToArray();
            return new Api
            {
                MdInit = f[0], MatmulDescInit = f[1], PdCreate = f[2], PdDestroy = f[3], Query = f[4], AttrCreate = f[5], AttrDestroy = f[6],
                PostOpsCreate = f[7], PostOpsDestroy = f[8], AppendSum = f[9], AttrSetPostOps = f[10], PrimitiveCreate = f[11],
                PrimitiveDestroy = f[12], Execute = f[13], EngineCreate = f[14], EngineDestroy = f[15], StreamCreate = f[16],
                StreamDestroy = f[17], StreamWait = f[18], MemoryCreate = f[19], MemoryDestroy = f[20], SetDataHandle = f[21],
            };
        }

        public readonly string? FirstMissing()
        {
            nint[] f = [MdInit, MatmulDescInit, PdCreate, PdDestroy, Query, AttrCreate, AttrDestroy, PostOpsCreate, PostOpsDestroy, AppendSum,
                AttrSetPostOps, PrimitiveCreate, PrimitiveDestroy, Execute, EngineCreate, EngineDestroy, StreamCreate, StreamDestroy,
                StreamWait, MemoryCreate, MemoryDestroy, SetDataHandle];
            int i = Array.IndexOf(f, (nint)0);
            return i < 0 ? null : Names[i];
        }
    }
}
