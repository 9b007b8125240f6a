using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Reduction;
using EdgeViT.Kernels.Simd;
using Xunit;
using Xunit.Abstractions;

namespace EdgeViT.Tests.Reduction;

/// <summary>TPS (eTPS: prune by class attention, squeeze the pruned into their most similar kept host).</summary>
public class TokenSqueezingTests(ITestOutputHelper output)
{
    private static readonly VitConfig Small = ReducerHookTests.Small;

    // keep 0.3: most tokens pruned, hosts absorb several each. Every SIMD path: the cosines are a GEMM, the
    // norms and the squeeze are the level's vector kernels.
    public static TheoryData<double, SimdLevel> KeepsAndLevels()
    {
        var data = new TheoryData<double, SimdLevel>();
        foreach (var level in SimdLevels.Supported) { data.Add(0.7, level); data.Add(0.3, level); }
        return data;
    }

    [Theory, MemberData(nameof(KeepsAndLevels))]
    public void PrunedTokensVanishAndEachHostIsTheExpSimilarityWeightedAverage(double keep, SimdLevel level)
    {
        int[] blocks = [1, 3, 4];
        var w = VitWeights.Random(Small, 41);
        using var engine = new VitEngine(w, new EngineOptions(Simd: level));
        var rec = new ReductionRecorder(new TokenSqueezing(Small, keep, blocks));
        var stats = engine.Infer(ReducerHookTests.RandomImage(Small, 42), new float[Small.Classes], rec);
        int d = Small.EmbedDim;
        bool sawSeveralPerHost = false;
        for (int i = 0; i < rec.Before.Count; i++)
        {
            var (block, n, x, _, scores, sizes, ids) = rec.Before[i];
            var after = rec.After[i];
            if (!blocks.Contains(block))
            {
                Assert.Equal(n, after.N);
                Assert.Equal(x, after.X);
                continue;
            }
            int k = (int)Math.Ceiling(keep * (n - 1) - 1e-9);
            Assert.Equal(1 + k, after.N);

            // Reference: the k best by class attention stay in order; the rest vanish.
            var kept = Enumerable.Range(1, n - 1).OrderByDescending(t => scores[t]).ThenBy(t => t).Take(k).Order().ToArray();
            var pruned = Enumerable.Range(1, n - 1).Except(kept).ToArray();
            Assert.Equal(kept.Select(t => ids[t]).Prepend(0), after.Ids);
            Assert.Empty(after.Ids.Intersect(pruned.Select(t => ids[t])));
            Assert.Equal(x.AsSpan(0, d).ToArray(), after.X.AsSpan(0, d).ToArray()); // CLS untouched

            // Each pruned token's host: the kept token of highest cosine similarity (eps as the official code).
            double[] Unit(int t)
            {
                var v = Enumerable.Range(0, d).Select(c => (double)x[t * d + c]).ToArray();
                double norm = Math.Sqrt(v.Sum(a => a * a)) + 1e-6;
                return v.Select(a => a / norm).ToArray();
            }
            var unit = Enumerable.Range(0, n).Select(t => t == 0 ? null : Unit(t)).ToArray();
            var hostOf = pruned.ToDictionary(p => p, p => kept.Select(h => (h, s: unit[p]!.Zip(unit[h]!, (a, b) => a * b).Sum())).MaxBy(e => e.s));
            for (int j = 0; j < k; j++)
            {
                int host = kept[j];
                var guests = hostOf.Where(e => e.Value.h == host).Select(e => (t: e.Key, wgt: Math.Exp(e.Value.s))).ToArray();
                sawSeveralPerHost |= guests.Length > 1;
                double denominator = Math.E + guests.Sum(g => g.wgt);
                Assert.Equal(sizes[host] + guests.Sum(g => (double)sizes[g.t]), after.Sizes[1 + j]);
                for (int c = 0; c < d; c++)
                {
                    double expected = (Math.E * x[host * d + c] + guests.Sum(g => g.wgt * x[g.t * d + c])) / denominator;
                    double actual = after.X[(1 + j) * d + c];
                    Assert.True(Math.Abs(expected - actual) <= 1e-5 * Math.Max(1, Math.Abs(expected)),
                        $"block {block}, host id {ids[host]} ({guests.Length} guests), channel {c}: {actual} vs reference {expected}");
                }
            }
            Assert.Equal(sizes.Sum(s => (double)s), after.Sizes.Sum(s => (double)s));
        }
        Assert.True(sawSeveralPerHost, "no host absorbed two tokens: the weighted sum was barely exercised");
        Assert.True(stats.TokensPerBlock[^1] < Small.Tokens);
        Assert.True(stats.ReductionMultiplyAdds > 0);
    }

    [Fact]
    public void KeepRateOneIsTheDenseModelAndTheMethodLowersFlopsWithTheKeepRate()
    {
        var w = VitWeights.Random(Small, 43);
        using var engine = new VitEngine(w);
        var img = ReducerHookTests.RandomImage(Small, 44);
        var dense = new float[Small.Classes];
        var squeezed = new float[Small.Classes];
        long denseMacs = engine.Infer(img, dense).MultiplyAdds;
        engine.Infer(img, squeezed, new TokenSqueezing(Small, 1.0, [1, 3, 4]));
        Assert.Equal(dense, squeezed);

        double Measure(ITokenReducer r) => (double)engine.Infer(img, squeezed, r).MultiplyAdds / denseMacs;
        var setting = new TpsMethod(Small, [1, 3, 4]).ForBudget(0.75, Measure);
        Assert.InRange(setting.CalibrationFlopsFraction, 0.72, 0.78);
        Assert.StartsWith("keep=", setting.Setting);
        Assert.True(Measure(new TokenSqueezing(Small, 0.5, [1, 3, 4])) < Measure(new TokenSqueezing(Small, 0.8, [1, 3, 4])));
    }

    [Fact]
    public void OnTheSharedDeitTinyTpsAtKeep07AgreesWithDenseOnMostImagesForFewerFlops()
    {
        // EViT-style pruning at keep 0.7 without fine-tuning costs DeiT-Ti a few points of top-1; squeezing keeps
        // some of what was pruned. Most predictions should survive; a broken squeeze agrees on few. Bar: 80 %.
        var (agree, images, denseMacs, reducedMacs, notLower) = SharedDeit.Compare(c => new TokenSqueezing(c, 0.7));
        output.WriteLine($"tps(keep=0.7): top-1 agreement {agree}/{images}, GMACs {denseMacs / 1e9:0.000} dense -> {reducedMacs / 1e9:0.000} ({reducedMacs / denseMacs:P1})");
        Assert.Equal(0, notLower);
        // 196 patches -> 138 -> 97 -> 68 at blocks 4, 7, 10: about 64 % of dense.
        Assert.InRange(reducedMacs / denseMacs, 0.60, 0.70);
        Assert.True(agree >= 0.8 * images, $"top-1 agreement with dense {agree}/{images}");
    }
}
