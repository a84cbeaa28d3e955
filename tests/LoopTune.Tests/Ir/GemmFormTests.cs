using LoopTune.Ir;

namespace LoopTune.Tests.Ir;

/// <summary>The BLAS classifier on a table of contractions (the README's examples among them): the exact sgemm form, or
/// the one-line reason there is none. That each form computes the contraction is checked in GemmPeerTests.</summary>
public sealed class GemmFormTests
{
    /// <summary>Contractions with a BLAS form, and the form (<see cref="GemmForm.ToString"/>).</summary>
    public static TheoryData<string, string> Forms() => new()
    {
        // README: the matmul, long form and shorthand
        { "C[m,n] += A[m,k] * B[k,n] m=128 n=64 k=32", "sgemm N,N M=128 N=64 K=32 lda=32 ldb=64 ldc=64" },
        { "mm 64 48 32", "sgemm N,N M=64 N=48 K=32 lda=32 ldb=48 ldc=48" },
        { "mm 1 1 1", "sgemm N,N M=1 N=1 K=1 lda=1 ldb=1 ldc=1" },
        // transposed inputs
        { "C[m,n] += A[m,k] * B[n,k] m=8 n=6 k=5", "sgemm N,T M=8 N=6 K=5 lda=5 ldb=5 ldc=6" },
        { "C[m,n] += A[k,m] * B[k,n] m=8 n=6 k=5", "sgemm T,N M=8 N=6 K=5 lda=8 ldb=6 ldc=6" },
        { "C[m,n] += A[k,m] * B[n,k] m=8 n=6 k=5", "sgemm T,T M=8 N=6 K=5 lda=8 ldb=5 ldc=6" },
        // the output transposed against the inputs: C^T = B^T A^T
        { "C[n,m] += A[m,k] * B[k,n] m=8 n=6 k=5", "sgemm T,T M=6 N=8 K=5 lda=6 ldb=5 ldc=8, A is the right input" },
        // the inputs in the other order
        { "C[m,n] += B[k,n] * A[m,k] m=8 n=6 k=5", "sgemm N,N M=8 N=6 K=5 lda=5 ldb=6 ldc=6, A is the right input" },
        // batches: leading, in the middle, two of them
        { "C[b,m,n] += A[b,m,k] * B[b,k,n] b=3 m=8 n=6 k=5", "3 x sgemm N,N (batch b) M=8 N=6 K=5 lda=5 ldb=6 ldc=6" },
        { "C[m,b,n] += A[b,m,k] * B[k,b,n] b=3 m=4 n=6 k=5", "3 x sgemm N,N (batch b) M=4 N=6 K=5 lda=5 ldb=18 ldc=18" },
        { "C[b,m,n] += A[b,k,m] * B[b,n,k] b=2 m=4 n=3 k=5", "2 x sgemm T,T (batch b) M=4 N=3 K=5 lda=4 ldb=5 ldc=3" },
        { "C[g,b,m,n] += A[g,b,m,k] * B[b,g,k,n] g=2 b=3 m=4 n=5 k=6", "6 x sgemm N,N (batch g,b) M=4 N=5 K=6 lda=6 ldb=5 ldc=5" },
        // groups of variables with one role, contiguous in every tensor
        { "C[m,n] += A[m,k,l] * B[k,l,n] m=4 n=6 k=3 l=5", "sgemm N,N M=4 N=6 K=15 lda=15 ldb=6 ldc=6" },
        { "C[i,j,n] += A[i,j,k] * B[k,n] i=2 j=3 n=4 k=5", "sgemm N,N M=6 N=4 K=5 lda=5 ldb=4 ldc=4" },
        // degenerate products: matrix-vector, vector-matrix, outer product
        { "C[m] += A[m,k] * B[k] m=8 k=5", "sgemm N,N M=8 N=1 K=5 lda=5 ldb=1 ldc=1" },
        { "C[n] += A[k] * B[k,n] n=8 k=5", "sgemm N,N M=1 N=8 K=5 lda=5 ldb=8 ldc=8" },
        { "C[m,n] += A[m] * B[n] m=8 n=6", "sgemm N,N M=8 N=6 K=1 lda=1 ldb=6 ldc=6" },
        // a strided row is a leading dimension
        { "C[m,n] += A[2*m,k] * B[k,n] m=4 n=6 k=3", "sgemm N,N M=4 N=6 K=3 lda=6 ldb=6 ldc=6" },
        // a 1x1 convolution: its window variables have size 1, so it is a plain product W * I
        { "O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=6 h=5 w=5 c=4 r=1 s=1", "sgemm N,N M=6 N=25 K=4 lda=4 ldb=25 ldc=25, A is the right input" },
    };

