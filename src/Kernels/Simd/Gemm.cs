using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using EdgeViT.Kernels.Parallel;

namespace EdgeViT.Kernels.Simd;

public enum GemmEpilogue { None, Gelu }

/// <summary>
/// C[M x N] = A[M x K] * B + bias (or C += ..., for residual connections), optionally followed by GELU,
/// with B pre-packed (<see cref="PackedMatrix"/>). Blocking: K in slices of <see cref="KBlock"/> so a
/// panel slice stays in L1 while every row block of A streams past it; threads split the rows
/// (or the N panels, when there are too few rows to go round: the head's one row).
/// </summary>
public static unsafe class Gemm
{
    /// <summary>K slice: 256 x 32 floats = 32 KiB of B panel, within L1 on the cores we target.</summary>
    public const int KBlock = 256;

    public static int VectorWidth(SimdLevel level) => level switch
    {
        SimdLevel.Vector512 => 16,
        SimdLevel.Vector256 => 8,
        SimdLevel.Vector128 => 4,
        _ => 1,
    };

    /// <summary>Columns per packed panel: two vectors.</summary>
    public static int PanelWidth(SimdLevel level) => 2 * VectorWidth(level);

    /// <summary>
    /// Rows per microkernel call: 12 (24 accumulators) where x86 has 32 vector registers, else 6; on Arm64 the
    /// FMLA-by-element kernel's 8 (16 accumulators + 8 A vectors of four k, <see cref="GemmMicrokernelArm"/>).
    /// </summary>
    public static int RowBlock(SimdLevel level) =>
        level == SimdLevel.Scalar ? 4
        : UseArmKernel(level) ? GemmMicrokernelArm.Rows
        : System.Runtime.Intrinsics.X86.Avx512F.IsSupported || System.Runtime.Intrinsics.Arm.AdvSimd.Arm64.IsSupported ? 12 : 6;

    private static bool UseArmKernel(SimdLevel level) => level == SimdLevel.Vector128 && System.Runtime.Intrinsics.Arm.AdvSimd.Arm64.IsSupported;

    /// <summary>
    /// Multiply by a packed weight matrix, threaded over <paramref name="pool"/> when given. With <paramref name="norm"/>
    /// set, A's rows are first written as the LayerNorm of the norm's source rows, by the task that multiplies them.
    /// </summary>
    public static void Multiply(float* a, int lda, int m, PackedMatrix b, float* c, int ldc,
        bool accumulate = false, GemmEpilogue epilogue = GemmEpilogue.None, WorkerPool? pool = null, RowNorm norm = default)
    {
        var job = new Job
        {
            A = a, Lda = lda, M = m, B = b.Data.Pointer, Bias = b.Bias.Pointer, K = b.K, N = b.N,
            C = c, Ldc = ldc, Accumulate = accumulate, Epilogue = epilogue, Level = b.Level, Norm = norm,
        };
        Run(ref job, pool);
    }

    /// <summary>
    /// Multiply by B already packed into panels at <paramref name="bPanels"/> (see <see cref="PackRowMajor"/>),
    /// e.g. attention's K^T and V packed per image. bias may be null.
    /// </summary>
    public static void MultiplyPacked(SimdLevel level, float* a, int lda, int m, float* bPanels, float* bias, int k, int n,
        float* c, int ldc, bool accumulate = false, WorkerPool? pool = null)
    {
        var job = new Job
        {
            A = a, Lda = lda, M = m, B = bPanels, Bias = bias, K = k, N = n,
            C = c, Ldc = ldc, Accumulate = accumulate, Epilogue = GemmEpilogue.None, Level = level,
        };
        Run(ref job, pool);
    }

    /// <summary>Packs row-major B [k x n] (row stride ldb) into panels of width w at dst; pads with zeros.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackRowMajor(float* b, int ldb, int k, int n, int w, float* dst)
    {
        int panels = (n + w - 1) / w;
        for (int p = 0; p < panels; p++)
        {
            int n0 = p * w, cols = Math.Min(w, n - n0);
            float* d = dst + (long)p * k * w;
            for (int kk = 0; kk < k; kk++, d += w)
            {
                new ReadOnlySpan<float>(b + (long)kk * ldb + n0, cols).CopyTo(new Span<float>(d, cols));
                if (cols < w) new Span<float>(d + cols, w - cols).Clear();
            }
        }
    }

    /// <summary>
    /// Packs the transpose of row-major X [n x k] (row stride ldx) as B = X^T [k x n] into panels of width w:
    /// how attention turns K [tokens x head dim] into the right operand of Q K^T.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackTransposed(float* x, int ldx, int n, int k, int w, float* dst)
    {
        int panels = (n + w - 1) / w;
        for (int p = 0; p < panels; p++)
        {
            float* d = dst + (long)p * k * w;
            int n0 = p * w, cols = Math.Min(w, n - n0);
            for (int j = 0; j < cols; j++)
            {
                float* src = x + (long)(n0 + j) * ldx;
                for (int kk = 0; kk < k; kk++) d[kk * w + j] = src[kk];
            }
            for (int j = cols; j < w; j++)
                for (int kk = 0; kk < k; kk++) d[kk * w + j] = 0f;
        }
    }

    /// <summary>Floats needed to pack a [k x n] B at this level.</summary>
    public static long PackedLength(SimdLevel level, int k, int n)
    {
        int w = PanelWidth(level);
        return (long)((n + w - 1) / w) * w * k;
    }

    private struct Job
    {
        public float* A, B, Bias, C;
        public int Lda, Ldc, M, K, N;
        public bool Accumulate;
        public GemmEpilogue Epilogue;
        public SimdLevel Level;
        public RowNorm Norm;
        public int Panels, RowBlocks, TasksAlongN, TasksAlongM;
    }

