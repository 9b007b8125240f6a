using EdgeViT.Kernels.Parallel;
using EdgeViT.Kernels.Simd;
using Xunit;

namespace EdgeViT.Tests.Kernels;

public unsafe class GemmTests
{
    public static TheoryData<SimdLevel> Levels() { var d = new TheoryData<SimdLevel>(); foreach (var l in SimdLevels.Supported) d.Add(l); return d; }

    // Shapes straddle every remainder: rows not a multiple of the row block, columns not a multiple of the
    // panel, K not a multiple of the K block (and K > KBlock so several K slices accumulate).
    [Theory, MemberData(nameof(Levels))]
    public void PackedLinearMatchesDoubleReference(SimdLevel level)
    {
        var rng = new Random(1234 + (int)level);
        int[][] shapes = [[1, 1, 1], [197, 192, 576], [13, 7, 33], [25, 300, 50], [5, 513, 17], [40, 64, 1000], [3, 768, 192]];
        for (int trial = 0; trial < shapes.Length + 6; trial++)
        {
            int m, k, n;
            if (trial < shapes.Length) (m, k, n) = (shapes[trial][0], shapes[trial][1], shapes[trial][2]);
            else (m, k, n) = (rng.Next(1, 60), rng.Next(1, 600), rng.Next(1, 90));
            CheckOne(level, rng, m, k, n, accumulate: trial % 2 == 1, gelu: trial % 3 == 2, threads: 1 + trial % 3);
        }
    }

    private static void CheckOne(SimdLevel level, Random rng, int m, int k, int n, bool accumulate, bool gelu, int threads)
    {
        var a = Reference.RandomArray(rng, m * k);
        var w = Reference.RandomArray(rng, n * k);
        var bias = Reference.RandomArray(rng, n);
        int ldc = n + 3; // a row stride wider than N: the kernel must honour ldc
        var c = Reference.RandomArray(rng, m * ldc);
        var before = (float[])c.Clone();
        var expect = Reference.Linear(a, m, k, w, n, bias);

        using var packed = PackedMatrix.FromLinear(w, k, n, bias, level);
        using var pool = new WorkerPool(threads);
        fixed (float* pa = a, pc = c)
            Gemm.Multiply(pa, k, m, packed, pc, ldc, accumulate, gelu ? GemmEpilogue.Gelu : GemmEpilogue.None, pool);

        double tol = 2e-6 * k + 1e-5;
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double e = expect[i * n + j] + (accumulate ? before[i * ldc + j] : 0);
                if (gelu) e = Reference.Gelu(e);
                double got = c[i * ldc + j];
                Assert.True(Math.Abs(got - e) <= tol * (1 + Math.Abs(e)),
                    $"{level} m={m} k={k} n={n} acc={accumulate} gelu={gelu} T={threads}: C[{i},{j}]={got} expected {e}");
            }
            for (int j = n; j < ldc; j++) Assert.Equal(before[i * ldc + j], c[i * ldc + j]); // padding untouched
        }
    }

    [Theory, MemberData(nameof(Levels))]
    public void PackTransposedThenMultiplyComputesQKt(SimdLevel level)
    {
        var rng = new Random(99);
        int tokens = 37, dh = 20, ld = 3 * dh;
        var qk = Reference.RandomArray(rng, tokens * ld);
        int w = Gemm.PanelWidth(level);
        var packed = new float[Gemm.PackedLength(level, dh, tokens)];
        var s = new float[tokens * tokens];
        fixed (float* p = qk, pk = packed, ps = s)
        {
            Gemm.PackTransposed(p + dh, ld, tokens, dh, w, pk); // K lives at column offset dh
            Gemm.MultiplyPacked(level, p, ld, tokens, pk, null, dh, tokens, ps, tokens);
        }
        for (int i = 0; i < tokens; i++)
            for (int j = 0; j < tokens; j++)
            {
                double e = 0;
                for (int d = 0; d < dh; d++) e += (double)qk[i * ld + d] * qk[j * ld + dh + d];
                Assert.True(Math.Abs(s[i * tokens + j] - e) < 1e-4, $"{level} S[{i},{j}]={s[i * tokens + j]} expected {e}");
            }
    }
}
