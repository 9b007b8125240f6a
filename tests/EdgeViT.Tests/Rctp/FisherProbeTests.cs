using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;
using EdgeViT.Kernels.Simd;
using EdgeViT.Tests.Kernels;
using Xunit;

namespace EdgeViT.Tests.Rctp;

public class FisherProbeTests
{
    public static TheoryData<SimdLevel, FisherSite> Levels()
    {
        var d = new TheoryData<SimdLevel, FisherSite>();
        foreach (var l in SimdLevels.Supported) foreach (var s in Enum.GetValues<FisherSite>()) d.Add(l, s);
        return d;
    }

    /// <summary>
    /// dL/dm for a mask m on a token's MSA output, by central differences on the double-precision reference,
    /// must match the probe's analytic Fisher: F = (dL/dm)^2.
    /// </summary>
    [Theory, MemberData(nameof(Levels))]
    public void FisherMatchesFiniteDifferencesOfTheMaskedLoss(SimdLevel level, FisherSite site)
    {
        foreach (var config in new[] { VitEngineTests.Small, VitEngineTests.Small with { HasDistillationToken = true } })
        {
            var w = VitWeights.Random(config, seed: 21);
            var img = VitEngineTests.RandomImage(config, 4);
            int label = 3;
            using var probe = new FisherProbe(w, level, site);
            var stats = new TokenStatistics(config.Depth, config.Patches);
            probe.Measure(img, label, stats);

            var baseline = ReferenceVit.Forward(w, img);
            Assert.Equal(ReferenceVit.CrossEntropy(baseline.Logits, label), stats.Loss, 3);

            var rng = new Random(5);
            var pairs = new List<(double Got, double Expected, string Where)>();
            for (int trial = 0; trial < 8; trial++)
            {
                int l = trial % config.Depth, patch = rng.Next(config.Patches), t = patch + config.PrefixTokens;
                const double h = 1e-4;
                double Loss(double m)
                {
                    var mask = new double[config.Depth, config.Tokens];
                    for (int i = 0; i < config.Depth; i++) for (int j = 0; j < config.Tokens; j++) mask[i, j] = 1;
                    mask[l, t] = m;
                    return ReferenceVit.CrossEntropy(ReferenceVit.Forward(w, img, msaMask: mask, maskWholeToken: site == FisherSite.TokenState).Logits, label);
                }
                double grad = (Loss(1 + h) - Loss(1 - h)) / (2 * h);
                pairs.Add((stats.Fisher[l * config.Patches + patch], grad * grad, $"block {l} token {t}"));
            }
            double largest = pairs.Max(p => p.Expected);
            foreach (var (got, expected, where) in pairs)
                Assert.True(Math.Abs(got - expected) <= 2e-3 * expected + 1e-5 * largest,
                    $"{level} {site} dist={config.HasDistillationToken} {where}: Fisher {got}, finite differences {expected}");
            // Most probes must carry a real gradient, or the comparison above proves nothing.
            Assert.True(pairs.Count(p => p.Expected > 1e-3 * largest) >= pairs.Count / 2, "too few tokens with a non-trivial Fisher");
        }
    }

    [Fact]
    public void PseudoLabelIsTheModelsOwnTopOne()
    {
        var config = VitEngineTests.Small;
        var w = VitWeights.Random(config, seed: 2);
        var img = VitEngineTests.RandomImage(config, 9);
        using var probe = new FisherProbe(w);
        var stats = new TokenStatistics(config.Depth, config.Patches);
        probe.Measure(img, -1, stats);
        var logits = ReferenceVit.Forward(w, img).Logits;
        Assert.Equal(Array.IndexOf(logits, logits.Max()), stats.Label);
        Assert.Equal(stats.Label, stats.PredictedClass);
        // Scores are the dense class attention: each block's patch scores plus CLS self-attention sum to 1.
        for (int l = 0; l < config.Depth; l++)
        {
            double sum = 0;
            for (int p = 0; p < config.Patches; p++) sum += stats.Scores[l * config.Patches + p];
            Assert.InRange(sum, 0.0, 1.0);
        }
    }
}
