using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;
using EdgeViT.Tests.Kernels;
using Xunit;

namespace EdgeViT.Tests.Rctp;

public class CalibratorTests
{
    private static readonly VitConfig Config = VitEngineTests.Small;

    private static (VitWeights Weights, float[][] Images, CalibrationReport Report) Calibrate(int images = 16, string budgets = "0.5:1.0:0.1",
        double[]? depthWeights = null, double[]? maxDrops = null, PlanSelection selection = PlanSelection.LabelLoss)
    {
        var w = VitWeights.Random(Config, seed: 3);
        var imgs = Enumerable.Range(0, images).Select(i => VitEngineTests.RandomImage(Config, 100 + i)).ToArray();
        var report = Calibrator.Run(w, images, (i, chw) => imgs[i].CopyTo(chw), Enumerable.Repeat(-1, images).ToArray(),
            ThresholdFile.ParseBudgets(budgets), new CalibrationOptions(Candidates: 10, Workers: 2) { DepthWeights = depthWeights ?? [1.0], MaxDrops = maxDrops ?? [], Selection = selection }, new Dictionary<string, string>());
        return (w, imgs, report);
    }

    [Fact]
    public void TheFitsRadixSortOrdersLikeArraySort()
    {
        // Class-attention scores are >= 0, but the sort must hold for any non-NaN float: signs, zeros of both signs,
        // denormals, infinities, duplicates, and every length around the radix digit widths.
        var rng = new Random(5);
        float[] special = [0f, -0f, float.Epsilon, -float.Epsilon, float.MaxValue, float.MinValue, float.PositiveInfinity, float.NegativeInfinity, 1f, -1f];
        foreach (int n in new[] { 0, 1, 2, 3, 17, 2048, 2049, 196_000 })
        {
            var a = new float[n];
            for (int i = 0; i < n; i++)
                a[i] = rng.Next(8) switch
                {
                    0 => special[rng.Next(special.Length)],
                    1 => (float)(rng.NextDouble() - 0.5) * 1e-40f,
                    2 => a[rng.Next(Math.Max(1, i))], // duplicates
                    _ => (float)Math.Pow(rng.NextDouble(), 3) * 0.05f * (rng.Next(4) == 0 ? -1 : 1),
                };
            var expect = (float[])a.Clone();
            Array.Sort(expect);
            ThresholdFitter.SortAscending(a);
            for (int i = 0; i < n; i++)
                Assert.True(BitConverter.SingleToInt32Bits(expect[i]) == BitConverter.SingleToInt32Bits(a[i]) || expect[i] == a[i] && expect[i] == 0,
                    $"n={n}: [{i}] = {a[i]:R}, Array.Sort gives {expect[i]:R}");
        }
    }

