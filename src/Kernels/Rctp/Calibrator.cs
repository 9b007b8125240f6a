using System.Diagnostics;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Reduction;

namespace EdgeViT.Kernels.Rctp;

public sealed record CalibrationOptions(int Candidates = 40, FisherSite FisherSite = FisherSite.TokenState, int Workers = 2, int KeepBins = 200, int FlopsUnits = 4000, Simd.SimdLevel? Simd = null)
{
    /// <summary>The engine the thresholds are fitted on (the Fisher probe's backward pass is fp32 either way).</summary>
    public Engine.Precision Precision { get; init; } = Engine.Precision.Fp32;
    /// <summary>What thresholds are compared with at run time (and so what calibration ranks tokens by).</summary>
    public ThresholdRule Rule { get; init; } = ThresholdRule.Default;
    /// <summary>Where plans may prune (default: anywhere, any amount).</summary>
    public PlanConstraints Constraints { get; init; } = PlanConstraints.None;
    /// <summary>
    /// Depth weights to plan with (<see cref="RctpCostModel"/>): with more than one, every budget is planned with each,
    /// all plans are fitted, and each budget keeps the one <see cref="Selection"/> ranks best, measured on the images.
    /// </summary>
    public IReadOnlyList<double> DepthWeights { get; init; } = [1.0];
    /// <summary>Per-block drop caps to plan with (each replaces <see cref="Constraints"/>' MaxDrop); with more than one, as for <see cref="DepthWeights"/> (every pair is a candidate).</summary>
    public IReadOnlyList<double> MaxDrops { get; init; } = [];
    /// <summary>What picks among planner variants per budget: the measured loss with the labels (default) or KL to the dense model.</summary>
    public PlanSelection Selection { get; init; } = PlanSelection.LabelLoss;
}

/// <summary>The measured quantity (real pruned forward on the calibration images) that picks among planner variants.</summary>
public enum PlanSelection
{
    /// <summary>Mean cross-entropy with the calibration labels: the loss the Fisher proxy stands for.</summary>
    LabelLoss,
    /// <summary>Mean KL(dense || pruned): on DeiT-Tiny it ranked plans unlike top-1 (bench/RESULTS.md §5).</summary>
    DenseKl,
}

/// <summary>Where calibration spent its time, for the report.</summary>
public sealed record CalibrationReport(ThresholdFile File, CandidateTable Candidates, CalibrationStatistics Statistics, TimeSpan ProbeTime, TimeSpan PlanTime, TimeSpan FitTime);

