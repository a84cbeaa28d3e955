using System.Runtime.InteropServices;
using LoopTune.Ir;
using LoopTune.Jit;

namespace LoopTune.Measure;

/// <summary>Another library's single-image convolution (valid padding, stride 1) on the plain layouts LoopTune uses:
/// input I[c][h][w], weights W[f][c][r][s], output O[f][h][w]. A peer is prepared once per shape
/// (<see cref="Prepare"/>: layout choice, reorders, scratch buffers, all outside any timing), then
/// <see cref="PeerRun.Run"/> is the part that is timed. A missing library or symbol makes the peer unavailable
/// (<see cref="Problem"/> says why), never an exception at load time.</summary>
public abstract class ConvPeer : NativePeer
{
    protected internal ConvPeer(string key, string library, string? problem, string? version, string threading)
        : base(key, library, problem, version, threading) { }

    /// <summary>What the timed region holds, in words.</summary>
    public abstract string Timed { get; }

    /// <summary>Prepares the convolution of <paramref name="shape"/> reading <paramref name="input"/> and
    /// <paramref name="weights"/> and writing <paramref name="output"/> (plain layouts; the buffers must outlive the
    /// returned run), to run on <paramref name="threads"/> threads. Throws <see cref="InvalidOperationException"/> when the
    /// library refuses.</summary>
    internal abstract unsafe PeerRun Prepare(ConvShape shape, float* input, float* weights, float* output, int threads);
}

/// <summary>A peer prepared for one computation on fixed buffers: <see cref="Run"/> is timed; <see cref="Finish"/> brings
/// the result into the plain output buffer (untimed); <see cref="Dispose"/> frees the library's objects.</summary>
internal abstract class PeerRun : IDisposable
{
    /// <summary>One run of the computation, what the timings measure.</summary>
    public abstract void Run();

    /// <summary>Makes the plain output buffer hold the result of the last <see cref="Run"/>.</summary>
    public virtual void Finish()
    {
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees what the run holds.</summary>
    protected virtual void Free()
    {
    }
}

/// <summary>im2col of the input into a [C*R*S, OH*OW] matrix, then a BLAS library's sgemm with the weights as the
/// [F, C*R*S] left matrix, accumulating into O[F, OH*OW] (<c>O += W * col</c>, as LoopTune's kernels do). What numpy- and
/// PyTorch-style code does without oneDNN; the im2col is inside the timed region, on the calling thread (the sgemm on as
/// many threads as asked). Its key is <c>im2col_</c> and the BLAS
/// peer's key (<c>im2col_openblas</c>, <c>im2col_blis</c>).</summary>
public sealed class Im2colBlas : ConvPeer
{
    private readonly GemmPeer? blas;

    internal Im2colBlas(GemmPeer blas)
        : base($"im2col_{blas.Key}", blas.Library, blas.Problem, blas.Version, blas.Threading) =>
        (this.blas, Timed) = (blas.Available ? blas : null, $"im2col + {blas.Key} sgemm");

    /// <inheritdoc/>
    public override string Timed { get; }

    internal override unsafe PeerRun Prepare(ConvShape shape, float* input, float* weights, float* output, int threads) =>
        blas is null ? throw new InvalidOperationException($"peer {Key} is unavailable: {Problem}") : new Im2colRun(blas, shape, input, weights, output, threads);

    private sealed unsafe class Im2colRun(GemmPeer blas, ConvShape s, float* input, float* weights, float* output, int threads) : PeerRun
    {
        private readonly AlignedBuffer col = new((long)s.C * s.R * s.S * s.OH * s.OW);

        public override void Run()
        {
            float* dst = col.Pointer;
            int oh = s.OH, ow = s.OW, h = s.H, w = s.W;
            for (int c = 0; c < s.C; c++)
                for (int r = 0; r < s.R; r++)
                    for (int q = 0; q < s.S; q++)
                    {
                        float* src = input + ((long)c * h + r) * w + q;
                        for (int y = 0; y < oh; y++, dst += ow, src += w)
                            Buffer.MemoryCopy(src, dst, ow * sizeof(float), ow * sizeof(float));
                    }
            int k = s.C * s.R * s.S, n = oh * ow;
            blas.Sgemm(false, false, s.F, n, k, weights, k, col.Pointer, n, output, n, threads);
        }