    [Fact]
    public void EverySetMeetsItsBudgetAndTheThresholdsReproduceTheMeasuredFlops()
    {
        var (w, imgs, report) = Calibrate();
        var file = report.File;
        Assert.Equal(6, file.Sets.Count);
        var flops = new FlopsModel(Config);
        using var engine = new VitEngine(w);
        var logits = new float[Config.Classes];
        foreach (var set in file.Sets)
        {
            Assert.True(set.PredictedGFlops <= set.Budget * flops.Dense / 1e9 + 1e-9, $"budget {set.Budget}: plan predicts {set.PredictedGFlops}");
            // Replaying the fitted thresholds image by image gives exactly the fit's measured FLOPs.
            Assert.Equal(EdgeViT.Kernels.Reduction.ThresholdRule.Default, set.Rule); // calibration's default rule
            double mean = imgs.Average(x => engine.Infer(x, logits, set.Thresholds, set.Rule).GFlops);
            Assert.Equal(set.MeasuredGFlops, mean, 9);
            Assert.True(Math.Abs(set.MeasuredGFlops / set.PredictedGFlops - 1) < 0.05,
                $"budget {set.Budget}: measured {set.MeasuredGFlops} vs predicted {set.PredictedGFlops}");
            // The fit's measured KL(dense || pruned) and top-1 agreement are what replaying the set gives.
            double kl = 0, ce = 0; int agree = 0;
            var dense = new float[Config.Classes];
            foreach (var x in imgs)
            {
                engine.Infer(x, dense);
                engine.Infer(x, logits, set.Thresholds, set.Rule);
                kl += ReferenceKl(dense, logits);
                ce += ReferenceCrossEntropy(logits, Array.IndexOf(dense, dense.Max())); // pseudo-labels: the dense top-1
                if (Array.IndexOf(dense, dense.Max()) == Array.IndexOf(logits, logits.Max())) agree++;
            }
            Assert.Equal(kl / imgs.Length, set.CalibrationKl, 4);
            Assert.Equal(ce / imgs.Length, set.CalibrationLoss, 4);
            Assert.Equal(agree / (double)imgs.Length, set.CalibrationAgreement, 9);
        }
        Assert.True(file.Sets[0].CalibrationKl > 0, "pruning at 0.5 should move the logits");
        // More budget never loses more Fisher. At budget 1.0 the plan loses none, yet may still prune: patch
        // tokens leaving the last block never reach the head (zero Fisher), so dropping them before its MLP is free
        // and must leave the logits as they are.
        for (int i = 1; i < file.Sets.Count; i++) Assert.True(file.Sets[i].FisherLoss <= file.Sets[i - 1].FisherLoss);
        var full = file.Sets[^1];
        Assert.Equal(0, full.FisherLoss, 12);
        Assert.All(full.Thresholds[..^1], t => Assert.True(float.IsNegativeInfinity(t)));
        var denseLogits = new float[Config.Classes];
        foreach (var x in imgs)
        {
            engine.Infer(x, denseLogits);
            engine.Infer(x, logits, full.Thresholds, full.Rule);
            for (int k = 0; k < logits.Length; k++) Assert.Equal(denseLogits[k], logits[k], 4);
        }
        Assert.True(file.Sets[0].MeasuredGFlops < 0.6 * flops.Dense / 1e9, "the 0.5 budget should really prune");
    }

    [Theory]
    [InlineData(PlanSelection.DenseKl)]
    [InlineData(PlanSelection.LabelLoss)]
    // Max drop 0.4, not less: with the default fused token a 20 % cap per block cannot reach 0.7 on this small model.
    public void SeveralPlannerVariantsKeepPerBudgetTheOneWithTheLeastMeasuredScore(PlanSelection selection)
    {
        double Score(ThresholdSet s) => selection == PlanSelection.DenseKl ? s.CalibrationKl : s.CalibrationLoss;
        const string budgets = "0.5,0.6,0.7";
        var alone = new[] { (1.0, 1.0), (4.0, 1.0), (1.0, 0.4) }
            .Select(v => Calibrate(budgets: budgets, depthWeights: [v.Item1], maxDrops: [v.Item2]).Report.File.Sets).ToArray();
        var both = Calibrate(budgets: budgets, depthWeights: [1.0, 4.0], maxDrops: [1.0, 0.4], selection: selection).Report.File.Sets;
        Assert.Equal(3, both.Count);
        int differs = 0;
        for (int b = 0; b < both.Count; b++)
        {
            var candidates = alone.SelectMany(sets => sets.Where(s => s.Budget == both[b].Budget)).ToArray();
            if (candidates.Select(c => string.Join(",", c.Thresholds)).Distinct().Count() > 1) differs++;
            Assert.NotEmpty(candidates);
            var best = candidates.MinBy(Score)!;
            Assert.True(Score(both[b]) <= Score(best) + 1e-12, $"budget {both[b].Budget}: chose {Score(both[b])}, best single variant {Score(best)}");
            Assert.True(both[b].DepthWeight is 1.0 or 4.0);
            var same = candidates.SingleOrDefault(c => c.DepthWeight == both[b].DepthWeight && c.MaxDrop == both[b].MaxDrop);
            if (same is null) continue; // (4, 0.4) is only planned together
            Assert.Equal(same.Thresholds, both[b].Thresholds);          // the chosen variant's own fit, unchanged by the company
            Assert.Equal(same.CalibrationKl, both[b].CalibrationKl, 12);
            Assert.Equal(same.CalibrationLoss, both[b].CalibrationLoss, 12);
        }
        Assert.True(differs > 0, "the variants planned identical sets: the test would not notice a wrong choice");
    }

    [Fact]
    public void BudgetsNoPlanCanReachAreAClearErrorNotACrash()
    {
        var e = Assert.Throws<ArgumentException>(() => Calibrate(images: 4, budgets: "0.5", maxDrops: [0.01]));
        Assert.Contains("no budget can be reached", e.Message);
        Assert.Contains("0.5", e.Message);
    }

