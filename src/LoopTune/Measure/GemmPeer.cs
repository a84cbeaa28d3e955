namespace LoopTune.Measure;

/// <summary>A single-precision GEMM of some library: row-major <c>C = op(A) op(B) + C</c> (alpha 1, beta 1), as
/// <c>cblas_sgemm(CblasRowMajor, ...)</c> takes it, on the calling thread alone or on as many threads as asked.</summary>
public abstract unsafe class GemmPeer : NativePeer
{
    protected internal GemmPeer(string key, string library, string? problem, string? version, string threading)
        : base(key, library, problem, version, threading) { }

    /// <summary>Row-major <c>C[m,n] += A[m,k] * B[k,n]</c> (lda = k, ldb = n, ldc = n).</summary>
    public void Sgemm(int m, int n, int k, float* a, float* b, float* c) => Sgemm(false, false, m, n, k, a, k, b, n, c, n);

    /// <summary>Row-major <c>C = op(A) op(B) + C</c>: op(A) is m x k (A stored k x m when <paramref name="transA"/>), op(B)
    /// k x n, C m x n; each leading dimension at least the stored row length (and 1). Nothing happens when a size is 0.</summary>
    public void Sgemm(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc) =>
        Sgemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, 1);

    /// <summary><see cref="Sgemm(bool, bool, int, int, int, float*, int, float*, int, float*, int)"/> on
    /// <paramref name="threads"/> threads: the library's own, set before the call (<see cref="NativePeer.Threading"/>).</summary>
    public void Sgemm(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        if (!Available) throw new InvalidOperationException($"peer {Key} is unavailable: {Problem}");
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        if (m == 0 || n == 0 || k == 0) return;
        ArgumentOutOfRangeException.ThrowIfLessThan(lda, Math.Max(1, transA ? m : k));
        ArgumentOutOfRangeException.ThrowIfLessThan(ldb, Math.Max(1, transB ? k : n));
        ArgumentOutOfRangeException.ThrowIfLessThan(ldc, Math.Max(1, n));
        Call(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, threads);
    }

    /// <summary>The library call on <paramref name="threads"/> threads, with arguments already checked.</summary>
    protected abstract void Call(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, int threads);
}
