using System.CommandLine;
using System.Diagnostics;
using EdgeViT.Host.Evaluation;
using EdgeViT.Host.Output;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Rctp;
using EdgeViT.Kernels.Reduction;

namespace EdgeViT.Host.Commands;

/// <summary>
/// <c>edgevit calibrate --model FILE --images DIR --synsets FILE --out thresholds.json</c>: RCTP calibration
/// (Fisher and class attention over the images, candidate table, modified Viterbi for every budget on the
/// grid, thresholds realised and measured on the real pruned forward).
/// </summary>
public static class CalibrateCommand
{
    /// <summary>The --heads names of each head pooling, in the order help lists them.</summary>
    private static readonly (string Name, HeadPooling Pooling)[] HeadNames =
        [("value", HeadPooling.ValueWeighted), ("mean", HeadPooling.Mean), ("max", HeadPooling.Max), ("mean-without-cls", HeadPooling.MeanWithoutPrefix)];

    public static Command Create(TextWriter stdout)
    {
        var model = CommonOptions.Model("Model weights (.safetensors or .onnx).");
        var images = new Option<string>("--images") { Description = "Calibration image folder (file-name order).", Required = true, HelpName = "DIR" };
        var synsets = new Option<string?>("--synsets") { Description = "Synsets file, for labels from file names (needed unless --pseudo-labels).", HelpName = "FILE" };
        var output = new Option<string>("--out", "-o") { Description = "Thresholds file to write (JSON).", Required = true, HelpName = "FILE" };
        var limit = CommonOptions.IntInRange(new Option<int?>("--limit", "-n") { Description = "Calibrate on the first N images (after --split).", HelpName = "N" }, 1);
        var split = CommonOptions.Split();
        var candidates = CommonOptions.IntInRange(new Option<int>("--candidates")
        {
            Description = "M: threshold candidates per block (candidate m drops about m/M of the tokens reaching it).",
            DefaultValueFactory = _ => 40,
            HelpName = "M",
        }, 2, 100);
        var keepBins = CommonOptions.IntInRange(new Option<int>("--keep-bins")
        {
            Description = "K: resolution of the planner's alive-token fraction (1/K steps). Coarser plans share more of the fit's work.",
            DefaultValueFactory = _ => 200,
            HelpName = "K",
        }, 2, 255);
        var budgets = new Option<string>("--budgets")
        {
            Description = "FLOPs budgets (fractions of dense): start:stop:step or a list.",
            DefaultValueFactory = _ => "0.40:1.00:0.01",
            HelpName = "GRID",
        };
        var fisherAt = new Option<string>("--fisher-at")
        {
            Description = "Where the token mask sits for Fisher: token (its whole state after attention; default) or msa (its MSA output only).",
            DefaultValueFactory = _ => "token",
            HelpName = "token|msa",
        };
        fisherAt.AcceptOnlyFromAmong("token", "msa");
        var pseudo = new Option<bool>("--pseudo-labels") { Description = "Use the model's own top-1 as the label (unlabelled images)." };
        var workers = CommonOptions.Threads();
        workers.Description = $"Worker threads, each running its own single-threaded engine (1..{CommonOptions.MaxThreads}; default: cores).";
        workers.DefaultValueFactory = _ => Math.Clamp(Environment.ProcessorCount, 1, CommonOptions.MaxThreads);
        var score = new Option<string>("--score")
        {
            Description = "What thresholds compare with: raw, the token's score as --heads pools it (default), or relative (divided by its mean over the patch tokens alive in the image; measured no better, bench/RESULTS.md §5).",
            DefaultValueFactory = _ => "raw",
            HelpName = "relative|raw",
        };
        score.AcceptOnlyFromAmong("relative", "raw");
        var fuse = new Option<string>("--fuse")
        {
            Description = "on (default): tokens under the threshold are averaged (weighted by their class score) into one extra token with proportional attention (size capped by --fused-size-cap); off: they are dropped.",
            DefaultValueFactory = _ => ThresholdRule.Default.FuseDropped ? "on" : "off",
            HelpName = "on|off",
        };
        fuse.AcceptOnlyFromAmong("on", "off");
        var heads = new Option<string>("--heads")
        {
            Description = "How the heads' class attention pools into a token's score: value (default: each head's attention times the token's value norm in that head, renormalised, the size of its part in the CLS update), mean, max, or mean-without-cls (each head renormalised over the non-CLS tokens first).",
            DefaultValueFactory = _ => HeadNames.Single(h => h.Pooling == ThresholdRule.Default.Heads).Name,
            HelpName = string.Join("|", HeadNames.Select(h => h.Name)),
        };
        heads.AcceptOnlyFromAmong(HeadNames.Select(h => h.Name).ToArray());
        var sizeCap = new Option<double>("--fused-size-cap")
        {
            Description = $"With --fuse on: the fused token's proportional attention adds log(min(size, C)) to its logit (default {ThresholdRule.FusedSizeCapDefault:0.###}; 0 = log(size), uncapped, much worse at 0.5; 1 = no proportional attention).",
            DefaultValueFactory = _ => ThresholdRule.FusedSizeCapDefault,
            HelpName = "C",
        };
        var memory = new Option<double>("--score-memory")
        {
            Description = "m in [0, 1): threshold a running mean of each token's class attention over the blocks so far (s = m s_prev + (1 - m) a); 0 (default): this block's alone.",
            DefaultValueFactory = _ => 0,
            HelpName = "M",
        };
        var augment = new Option<string>("--augment")
        {
            Description = "flip: calibrate on every image and its mirror image (twice the statistics and the time); none (default).",
            DefaultValueFactory = _ => "none",
            HelpName = "none|flip",
        };
        augment.AcceptOnlyFromAmong("none", "flip");
        var firstPrune = CommonOptions.IntInRange(new Option<int>("--first-prune-block")
        {
            Description = "Plans drop no tokens before this block (0 = anywhere; default).",
            DefaultValueFactory = _ => 0,
            HelpName = "L",
        }, 0, 64);
        var maxDrop = new Option<string>("--max-drop")
        {
            Description = "Plans drop at most this fraction of the tokens reaching any block but the last (0..1; default 1 = no cap). A list plans each and keeps, per budget, the plan --select picks (as --depth-weights; every pair is a candidate).",
            DefaultValueFactory = _ => "1",
            HelpName = "F[,F...]",
        };
        var depthWeights = new Option<string>("--depth-weights")
        {
            Description = "Planner weight of late blocks' Fisher: block l counts W^(l/(L-1)) (default 1 = every block alike). A list plans every budget with each and keeps, per budget, the plan --select picks (least cross-entropy or KL to dense, measured on the calibration images).",
            DefaultValueFactory = _ => "1",
            HelpName = "W[,W...]",
        };
        var select = new Option<string>("--select")
        {
            Description = "What picks among planner variants (several --depth-weights/--max-drop) per budget, measured on the calibration images: loss (cross-entropy with the labels; default) or kl (KL to dense).",
            DefaultValueFactory = _ => "loss",
            HelpName = "loss|kl",
        };
        select.AcceptOnlyFromAmong("loss", "kl");
        var simd = CommonOptions.Simd();
        var json = CommonOptions.Json();

        // Only --precision: the fit stage quantises the model itself (the probe's backward pass stays fp32).
        var precision = new PrecisionOptions().Precision;
        precision.Description = "Engine the thresholds are fitted on: fp32 (default) or int8; the file records it and predict/eval/bench/run refuse it for the other.";
        var command = new Command("calibrate", "RCTP: calibrate class-attention thresholds for every FLOPs budget on a grid.")
        {
            model, images, synsets, output, limit, split, candidates, keepBins, budgets, fisherAt, score, fuse, heads, sizeCap, memory, augment, firstPrune, maxDrop, depthWeights, select, pseudo, workers, simd, json, precision,
        };
        command.SetAction(parse => Run(stdout, parse.InvocationConfiguration.Error, new CalibrateArgs(
            parse.GetRequiredValue(model), parse.GetRequiredValue(images), parse.GetValue(synsets), parse.GetRequiredValue(output),
            parse.GetValue(limit), parse.GetValue(split) ?? "all", parse.GetValue(candidates), parse.GetValue(budgets) ?? "0.40:1.00:0.01",
            parse.GetValue(pseudo), parse.GetValue(workers), CommonOptions.ParseSimd(parse.GetValue(simd)), parse.GetValue(json))
        {
            FisherSite = parse.GetValue(fisherAt) == "msa" ? FisherSite.MsaOutput : FisherSite.TokenState,
            Precision = new PrecisionOptions.Choice(parse.GetValue(precision), null),
            Rule = new ThresholdRule(parse.GetValue(score) == "raw" ? ScoreScale.Raw : ScoreScale.RelativeToMean, parse.GetValue(fuse) == "on",
                HeadNames.Single(h => h.Name == parse.GetValue(heads)).Pooling,
                // the default cap only means something with fusing; an explicit one without it is refused in Run
                parse.GetValue(fuse) == "on" || parse.GetResult(sizeCap) is { Implicit: false } ? (float)parse.GetValue(sizeCap) : 0, (float)parse.GetValue(memory)),
            MirrorAugment = parse.GetValue(augment) == "flip",
            KeepBins = parse.GetValue(keepBins),
            Constraints = new PlanConstraints(parse.GetValue(firstPrune)),
            MaxDrops = parse.GetValue(maxDrop) ?? "1",
            Selection = parse.GetValue(select) == "kl" ? PlanSelection.DenseKl : PlanSelection.LabelLoss,
            DepthWeights = parse.GetValue(depthWeights) ?? "1",
        }));
        return command;
    }

