using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using EdgeViT.Kernels.Parallel;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Quant;

/// <summary>
/// Activations of one int8 GEMM: each row of A quantised symmetrically on its own (per token, dynamically),
/// q = round-half-even(x * 127 / max|x|), in the byte layout the kernel reads (int8, u8 = q + 128 for the u8 x s8
/// kernels, or int16), K padded to the kernel's group. Sized once for the largest layer; reused every call.
/// </summary>
public sealed unsafe class Int8Activations : IDisposable
{
    public int MaxRows { get; }
    public int MaxK { get; }
    private readonly NativeBuffer _rows, _scales;

    public Int8Activations(int maxRows, int maxK)
    {
        MaxRows = maxRows; MaxK = maxK;
        // Worst case: int16 (2 bytes per k), K rounded up to a group of 4.
        _rows = new NativeBuffer((long)maxRows * ((maxK + 3) / 4 * 2));
        _scales = new NativeBuffer(maxRows);
    }

    internal byte* Rows => (byte*)_rows.Pointer;
    internal float* Scales => _scales.Pointer;

    public void Dispose() { _rows.Dispose(); _scales.Dispose(); }
}

/// <summary>
/// C[M x N] (=, or += for residuals) = requant(int8(A) . B) + bias, optionally GELU: the int8 counterpart of
/// <see cref="Gemm.Multiply"/>. Int32 accumulation over the whole K (|sum| &lt;= K * 127 * 64 stays far inside int32
/// and, for K &lt;= 2064, inside fp32's exact integers), then c = acc * weightScale[n] * rowScale[m] + bias[n].
/// Threads split the rows (and the N panels when rows are few), as the fp32 GEMM does.
/// </summary>
public static unsafe class Int8Gemm
{
    /// <param name="norm">when set, A's rows are first written as the LayerNorm of its source rows, by the task that
    /// quantises them (<see cref="RowNorm"/>).</param>
    public static void Multiply(float* a, int lda, int m, Int8Matrix b, float* c, int ldc, Int8Activations act,
        bool accumulate = false, GemmEpilogue epilogue = GemmEpilogue.None, WorkerPool? pool = null, RowNorm norm = default)
    {
        if (m > act.MaxRows || b.K > act.MaxK) throw new ArgumentException($"activation scratch holds {act.MaxRows}x{act.MaxK}, GEMM needs {m}x{b.K}");
        var job = new Job
        {
            A = a, Lda = lda, M = m, B = b.Data, K = b.K, N = b.N, Groups = b.Groups, Kernel = b.Kernel,
            Q = act.Rows, Ldq = b.Groups * 4, RowScale = act.Scales, Scale = b.Scale, Bias = b.Bias, Corr = b.Correction,
            C = c, Ldc = ldc, Accumulate = accumulate, Epilogue = epilogue, EpilogueLevel = b.EpilogueLevel, Norm = norm,
        };
        if (!Split(ref job, pool))
        {
            QuantizeRows(ref job, pool);
            RunRange(ref job, 0, job.Panels, 0, job.M);
            return;
        }
        // Rows only (the usual case): each task normalises and quantises the rows it then multiplies, one dispatch
        // for the whole layer. With N split too, tasks share rows, so the rows are quantised in a pass of their own.
        if (job.TasksAlongN == 1) job.QuantizeInTask = true;
        else QuantizeRows(ref job, pool);
        Dispatch(ref job, pool!);
    }

    /// <summary>
    /// The raw int32 sums C[m x N] = A_q . B for already-quantised rows (q in [-127, 127], [m x K] row-major):
    /// what the tests hold against an exact integer reference on every kernel.
    /// </summary>
    public static void MultiplyInt(sbyte* aq, int m, Int8Matrix b, int* c, int ldc, WorkerPool? pool = null)
    {
        for (long i = 0; i < (long)m * b.K; i++)
            if (aq[i] < -QuantizedLinear.ActivationLevel) throw new ArgumentOutOfRangeException(nameof(aq), $"activation {aq[i]} outside [-127, 127]");
        int ldq = b.Groups * 4;
        using var rows = new NativeBuffer((long)m * ldq / 4 + 1);
        byte* q = (byte*)rows.Pointer;
        for (int r = 0; r < m; r++) WriteRow(aq + (long)r * b.K, b.K, q + (long)r * ldq, b.Groups, b.Kernel);
        var job = new Job
        {
            M = m, B = b.Data, K = b.K, N = b.N, Groups = b.Groups, Kernel = b.Kernel,
            Q = q, Ldq = ldq, Corr = b.Correction, RawOut = c, Ldc = ldc,
        };
        Run(ref job, pool);
    }