    /// <summary>Contractions without a BLAS form, and the reason.</summary>
    public static TheoryData<string, string> Reasons() => new()
    {
        // README: the convolution and the strided one
        { "conv 2 6 6 3 3 3", "an affine index h+r in I (overlapping windows, as in a convolution)" },
        { "O[f,h,w] += I[c,h+r,w+s] * W[f,c,r,s] f=3 h=4 w=4 c=2 r=3 s=3", "an affine index h+r in I (overlapping windows, as in a convolution)" },
        { "O[f,h] += I[c,2*h+r] * W[f,c,r] f=3 h=4 c=2 r=3", "an affine index 2*h+r in I (overlapping windows, as in a convolution)" },
        { "C[m,n] += A[m,k,l] * B[k,n] m=4 n=6 k=3 l=5", "a reduction over an index of one operand only: l indexes A alone" },
        { "C[m,n] += A[m,k] * B[k,n,l] m=4 n=6 k=3 l=5", "a reduction over an index of one operand only: l indexes B alone" },
        { "C[m,n,j] += A[m,k] * B[k,n] m=4 n=6 k=3 j=2", "j indexes the output C but neither input (a broadcast)" },
        { "C[m,n] += A[m,k,l] * B[l,k,n] m=4 n=6 k=3 l=5", "the reduction indices k, l are not one contiguous dimension of B" },
        { "C[m,n,b] += A[b,m,k] * B[b,k,n] b=3 m=4 n=5 k=6", "the output C's innermost index b is a batch index (it indexes both inputs): BLAS needs unit-stride output columns" },
        { "C[m,n] += A[m,2*k] * B[k,n] m=4 n=6 k=3", "A has unit stride along neither m nor k: BLAS needs one of them contiguous" },
        { "C[m,n] += A[m,k,b] * B[b,k,n] m=4 n=6 k=3 b=2", "the reduction indices k, b are not one contiguous dimension of B" },
        { "C[m] += A[m,m] * B[m] m=4", "m indexes two dimensions of A (a diagonal)" },
    };

    [Theory]
    [MemberData(nameof(Forms))]
    public void MatrixProductsMapToTheirSgemm(string spec, string form)
    {
        var c = Computation.Parse(spec);
        var (f, reason) = GemmForm.Classify(c);
        Assert.True(f is not null, reason);
        Assert.Equal(form, f.ToString());
        Assert.Equal(f, c.AsGemm());
        Assert.Equal(c.Flops, 2.0 * f.Calls * f.M * f.N * f.K);
    }

    [Theory]
    [MemberData(nameof(Reasons))]
    public void OtherContractionsGetOneLineWhy(string spec, string reason)
    {
        var (f, why) = GemmForm.Classify(Computation.Parse(spec));
        Assert.Null(f);
        Assert.Equal(reason, why);
        Assert.DoesNotContain('\n', why!);
    }

    [Fact]
    public void TheBatchStridesAreTheTensorsStrides()
    {
        var f = GemmForm.Classify(Computation.Parse("C[m,b,n] += A[b,m,k] * B[k,b,n] b=3 m=4 n=6 k=5")).Form!;
        Assert.Equal([new GemmBatch("b", 3, StrideC: 6, StrideA: 20, StrideB: 6)], f.Batch.ToArray());
        Assert.Equal("3 x sgemm N,N (batch b)", f.Describe());
    }
}
