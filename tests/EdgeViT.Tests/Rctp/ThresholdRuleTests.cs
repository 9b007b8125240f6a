using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;
using EdgeViT.Kernels.Reduction;
using Xunit;

namespace EdgeViT.Tests.Rctp;

/// <summary>RCTP's threshold rules (per-image relative scores, the fused token), and the fitter's prefix sharing across plans.</summary>
public unsafe class ThresholdRuleTests
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
            int kept = c.KeepAbove(thresholds[block], new ThresholdRule(ScoreScale.RelativeToMean));
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
        var sa = engine.Infer(img, a, thresholds, new ThresholdRule(ScoreScale.RelativeToMean));
        var tokensA = sa.TokensPerBlock.ToArray();
        var sb = engine.Infer(img, b, new ThresholdPruning(Config, thresholds, rule: new ThresholdRule(ScoreScale.RelativeToMean)));
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

    /// <summary>Before the production rule runs, the double-precision fused token of what it will drop; then compares.</summary>
    private sealed class FusedReference(float[] thresholds) : ITokenReducer
    {
        public int Fused, FoldedEarlier;
        public string Name => "fused-check";
        public ReductionNeeds Needs => ReductionNeeds.ProportionalAttention;
        public int Reduce(int block, TokenReductionContext c)
        {
            int prefix = c.PrefixTokens, d = c.Dim, end = c.Count;
            bool had = c.TokenIds[end - 1] == TokenReductionContext.FusedId;
            if (had) end--;
            double mean = 0;
            for (int t = prefix; t < end; t++) mean += c.ClassScore[t];
            mean /= end - prefix;
            var keptIds = new List<int>();
            var acc = new double[d];
            double weight = 0, size = 0;
            for (int t = 0; t < c.Count; t++)
            {
                bool fusedRow = had && t == c.Count - 1;
                if (t < prefix || (!fusedRow && c.ClassScore[t] / mean > thresholds[block])) { keptIds.Add(c.TokenIds[t]); continue; }
                if (fusedRow) continue;
                for (int j = 0; j < d; j++) acc[j] += (double)c.ClassScore[t] * c.X[(long)t * d + j];
                weight += c.ClassScore[t]; size += c.Sizes[t];
            }
            if (had && size > 0)
            {
                int t = c.Count - 1;
                for (int j = 0; j < d; j++) acc[j] += (double)c.ClassScore[t] * c.X[(long)t * d + j];
                weight += c.ClassScore[t]; size += c.Sizes[t];
                FoldedEarlier++;
            }
            float oldSize = had ? c.Sizes[c.Count - 1] : 0;
            int kept = c.KeepAbove(thresholds[block], new ThresholdRule(ScoreScale.RelativeToMean, FuseDropped: true));
            if (size == 0)
            {
                if (had) keptIds.Add(TokenReductionContext.FusedId);
                Assert.Equal(keptIds, Enumerable.Range(0, kept).Select(t => c.TokenIds[t]));
                if (had) Assert.Equal(oldSize, c.Sizes[kept - 1]);
                return kept;
            }
            keptIds.Add(TokenReductionContext.FusedId);
            Assert.Equal(keptIds, Enumerable.Range(0, kept).Select(t => c.TokenIds[t]));
            Assert.Equal(size, c.Sizes[kept - 1], 4);
            for (int j = 0; j < d; j++) Assert.Equal(acc[j] / weight, c.X[(long)(kept - 1) * d + j], 4);
            for (int t = prefix; t < kept - 1; t++) Assert.Equal(1f, c.Sizes[t]);
            Fused++;
            return kept;
        }
    }

    [Fact]
    public void FusedTokenIsTheClassAttentionWeightedMeanOfTheDroppedTokensInDoublePrecision()
    {
        var w = VitWeights.Random(Config, seed: 14);
        using var engine = new VitEngine(w);
        var logits = new float[Config.Classes];
        float[] thresholds = [0.8f, 1.0f, 0.9f, 1.1f, 0.7f, 1.0f];
        var checker = new FusedReference(thresholds);
        for (int i = 0; i < 4; i++) engine.Infer(Reduction.ReducerHookTests.RandomImage(Config, 80 + i), logits, checker);
        Assert.True(checker.Fused >= 2 * Config.Depth, $"only {checker.Fused} fused tokens made");
        Assert.True(checker.FoldedEarlier > 0, "an earlier fused token should have been folded into a later one");

        // The production path (thresholds + rule) is the reducer path bit for bit, and carries exactly one extra token.
        var rule = new ThresholdRule(ScoreScale.RelativeToMean, FuseDropped: true);
        var img = Reduction.ReducerHookTests.RandomImage(Config, 90);
        var a = new float[Config.Classes];
        var b = new float[Config.Classes];
        var ta = engine.Infer(img, a, thresholds, rule).TokensPerBlock.ToArray();
        var tb = engine.Infer(img, b, new ThresholdPruning(Config, thresholds, rule: rule)).TokensPerBlock.ToArray();
        Assert.Equal(a, b);
        Assert.Equal(ta, tb);
        var tc = engine.Infer(img, b, thresholds, new ThresholdRule(ScoreScale.RelativeToMean)).TokensPerBlock.ToArray();
        int first = Array.FindIndex(tc, n => n < Config.Tokens); // up to the first drop both paths are the same
        Assert.True(first >= 0);
        Assert.Equal(tc[..first], ta[..first]);
        Assert.Equal(tc[first] + 1, ta[first]);
    }

    [Fact]
    public void ViterbiWithTheFusedTokenEqualsExhaustiveSearchAndCountsTheExtraToken()
    {
        var c = Config;
        var rng = new Random(7);
        var images = Enumerable.Range(0, 5).Select(_ =>
        {
            var t = new TokenStatistics(c.Depth, c.Patches);
            for (int k = 0; k < t.Scores.Length; k++) { t.Scores[k] = (float)rng.NextDouble(); t.Fisher[k] = (float)rng.NextDouble(); }
            return t;
        }).ToArray();
        var stats = new CalibrationStatistics(c, images, ScoreScale.RelativeToMean);
        var flops = new FlopsModel(c, fusedToken: true);
        Assert.Equal(c.Tokens, flops.Tokens(1.0));
        Assert.Equal(c.PrefixTokens + 0.5 * c.Patches + 1, flops.Tokens(0.5));
        var model = new RctpCostModel(stats, candidates: 3, keepBins: 8, flopsUnits: 300, fusedToken: true);
        var plain = new RctpCostModel(stats, candidates: 3, keepBins: 8, flopsUnits: 300);
        // Dropping anything costs one token more in every later block than without fusing.
        Assert.True(model.Step(1, 4, 1).FlopsUnits >= plain.Step(1, 4, 1).FlopsUnits);
        Assert.Equal(plain.Step(0, 8, 0), model.Step(0, 8, 0));
        var budgets = Enumerable.Range(5, 16).Select(i => i / 20.0).ToArray();
        int compared = 0;
        foreach (var plan in ThresholdPlanner.Plan(model, budgets))
        {
            int limit = (int)Math.Floor(plan.Budget * model.FlopsUnits + 1e-9);
            double best = double.PositiveInfinity;
            for (int p = 0; p < (int)Math.Pow(3, c.Depth); p++)
            {
                int code = p, keep = model.KeepBins, f = model.FixedUnits;
                double loss = 0;
                for (int l = 0; l < c.Depth; l++, code /= 3) { var (ko, fl, ls) = model.Step(l, keep, code % 3); keep = ko; f += fl; loss += ls; }
                if (f <= limit && loss < best) best = loss;
            }
            if (double.IsPositiveInfinity(best)) { Assert.True(plan.FlopsUnits < 0); continue; }
            Assert.Equal(best, plan.FisherLoss, 12);
            compared++;
        }
        Assert.True(compared >= 8, $"only {compared} budgets were feasible");
    }

    [Theory]
    [InlineData(ScoreScale.Raw, false)]
    [InlineData(ScoreScale.RelativeToMean, false)]
    [InlineData(ScoreScale.RelativeToMean, true)]
    [InlineData(ScoreScale.Raw, true)]
    public void SharingPrefixesAcrossPlansGivesExactlyWhatFittingEachPlanAloneGives(ScoreScale scale, bool fuse)
    {
        var w = VitWeights.Random(Config, seed: 13);
        var imgs = Enumerable.Range(0, 10).Select(i => Reduction.ReducerHookTests.RandomImage(Config, 60 + i)).ToArray();
        using var fitter = new ThresholdFitter(w, workers: 2, imgs.Length, rule: new ThresholdRule(scale, fuse));
        using (var dense = new VitEngine(w))
        {
            var denseLogits = new float[Config.Classes];
            // With dense logits the fit also measures each plan's KL and agreement from its final states, so the
            // comparison below covers the states themselves, not only the thresholds.
            for (int i = 0; i < imgs.Length; i++) { dense.Infer(imgs[i], denseLogits); fitter.AddImage(i % 2, i, imgs[i], denseLogits, label: i % Config.Classes); }
        }
        // Plans sharing 0, 2 and 4 leading blocks, and one duplicate; where they part ways the MLP is run once on the
        // loosest branch's tokens and shared (without a fused token), so each shared fit must equal the lone one.
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
            Assert.Equal(alone.MeanKl, shared[p].MeanKl);
            Assert.Equal(alone.MeanLoss, shared[p].MeanLoss);
            Assert.Equal(alone.Agreement, shared[p].Agreement);
            Assert.False(double.IsNaN(shared[p].MeanKl));
        }
        // And the thresholds replayed through the production path reproduce the fit's FLOPs.
        using var engine = new VitEngine(w);
        var logits = new float[Config.Classes];
        double replay = imgs.Average(x => (double)engine.Infer(x, logits, shared[1].Thresholds, new ThresholdRule(scale, fuse)).MultiplyAdds);
        Assert.Equal(shared[1].MeasuredFlops, replay, 3);
    }
}
