using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;
using EdgeViT.Kernels.Reduction;
using Xunit;

namespace EdgeViT.Tests.Rctp;

/// <summary>RCTP's per-image relative threshold rule, and the fitter's prefix sharing across plans.</summary>
public unsafe class RelativeThresholdTests
{
    private static readonly VitConfig Config = Reduction.ReducerHookTests.Small; // depth 6, 64 patches

    /// <summary>At each block: the tokens a double-precision reference keeps, then the production rule on the same context.</summary>
    private sealed class ReferenceChecker(float[] thresholds) : ITokenReducer
    {
        public int Checked, Dropped;
        public string Name => "check";
        public ReductionNeeds Needs => ReductionNeeds.None;
        public int Reduce(int block, TokenReductionContext c)
        {
            int prefix = c.PrefixTokens;
            double mean = 0;
            for (int t = prefix; t < c.Count; t++) mean += c.ClassScore[t];
            mean /= c.Count - prefix;
            var expected = new List<int>();
            for (int t = 0; t < c.Count; t++)
                if (t < prefix || c.ClassScore[t] / mean > thresholds[block]) expected.Add(c.TokenIds[t]);
            int kept = c.KeepAbove(thresholds[block], ScoreScale.RelativeToMean);
            var actual = Enumerable.Range(0, kept).Select(t => c.TokenIds[t]).ToList();
            Assert.Equal(expected, actual);
            Checked++;
            Dropped += c.Count - kept;
            return kept;
        }
    }

    [Fact]
    public void RelativeRuleKeepsExactlyTheTokensADoublePrecisionReferenceKeeps()
    {
        var w = VitWeights.Random(Config, seed: 11);
        using var engine = new VitEngine(w);
        var logits = new float[Config.Classes];
        // Thresholds in units of the mean alive score: 1 = uniform attention; a spread of cuts around it.
        float[] thresholds = [0.6f, 0.9f, 1.0f, 0.8f, 1.1f, 0.95f];
        var checker = new ReferenceChecker(thresholds);
        for (int i = 0; i < 4; i++) engine.Infer(Reduction.ReducerHookTests.RandomImage(Config, 40 + i), logits, checker);
        Assert.Equal(4 * Config.Depth, checker.Checked);
        Assert.True(checker.Dropped > 0, "the thresholds should prune something");
    }

    [Fact]
    public void RelativeRuleIsInvariantToTheScaleOfTheScoresAndTheEnginePathMatchesTheReducer()
    {
        var w = VitWeights.Random(Config, seed: 12);
        using var engine = new VitEngine(w);
        float[] thresholds = [0.7f, 1.0f, float.NegativeInfinity, 0.9f, 1.2f, 1.0f];
        var img = Reduction.ReducerHookTests.RandomImage(Config, 5);
        var a = new float[Config.Classes];
        var b = new float[Config.Classes];
        var sa = engine.Infer(img, a, thresholds, ScoreScale.RelativeToMean);
        var tokensA = sa.TokensPerBlock.ToArray();
        var sb = engine.Infer(img, b, new ThresholdPruning(Config, thresholds, scale: ScoreScale.RelativeToMean));
        Assert.Equal(a, b);
        Assert.Equal(tokensA, sb.TokensPerBlock);
        Assert.True(tokensA[^1] < Config.Tokens);

        // Scaling every score by a constant (what a flatter or sharper image does to raw class attention) moves
        // the raw cut but not the relative one.
        var scores = new float[] { 0.5f, 0.01f, 0.02f, 0.03f, 0.04f, 0.05f };
        fixed (float* s = scores) Assert.Equal(0.03f, TokenReductionContext.MeanPatchScore(s, 1, scores.Length), 6);
        var scaled = scores.Select(v => v * 7f).ToArray();
        fixed (float* s = scaled) Assert.Equal(0.21f, TokenReductionContext.MeanPatchScore(s, 1, scaled.Length), 5);
    }

    [Theory]
    [InlineData(ScoreScale.Raw)]
    [InlineData(ScoreScale.RelativeToMean)]
    public void SharingPrefixesAcrossPlansGivesExactlyWhatFittingEachPlanAloneGives(ScoreScale scale)
    {
        var w = VitWeights.Random(Config, seed: 13);
        var imgs = Enumerable.Range(0, 10).Select(i => Reduction.ReducerHookTests.RandomImage(Config, 60 + i)).ToArray();
        using var fitter = new ThresholdFitter(w, workers: 2, imgs.Length, scale: scale);
        for (int i = 0; i < imgs.Length; i++) fitter.AddImage(i % 2, i, imgs[i]);
        // Plans sharing 0, 2 and 4 leading blocks, and one duplicate.
        double[][] plans =
        [
            [1, 1, 0.8, 0.7, 0.6, 0.5],
            [1, 1, 0.8, 0.7, 0.5, 0.4],
            [1, 1, 0.9, 0.6, 0.6, 0.5],
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
            [1, 1, 0.8, 0.7, 0.6, 0.5],
        ];
        var shared = fitter.RealizeAll(plans);
        for (int p = 0; p < plans.Length; p++)
        {
            var alone = fitter.Realize(plans[p]);
            Assert.Equal(alone.Thresholds, shared[p].Thresholds);
            Assert.Equal(alone.MeasuredFlops, shared[p].MeasuredFlops, 9);
            Assert.Equal(alone.MeanTokensPerBlock, shared[p].MeanTokensPerBlock);
        }
        // And the thresholds replayed through the production path reproduce the fit's FLOPs.
        using var engine = new VitEngine(w);
        var logits = new float[Config.Classes];
        double replay = imgs.Average(x => (double)engine.Infer(x, logits, shared[1].Thresholds, scale).MultiplyAdds);
        Assert.Equal(shared[1].MeasuredFlops, replay, 3);
    }
}
