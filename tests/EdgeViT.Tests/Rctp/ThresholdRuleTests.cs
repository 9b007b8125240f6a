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
    [InlineData(ScoreScale.Raw, false, 0f, 0f)]
    [InlineData(ScoreScale.RelativeToMean, false, 0f, 0f)]
    [InlineData(ScoreScale.RelativeToMean, true, 0f, 0f)]
    [InlineData(ScoreScale.Raw, true, 0f, 0f)]
    [InlineData(ScoreScale.Raw, true, 0f, 8f)]
    [InlineData(ScoreScale.Raw, false, 0.5f, 0f)]
    [InlineData(ScoreScale.Raw, true, 0.6f, 0f)]
    public void SharingPrefixesAcrossPlansGivesExactlyWhatFittingEachPlanAloneGives(ScoreScale scale, bool fuse, float memory, float sizeCap)
    {
        var w = VitWeights.Random(Config, seed: 13);
        var imgs = Enumerable.Range(0, 10).Select(i => Reduction.ReducerHookTests.RandomImage(Config, 60 + i)).ToArray();
        using var fitter = new ThresholdFitter(w, workers: 2, imgs.Length, rule: new ThresholdRule(scale, fuse, FusedSizeCap: sizeCap, ScoreMemory: memory));
        using (var dense = new VitEngine(w))
        {
            var denseLogits = new float[Config.Classes];
            // With dense logits the fit also measures each plan's KL and agreement from its final states, so the
            // comparison below covers the states themselves, not only the thresholds.
            for (int i = 0; i < imgs.Length; i++) { dense.Infer(imgs[i], denseLogits); fitter.AddImage(i % 2, i, imgs[i], denseLogits, label: i % Config.Classes); }
        }
        // Plans sharing 0, 2 and 4 leading blocks, and one duplicate; where they part ways the MLP runs once on the
        // loosest branch's tokens and is shared (each other branch runs only its own fused token), so each shared fit
        // must equal the lone one.
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
        double replay = imgs.Average(x => (double)engine.Infer(x, logits, shared[1].Thresholds, new ThresholdRule(scale, fuse, FusedSizeCap: sizeCap, ScoreMemory: memory)).MultiplyAdds);
        Assert.Equal(shared[1].MeasuredFlops, replay, 3);
    }
    /// <summary>Block l's CLS softmax per head, from this block's q and k rows in double precision ([head][key]).</summary>
    private static double[][] ReferenceClassAttention(TokenReductionContext c, Func<float, double> logSize)
    {
        int n = c.Count, d = c.Dim, hd = c.HeadDim;
        double scale = 1 / Math.Sqrt(hd);
        return Enumerable.Range(0, c.Heads).Select(h => ReferenceSoftmaxRow(c, h, 0, scale, logSize)).ToArray();
    }

    /// <summary>softmax_j(scale q_i.k_j + logSize(size_j)) for head h, query i, in double precision.</summary>
    private static double[] ReferenceSoftmaxRow(TokenReductionContext c, int h, int i, double scale, Func<float, double> logSize)
    {
        int n = c.Count, ld = 3 * c.Dim, hd = c.HeadDim;
        var z = new double[n];
        for (int j = 0; j < n; j++)
        {
            double dot = 0;
            for (int k = 0; k < hd; k++) dot += (double)c.Qkv[(long)i * ld + h * hd + k] * c.Qkv[(long)j * ld + c.Dim + h * hd + k];
            z[j] = scale * dot + logSize(c.Sizes[j]);
        }
        double m = z.Max(), sum = z.Sum(v => Math.Exp(v - m));
        return z.Select(v => Math.Exp(v - m) / sum).ToArray();
    }

    /// <summary>Checks the pooled score against one from the double-precision CLS softmax (and values), then applies the rule.</summary>
    private sealed class PoolingReference(float[] thresholds, HeadPooling pooling) : ITokenReducer
    {
        public int Checked, Dropped, ArgmaxNotMean;
        public readonly ThresholdRule Rule = new(Heads: pooling);
        public string Name => "max-heads-check";
        public ReductionNeeds Needs => ReductionNeeds.None;
        public ThresholdRule AttentionRule => Rule;
        public int Reduce(int block, TokenReductionContext c)
        {
            var a = ReferenceClassAttention(c, _ => 0);
            var expected = new List<int>();
            for (int t = 0; t < c.Count; t++)
            {
                double mean = a.Average(row => row[t]), expect = pooling switch
                {
                    HeadPooling.Max => a.Max(row => row[t]),
                    HeadPooling.MeanWithoutPrefix => a.Average(row => row[t] / (1 - row.Take(c.PrefixTokens).Sum())),
                    HeadPooling.ValueWeighted => Enumerable.Range(0, c.Heads).Average(h => a[h][t] * ValueNorm(c, h, t)
                        / Enumerable.Range(0, c.Count).Sum(u => a[h][u] * ValueNorm(c, h, u))),
                    _ => mean,
                };
                if (t >= c.PrefixTokens) Assert.Equal(expect, c.ClassScore[t], 2e-6);
                if (Math.Abs(expect - mean) > 1e-3) ArgmaxNotMean++;
                // Ties within float rounding of the cut are the reference's to lose: compare only clear cases.
                if (t < c.PrefixTokens || c.ClassScore[t] > thresholds[block]) expected.Add(c.TokenIds[t]);
            }
            int kept = c.KeepAbove(thresholds[block], Rule);
            Assert.Equal(expected, Enumerable.Range(0, kept).Select(t => c.TokenIds[t]));
            Checked++;
            Dropped += c.Count - kept;
            return kept;
        }
    }

    /// <summary>|v_ht| in double precision from the qkv rows.</summary>
    private static double ValueNorm(TokenReductionContext c, int h, int t)
    {
        double sq = 0;
        for (int k = 0; k < c.HeadDim; k++)
        {
            double v = c.Qkv[(long)t * 3 * c.Dim + 2 * c.Dim + h * c.HeadDim + k];
            sq += v * v;
        }
        return Math.Sqrt(sq);
    }

    [Theory]
    [InlineData(HeadPooling.Max)]
    [InlineData(HeadPooling.MeanWithoutPrefix)]
    [InlineData(HeadPooling.ValueWeighted)]
    public void PooledScoresMatchADoublePrecisionReferenceAndBothPathsAgree(HeadPooling pooling)
    {
        var w = VitWeights.Random(Config, seed: 15);
        using var engine = new VitEngine(w);
        var logits = new float[Config.Classes];
        float[] thresholds = [0.02f, 0.025f, 0.02f, 0.03f, 0.025f, 0.02f]; // uniform attention is 1/65 = 0.0154
        var checker = new PoolingReference(thresholds, pooling);
        for (int i = 0; i < 4; i++) engine.Infer(Reduction.ReducerHookTests.RandomImage(Config, 100 + i), logits, checker);
        Assert.Equal(4 * Config.Depth, checker.Checked);
        Assert.True(checker.Dropped > 0, "the thresholds should prune something");
        Assert.True(checker.ArgmaxNotMean > 0, "the pooling never differed from the mean: the test could not tell them apart");

        // The production path is the reducer path bit for bit, and max pooling prunes differently from the mean.
        var img = Reduction.ReducerHookTests.RandomImage(Config, 110);
        var a = new float[Config.Classes];
        var b = new float[Config.Classes];
        var ta = engine.Infer(img, a, thresholds, checker.Rule).TokensPerBlock.ToArray();
        var tb = engine.Infer(img, b, new ThresholdPruning(Config, thresholds, rule: checker.Rule)).TokensPerBlock.ToArray();
        Assert.Equal(a, b);
        Assert.Equal(ta, tb);
        string Kept(ForwardStats st) => string.Join("|", Enumerable.Range(0, Config.Depth).Select(l => string.Join(",", st.KeptTokenIds.Skip(l * Config.Tokens).Take(st.TokensPerBlock[l]))));
        float[] near = [0.0154f, 0.0154f, 0.0154f, 0.0154f, 0.0154f, 0.0154f]; // about uniform attention: prunes some, not all
        string keptPooled = Kept(engine.Infer(img, a, near, checker.Rule)), keptMean = Kept(engine.Infer(img, b, near));
        Assert.NotEqual(keptMean, keptPooled); // the pooling changes which tokens are kept

        // Calibration ranks tokens by the same score: the probe's dense scores are pooled the same way.
        using var probe = new FisherProbe(w, heads: pooling);
        var stats = new TokenStatistics(Config.Depth, Config.Patches);
        probe.Measure(img, 1, stats);
        var dense = new DenseRecorder(Config, checker.Rule);
        engine.Infer(img, a, dense);
        for (int l = 0; l < Config.Depth; l++)
            for (int p = 0; p < Config.Patches; p++)
                Assert.Equal(dense.Scores[l][p + Config.PrefixTokens], stats.Scores[l * Config.Patches + p]);
    }

    /// <summary>Keeps every token and records, per block, each token's pooled class score under a rule.</summary>
    private sealed class DenseRecorder(VitConfig config, ThresholdRule rule) : ITokenReducer
    {
        public readonly float[][] Scores = Enumerable.Range(0, config.Depth).Select(_ => new float[config.Tokens]).ToArray();
        public string Name => "record";
        public ReductionNeeds Needs => ReductionNeeds.None;
        public ThresholdRule AttentionRule => rule;
        public int Reduce(int block, TokenReductionContext c)
        {
            new ReadOnlySpan<float>(c.ClassScore, c.Count).CopyTo(Scores[block]);
            return c.Count;
        }
    }

    /// <summary>Every head's softmax against a double-precision one with log(min(size, cap)) on the logits; then the fused rule.</summary>
    private sealed class CappedAttentionReference(float[] thresholds, ThresholdRule rule) : ITokenReducer
    {
        public int Rows, CappedFused;
        public string Name => "capped-check";
        public ReductionNeeds Needs => ReductionNeeds.AttentionProbabilities | ReductionNeeds.ProportionalAttention;
        public ThresholdRule AttentionRule => rule;
        public int Reduce(int block, TokenReductionContext c)
        {
            double cap = rule.FusedSizeCap > 0 ? rule.FusedSizeCap : double.PositiveInfinity;
            double scale = 1 / Math.Sqrt(c.HeadDim);
            for (int t = 0; t < c.Count; t++) if (c.Sizes[t] > cap) { CappedFused++; break; }
            for (int h = 0; h < c.Heads; h++)
                for (int i = 0; i < c.Count; i += 7)
                {
                    var p = ReferenceSoftmaxRow(c, h, i, scale, s => Math.Log(Math.Min(s, cap)));
                    for (int j = 0; j < c.Count; j++) Assert.Equal(p[j], c.Probability(h, i, j), 2e-6);
                    Rows++;
                }
            return c.KeepAbove(thresholds[block], rule);
        }
    }

    [Theory]
    [InlineData(0f)]  // uncapped: log(size)
    [InlineData(1f)]  // log(1) = 0: no proportional attention
    [InlineData(4f)]
    public void CappedProportionalAttentionAddsTheLogOfTheCappedSizeInDoublePrecision(float cap)
    {
        var w = VitWeights.Random(Config, seed: 16);
        using var engine = new VitEngine(w);
        var logits = new float[Config.Classes];
        var rule = new ThresholdRule(ScoreScale.Raw, FuseDropped: true, FusedSizeCap: cap);
        float[] thresholds = [0.012f, 0.015f, 0.014f, 0.016f, 0.015f, 0.015f];
        var checker = new CappedAttentionReference(thresholds, rule);
        for (int i = 0; i < 3; i++) engine.Infer(Reduction.ReducerHookTests.RandomImage(Config, 120 + i), logits, checker);
        Assert.True(checker.Rows > 0);
        if (cap > 0) Assert.True(checker.CappedFused > 0, "no fused token grew past the cap: the test could not see it");

        // The production path matches the reducer path bit for bit.
        var img = Reduction.ReducerHookTests.RandomImage(Config, 130);
        var a = new float[Config.Classes];
        var b = new float[Config.Classes];
        var ta = engine.Infer(img, a, thresholds, rule).TokensPerBlock.ToArray();
        var tb = engine.Infer(img, b, new ThresholdPruning(Config, thresholds, rule: rule)).TokensPerBlock.ToArray();
        Assert.Equal(a, b);
        Assert.Equal(ta, tb);
    }

    [Fact]
    public void TheRuleRoundTripsThroughTheThresholdsFileAsVersion3OnlyWhenItNeedsTo()
    {
        var w = VitWeights.Random(Config, seed: 17);
        var path = Path.Combine(Path.GetTempPath(), $"edgevit-rule-{Guid.NewGuid():N}.json");
        try
        {
            foreach (var (rule, version) in new[]
            {
                (ThresholdRule.Raw, 2), (new ThresholdRule(FuseDropped: true), 2), (new ThresholdRule(Heads: HeadPooling.Max), 3),
                (new ThresholdRule(ScoreScale.RelativeToMean, true, HeadPooling.Mean, 8f), 3), (new ThresholdRule(ScoreScale.Raw, true, HeadPooling.Max, 2.5f), 3),
                (new ThresholdRule(ScoreMemory: 0.5f), 3), (new ThresholdRule(Heads: HeadPooling.MeanWithoutPrefix), 3), (new ThresholdRule(Heads: HeadPooling.ValueWeighted), 3),
            })
            {
                var file = new ThresholdFile
                {
                    ModelFingerprint = w.Fingerprint, ModelDescription = Config.Describe(), Depth = Config.Depth, DenseGFlops = 1, CalibrationImages = 1,
                    CalibrationOptions = new Dictionary<string, string>(), Rule = rule,
                    Sets = [new ThresholdSet(0.5, new float[Config.Depth], new double[Config.Depth], 0.5, 0.5, 0, new double[Config.Depth]) { Rule = rule }],
                };
                file.Save(path);
                var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
                Assert.Equal(version, (int)node["version"]!);
                var loaded = ThresholdFile.Load(path);
                Assert.Equal(rule, loaded.Rule);
                Assert.Equal(rule, loaded.Sets[0].Rule);
            }
            var bad = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
            bad["rule"]!["heads"] = "median";
            File.WriteAllText(path, bad.ToJsonString());
            Assert.Contains("unknown rule.heads 'median'", Assert.Throws<ModelFormatException>(() => ThresholdFile.Load(path)).Message);
            bad["rule"]!["heads"] = "max";
            bad["rule"]!["fused_size_cap"] = -1;
            File.WriteAllText(path, bad.ToJsonString());
            Assert.Contains("fused_size_cap", Assert.Throws<ModelFormatException>(() => ThresholdFile.Load(path)).Message);
        }
        finally { File.Delete(path); }
    }
    /// <summary>Tracks each token's running score in double precision from the reference class attention, and checks the engine's.</summary>
    private sealed class RunningScoreReference(float[] thresholds, ThresholdRule rule) : ITokenReducer
    {
        private readonly Dictionary<int, double> _running = new();
        public int Checked, Dropped;
        public string Name => "running-check";
        public ReductionNeeds Needs => ReductionNeeds.None;
        public ThresholdRule AttentionRule => rule;
        public void BeginImage(TokenReductionContext c) => _running.Clear();
        public int Reduce(int block, TokenReductionContext c)
        {
            var a = ReferenceClassAttention(c, _ => 0);
            double m = rule.ScoreMemory;
            for (int t = c.PrefixTokens; t < c.Count; t++)
            {
                double now = a.Average(row => row[t]);
                int id = c.TokenIds[t];
                double r = block == 0 ? now : m * _running[id] + (1 - m) * now;
                _running[id] = r;
                Assert.Equal(r, c.ClassScore[t], 2e-6);
                Checked++;
            }
            int kept = c.KeepAbove(thresholds[block], rule);
            Dropped += c.Count - kept;
            return kept;
        }
    }

    [Fact]
    public void RunningMeanScoreFollowsEachTokenAcrossBlocksAndCompactionInDoublePrecision()
    {
        var w = VitWeights.Random(Config, seed: 18);
        using var engine = new VitEngine(w);
        var logits = new float[Config.Classes];
        var rule = new ThresholdRule(ScoreMemory: 0.6f);
        float[] thresholds = [float.NegativeInfinity, 0.014f, 0.016f, 0.017f, 0.018f, 0.02f];
        var checker = new RunningScoreReference(thresholds, rule);
        for (int i = 0; i < 3; i++) engine.Infer(Reduction.ReducerHookTests.RandomImage(Config, 140 + i), logits, checker);
        Assert.True(checker.Dropped > 0, "the thresholds should prune something, so the running scores must follow compaction");

        var img = Reduction.ReducerHookTests.RandomImage(Config, 150);
        var a = new float[Config.Classes];
        var b = new float[Config.Classes];
        var ta = engine.Infer(img, a, thresholds, rule).TokensPerBlock.ToArray();
        var tb = engine.Infer(img, b, new ThresholdPruning(Config, thresholds, rule: rule)).TokensPerBlock.ToArray();
        Assert.Equal(a, b);
        Assert.Equal(ta, tb);
        Assert.NotEqual(engine.Infer(img, b, thresholds).TokensPerBlock.ToArray(), ta); // memory changes what is kept
    }
}
