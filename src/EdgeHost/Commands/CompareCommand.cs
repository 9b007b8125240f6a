using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using EdgeViT.Host.Compare;
using EdgeViT.Host.Evaluation;
using EdgeViT.Host.Output;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Rctp;
using EdgeViT.Kernels.Reduction;

namespace EdgeViT.Host.Commands;

/// <summary>
/// <c>edgevit compare --model FILE --images DIR --synsets FILE --budgets 0.5,0.7 --out DIR [--methods rctp,topk,evit]</c>:
/// token-reduction methods against each other and dense at matched FLOPs budgets. Methods calibrate or pick their
/// knob on the even-indexed images and are evaluated on the odd-indexed ones in one round-robin pass (same run,
/// same clock); with <c>--calibration-images DIR</c> they calibrate on all of DIR and evaluate on all of --images. Writes results.csv, results.md and compare.png to the output folder.
/// </summary>
public static class CompareCommand
{
    public static Command Create(TextWriter stdout)
    {
        var model = CommonOptions.Model("Model weights (.safetensors or .onnx).");
        var images = new Option<string>("--images") { Description = "Labelled image folder (<synset>_<words>.<ext>): even indices calibrate, odd evaluate.", Required = true, HelpName = "DIR" };
        var synsets = new Option<string>("--synsets") { Description = "Synsets file: line i = \"nXXXXXXXX words\" of class i.", Required = true, HelpName = "FILE" };
        var budgets = new Option<string>("--budgets")
        {
            Description = "FLOPs budgets as fractions of dense, in (0, 1]: a list (0.5,0.7) or start:stop:step.",
            DefaultValueFactory = _ => "0.5,0.6,0.7,0.8,0.9",
            HelpName = "LIST",
        };
        var output = new Option<string>("--out", "-o") { Description = "Output folder (created if missing) for results.csv, results.md, compare.png.", Required = true, HelpName = "DIR" };
        var methods = new Option<string>("--methods")
        {
            Description = $"Methods to compare, comma-separated (dense always runs). Known: {MethodCatalog.DefaultMethods}.",
            DefaultValueFactory = _ => MethodCatalog.DefaultMethods,
            HelpName = "LIST",
        };
        var limit = CommonOptions.IntInRange(new Option<int?>("--limit", "-n") { Description = "Use the first N images of each split.", HelpName = "N" }, 1);
        var workers = CommonOptions.IntInRange(new Option<int>("--threads", "-t")
        {
            Description = $"Workers for decoding, calibration and budget matching, each a single-threaded engine (1..{CommonOptions.MaxThreads}; default: cores). The evaluation pass is always one thread.",
            DefaultValueFactory = _ => Environment.ProcessorCount,
            HelpName = "T",
        }, 1, CommonOptions.MaxThreads);
        var calImages = new Option<string?>("--calibration-images")
        {
            Description = "Calibrate on every image of this folder and evaluate on every image of --images (default: the even/odd split of --images).",
            HelpName = "DIR",
        };
        var calSynsets = new Option<string?>("--calibration-synsets") { Description = "Synsets file for --calibration-images (default: --synsets).", HelpName = "FILE" };
        var rctpThresholds = new Option<string?>("--rctp-thresholds") { Description = "RCTP thresholds file from 'edgevit calibrate' instead of calibrating here.", HelpName = "FILE" };
        var simd = CommonOptions.Simd();
        var json = CommonOptions.Json();

        var precision = new PrecisionOptions().Precision;
        precision.Description = "Engine precision for every method and dense: fp32 (default) or int8 (RCTP is calibrated on it).";
        var command = new Command("compare", "Token-reduction methods against each other and dense at matched FLOPs budgets (accuracy, CI, latency).")
        {
            model, images, synsets, budgets, output, methods, limit, workers, calImages, calSynsets, rctpThresholds, simd, json, precision,
        };
        command.SetAction(parse => Run(stdout, parse.InvocationConfiguration.Error, new CompareArgs(
            parse.GetRequiredValue(model), parse.GetRequiredValue(images), parse.GetRequiredValue(synsets),
            parse.GetValue(budgets) ?? "0.5,0.6,0.7,0.8,0.9", parse.GetRequiredValue(output), parse.GetValue(methods) ?? MethodCatalog.DefaultMethods,
            parse.GetValue(limit), parse.GetValue(workers), parse.GetValue(rctpThresholds), CommonOptions.ParseSimd(parse.GetValue(simd)), parse.GetValue(json))
        {
            Precision = new PrecisionOptions.Choice(parse.GetValue(precision), null),
            CalibrationImages = parse.GetValue(calImages),
            CalibrationSynsets = parse.GetValue(calSynsets),
        }));
        return command;
    }