    private static double ReferenceCrossEntropy(float[] z, int label)
    {
        double m = z.Max(), s = z.Sum(v => Math.Exp(v - m));
        return -(z[label] - m - Math.Log(s));
    }

    /// <summary>KL(softmax(p) || softmax(q)), straight from the definition in double precision.</summary>
    private static double ReferenceKl(float[] p, float[] q)
    {
        double[] Softmax(float[] z) { double m = z.Max(); var e = z.Select(v => Math.Exp(v - m)).ToArray(); double s = e.Sum(); return e.Select(v => v / s).ToArray(); }
        var a = Softmax(p); var b = Softmax(q);
        return a.Select((v, i) => v == 0 ? 0 : v * Math.Log(v / b[i])).Sum();
    }

    [Fact]
    public void ThresholdFileRoundTripsAndRejectsAnotherModelAndUncoveredBudgets()
    {
        var (w, _, report) = Calibrate(images: 6, budgets: "0.6,0.8,1.0");
        var path = Path.Combine(Path.GetTempPath(), $"edgevit-th-{Guid.NewGuid():N}.json");
        try
        {
            report.File.Save(path);
            var loaded = ThresholdFile.Load(path);
            loaded.EnsureMatches(w);
            Assert.Equal(report.File.Sets.Select(s => s.Budget), loaded.Sets.Select(s => s.Budget));
            for (int i = 0; i < loaded.Sets.Count; i++)
            {
                Assert.Equal(report.File.Sets[i].Thresholds, loaded.Sets[i].Thresholds);
                Assert.Equal(report.File.Sets[i].CalibrationKl, loaded.Sets[i].CalibrationKl, 5);
                Assert.Equal(report.File.Sets[i].CalibrationAgreement, loaded.Sets[i].CalibrationAgreement, 4);
            }
            Assert.Equal(0.8, loaded.Select(0.85).Budget);   // largest set not above the request
            Assert.Equal(0.6, loaded.Select(0.6).Budget);

            var other = VitWeights.Random(Config, seed: 4);
            var e1 = Assert.Throws<ModelFormatException>(() => loaded.EnsureMatches(other));
            Assert.Contains("calibrated for model", e1.Message);
            var e2 = Assert.Throws<ModelFormatException>(() => loaded.Select(0.5));
            Assert.Contains("below the lowest calibrated budget 0.6", e2.Message);

            // Versions 2 and 3 carry the threshold rule; version 1 files (no rule) still load, as raw class attention.
            Assert.Equal(EdgeViT.Kernels.Reduction.ThresholdRule.Default, loaded.Rule);
            var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
            node["rule"]!["score"] = "relative_to_mean";
            File.WriteAllText(path, node.ToJsonString());
            Assert.All(ThresholdFile.Load(path).Sets, s => Assert.Equal(EdgeViT.Kernels.Reduction.ScoreScale.RelativeToMean, s.Rule.Scale));
            node["rule"]!["score"] = "sideways";
            File.WriteAllText(path, node.ToJsonString());
            Assert.Contains("unknown rule.score 'sideways'", Assert.Throws<ModelFormatException>(() => ThresholdFile.Load(path)).Message);
            node.AsObject().Remove("rule");
            node["version"] = 1;
            File.WriteAllText(path, node.ToJsonString());
            var v1 = ThresholdFile.Load(path);
            Assert.Equal(EdgeViT.Kernels.Reduction.ThresholdRule.Raw, v1.Rule);
            Assert.Equal(report.File.Sets[0].Thresholds, v1.Sets[0].Thresholds);
            node["version"] = 4;
            File.WriteAllText(path, node.ToJsonString());
            Assert.Contains("version 4 is not supported (this build reads versions 1..3", Assert.Throws<ModelFormatException>(() => ThresholdFile.Load(path)).Message);

            File.WriteAllText(path, "{\"format\":\"something-else\"}");
            Assert.Contains("not an EdgeViT thresholds file", Assert.Throws<ModelFormatException>(() => ThresholdFile.Load(path)).Message);
            File.WriteAllText(path, "{ not json");
            Assert.Contains("not valid JSON", Assert.Throws<ModelFormatException>(() => ThresholdFile.Load(path)).Message);
        }
        finally { File.Delete(path); }
    }
}