        protected override void Free() => col.Dispose();
    }
}

/// <summary>oneDNN's convolution primitive through its C API: memory descriptors with format <c>any</c> for source,
/// weights and destination so that oneDNN picks its own (blocked) layouts, reorders from and to the plain layouts
/// outside the timed region, and <c>dnnl_primitive_execute</c> + <c>dnnl_stream_wait</c> timed. Works with the v3 API
/// (<c>dnnl_memory_desc_create_with_tag</c>, <c>dnnl_convolution_forward_primitive_desc_create</c>) and the v2 API
/// (<c>dnnl_memory_desc_init_by_tag</c>, <c>dnnl_convolution_forward_desc_init</c>), whichever the library has.
/// oneDNN writes the output (<c>O = conv</c>) rather than adding to it.</summary>
public sealed unsafe class OneDnnConv : ConvPeer
{
    private const uint DnnlRuntimeSeq = 1, DnnlRuntimeOmp = 2;
    private const int CpuEngine = 1, F32 = 3, TagAny = 1, TagAbcd = 5, ForwardInference = 0x60, ConvolutionDirect = 1;
    private const int QuerySrcMd = 129, QueryWeightsMd = 131, QueryDstMd = 133;
    private const int ArgSrc = 1, ArgDst = 17, ArgWeights = 33;
    private const uint StreamDefault = 1;

    /// <summary>Bytes reserved for one v2 <c>dnnl_memory_desc_t</c> and for a v2 <c>dnnl_convolution_desc_t</c>
    /// (about 1.1 KB and 8 KB in oneDNN 2.x; generous, as the headers are not at hand).</summary>
    private const int V2MemoryDescBytes = 4096, V2ConvDescBytes = 32768;

    private readonly bool v3;
    private readonly nint omp;
    private readonly Api api;

    private OneDnnConv(string library, string problem)
        : base("onednn_conv", library, problem, null, "") => api = default;

    private OneDnnConv(string library, bool v3, Api api, string? version, string threading, nint omp)
        : base("onednn_conv", library, null, version, threading) => (this.v3, this.api, this.omp) = (v3, api, omp);

    /// <inheritdoc/>
    public override string Timed => "dnnl_primitive_execute + dnnl_stream_wait (reorders outside)";

    /// <summary>Binds the first of <paramref name="libraries"/> that loads and has the symbols.</summary>
    internal static OneDnnConv Load(params string[] libraries)
    {
        string problem = $"library not found: {string.Join(", ", libraries)}";
        using var widened = Affinity.Widened();
        foreach (string lib in libraries)
        {
            if (!NativeLibrary.TryLoad(lib, out nint h)) continue;
            nint E(string name) => NativeGemm.Export(h, name);
            bool v3 = E("dnnl_memory_desc_create_with_tag") != 0;
            var api = new Api
            {
                MdCreate = v3 ? E("dnnl_memory_desc_create_with_tag") : E("dnnl_memory_desc_init_by_tag"),
                MdDestroy = v3 ? E("dnnl_memory_desc_destroy") : 0,
                ConvPd = v3 ? E("dnnl_convolution_forward_primitive_desc_create") : E("dnnl_convolution_forward_desc_init"),
                PdCreate = v3 ? 0 : E("dnnl_primitive_desc_create"),
                PdDestroy = E("dnnl_primitive_desc_destroy"),
                QueryMd = E("dnnl_primitive_desc_query_md"),
                PrimitiveCreate = E("dnnl_primitive_create"),
                PrimitiveDestroy = E("dnnl_primitive_destroy"),
                Execute = E("dnnl_primitive_execute"),
                ReorderPd = E("dnnl_reorder_primitive_desc_create"),
                EngineCreate = E("dnnl_engine_create"),
                EngineDestroy = E("dnnl_engine_destroy"),
                StreamCreate = E("dnnl_stream_create"),
                StreamDestroy = E("dnnl_stream_destroy"),
                StreamWait = E("dnnl_stream_wait"),
                MemoryCreate = E("dnnl_memory_create"),
                MemoryDestroy = E("dnnl_memory_destroy"),
            };
            string? missing = api.FirstMissing(v3);
            if (missing is null)
            {
                NativeGemm.LimitDnnlIsa(h);
                var (version, runtime) = NativeGemm.DnnlVersion(h);
                nint omp = runtime == DnnlRuntimeOmp ? NativeGemm.OmpSetNumThreads() : 0;
                string threading = runtime switch
                {
                    DnnlRuntimeSeq => "sequential build",
                    DnnlRuntimeOmp when omp != 0 => "omp_set_num_threads(N) before creation and every call",
                    _ => $"not controlled (CPU runtime {runtime})",
                };
                return new OneDnnConv(lib, v3, api, version, threading, omp);
            }
            problem = $"symbol {missing} missing in {lib}";
            NativeLibrary.Free(h);
        }
        return new OneDnnConv(string.Join(", ", libraries), problem);
    }

