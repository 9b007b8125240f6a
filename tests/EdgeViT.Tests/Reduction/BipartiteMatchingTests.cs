using EdgeViT.Kernels.Reduction;
using EdgeViT.Kernels.Simd;
using EdgeViT.Tests.Kernels;
using Xunit;

namespace EdgeViT.Tests.Reduction;

/// <summary>ToMe/LTMP's matching through the GEMM against the scalar dot-product reference, on every ISA path.</summary>
public unsafe class BipartiteMatchingTests
{
    public static TheoryData<SimdLevel> Levels() => GemmTests.Levels();

    [Theory, MemberData(nameof(Levels))]
    public void GemmMatchingFindsTheScalarReferencesBestDestinations(SimdLevel level)
    {
        var rng = new Random(21);
        const int maxTokens = 197, hd = 64;
        using var scratch = new MatchingScratch(maxTokens);
        var metric = new float[maxTokens * hd];
        int checkedSources = 0;
        foreach (int n in new[] { 2, 3, 4, 5, 17, 64, 100, 196, 197 })
            foreach (int prefix in new[] { 1, 2 })
            {
                if (n <= prefix) continue;
                for (int t = 0; t < n; t++)
                {
                    double norm = 0;
                    for (int i = 0; i < hd; i++) { metric[t * hd + i] = (float)(rng.NextDouble() * 2 - 1); norm += metric[t * hd + i] * metric[t * hd + i]; }
                    for (int i = 0; i < hd; i++) metric[t * hd + i] /= (float)Math.Sqrt(norm);
                }
                if (n > 6) Array.Copy(metric, 5 * hd, metric, 3 * hd, hd); // an exact duplicate: similarity 1
                int half = (n + 1) / 2;
                var simRef = new float[half]; var dstRef = new int[half];
                var sim = new float[half]; var dst = new int[half];
                fixed (float* m = metric)
                {
                    long workRef = BipartiteMatching.BestDestinationsScalar(m, hd, n, prefix, simRef, dstRef);
                    long work = BipartiteMatching.BestDestinations(level, scratch, m, hd, n, prefix, sim, dst);
                    Assert.Equal(workRef, work);
                }
                for (int a = 0; a < half; a++)
                {
                    if (dstRef[a] < 0) { Assert.Equal(-1, dst[a]); Assert.Equal(float.NegativeInfinity, sim[a]); continue; }
                    Assert.True(Math.Abs(simRef[a] - sim[a]) < 2e-5, $"n {n} source {2 * a}: similarity {sim[a]} vs {simRef[a]}");
                    if (dst[a] != dstRef[a])
                    {
                        // only a near-tie may resolve differently: the chosen destination is as similar within rounding
                        double chosen = 0;
                        for (int i = 0; i < hd; i++) chosen += (double)metric[2 * a * hd + i] * metric[dst[a] * hd + i];
                        Assert.True(Math.Abs(chosen - simRef[a]) < 1e-5, $"n {n} source {2 * a}: {dst[a]} ({chosen}) instead of {dstRef[a]} ({simRef[a]})");
                    }
                    Assert.True(dst[a] % 2 == 1 && dst[a] >= BipartiteMatching.FirstDestination(prefix) && dst[a] < n);
                    checkedSources++;
                }
            }
        Assert.True(checkedSources > 300);
    }

    // The general kernel TPS and Zero-TPrune use: any query and candidate counts, strides wider than the rows,
    // against double-precision dot products; ties (exact duplicates) resolve to the first maximum.
    [Theory, MemberData(nameof(Levels))]
    public void RowBestMatchFindsTheDoubleReferencesBestRow(SimdLevel level)
    {
        var rng = new Random(33 + (int)level);
        const int k = 192, ld = 200;
        using var scratch = new MatchingScratch(196, 196);
        foreach (var (m, nb) in new[] { (1, 1), (3, 40), (58, 137), (137, 58), (98, 98), (196, 1), (1, 196), (5, 0) })
        {
            var a = new float[Math.Max(1, m) * ld];
            var b = new float[Math.Max(1, nb) * ld];
            for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
            for (int i = 0; i < b.Length; i++) b[i] = (float)(rng.NextDouble() * 2 - 1);
            if (nb > 3) Array.Copy(b, 3 * ld, b, 1 * ld, k); // row 1 == row 3: a tie the first maximum must win
            var best = new float[m];
            var index = new int[m];
            long work;
            fixed (float* pa = a, pb = b) work = RowBestMatch.Find(level, scratch, pa, ld, m, pb, ld, nb, k, best, index);
            Assert.Equal((long)m * nb * k, work);
            for (int i = 0; i < m; i++)
            {
                if (nb == 0) { Assert.Equal(-1, index[i]); Assert.Equal(float.NegativeInfinity, best[i]); continue; }
                double Dot(int j) { double s = 0; for (int c = 0; c < k; c++) s += (double)a[i * ld + c] * b[j * ld + c]; return s; }
                var refBest = Enumerable.Range(0, nb).Select(j => (j, s: Dot(j))).MaxBy(e => e.s);
                Assert.True(Math.Abs(best[i] - refBest.s) < 1e-4, $"{m}x{nb} row {i}: {best[i]} vs {refBest.s}");
                // only a near-tie may resolve differently, and never to the later copy of a duplicate
                Assert.True(Math.Abs(Dot(index[i]) - refBest.s) < 1e-4, $"{m}x{nb} row {i}: row {index[i]} instead of {refBest.j}");
                Assert.NotEqual(3, nb > 3 && refBest.j == 1 ? index[i] : -1);
            }
        }
    }
}