    private struct Job
    {
        public float* A, C, RowScale, Scale, Bias;
        public byte* B, Q;
        public int* Corr, RawOut;
        public int Lda, Ldc, Ldq, M, K, N, Groups;
        public Int8Kernel Kernel;
        public bool Accumulate, QuantizeInTask;
        public GemmEpilogue Epilogue;
        public SimdLevel EpilogueLevel;
        public RowNorm Norm;
        public int Panels, PanelsPerTask, RowsPerTask, TasksAlongN, QuantRowsPerTask;
    }

    // ---- activation quantisation -------------------------------------------------------------------------------

    private static void QuantizeRows(ref Job job, WorkerPool? pool)
    {
        int threads = pool?.Threads ?? 1;
        if (threads == 1 || (long)job.M * job.K < 16 * 1024)
        {
            for (int r = 0; r < job.M; r++) QuantizeRow(ref job, r);
            return;
        }
        job.QuantRowsPerTask = (job.M + 2 * threads - 1) / (2 * threads);
        int tasks = (job.M + job.QuantRowsPerTask - 1) / job.QuantRowsPerTask;
        fixed (Job* j = &job) pool!.Run(tasks, &QuantizeTask, j);
    }

    private static void QuantizeTask(void* ctx, int task, int worker)
    {
        ref Job job = ref *(Job*)ctx;
        int r0 = task * job.QuantRowsPerTask, r1 = Math.Min(job.M, r0 + job.QuantRowsPerTask);
        for (int r = r0; r < r1; r++) QuantizeRow(ref job, r);
    }

    private static void QuantizeRow(ref Job job, int r)
    {
        float* x = job.A + (long)r * job.Lda;
        if (job.Norm.IsSet) job.Norm.Apply(job.EpilogueLevel, job.A, job.Lda, job.K, r, r + 1);
        float amax = MaxAbs(x, job.K);
        job.RowScale[r] = amax / QuantizedLinear.ActivationLevel;
        float inv = amax > 0f ? QuantizedLinear.ActivationLevel / amax : 0f;
        Quantize(x, job.K, inv, job.Q + (long)r * job.Ldq, job.Groups, job.Kernel);
    }