    internal override PeerRun Prepare(ConvShape shape, float* input, float* weights, float* output, int threads)
    {
        if (!Available) throw new InvalidOperationException($"peer {Key} is unavailable: {Problem}");
        SetThreads(threads);
        var run = new DnnlRun(this, threads);
        try
        {
            run.Build(shape, input, weights, output);
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    /// <summary>OpenMP's thread count belongs to the calling thread; oneDNN reads it when a primitive is made and run.</summary>
    private void SetThreads(int threads)
    {
        if (omp != 0) ((delegate* unmanaged<int, void>)omp)(threads);
    }

    private static void Check(int status, string call)
    {
        if (status != 0) throw new InvalidOperationException($"oneDNN {call} returned status {status}");
    }

    /// <summary>The C entry points used; v2 and v3 differ in memory descriptor creation and the convolution's primitive
    /// descriptor only (a memory descriptor is a pointer in both: to our own storage in v2, to oneDNN's in v3).</summary>
    private struct Api
    {
        public nint MdCreate, MdDestroy, ConvPd, PdCreate, PdDestroy, QueryMd, PrimitiveCreate, PrimitiveDestroy, Execute, ReorderPd;
        public nint EngineCreate, EngineDestroy, StreamCreate, StreamDestroy, StreamWait, MemoryCreate, MemoryDestroy;

        public readonly string? FirstMissing(bool v3)
        {
            var named = new (nint F, string Name)[]
            {
                (MdCreate, v3 ? "dnnl_memory_desc_create_with_tag" : "dnnl_memory_desc_init_by_tag"),
                (v3 ? MdDestroy : 1, "dnnl_memory_desc_destroy"),
                (ConvPd, v3 ? "dnnl_convolution_forward_primitive_desc_create" : "dnnl_convolution_forward_desc_init"),
                (v3 ? 1 : PdCreate, "dnnl_primitive_desc_create"), (PdDestroy, "dnnl_primitive_desc_destroy"), (QueryMd, "dnnl_primitive_desc_query_md"),
                (PrimitiveCreate, "dnnl_primitive_create"), (PrimitiveDestroy, "dnnl_primitive_destroy"), (Execute, "dnnl_primitive_execute"),
                (ReorderPd, "dnnl_reorder_primitive_desc_create"), (EngineCreate, "dnnl_engine_create"), (EngineDestroy, "dnnl_engine_destroy"),
                (StreamCreate, "dnnl_stream_create"), (StreamDestroy, "dnnl_stream_destroy"), (StreamWait, "dnnl_stream_wait"),
                (MemoryCreate, "dnnl_memory_create"), (MemoryDestroy, "dnnl_memory_destroy"),
            };
            return named.FirstOrDefault(x => x.F == 0).Name;
        }
    }

    /// <summary>dnnl_exec_arg_t: an argument index and a memory object.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct ExecArg
    {
        public int Arg;
        public nint Memory;
    }

    /// <summary>Every oneDNN object of one prepared convolution, freed in <see cref="Free"/>.</summary>
    private sealed class DnnlRun(OneDnnConv peer, int threads) : PeerRun
    {
        private static readonly nint Allocate = -1; // DNNL_MEMORY_ALLOCATE
        private readonly List<nint> memories = [], primitives = [], pds = [], v3Descs = [];
        private readonly List<nint> blocks = [];
        private Api A => peer.api;
        private nint engine, stream, conv, reorderOut;
        private ExecArg* args, outArgs;

        public void Build(ConvShape s, float* input, float* weights, float* output)
        {
            nint eng, st;
            Check(((delegate* unmanaged<nint*, int, nuint, int>)A.EngineCreate)(&eng, CpuEngine, 0), "dnnl_engine_create");
            engine = eng;
            Check(((delegate* unmanaged<nint*, nint, uint, int>)A.StreamCreate)(&st, engine, StreamDefault), "dnnl_stream_create");
            stream = st;
            long[] srcDims = [1, s.C, s.H, s.W], weiDims = [s.F, s.C, s.R, s.S], dstDims = [1, s.F, s.OH, s.OW];
            nint plainSrc = Desc(srcDims, TagAbcd), plainWei = Desc(weiDims, TagAbcd), plainDst = Desc(dstDims, TagAbcd);
            nint anySrc = Desc(srcDims, TagAny), anyWei = Desc(weiDims, TagAny), anyDst = Desc(dstDims, TagAny);
            long* strides = stackalloc long[12], dilates = stackalloc long[12], padding = stackalloc long[12];
            for (int i = 0; i < 12; i++) (strides[i], dilates[i], padding[i]) = (1, 0, 0);
            nint pd;
            if (peer.v3)
            {
                Check(((delegate* unmanaged<nint*, nint, int, int, nint, nint, nint, nint, long*, long*, long*, long*, nint, int>)A.ConvPd)(
                    &pd, engine, ForwardInference, ConvolutionDirect, anySrc, anyWei, 0, anyDst, strides, dilates, padding, padding, 0),
                    "dnnl_convolution_forward_primitive_desc_create");
            }
            else
            {
                nint desc = Block(V2ConvDescBytes);
                Check(((delegate* unmanaged<nint, int, int, nint, nint, nint, nint, long*, long*, long*, int>)A.ConvPd)(
                    desc, ForwardInference, ConvolutionDirect, anySrc, anyWei, 0, anyDst, strides, padding, padding), "dnnl_convolution_forward_desc_init");
                Check(((delegate* unmanaged<nint*, nint, nint, nint, nint, int>)A.PdCreate)(&pd, desc, 0, engine, 0), "dnnl_primitive_desc_create");
            }
            pds.Add(pd);
            var query = (delegate* unmanaged<nint, int, int, nint>)A.QueryMd;
            nint srcMd = query(pd, QuerySrcMd, 0), weiMd = query(pd, QueryWeightsMd, 0), dstMd = query(pd, QueryDstMd, 0);
            if (srcMd == 0 || weiMd == 0 || dstMd == 0) throw new InvalidOperationException("oneDNN dnnl_primitive_desc_query_md gave no descriptor");
            conv = Primitive(pd);
            nint src = Memory(srcMd, Allocate), wei = Memory(weiMd, Allocate), dst = Memory(dstMd, Allocate);

            Reorder(plainSrc, Memory(plainSrc, (nint)input), srcMd, src, execute: true);
            Reorder(plainWei, Memory(plainWei, (nint)weights), weiMd, wei, execute: true);
            nint plainOut = Memory(plainDst, (nint)output);
            reorderOut = Reorder(dstMd, dst, plainDst, plainOut, execute: false);
            outArgs = (ExecArg*)Block(2 * sizeof(ExecArg));
            outArgs[0] = new ExecArg { Arg = ArgSrc, Memory = dst };
            outArgs[1] = new ExecArg { Arg = ArgDst, Memory = plainOut };
            args = (ExecArg*)Block(3 * sizeof(ExecArg));
            args[0] = new ExecArg { Arg = ArgSrc, Memory = src };
            args[1] = new ExecArg { Arg = ArgWeights, Memory = wei };
            args[2] = new ExecArg { Arg = ArgDst, Memory = dst };
        }

        public override void Run()
        {
            peer.SetThreads(threads);
            Check(((delegate* unmanaged<nint, nint, int, ExecArg*, int>)A.Execute)(conv, stream, 3, args), "dnnl_primitive_execute");
            Check(((delegate* unmanaged<nint, int>)A.StreamWait)(stream), "dnnl_stream_wait");
        }

        public override void Finish()
        {
            peer.SetThreads(threads);
            Check(((delegate* unmanaged<nint, nint, int, ExecArg*, int>)A.Execute)(reorderOut, stream, 2, outArgs), "dnnl_primitive_execute (reorder)");
            Check(((delegate* unmanaged<nint, int>)A.StreamWait)(stream), "dnnl_stream_wait");
        }

        /// <summary>A plain (abcd) or "any" f32 memory descriptor of these dims.</summary>
        private nint Desc(long[] dims, int tag)
        {
            fixed (long* d = dims)
            {
                if (!peer.v3)
                {
                    nint md = Block(V2MemoryDescBytes);
                    Check(((delegate* unmanaged<nint, int, long*, int, int, int>)A.MdCreate)(md, dims.Length, d, F32, tag), "dnnl_memory_desc_init_by_tag");
                    return md;
                }
                nint handle;
                Check(((delegate* unmanaged<nint*, int, long*, int, int, int>)A.MdCreate)(&handle, dims.Length, d, F32, tag), "dnnl_memory_desc_create_with_tag");
                v3Descs.Add(handle);
                return handle;
            }
        }

        private nint Memory(nint md, nint handle)
        {
            nint m;
            Check(((delegate* unmanaged<nint*, nint, nint, nint, int>)A.MemoryCreate)(&m, md, engine, handle), "dnnl_memory_create");
            memories.Add(m);
            return m;
        }

        private nint Primitive(nint pd)
        {
            nint p;
            Check(((delegate* unmanaged<nint*, nint, int>)A.PrimitiveCreate)(&p, pd), "dnnl_primitive_create");
            primitives.Add(p);
            return p;
        }

        /// <summary>A reorder primitive from one memory to another, run once now when <paramref name="execute"/>.</summary>
        private nint Reorder(nint fromMd, nint from, nint toMd, nint to, bool execute)
        {
            nint pd;
            Check(((delegate* unmanaged<nint*, nint, nint, nint, nint, nint, int>)A.ReorderPd)(&pd, fromMd, engine, toMd, engine, 0),
                  "dnnl_reorder_primitive_desc_create");
            pds.Add(pd);
            nint reorder = Primitive(pd);
            if (execute)
            {
                ExecArg* a = stackalloc ExecArg[2];
                a[0] = new ExecArg { Arg = ArgSrc, Memory = from };
                a[1] = new ExecArg { Arg = ArgDst, Memory = to };
                Check(((delegate* unmanaged<nint, nint, int, ExecArg*, int>)A.Execute)(reorder, stream, 2, a), "dnnl_primitive_execute (reorder)");
                Check(((delegate* unmanaged<nint, int>)A.StreamWait)(stream), "dnnl_stream_wait");
            }
            return reorder;
        }

        private nint Block(int bytes)
        {
            nint b = (nint)NativeMemory.AlignedAlloc((nuint)bytes, 64);
            NativeMemory.Clear((void*)b, (nuint)bytes);
            blocks.Add(b);
            return b;
        }

        protected override void Free()
        {
            // Destruction statuses are ignored: nothing useful can be done about them.
            foreach (nint p in primitives) _ = ((delegate* unmanaged<nint, int>)A.PrimitiveDestroy)(p);
            foreach (nint m in memories) _ = ((delegate* unmanaged<nint, int>)A.MemoryDestroy)(m);
            foreach (nint pd in pds) _ = ((delegate* unmanaged<nint, int>)A.PdDestroy)(pd);
            foreach (nint md in v3Descs) _ = ((delegate* unmanaged<nint, int>)A.MdDestroy)(md);
            if (stream != 0) _ = ((delegate* unmanaged<nint, int>)A.StreamDestroy)(stream);
            if (engine != 0) _ = ((delegate* unmanaged<nint, int>)A.EngineDestroy)(engine);
            foreach (nint b in blocks) NativeMemory.AlignedFree((void*)b);
            foreach (var list in new[] { primitives, memories, pds, v3Descs, blocks }) list.Clear();
            (stream, engine) = (0, 0);
        }
    }
}
