using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Reduction;

namespace EdgeViT.Kernels.Rctp;

/// <summary>One calibrated threshold set: what to load to run at a FLOPs budget.</summary>
public sealed record ThresholdSet(
    double Budget,
    /// <summary>Per block; -inf means the block prunes nothing (written as null).</summary>
    float[] Thresholds,
    double[] KeepFraction,
    double PredictedGFlops,
    double MeasuredGFlops,
    double FisherLoss,
    double[] MeanTokensPerBlock)
{
    /// <summary>What the thresholds are compared with and what happens to dropped tokens (the file's rule, copied onto every set).</summary>
    public ThresholdRule Rule { get; init; } = ThresholdRule.Raw;
    /// <summary>Coefficient of variation of per-image FLOPs on the calibration images (NaN when not recorded).</summary>
    public double FlopsSpread { get; init; } = double.NaN;
    /// <summary>Mean KL(dense || pruned) over the calibration images, measured by the fit (NaN when not recorded).</summary>
    public double CalibrationKl { get; init; } = double.NaN;
    /// <summary>Fraction of calibration images whose pruned top-1 is the dense top-1 (NaN when not recorded).</summary>
    public double CalibrationAgreement { get; init; } = double.NaN;
    /// <summary>Mean cross-entropy with the labels on the calibration images, measured by the fit (NaN when not recorded).</summary>
    public double CalibrationLoss { get; init; } = double.NaN;
    /// <summary>The planner's depth weight this set was planned with (<see cref="RctpCostModel"/>; 1 = flat).</summary>
    public double DepthWeight { get; init; } = 1;
    /// <summary>The per-block drop cap this set was planned with (1 = none).</summary>
    public double MaxDrop { get; init; } = 1;
}

/// <summary>
/// The calibration result: versioned JSON bound to one model by the SHA-256 fingerprint of its weights,
/// holding a threshold set per budget on the grid. Version 2 adds "rule": what a threshold is compared with
/// (raw class attention, or class attention relative to its per-image mean) and whether dropped tokens are fused
/// into one; version 3 adds how heads pool into the score (mean, max, prefix-excluded, value-weighted), the fused
/// token's size cap and the running score; version 1 files are raw without fusing and still load.
/// </summary>
public sealed class ThresholdFile
{
    public const string Format = "edgevit-rctp-thresholds";
    /// <summary>
    /// 2 adds "precision" (the engine the thresholds were fitted on) and "rule" (what a threshold is compared with); version-1 files load as fp32, raw.
    /// 3 adds rule.heads (mean or max over heads), rule.fused_size_cap and rule.score_memory; a file is written as version 3 only when its rule
    /// uses them (so an older build refuses it instead of applying the thresholds to the wrong score), else as version 2.
    /// </summary>
    public const int Version = 3;
    private const string RawName = "raw", RelativeName = "relative_to_mean";

    public required string ModelFingerprint { get; init; }
    public required string ModelDescription { get; init; }
    public required int Depth { get; init; }
    public required double DenseGFlops { get; init; }
    public required int CalibrationImages { get; init; }
    /// <summary>Options that produced the file (labels, candidates, grid, images folder...).</summary>
    public required IReadOnlyDictionary<string, string> CalibrationOptions { get; init; }
    public required IReadOnlyList<ThresholdSet> Sets { get; init; }
    public string Source { get; init; } = "";
    /// <summary>The engine arithmetic the thresholds were fitted on ("fp32" or "int8"): pruning sees that engine's attention.</summary>
    public string Precision { get; init; } = "fp32";
    /// <summary>The threshold rule of every set in the file.</summary>
    public ThresholdRule Rule { get; init; } = ThresholdRule.Raw;

    public double MinBudget => Sets.Min(s => s.Budget);
    public double MaxBudget => Sets.Max(s => s.Budget);

