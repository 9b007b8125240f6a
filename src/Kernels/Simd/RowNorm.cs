using EdgeViT.Kernels.Parallel;

namespace EdgeViT.Kernels.Simd;

/// <summary>
/// A GEMM's A operand given as the LayerNorm of another matrix's rows: A[r] = LN(Source[r]) * gamma + beta. Passed to
/// <see cref="Gemm.Multiply"/> or <c>Int8Gemm.Multiply</c>, each row task normalises its own rows into A just before
/// it multiplies (or quantises) them, as MLAS fuses the norm into packing: the norm needs no dispatch of its own
/// (a block's two norms were 24 of a pass's ~85 dispatches, each a few microseconds of work) and its rows are still
/// in the core's L1 when the microkernel reads them. A holds the normalised rows afterwards, as it did when the norm
/// ran first (the calibration backward pass reads them). The default value means "A is given".
/// </summary>
public readonly unsafe struct RowNorm
{
    public readonly float* Source, Gamma, Beta;
    public readonly int SourceStride;
    public readonly float Eps;

    public RowNorm(float* source, int sourceStride, float* gamma, float* beta, float eps)
    {
        Source = source; SourceStride = sourceStride; Gamma = gamma; Beta = beta; Eps = eps;
    }

    public bool IsSet => Source != null;

    /// <summary>A[r0..r1) = LN(Source[r0..r1)); k is the row length (the GEMM's K).</summary>
    internal void Apply(SimdLevel level, float* a, int lda, int k, int r0, int r1)
    {
        for (int r = r0; r < r1; r++)
            Elementwise.LayerNorm(level, Source + (long)r * SourceStride, a + (long)r * lda, k, Gamma, Beta, Eps);
    }

    /// <summary>Rows per task when the norm runs as a pass of its own: a few microseconds of work each.</summary>
    internal const int Chunk = 24;

    private struct AllJob
    {
        public RowNorm Norm;
        public float* A;
        public int Lda, K, Rows;
        public SimdLevel Level;
    }

    /// <summary>
    /// A[0..m) = LN(Source[0..m)) as a pass of its own, split over the pool: for a GEMM whose tasks share rows (its N
    /// panels split too, when rows are few) and for a norm with no GEMM after it in the same call.
    /// </summary>
    internal void ApplyAll(SimdLevel level, float* a, int lda, int k, int m, WorkerPool? pool)
    {
        if (pool is null || pool.Threads == 1 || m <= Chunk)
        {
            Apply(level, a, lda, k, 0, m);
            return;
        }
        var job = new AllJob { Norm = this, A = a, Lda = lda, K = k, Rows = m, Level = level };
        pool.Run((m + Chunk - 1) / Chunk, &AllTask, &job);
    }

    private static void AllTask(void* ctx, int task, int worker)
    {
        ref var j = ref *(AllJob*)ctx;
        j.Norm.Apply(j.Level, j.A, j.Lda, j.K, task * Chunk, Math.Min(j.Rows, (task + 1) * Chunk));
    }
}