    public sealed record CalibrateArgs(string Model, string Images, string? Synsets, string Out, int? Limit, string Split, int Candidates,
        string Budgets, bool PseudoLabels, int Workers, Kernels.Simd.SimdLevel? Simd, bool Json)
    {
        public FisherSite FisherSite { get; init; } = FisherSite.TokenState;
        public PrecisionOptions.Choice Precision { get; init; } = PrecisionOptions.Choice.Fp32;
        public ThresholdRule Rule { get; init; } = ThresholdRule.Default;
        /// <summary>Calibrate on each image and its left-right mirror image.</summary>
        public bool MirrorAugment { get; init; }
        public int KeepBins { get; init; } = 200;
        public PlanConstraints Constraints { get; init; } = PlanConstraints.None;
        public string DepthWeights { get; init; } = "1";
        public string MaxDrops { get; init; } = "1";
        public PlanSelection Selection { get; init; } = PlanSelection.LabelLoss;
    }

    private static double[] ParseList(string option, string text, Func<double, bool> valid, string expected)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var values = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!double.TryParse(parts[i], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out values[i]) || !valid(values[i]))
                throw new UsageException($"{option}: '{parts[i]}' is not {expected}");
        return values;
    }

    /// <param name="stderr">Progress lines (stage, images, budgets, ETA); never stdout, so --json stays one line.</param>
    public static int Run(TextWriter stdout, TextWriter? stderr, CalibrateArgs a)
    {
        long start = Stopwatch.GetTimestamp();
        Inputs.RequireFile(a.Model, "model file");
        double[] grid;
        try { grid = ThresholdFile.ParseBudgets(a.Budgets); }
        catch (ArgumentException ex) { throw new UsageException(ex.Message); }
        double[] depthWeights = ParseList("--depth-weights", a.DepthWeights, v => v > 0 && !double.IsInfinity(v), "a positive number (e.g. 1 or 0.5,1,2)");
        double[] maxDrops = ParseList("--max-drop", a.MaxDrops, v => v > 0 && v <= 1, "a fraction in (0, 1] (e.g. 1 or 0.3,1)");
        if (!(a.Rule.FusedSizeCap >= 0) || float.IsInfinity(a.Rule.FusedSizeCap)) throw new UsageException($"--fused-size-cap: '{a.Rule.FusedSizeCap}' is not a number >= 0");
        if (!(a.Rule.ScoreMemory >= 0 && a.Rule.ScoreMemory < 1)) throw new UsageException($"--score-memory: '{a.Rule.ScoreMemory}' is not in [0, 1)");
        if (a.Rule.FusedSizeCap > 0 && !a.Rule.FuseDropped) throw new UsageException("--fused-size-cap needs --fuse on");
        if (!a.PseudoLabels && a.Synsets is null) throw new UsageException("calibrate needs --synsets FILE for labels, or --pseudo-labels");
        string? outDir = Path.GetDirectoryName(Path.GetFullPath(a.Out));
        if (outDir is not null && !Directory.Exists(outDir)) throw new InputException($"output directory not found: {outDir}");
        var paths = ImageFolder.List(a.Images, a.Limit, a.Split);
        var synsets = a.Synsets is null ? null : SynsetTable.Load(a.Synsets);
        int[] labels = a.PseudoLabels ? paths.Select(_ => -1).ToArray() : paths.Select(p => ImageLabels.ClassOf(p, synsets!)).ToArray();
        int copies = a.MirrorAugment ? 2 : 1; // calibration image i is photo i / copies, mirrored when i is odd
        if (copies > 1) labels = labels.SelectMany(y => new[] { y, y }).ToArray();

        var weights = Inputs.LoadModel(a.Model);
        var config = weights.Config;
        if (synsets is not null && synsets.Count != config.Classes)
            throw new InputException($"{a.Synsets} lists {synsets.Count} classes but the model has {config.Classes}");
        var preprocessors = new System.Collections.Concurrent.ConcurrentBag<ImagePreprocessor>();

        void Log(string line) { if (!a.Json) { lock (stdout) stdout.WriteLine(line); } }
        var progress = ProgressOutput.For(stderr, "calibrate");
        Log($"calibrating {config.Describe()} on {paths.Count} images{(copies > 1 ? " and their mirror images" : "")} ({a.Split}, {(a.PseudoLabels ? "pseudo-labels" : "labels from file names")}), " +
            $"{a.Candidates} candidates per block, Fisher at the {(a.FisherSite == FisherSite.TokenState ? "token state" : "MSA output")}, {grid.Length} budgets, {a.Workers} workers, fitted on the {a.Precision.Name} engine, thresholds on {a.Rule}, plan constraints: {a.Constraints}, depth weights {a.DepthWeights}, max drop {a.MaxDrops}");

        var describe = new Dictionary<string, string>
        {
            ["images_dir"] = Path.GetFullPath(a.Images),
            ["split"] = a.Split,
            ["labels"] = a.PseudoLabels ? "pseudo (model top-1)" : "synsets",
            ["budgets"] = a.Budgets,
            ["model_file"] = Path.GetFileName(a.Model),
            ["augment"] = copies > 1 ? "every photo and its left-right mirror" : "none",
        };
        var report = Calibrator.Run(weights, copies * paths.Count, (i, chw) =>
        {
            if (!preprocessors.TryTake(out var pre)) pre = new ImagePreprocessor(Inputs.PreprocessFor(config));
            try { Inputs.LoadImage(paths[i / copies], pre, chw); }
            finally { preprocessors.Add(pre); }
            if (i % copies == 1) ImagePreprocessor.MirrorHorizontally(chw, config.InChannels, config.ImageSize);
        }, labels, grid, new CalibrationOptions(a.Candidates, a.FisherSite, a.Workers, a.KeepBins, Simd: a.Simd) { Precision = a.Precision.Value, Rule = a.Rule, Constraints = a.Constraints, DepthWeights = depthWeights, MaxDrops = maxDrops, Selection = a.Selection }, describe, progress);

        report.File.Save(a.Out);
        double wall = Inputs.Ms(start, Stopwatch.GetTimestamp()) / 1000;
        var sets = report.File.Sets;
        double worstGap = sets.Max(s => Math.Abs(s.MeasuredGFlops / s.PredictedGFlops - 1));
        var result = new CalibrateReport(a.Model, a.Out, paths.Count, a.Split, a.Candidates, sets.Count,
            JsonOutput.Round(report.File.DenseGFlops, 6), JsonOutput.Round(report.ProbeTime.TotalSeconds, 2), JsonOutput.Round(report.PlanTime.TotalSeconds, 2),
            JsonOutput.Round(report.FitTime.TotalSeconds, 2), JsonOutput.Round(wall, 2),
            JsonOutput.Round(Environment.ProcessId > 0 ? Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0 : 0, 1),
            JsonOutput.Round(worstGap * 100, 3));
        if (a.Json) JsonOutput.WriteLine(stdout, result, ReportJsonContext.Default.CalibrateReport);
        else
        {
            stdout.WriteLine($"wrote {a.Out}: {sets.Count} threshold sets, budgets {report.File.MinBudget:0.00}..{report.File.MaxBudget:0.00} of {report.File.DenseGFlops:F3} GFLOPs");
            stdout.WriteLine($"time        probe {result.ProbeS:F1} s, plan {result.PlanS:F1} s, fit {result.FitS:F1} s, total {result.WallS:F1} s; peak RSS {result.PeakRssMib:F0} MiB");
            stdout.WriteLine($"FLOPs       measured within {result.WorstFlopsGapPercent:F2} % of predicted on every set");
        }
        return ExitCodes.Ok;
    }
}