    /// <summary>
    /// The set for a budget (fraction of dense FLOPs): the largest calibrated budget not above it, so the
    /// model stays within the budget. A budget below the lowest set is an error.
    /// </summary>
    public ThresholdSet Select(double budget)
    {
        string file = Path.GetFileName(Source);
        if (double.IsNaN(budget) || budget <= 0) throw new ArgumentOutOfRangeException(nameof(budget), budget, "budget must be a positive fraction of dense FLOPs");
        var fit = Sets.Where(s => s.Budget <= budget + 1e-9).OrderByDescending(s => s.Budget).FirstOrDefault();
        return fit ?? throw new ModelFormatException(
            $"{file}: budget {budget:0.###} is below the lowest calibrated budget {MinBudget:0.###} (the file covers {MinBudget:0.###}..{MaxBudget:0.###})");
    }

    /// <summary>Throws unless this file was calibrated for exactly these weights.</summary>
    public void EnsureMatches(VitWeights weights)
    {
        if (!string.Equals(ModelFingerprint, weights.Fingerprint, StringComparison.OrdinalIgnoreCase))
            throw new ModelFormatException(
                $"{Path.GetFileName(Source)}: calibrated for model {ModelFingerprint[..Math.Min(12, ModelFingerprint.Length)]} ({ModelDescription}), " +
                $"not for {Path.GetFileName(weights.Source)} ({weights.Fingerprint[..12]}); recalibrate with 'edgevit calibrate'");
    }

    /// <summary>Throws unless this file was calibrated for these weights and this engine precision.</summary>
    public void EnsureMatches(VitWeights weights, string precision)
    {
        EnsureMatches(weights);
        if (!string.Equals(Precision, precision, StringComparison.OrdinalIgnoreCase))
            throw new ModelFormatException(
                $"{Path.GetFileName(Source)}: thresholds were fitted on the {Precision} engine, not {precision}; " +
                $"use --precision {Precision} or recalibrate with 'edgevit calibrate --precision {precision}'");
    }