    public sealed record CompareArgs(string Model, string Images, string Synsets, string Budgets, string Out, string Methods,
        int? Limit, int Workers, string? RctpThresholds, Kernels.Simd.SimdLevel? Simd, bool Json)
    {
        public PrecisionOptions.Choice Precision { get; init; } = PrecisionOptions.Choice.Fp32;
        /// <summary>Separate calibration folder; null = even/odd split of <see cref="Images"/>.</summary>
        public string? CalibrationImages { get; init; }
        public string? CalibrationSynsets { get; init; }
    }

    /// <param name="stderr">Progress (stages, calibration, budget matching, images evaluated), with or without --json;
    /// stdout carries only the results (the table, or --json's one line).</param>
    public static int Run(TextWriter stdout, TextWriter? stderr, CompareArgs a)
    {
        long wallStart = Stopwatch.GetTimestamp();
        var log = ProgressOutput.For(stderr, "compare");

        // Cheap checks first (usage, then files), before the model or any image is loaded.
        var methodNames = MethodCatalog.Parse(a.Methods);
        double[] budgets;
        try { budgets = ThresholdFile.ParseBudgets(a.Budgets).Distinct().Order().ToArray(); }
        catch (ArgumentException ex) { throw new UsageException("--budgets: " + ex.Message); }
        if (a.RctpThresholds is not null && !methodNames.Contains("rctp"))
            throw new UsageException("--rctp-thresholds is only used by the rctp method, which is not in --methods");
        Inputs.RequireFile(a.Model, "model file");
        if (a.RctpThresholds is not null) Inputs.RequireFile(a.RctpThresholds, "thresholds file");
        if (File.Exists(a.Out)) throw new InputException($"--out is a file, not a directory: {a.Out}");
        if (a.CalibrationSynsets is not null && a.CalibrationImages is null)
            throw new UsageException("--calibration-synsets needs --calibration-images DIR");
        bool separate = a.CalibrationImages is not null;
        var calibrationPaths = separate ? ImageFolder.List(a.CalibrationImages!, a.Limit, "all") : ImageFolder.List(a.Images, a.Limit, "even");
        var evalPaths = ImageFolder.List(a.Images, a.Limit, separate ? "all" : "odd");
        var synsetTable = SynsetTable.Load(a.Synsets);
        var calibrationSynsets = a.CalibrationSynsets is null ? synsetTable : SynsetTable.Load(a.CalibrationSynsets);
        if (calibrationSynsets.Count != synsetTable.Count)
            throw new InputException($"{a.CalibrationSynsets} lists {calibrationSynsets.Count} classes but {a.Synsets} lists {synsetTable.Count}");
        var calibrationLabels = calibrationPaths.Select(p => ImageLabels.ClassOf(p, calibrationSynsets)).ToArray();
        var evalLabels = evalPaths.Select(p => ImageLabels.ClassOf(p, synsetTable)).ToArray();

        var weights = Inputs.LoadModel(a.Model);
        var config = weights.Config;
        if (synsetTable.Count != config.Classes)
            throw new InputException($"{a.Synsets} lists {synsetTable.Count} classes but the model has {config.Classes}");
        ThresholdFile? rctpFile = null;
        if (a.RctpThresholds is not null)
        {
            rctpFile = ThresholdFile.Load(a.RctpThresholds);
            rctpFile.EnsureMatches(weights, a.Precision.Name);
        }
        Directory.CreateDirectory(a.Out);

        log($"compare {string.Join(", ", methodNames)} and dense on {config.Describe()} at budgets {string.Join(", ", budgets.Select(b => b.ToString("0.00", CultureInfo.InvariantCulture)))}; " +
            $"{calibrationPaths.Count} calibration ({(separate ? a.CalibrationImages : "even")}) and {evalPaths.Count} evaluation ({(separate ? a.Images : "odd")}) images, {a.Workers} workers");

        // Decode and preprocess both splits once, in parallel: no decoding inside any timed region.
        var clock = Stopwatch.StartNew();
        var calibration = DecodeAll(calibrationPaths, config, a.Workers);
        var evaluation = DecodeAll(evalPaths, config, a.Workers);
        double decodeS = clock.Elapsed.TotalSeconds;
        log($"decoded {calibration.Length + evaluation.Length} images in {decodeS:F1} s");

        clock.Restart();
        var context = new CompareContext
        {
            Weights = weights, CalibrationImages = calibration, CalibrationLabels = calibrationLabels, Budgets = budgets,
            CalibrationSplit = separate ? Path.GetFullPath(a.CalibrationImages!) : "even",
            Workers = a.Workers, Simd = a.Simd, Precision = a.Precision.Value, RctpThresholds = rctpFile, OutDir = a.Out, Log = log,
        };
        var instances = methodNames.Select(name => MethodCatalog.Create(name, context)).ToArray();
        double methodsS = clock.Elapsed.TotalSeconds;

        clock.Restart();
        var matches = BudgetMatcher.Match(weights, instances, budgets, calibration, a.Workers, a.Simd, log, a.Precision.Value);
        double matchS = clock.Elapsed.TotalSeconds;

        clock.Restart();
        var dense = new RunnerOutcomes(MethodCatalog.Dense, null, evaluation.Length);
        var runs = matches.Select(m => (Match: m, Outcomes: new RunnerOutcomes($"{m.Method}@{m.Budget}", m.Setting.Reducer, evaluation.Length))).ToList();
        log($"evaluating {runs.Count + 1} runs per image (round robin, 1 thread)");
        RoundRobinEvaluation.Run(weights, a.Simd, evaluation, evalLabels, [dense, .. runs.Select(r => r.Outcomes)], log, a.Precision.Value);
        double evalS = clock.Elapsed.TotalSeconds;

        var rows = CompareOutputs.BuildRows(dense, runs);
        string csv = Path.Combine(a.Out, "results.csv"), md = Path.Combine(a.Out, "results.md"), png = Path.Combine(a.Out, "compare.png");
        CompareOutputs.WriteCsv(csv, rows);
        string protocol = separate
            ? $"Calibration: all {calibration.Length} images of {a.CalibrationImages}; evaluation: all {evaluation.Length} images of {a.Images}"
            : $"Calibration: {calibration.Length} even-indexed images; evaluation: {evaluation.Length} odd-indexed images";
        string markdown = CompareOutputs.Markdown(rows, protocol);
        File.WriteAllText(md, markdown);
        CompareOutputs.Plot(png, rows);
        double wallS = Inputs.Ms(wallStart, Stopwatch.GetTimestamp()) / 1000;

        var r = JsonOutput.Round;
        var report = new CompareReport(a.Model, config.Describe(), a.Images, calibration.Length, evaluation.Length,
            BudgetMatcher.MeasureSubset(calibration.Length).Length, budgets, [.. methodNames], a.Workers, (a.Simd ?? Kernels.Simd.SimdLevels.Best).ToString(),
            CompareOutputs.BootstrapResamples, rows, csv, md, png, r(decodeS, 2), r(methodsS, 2), r(matchS, 2), r(evalS, 2), r(wallS, 2));
        if (a.Json) JsonOutput.WriteLine(stdout, report, ReportJsonContext.Default.CompareReport);
        else
        {
            stdout.WriteLine();
            stdout.Write(markdown);
            stdout.WriteLine();
            stdout.WriteLine($"wrote {csv}, {md}, {png}");
            stdout.WriteLine($"time        decode {decodeS:F1} s, methods {methodsS:F1} s, budget matching {matchS:F1} s, evaluation {evalS:F1} s, total {wallS:F1} s");
        }
        return ExitCodes.Ok;
    }

    private static float[][] DecodeAll(IReadOnlyList<string> paths, Kernels.Model.VitConfig config, int workers)
    {
        var result = new float[paths.Count][];
        var options = Inputs.PreprocessFor(config);
        Parallel.For(0, paths.Count, new ParallelOptions { MaxDegreeOfParallelism = workers },
            () => new ImagePreprocessor(options),
            (i, _, pre) =>
            {
                var chw = new float[pre.OutputLength];
                Inputs.LoadImage(paths[i], pre, chw);
                result[i] = chw;
                return pre;
            }, _ => { });
        return result;
    }
}
