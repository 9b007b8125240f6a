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
}