    internal static float MaxAbs(float* x, int n)
    {
        int i = 0, w = Vector<float>.Count;
        var m = Vector<float>.Zero;
        float amax512 = 0f;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var m5 = Vector512<float>.Zero;
            for (; i <= n - 16; i += 16) m5 = Vector512.Max(m5, Vector512.Abs(Vector512.Load(x + i)));
            amax512 = MaxAcross(Vector256.Max(m5.GetLower(), m5.GetUpper()));
        }
        if (Vector.IsHardwareAccelerated)
            for (; i <= n - w; i += w) m = Vector.Max(m, Vector.Abs(Vector.Load(x + i)));
        float amax = amax512;
        for (int j = 0; j < w; j++) amax = MathF.Max(amax, m[j]);
        for (; i < n; i++) amax = MathF.Max(amax, MathF.Abs(x[i]));
        return amax;
    }

    private static float MaxAcross(Vector256<float> v)
    {
        var h = Vector128.Max(v.GetLower(), v.GetUpper());
        float r = 0f;
        for (int j = 0; j < 4; j++) r = MathF.Max(r, h[j]);
        return r;
    }

    /// <summary>16 values of clamp(round-half-even(x * inv), ±127) as int32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Quantize512(float* x, Vector512<float> inv)
    {
        var hi = Vector512.Create((float)QuantizedLinear.ActivationLevel);
        return Vector512.ConvertToInt32(Vector512.Min(hi, Vector512.Max(-hi, Vector512.Round(Vector512.Load(x) * inv))));
    }

    /// <summary>q = clamp(round-half-even(x * inv), ±127), written in the kernel's layout; the K padding is q = 0.</summary>
    internal static void Quantize(float* x, int k, float inv, byte* dst, int groups, Int8Kernel kernel)
    {
        bool madd = Int8Kernels.IsMadd(kernel); int offset = Int8Kernels.ActivationOffset(kernel);
        int i = 0, w = Vector<int>.Count;
        // 512-bit first where the CPU has it (Vector<T> stays 256-bit on AVX-512 machines): same rounding, same bytes.
        if (Vector512.IsHardwareAccelerated)
        {
            var vinv = Vector512.Create(inv);
            if (madd)
            {
                short* d16 = (short*)dst;
                for (; i <= k - 32; i += 32) Vector512.Narrow(Quantize512(x + i, vinv), Quantize512(x + i + 16, vinv)).Store(d16 + i);
            }
            else
            {
                var bias = Vector512.Create(unchecked((sbyte)offset));
                for (; i <= k - 64; i += 64)
                {
                    var q = Vector512.Narrow(
                        Vector512.Narrow(Quantize512(x + i, vinv), Quantize512(x + i + 16, vinv)),
                        Vector512.Narrow(Quantize512(x + i + 32, vinv), Quantize512(x + i + 48, vinv)));
                    q += bias;
                    q.Store((sbyte*)dst + i);
                }
            }
        }
        if (Vector.IsHardwareAccelerated)
        {
            var vinv = new Vector<float>(inv);
            var hi = new Vector<float>(QuantizedLinear.ActivationLevel);
            var lo = -hi;
            if (madd)
            {
                short* d16 = (short*)dst;
                for (; i <= k - 2 * w; i += 2 * w)
                {
                    var q0 = Vector.ConvertToInt32(Vector.Min(hi, Vector.Max(lo, Vector.Round(Vector.Load(x + i) * vinv))));
                    var q1 = Vector.ConvertToInt32(Vector.Min(hi, Vector.Max(lo, Vector.Round(Vector.Load(x + i + w) * vinv))));
                    Vector.Narrow(q0, q1).Store(d16 + i);
                }
            }
            else
            {
                var bias = new Vector<sbyte>(unchecked((sbyte)offset));
                for (; i <= k - 4 * w; i += 4 * w)
                {
                    var s0 = Vector.Narrow(
                        Vector.ConvertToInt32(Vector.Min(hi, Vector.Max(lo, Vector.Round(Vector.Load(x + i) * vinv)))),
                        Vector.ConvertToInt32(Vector.Min(hi, Vector.Max(lo, Vector.Round(Vector.Load(x + i + w) * vinv)))));
                    var s1 = Vector.Narrow(
                        Vector.ConvertToInt32(Vector.Min(hi, Vector.Max(lo, Vector.Round(Vector.Load(x + i + 2 * w) * vinv)))),
                        Vector.ConvertToInt32(Vector.Min(hi, Vector.Max(lo, Vector.Round(Vector.Load(x + i + 3 * w) * vinv)))));
                    var q = Vector.Narrow(s0, s1);
                    q += bias;
                    q.Store((sbyte*)dst + i);
                }
            }
        }
        for (; i < k; i++)
        {
            int q = (int)Math.Clamp(MathF.Round(x[i] * inv, MidpointRounding.ToEven), -QuantizedLinear.ActivationLevel, QuantizedLinear.ActivationLevel);
            Put(dst, i, q, madd, offset);
        }
        int kp = groups * Int8Kernels.KGroup(kernel);
        for (; i < kp; i++) Put(dst, i, 0, madd, offset);
    }

    /// <summary>Already-quantised values into the kernel's row layout (tests, and the exact-sum entry point).</summary>
    internal static void WriteRow(sbyte* q, int k, byte* dst, int groups, Int8Kernel kernel)
    {
        bool madd = Int8Kernels.IsMadd(kernel); int offset = Int8Kernels.ActivationOffset(kernel);
        int kp = groups * Int8Kernels.KGroup(kernel);
        for (int i = 0; i < kp; i++) Put(dst, i, i < k ? q[i] : 0, madd, offset);
    }

    private static void Put(byte* dst, int i, int q, bool madd, int offset)
    {
        if (madd) ((short*)dst)[i] = (short)q;
        else dst[i] = (byte)(q + offset);
    }

    // ---- tiles ------------------------------------------------------------------------------------------------

    /// <summary>Runs the tiles of already-quantised rows (<see cref="MultiplyInt"/>).</summary>
    private static void Run(ref Job job, WorkerPool? pool)
    {
        if (Split(ref job, pool)) Dispatch(ref job, pool!);
        else RunRange(ref job, 0, job.Panels, 0, job.M);
    }

    /// <summary>Cuts the tiles into tasks; false when the GEMM should run on the calling thread alone.</summary>
    private static bool Split(ref Job job, WorkerPool? pool)
    {
        int w = Int8Kernels.PanelWidth(job.Kernel), mr = Int8Kernels.RowBlock(job.Kernel);
        job.Panels = (job.N + w - 1) / w;
        int threads = pool?.Threads ?? 1;
        long work = (long)job.M * job.N * job.K;
        if (threads == 1 || work < 128 * 1024) return false;
        // Rows first, numbered in row order (as Gemm does: each thread keeps multiplying the rows it wrote), a few
        // tasks per thread so a descheduled worker's share is small; panels only when rows are too few.
        int rowBlocks = (job.M + mr - 1) / mr;
        int alongM = Math.Min(rowBlocks, 4 * threads);
        int alongN = Math.Min(job.Panels, (4 * threads + alongM - 1) / alongM);
        job.TasksAlongN = alongN;
        job.PanelsPerTask = (job.Panels + alongN - 1) / alongN;
        job.RowsPerTask = (rowBlocks + alongM - 1) / alongM * mr;
        return true;
    }

    private static void Dispatch(ref Job job, WorkerPool pool)
    {
        int tasksAlongM = (job.M + job.RowsPerTask - 1) / job.RowsPerTask;
        fixed (Job* j = &job) pool.Run(job.TasksAlongN * tasksAlongM, &RunTask, j);
    }

    private static void RunTask(void* ctx, int task, int worker)
    {
        ref Job job = ref *(Job*)ctx;
        int pn = task % job.TasksAlongN, pm = task / job.TasksAlongN;
        int p0 = pn * job.PanelsPerTask, p1 = Math.Min(job.Panels, p0 + job.PanelsPerTask);
        int m0 = pm * job.RowsPerTask, m1 = Math.Min(job.M, m0 + job.RowsPerTask);
        if (p0 >= p1 || m0 >= m1) return;
        if (job.QuantizeInTask) for (int r = m0; r < m1; r++) QuantizeRow(ref job, r); // this task alone owns rows m0..m1
        RunRange(ref job, p0, p1, m0, m1);
    }

    private static void RunRange(ref Job job, int p0, int p1, int m0, int m1)
    {
        switch (job.Kernel)
        {
            case Int8Kernel.Madd512: RunRange<Madd512Ops, Vector512<int>>(ref job, p0, p1, m0, m1); break;
            case Int8Kernel.Madd256: RunRange<Madd256Ops, Vector256<int>>(ref job, p0, p1, m0, m1); break;
            case Int8Kernel.Vnni256: RunRange<Vnni256Ops, Vector256<int>>(ref job, p0, p1, m0, m1); break;
            case Int8Kernel.Maddubs256: RunRange<Maddubs256Ops, Vector256<int>>(ref job, p0, p1, m0, m1); break;
            case Int8Kernel.Maddubs512: RunRange<Maddubs512Ops, Vector512<int>>(ref job, p0, p1, m0, m1); break;
            case Int8Kernel.Madd128: RunRange<Madd128Ops, Vector128<int>>(ref job, p0, p1, m0, m1); break;
            case Int8Kernel.ArmDot: RunRange<ArmDotOps, Vector128<int>>(ref job, p0, p1, m0, m1); break;
            case Int8Kernel.ArmWiden: RunRange<ArmWidenOps, Vector128<int>>(ref job, p0, p1, m0, m1); break;
            default: RunRange<ScalarInt8Ops, int>(ref job, p0, p1, m0, m1); break;
        }
    }

    /// <summary>
    /// Row blocks outer, panels inner: a block's activation rows (a few hundred bytes per row) stay in L1 while the
    /// panels stream past, its output rows are written whole, and fc1's GELU then runs once per row block over
    /// the block's full width while it is still in L1 (one call instead of one per 16-column tile and row).
    /// </summary>
    private static void RunRange<TOps, TAcc>(ref Job job, int p0, int p1, int m0, int m1)
        where TOps : IInt8Ops<TAcc> where TAcc : unmanaged
    {
        int w = 2 * TOps.Lanes, mr = Int8Kernels.RowBlock(job.Kernel);
        bool gelu = job.Epilogue == GemmEpilogue.Gelu && job.RawOut == null;
        int c0 = p0 * w, c1 = Math.Min(job.N, p1 * w);
        for (int m = m0; m < m1; m += mr)
        {
            int rows = Math.Min(mr, m1 - m);
            for (int p = p0; p < p1; p++) Tile<TOps, TAcc>(ref job, p, m, rows, w);
            if (gelu) Elementwise.Gelu(job.EpilogueLevel, job.C + (long)m * job.Ldc + c0, rows, c1 - c0, job.Ldc);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile<TOps, TAcc>(ref Job job, int p, int m, int rows, int w)
        where TOps : IInt8Ops<TAcc> where TAcc : unmanaged
    {
        byte* bp = job.B + (long)p * job.Groups * w * 4;
        int cols = Math.Min(w, job.N - p * w);
        int* corr = job.Corr != null ? job.Corr + p * w : null;
        byte* aq = job.Q + (long)m * job.Ldq;
        if (job.RawOut != null)
            Int8Microkernel<TOps, TAcc>.Tile(rows, aq, job.Ldq, bp, job.Groups, null, job.Ldc,
                job.RawOut + (long)m * job.Ldc + p * w, null, null, null, corr, false, cols);
        else
            Int8Microkernel<TOps, TAcc>.Tile(rows, aq, job.Ldq, bp, job.Groups, job.C + (long)m * job.Ldc + p * w, job.Ldc, null,
                job.Scale + p * w, job.RowScale + m, job.Bias + p * w, corr, job.Accumulate, cols);
    }
}
