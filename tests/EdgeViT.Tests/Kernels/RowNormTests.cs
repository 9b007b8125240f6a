using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Parallel;
using EdgeViT.Kernels.Quant;
using EdgeViT.Kernels.Simd;
using Xunit;

namespace EdgeViT.Tests.Kernels;

/// <summary>
/// A LayerNorm fused into a GEMM's row tasks (<see cref="RowNorm"/>) must give exactly what the norm as a pass of
/// its own and then the GEMM give: the same bits in C and in A (which holds the normalised rows afterwards), on every
/// SIMD level and int8 kernel, at 1-3 threads, for row counts whose tasks own their rows and for few rows, where the
/// GEMM also splits N and the norm must run first. The norm itself is checked against a double-precision reference.
/// </summary>
public unsafe class RowNormTests
{
    public static TheoryData<SimdLevel> Levels() { var d = new TheoryData<SimdLevel>(); foreach (var l in SimdLevels.Supported) d.Add(l); return d; }
    public static TheoryData<Int8Kernel> Kernels() { var d = new TheoryData<Int8Kernel>(); foreach (var k in Int8Kernels.Supported) d.Add(k); return d; }

    // (rows, K, N): DeiT-Tiny's qkv and fc1 with all tokens and after pruning (98, 13 rows: N panels split too), one row.
    private static readonly int[][] Shapes = [[197, 192, 576], [197, 192, 768], [98, 192, 576], [13, 192, 768], [1, 192, 576], [40, 64, 100]];

    private static (float[] X, float[] Gamma, float[] Beta) Inputs(Random rng, int m, int k)
    {
        var x = Reference.RandomArray(rng, m * k);
        for (int i = 0; i < x.Length; i += 7) x[i] *= 20f; // outlier channels, as in a ViT's residual stream
        return (x, Reference.RandomArray(rng, k), Reference.RandomArray(rng, k));
    }

    /// <summary>One GEMM call: C = A * W (+ epilogue), with A given, or with A written as the norm of its source rows.</summary>
    private delegate void MultiplyFn(float* a, float* c, RowNorm norm);

    private const float Eps = 1e-6f;

    [Theory, MemberData(nameof(Levels))]
    public void FusedNormEqualsNormThenMultiplyFp32(SimdLevel level)
    {
        var rng = new Random(7 + (int)level);
        foreach (var s in Shapes)
        {
            int m = s[0], k = s[1], n = s[2];
            var (x, gamma, beta) = Inputs(rng, m, k);
            using var packed = PackedMatrix.FromLinear(Reference.RandomArray(rng, n * k), k, n, Reference.RandomArray(rng, n), level);
            for (int threads = 1; threads <= 3; threads++)
            {
                using var pool = new WorkerPool(threads);
                var a = AssertFusedEqualsSplit($"{level} {m}x{k}x{n} T={threads}", level, x, gamma, beta, m, k, n,
                    (pa, pc, norm) => Gemm.Multiply(pa, k, m, packed, pc, n, epilogue: GemmEpilogue.Gelu, pool: pool, norm: norm));
                AssertNormalised(x, gamma, beta, a, m, k, $"{level} {m}x{k}x{n} T={threads}");
            }
        }
    }

    [Theory, MemberData(nameof(Kernels))]
    public void FusedNormEqualsNormThenMultiplyInt8(Int8Kernel kernel)
    {
        var rng = new Random(11 + (int)kernel);
        foreach (var s in Shapes)
        {
            int m = s[0], k = s[1], n = s[2];
            var (x, gamma, beta) = Inputs(rng, m, k);
            var layer = QuantizedLinear.Quantize(new Linear(k, n, Reference.RandomArray(rng, n * k), Reference.RandomArray(rng, n)));
            using var packed = new Int8Matrix(layer, kernel);
            using var act = new Int8Activations(m, k);
            for (int threads = 1; threads <= 3; threads++)
            {
                using var pool = new WorkerPool(threads);
                AssertFusedEqualsSplit($"{kernel} {m}x{k}x{n} T={threads}", Int8Kernels.Level(kernel), x, gamma, beta, m, k, n,
                    (pa, pc, norm) => Int8Gemm.Multiply(pa, k, m, packed, pc, n, act, pool: pool, norm: norm));
            }
        }
    }

    /// <summary>Norm as a pass of its own then multiply, against the fused call: same A and C bits. Returns the fused A.</summary>
    private static float[] AssertFusedEqualsSplit(string what, SimdLevel level, float[] x, float[] gamma, float[] beta, int m, int k, int n, MultiplyFn multiply)
    {
        var aSplit = new float[m * k]; var cSplit = new float[m * n];
        var aFused = new float[m * k]; var cFused = new float[m * n];
        fixed (float* px = x, pg = gamma, pb = beta, pa = aSplit, pc = cSplit, pa2 = aFused, pc2 = cFused)
        {
            for (int r = 0; r < m; r++) Elementwise.LayerNorm(level, px + r * k, pa + r * k, k, pg, pb, Eps);
            multiply(pa, pc, default);
            multiply(pa2, pc2, new RowNorm(px, k, pg, pb, Eps));
        }
        Assert.True(aSplit.AsSpan().SequenceEqual(aFused), $"{what}: A differs");
        Assert.True(cSplit.AsSpan().SequenceEqual(cFused), $"{what}: C differs");
        return aFused;
    }

    private static void AssertNormalised(float[] x, float[] gamma, float[] beta, float[] a, int m, int k, string what)
    {
        for (int r = 0; r < m; r++)
        {
            double mean = 0, var = 0;
            for (int i = 0; i < k; i++) mean += x[r * k + i];
            mean /= k;
            for (int i = 0; i < k; i++) var += (x[r * k + i] - mean) * (x[r * k + i] - mean);
            double inv = 1 / Math.Sqrt(var / k + Eps);
            for (int i = 0; i < k; i++)
            {
                double e = (x[r * k + i] - mean) * inv * gamma[i] + beta[i];
                Assert.True(Math.Abs(a[r * k + i] - e) <= 1e-4 * (1 + Math.Abs(e)), $"{what}: A[{r},{i}]={a[r * k + i]} expected {e}");
            }
        }
    }
}