    /// <summary>Below this many multiply-adds a GEMM runs on the calling thread: a dispatch would cost more.</summary>
    private const long MinParallelWork = 64 * 1024;

    /// <summary>Least multiply-adds per task (a few microseconds), so claiming one costs little against it.</summary>
    private const long MinTaskWork = 32 * 1024;

    /// <summary>Tasks per thread when the work allows: small tasks claimed dynamically balance a loaded machine.</summary>
    private const int TasksPerThread = 8;

    private static void Run(ref Job job, WorkerPool? pool)
    {
        int w = PanelWidth(job.Level), mr = RowBlock(job.Level);
        job.Panels = (job.N + w - 1) / w;
        job.RowBlocks = (job.M + mr - 1) / mr;
        int threads = pool?.Threads ?? 1;
        long work = (long)job.M * job.N * job.K;
        if (threads == 1 || work < MinParallelWork)
        {
            if (job.Norm.IsSet) job.Norm.Apply(job.Level, job.A, job.Lda, job.K, 0, job.M);
            RunRange(ref job, 0, job.Panels, 0, job.M);
            return;
        }
        // Split rows first, then N panels, into about TasksPerThread tasks per thread of balanced size, numbered in
        // row order: the pool gives each thread a contiguous run of tasks, so a thread multiplies the rows it wrote
        // in the previous stage (they are in its core's cache) and writes rows the next stage will give it again.
        // Every task computes whole microkernel tiles, so the result does not depend on the split.
        long units = (long)job.Panels * job.RowBlocks;
        int target = (int)Math.Clamp(work / MinTaskWork, threads, (long)TasksPerThread * threads);
        target = (int)Math.Min(target, units);
        job.TasksAlongM = Math.Min(job.RowBlocks, target);
        job.TasksAlongN = Math.Min(job.Panels, (target + job.TasksAlongM - 1) / job.TasksAlongM);
        if (job.Norm.IsSet && job.TasksAlongN > 1)
        {
            // Tasks share rows, so no one task may write them: the norm goes first, as a pass of its own.
            job.Norm.ApplyAll(job.Level, job.A, job.Lda, job.K, job.M, pool);
            job.Norm = default;
        }
        fixed (Job* j = &job) pool!.Run(job.TasksAlongN * job.TasksAlongM, &RunTask, j);
    }

    private static void RunTask(void* ctx, int task, int worker)
    {
        ref Job job = ref *(Job*)ctx;
        int mr = RowBlock(job.Level);
        int pn = task % job.TasksAlongN, pm = task / job.TasksAlongN;
        int p0 = Split(job.Panels, job.TasksAlongN, pn), p1 = Split(job.Panels, job.TasksAlongN, pn + 1);
        int m0 = Split(job.RowBlocks, job.TasksAlongM, pm) * mr, m1 = Math.Min(job.M, Split(job.RowBlocks, job.TasksAlongM, pm + 1) * mr);
        if (p0 >= p1 || m0 >= m1) return;
        if (job.Norm.IsSet) job.Norm.Apply(job.Level, job.A, job.Lda, job.K, m0, m1); // this task alone owns rows m0..m1
        RunRange(ref job, p0, p1, m0, m1);
    }

    /// <summary>Start of part i when n items are cut into parts balanced to within one item.</summary>
    private static int Split(int n, int parts, int i) => (int)((long)n * i / parts);

    private static void RunRange(ref Job job, int p0, int p1, int m0, int m1)
    {
        switch (job.Level)
        {
            case SimdLevel.Vector512: RunRange<V512Ops, Vector512<float>>(ref job, p0, p1, m0, m1); break;
            case SimdLevel.Vector256: RunRange<V256Ops, Vector256<float>>(ref job, p0, p1, m0, m1); break;
            case SimdLevel.Vector128: RunRange<V128Ops, Vector128<float>>(ref job, p0, p1, m0, m1); break;
            default: RunRange<ScalarOps, float>(ref job, p0, p1, m0, m1); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunRange<TOps, TV>(ref Job job, int p0, int p1, int m0, int m1)
        where TOps : IVectorOps<TV> where TV : unmanaged
    {
        int w = 2 * TOps.Count, mr = RowBlock(job.Level);
        for (int kb = 0; kb < job.K; kb += KBlock)
        {
            int kc = Math.Min(KBlock, job.K - kb);
            bool first = kb == 0, last = kb + kc >= job.K;
            for (int p = p0; p < p1; p++)
            {
                float* bp = job.B + (long)p * job.K * w + (long)kb * w;
                float* bias = first && job.Bias != null ? job.Bias + p * w : null;
                int cols = Math.Min(w, job.N - p * w);
                for (int m = m0; m < m1; m += mr)
                {
                    int rows = Math.Min(mr, m1 - m);
                    float* cp = job.C + (long)m * job.Ldc + p * w;
                    if (typeof(TV) == typeof(Vector128<float>) && System.Runtime.Intrinsics.Arm.AdvSimd.Arm64.IsSupported)
                        GemmMicrokernelArm.Tile(rows, job.A + (long)m * job.Lda + kb, job.Lda, bp, cp, job.Ldc, kc,
                            bias, !first || job.Accumulate, cols);
                    else
                        GemmMicrokernel<TOps, TV>.Tile(rows, job.A + (long)m * job.Lda + kb, job.Lda, bp, cp, job.Ldc, kc,
                            bias, !first || job.Accumulate, cols);
                    if (last && job.Epilogue == GemmEpilogue.Gelu)
                        for (int r = 0; r < rows; r++) Elementwise.Gelu<TOps, TV>(cp + (long)r * job.Ldc, cols);
                }
            }
        }
    }
}