/// <summary>
/// RCTP end to end: probe every calibration image (class attention + Fisher), pool and normalise the
/// statistics, plan every budget with the modified Viterbi, then realise and measure each plan on the real
/// pruned forward over the same images.
/// </summary>
public static class Calibrator
{
    /// <param name="loadImage">Writes image i's normalised CHW input into the span (called once per image, from worker threads).</param>
    /// <param name="labels">Label per image, or -1 to use the model's own top-1.</param>
    public static CalibrationReport Run(VitWeights weights, int images, Action<int, Span<float>> loadImage, IReadOnlyList<int> labels,
        IReadOnlyList<double> budgets, CalibrationOptions options, IDictionary<string, string> describe, Action<string>? progress = null)
    {
        if (images <= 0) throw new ArgumentException("calibration needs at least one image");
        if (labels.Count != images) throw new ArgumentException($"{labels.Count} labels for {images} images");
        var c = weights.Config;
        int workers = Math.Max(1, options.Workers);
        var stats = new TokenStatistics[images];
        using var fitter = new ThresholdFitter(weights, workers, images, options.Simd, options.Precision, options.Rule);

        var clock = Stopwatch.StartNew();
        FisherProbe.MeasureAll(weights, images, loadImage, labels, workers, options.Simd, options.FisherSite, (w, i, input, s) =>
        {
            stats[i] = s;
            fitter.AddImage(w, i, input, s.Logits, s.Label);
        }, progress, heads: options.Rule.Heads);
        var probeTime = clock.Elapsed;

        clock.Restart();
        var pooled = new CalibrationStatistics(c, stats, options.Rule.Scale);
        double[] depthWeights = options.DepthWeights.Count == 0 ? [1.0] : options.DepthWeights.Distinct().ToArray();
        double[] maxDrops = options.MaxDrops.Count == 0 ? [options.Constraints.MaxDrop] : options.MaxDrops.Distinct().ToArray();
        var variants = (from dw in depthWeights from md in maxDrops select (Weight: dw, Constraints: options.Constraints with { MaxDrop = md })).ToArray();
        var flat = new RctpCostModel(pooled, options.Candidates, options.KeepBins, options.FlopsUnits, options.Rule.FuseDropped);
        var planned = new List<(PruningPlan Plan, double Weight, PlanConstraints Constraints)>();
        foreach (var (dw, pc) in variants)
        {
            var model = new RctpCostModel(pooled, options.Candidates, options.KeepBins, options.FlopsUnits, options.Rule.FuseDropped, dw);
            IPruningCostModel constrained = pc.IsNone ? model : new ConstrainedCostModel(model, pc);
            foreach (var plan in ThresholdPlanner.Plan(constrained, budgets))
            {
                if (plan.FlopsUnits < 0)
                {
                    progress?.Invoke($"budget {plan.Budget:0.###} (depth weight {dw:0.###}, {pc}): below what the candidates can reach, skipped");
                    continue;
                }
                planned.Add((plan, dw, pc));
            }
        }
        if (planned.Count == 0)
            throw new ArgumentException($"no budget can be reached: every one asked for ({string.Join(", ", budgets.Select(b => b.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)))}) is below what the candidate thresholds can prune to under these planner constraints");
        var planTime = clock.Elapsed;
        progress?.Invoke($"plan: {budgets.Count} budgets x {variants.Length} planner variants planned in {planTime.TotalSeconds:F1} s; fitting {planned.Count} plans on {images} images");

        clock.Restart();
        var keeps = planned.Select(p => (IReadOnlyList<double>)p.Plan.KeepBin.Select(k => (double)k / flat.KeepBins).ToArray()).ToArray();
        var fits = fitter.RealizeAll(keeps, progress);
        var sets = new List<ThresholdSet>();
        // Per budget, the plan whose real pruned forward scores best by the selection (label loss or KL to dense).
        foreach (var group in Enumerable.Range(0, planned.Count).GroupBy(j => planned[j].Plan.Budget))
        {
            double Score(int j) { double v = options.Selection == PlanSelection.DenseKl ? fits[j].MeanKl : fits[j].MeanLoss; return double.IsNaN(v) ? 0 : v; }
            int j = group.MinBy(Score);
            var (plan, dw, pc) = planned[j];
            var fit = fits[j];
            if (variants.Length > 1)
                progress?.Invoke($"budget {plan.Budget:0.###}: depth weight {dw:0.###}, max drop {pc.MaxDrop:0.###} chosen (calibration loss / KL by weight/max drop: " +
                    string.Join(", ", group.Select(k => $"{planned[k].Weight:0.###}/{planned[k].Constraints.MaxDrop:0.###}: {fits[k].MeanLoss:F4} / {fits[k].MeanKl:F4}")) + ")");
            sets.Add(new ThresholdSet(plan.Budget, fit.Thresholds, [.. keeps[j]], flat.PredictedFlops(plan) / 1e9, fit.MeasuredFlops / 1e9, UnweightedFisher(flat, plan), fit.MeanTokensPerBlock)
            { Rule = options.Rule, FlopsSpread = fit.FlopsSpread, CalibrationKl = fit.MeanKl, CalibrationAgreement = fit.Agreement, CalibrationLoss = fit.MeanLoss, DepthWeight = dw, MaxDrop = pc.MaxDrop });
        }
        sets.Sort((a, b) => a.Budget.CompareTo(b.Budget));
        var fitTime = clock.Elapsed;

        var opts = new Dictionary<string, string>(describe)
        {
            ["candidates"] = options.Candidates.ToString(),
            ["keep_bins"] = options.KeepBins.ToString(),
            ["flops_units"] = options.FlopsUnits.ToString(),
            ["fisher_normalisation"] = "per block, sum over D = 1",
            ["fitted_on"] = options.Precision == Engine.Precision.Int8 ? "int8 engine (Fisher probe fp32)" : "fp32 engine",
            ["rule"] = options.Rule.ToString(),
            ["plan_constraints"] = options.Constraints.ToString(),
            ["depth_weights"] = string.Join(",", depthWeights.Select(v => v.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture))),
            ["max_drops"] = string.Join(",", maxDrops.Select(v => v.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture))),
            ["plan_selection"] = variants.Length > 1 ? (options.Selection == PlanSelection.DenseKl ? "per budget, the variant with the least KL(dense || pruned) on the calibration images" : "per budget, the variant with the least cross-entropy with the labels on the calibration images") : "single planner variant",
            ["fisher_site"] = options.FisherSite == FisherSite.TokenState ? "token state after attention" : "MSA output",
        };
        var file = new ThresholdFile
        {
            ModelFingerprint = weights.Fingerprint,
            ModelDescription = c.Describe(),
            Depth = c.Depth,
            DenseGFlops = new FlopsModel(c).Dense / 1e9,
            CalibrationImages = images,
            CalibrationOptions = opts,
            Sets = sets,
            Precision = options.Precision == Engine.Precision.Int8 ? "int8" : "fp32",
            Rule = options.Rule,
        };
        return new CalibrationReport(file, pooled.Candidates(options.Candidates), pooled, probeTime, planTime, fitTime);
    }

    /// <summary>The plan's Fisher lost with every block weighted 1 (comparable across depth weights).</summary>
    private static double UnweightedFisher(RctpCostModel flat, PruningPlan plan)
    {
        double loss = 0;
        int keep = flat.KeepBins;
        for (int l = 0; l < flat.Blocks; l++)
        {
            var (ko, _, ls) = flat.Step(l, keep, plan.Candidate[l]);
            loss += ls;
            keep = ko;
        }
        return loss;
    }
}