    public void Save(string path)
    {
        var root = new JsonObject
        {
            ["format"] = Format,
            ["version"] = Rule.NeedsVersion3 ? 3 : 2,
            ["precision"] = Precision,
            ["rule"] = RuleJson(Rule),
            ["model"] = new JsonObject { ["fingerprint"] = ModelFingerprint, ["description"] = ModelDescription, ["depth"] = Depth, ["dense_gflops"] = DenseGFlops },
            ["calibration"] = new JsonObject
            {
                ["images"] = CalibrationImages,
                ["options"] = new JsonObject(CalibrationOptions.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            },
            ["sets"] = new JsonArray(Sets.Select(s => (JsonNode)new JsonObject
            {
                ["budget"] = Math.Round(s.Budget, 6),
                ["thresholds"] = new JsonArray(s.Thresholds.Select(t => float.IsNegativeInfinity(t) ? null : (JsonNode)JsonValue.Create(t)).ToArray()),
                ["keep_fraction"] = new JsonArray(s.KeepFraction.Select(k => (JsonNode)Math.Round(k, 6)).ToArray()),
                ["predicted_gflops"] = Math.Round(s.PredictedGFlops, 6),
                ["measured_gflops"] = Math.Round(s.MeasuredGFlops, 6),
                ["fisher_loss"] = s.FisherLoss,
                ["mean_tokens_per_block"] = new JsonArray(s.MeanTokensPerBlock.Select(k => (JsonNode)Math.Round(k, 3)).ToArray()),
                ["flops_cv"] = double.IsFinite(s.FlopsSpread) ? Math.Round(s.FlopsSpread, 5) : null,
                ["calibration_kl"] = double.IsFinite(s.CalibrationKl) ? Math.Round(s.CalibrationKl, 6) : null,
                ["calibration_agreement"] = double.IsFinite(s.CalibrationAgreement) ? Math.Round(s.CalibrationAgreement, 5) : null,
                ["calibration_loss"] = double.IsFinite(s.CalibrationLoss) ? Math.Round(s.CalibrationLoss, 6) : null,
                ["depth_weight"] = s.DepthWeight,
                ["max_drop"] = s.MaxDrop,
            }).ToArray()),
        };
        File.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    private static JsonObject RuleJson(ThresholdRule rule)
    {
        var o = new JsonObject { ["score"] = rule.Scale == ScoreScale.RelativeToMean ? RelativeName : RawName, ["fused_token"] = rule.FuseDropped };
        if (rule.NeedsVersion3)
        {
            o["heads"] = rule.Heads switch { HeadPooling.Max => "max", HeadPooling.MeanWithoutPrefix => "mean_without_prefix", HeadPooling.ValueWeighted => "value_weighted", _ => "mean" };
            o["fused_size_cap"] = rule.FusedSizeCap;
            o["score_memory"] = rule.ScoreMemory;
        }
        return o;
    }

    public static ThresholdFile Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"thresholds file not found: {path}", path);
        string file = Path.GetFileName(path);
        JsonNode root;
        try { root = JsonNode.Parse(File.ReadAllText(path)) ?? throw new ModelFormatException($"{file}: empty thresholds file"); }
        catch (JsonException e) { throw new ModelFormatException($"{file}: not valid JSON ({e.Message.Split('\n')[0]})"); }
        try
        {
            if ((string?)root["format"] != Format) throw new ModelFormatException($"{file}: not an EdgeViT thresholds file (format must be '{Format}')");
            int version = (int?)root["version"] ?? -1;
            if (version is < 1 or > Version)
                throw new ModelFormatException($"{file}: thresholds format version {version} is not supported (this build reads versions 1..{Version}; recalibrate with 'edgevit calibrate')");
            // A version-2 file without "precision" was written before int8 existed: fp32.
            string precision = version == 1 ? "fp32" : (string?)root["precision"] ?? "fp32";
            if (precision is not ("fp32" or "int8")) throw new ModelFormatException($"{file}: unknown precision '{precision}' (fp32 or int8)");
            var rule = ThresholdRule.Raw;
            if (version >= 2)
                rule = new ThresholdRule((string?)root["rule"]?["score"] switch
                {
                    RawName => ScoreScale.Raw,
                    RelativeName => ScoreScale.RelativeToMean,
                    var other => throw new ModelFormatException($"{file}: unknown rule.score '{other}' (expected '{RawName}' or '{RelativeName}')"),
                }, (bool?)root["rule"]?["fused_token"] ?? false);
            if (version >= 3)
            {
                float cap = (float?)root["rule"]?["fused_size_cap"] ?? 0, memory = (float?)root["rule"]?["score_memory"] ?? 0;
                if (!(memory >= 0 && memory < 1)) throw new ModelFormatException($"{file}: rule.score_memory must be in [0, 1)");
                if (!(cap >= 0) || float.IsInfinity(cap)) throw new ModelFormatException($"{file}: rule.fused_size_cap must be a number >= 0 (0 = uncapped)");
                rule = rule with
                {
                    Heads = (string?)root["rule"]?["heads"] switch
                    {
                        null or "mean" => HeadPooling.Mean,
                        "max" => HeadPooling.Max,
                        "mean_without_prefix" => HeadPooling.MeanWithoutPrefix,
                        "value_weighted" => HeadPooling.ValueWeighted,
                        var other => throw new ModelFormatException($"{file}: unknown rule.heads '{other}' (expected 'mean', 'max', 'mean_without_prefix' or 'value_weighted')"),
                    },
                    FusedSizeCap = cap,
                    ScoreMemory = memory,
                };
            }
            var model = root["model"] ?? throw new ModelFormatException($"{file}: missing 'model'");
            int depth = (int?)model["depth"] ?? throw new ModelFormatException($"{file}: missing model.depth");
            var sets = new List<ThresholdSet>();
            foreach (var s in root["sets"]?.AsArray() ?? throw new ModelFormatException($"{file}: missing 'sets'"))
            {
                if (s is null) continue;
                double budget = (double?)s["budget"] ?? throw new ModelFormatException($"{file}: a set has no budget");
                var th = (s["thresholds"]?.AsArray() ?? throw new ModelFormatException($"{file}: set {budget} has no thresholds"))
                    .Select(t => t is null ? float.NegativeInfinity : (float)t).ToArray();
                if (th.Length != depth) throw new ModelFormatException($"{file}: set {budget} has {th.Length} thresholds for {depth} blocks");
                if (th.Any(float.IsNaN)) throw new ModelFormatException($"{file}: set {budget} has a NaN threshold");
                sets.Add(new ThresholdSet(budget, th,
                    Doubles(s["keep_fraction"]), (double?)s["predicted_gflops"] ?? double.NaN, (double?)s["measured_gflops"] ?? double.NaN,
                    (double?)s["fisher_loss"] ?? double.NaN, Doubles(s["mean_tokens_per_block"]))
                {
                    Rule = rule, FlopsSpread = (double?)s["flops_cv"] ?? double.NaN,
                    CalibrationKl = (double?)s["calibration_kl"] ?? double.NaN, CalibrationAgreement = (double?)s["calibration_agreement"] ?? double.NaN,
                    CalibrationLoss = (double?)s["calibration_loss"] ?? double.NaN,
                    DepthWeight = (double?)s["depth_weight"] ?? 1,
                    MaxDrop = (double?)s["max_drop"] ?? 1,
                });
            }
            if (sets.Count == 0) throw new ModelFormatException($"{file}: no threshold sets");
            var options = root["calibration"]?["options"]?.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value?.ToString() ?? "") ?? [];
            return new ThresholdFile
            {
                ModelFingerprint = (string?)model["fingerprint"] ?? throw new ModelFormatException($"{file}: missing model.fingerprint"),
                ModelDescription = (string?)model["description"] ?? "",
                Depth = depth,
                DenseGFlops = (double?)model["dense_gflops"] ?? double.NaN,
                CalibrationImages = (int?)root["calibration"]?["images"] ?? 0,
                CalibrationOptions = options,
                Sets = sets.OrderBy(s => s.Budget).ToArray(),
                Source = path,
                Precision = precision,
                Rule = rule,
            };
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or JsonException or InvalidCastException)
        {
            throw new ModelFormatException($"{file}: malformed thresholds file ({e.Message.Split('\n')[0]})");
        }
    }

    private static double[] Doubles(JsonNode? node) => node?.AsArray().Select(v => (double?)v ?? double.NaN).ToArray() ?? [];

    /// <summary>Parses a budget grid "0.40:1.00:0.01" (start:stop:step, inclusive) or a list "0.5,0.7".</summary>
    public static double[] ParseBudgets(string text)
    {
        var inv = CultureInfo.InvariantCulture;
        double[] values;
        try
        {
            if (text.Contains(':'))
            {
                var p = text.Split(':').Select(v => double.Parse(v, inv)).ToArray();
                if (p.Length != 3 || p[2] <= 0 || p[1] < p[0]) throw new FormatException();
                int count = (int)Math.Floor((p[1] - p[0]) / p[2] + 1e-6) + 1;
                values = Enumerable.Range(0, count).Select(i => Math.Round(p[0] + i * p[2], 6)).ToArray();
            }
            else values = text.Split(',').Select(v => double.Parse(v, inv)).ToArray();
        }
        catch (FormatException) { throw new ArgumentException($"bad budget grid '{text}': use start:stop:step (e.g. 0.40:1.00:0.01) or a list (0.5,0.7)"); }
        if (values.Length == 0 || values.Any(v => !(v > 0 && v <= 1.0 + 1e-9)))
            throw new ArgumentException($"bad budget grid '{text}': budgets are fractions of dense FLOPs in (0, 1]");
        return values;
    }
}
