using System.CommandLine;
using System.Diagnostics;
using EdgeViT.Host.Evaluation;
using EdgeViT.Host.Output;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Imaging;

namespace EdgeViT.Host.Commands;

/// <summary>
/// <c>edgevit eval --model FILE --images DIR --synsets FILE [--limit N]</c>: top-1/top-5 accuracy over a labelled
/// folder (labels from the file-name synset prefix) and per-image timing of the engine's Infer call.
/// </summary>
public static class EvalCommand
{
    public static Command Create(TextWriter stdout)
    {
        var model = CommonOptions.Model("Model weights (.safetensors or .onnx).");
        var images = new Option<string>("--images")
        {
            Description = "Folder of images named <synset>_<words>.<ext>, evaluated in file-name order.",
            Required = true,
            HelpName = "DIR",
        };
        var synsets = new Option<string>("--synsets")
        {
            Description = "Synsets file: line i = \"nXXXXXXXX words\" of class i.",
            Required = true,
            HelpName = "FILE",
        };
        var limit = CommonOptions.IntInRange(new Option<int?>("--limit", "-n")
        {
            Description = "Evaluate only the first N images.",
            HelpName = "N",
        }, 1);
        var threads = CommonOptions.Threads();
        var prefetch = CommonOptions.IntInRange(new Option<int>("--prefetch")
        {
            Description = "Images decoded ahead on a background thread while the engine runs (0 = decode inline).",
            DefaultValueFactory = _ => 2,
            HelpName = "N",
        }, 0, 64);
        var simd = CommonOptions.Simd();
        var json = CommonOptions.Json();
        var split = CommonOptions.Split();
        var predictions = new Option<string?>("--predictions")
        {
            Description = "Also write image,label,top1 per image to this CSV (for paired comparisons of two runs).",
            HelpName = "FILE",
        };
        var logitsOut = new Option<string?>("--logits")
        {
            Description = "Also write every image's logits to this file: float32 little-endian, images x classes, in --predictions order (for KL and agreement against another run).",
            HelpName = "FILE",
        };
        var onnxRuntime = new Option<string?>("--onnxruntime")
        {
            Description = "Evaluate ONNX Runtime running this .onnx (e.g. the int8 graph of 'quantize --onnx-out') instead of EdgeViT, on the same images and preprocessing.",
            HelpName = "FILE",
        };
        var pruning = new PruningOptions();

        var command = new Command("eval", "Top-1/top-5 accuracy and speed over a labelled image folder.")
        {
            model, images, synsets, limit, split, threads, prefetch, simd, json, predictions, logitsOut,
        };
#if !EDGEVIT_DEVICE
        command.Add(onnxRuntime);
#endif
        pruning.AddTo(command);
        var precision = new PrecisionOptions();
        precision.AddTo(command);
        command.SetAction(parse => Run(stdout, parse.InvocationConfiguration.Error, new EvalArgs(
            parse.GetRequiredValue(model), parse.GetRequiredValue(images), parse.GetRequiredValue(synsets), parse.GetValue(limit),
            parse.GetValue(threads), parse.GetValue(prefetch), CommonOptions.ParseSimd(parse.GetValue(simd)), parse.GetValue(json))
        {
            Split = parse.GetValue(split) ?? "all",
            Pruning = pruning.Read(parse),
            Precision = precision.Read(parse),
            Predictions = parse.GetValue(predictions),
            Logits = parse.GetValue(logitsOut),
            OnnxRuntime = parse.GetValue(onnxRuntime),
        }));
        return command;
    }

    /// <summary>Another engine evaluated on the same preprocessed tensors (--onnxruntime).</summary>
    private delegate void Baseline(ReadOnlySpan<float> chw, Span<float> logits);

    public sealed record EvalArgs(string Model, string Images, string Synsets, int? Limit, int Threads, int Prefetch,
        Kernels.Simd.SimdLevel? Simd, bool Json)
    {
        public string Split { get; init; } = "all";
        public PruningOptions.Choice Pruning { get; init; } = new(null, null, null);
        public PrecisionOptions.Choice Precision { get; init; } = PrecisionOptions.Choice.Fp32;
        /// <summary>CSV of image, label, top-1 per image (paired comparisons of two runs).</summary>
        public string? Predictions { get; init; }
        /// <summary>Binary float32 logits, images x classes.</summary>
        public string? Logits { get; init; }
        /// <summary>Run ONNX Runtime on this .onnx instead of EdgeViT (the model file still gives config and labels).</summary>
        public string? OnnxRuntime { get; init; }
    }

    /// <param name="stderr">Progress every 100 images (running top-1, elapsed, ETA), with or without --json; stdout carries the result.</param>
    public static int Run(TextWriter stdout, TextWriter? stderr, EvalArgs a)
    {
        long wallStart = Stopwatch.GetTimestamp();

        // Everything that can be checked before loading the model comes first: the folder, the synsets, every label.
        Inputs.RequireFile(a.Model, "model file");
        a.Pruning.Validate();
        a.Precision.Validate();
        if (a.OnnxRuntime is not null)
        {
            Inputs.RequireFile(a.OnnxRuntime, "ONNX model");
            if (a.Pruning.Thresholds is not null || a.Precision.Requested is not null || a.Precision.Quantized is not null)
                throw new UsageException("--onnxruntime evaluates the given graph as it is: no --thresholds, --precision or --quantized");
        }
        foreach (var outFile in new[] { a.Predictions, a.Logits })
        {
            string? dir = outFile is null ? null : Path.GetDirectoryName(Path.GetFullPath(outFile));
            if (dir is not null && !Directory.Exists(dir)) throw new InputException($"output directory not found: {dir}");
        }
        var paths = ImageFolder.List(a.Images, a.Limit, a.Split);
        var synsets = SynsetTable.Load(a.Synsets);
        var labels = paths.Select(p => ImageLabels.ClassOf(p, synsets)).ToArray();

        var weights = Inputs.LoadModel(a.Model);
        var config = weights.Config;
        if (synsets.Count != config.Classes)
            throw new InputException($"{a.Synsets} lists {synsets.Count} classes but the model has {config.Classes}");

        var set = a.Pruning.Resolve(weights, a.Precision.Name);
        float[] thresholds = set?.Thresholds ?? [];
        var rule = set?.Rule ?? EdgeViT.Kernels.Reduction.ThresholdRule.Raw;
        var tokensKept = new double[config.Depth];
        using var engine = new VitEngine(weights, a.Precision.Engine(a.Threads, a.Simd, a.OnnxRuntime is null ? a.Precision.Load(weights) : null));
#if EDGEVIT_DEVICE
        Baseline? baseline = null; // the device build has no ONNX Runtime (and no --onnxruntime option)
#else
        using var ort = a.OnnxRuntime is null ? null : new Baselines.OnnxRuntimeRunner(a.OnnxRuntime, a.Threads);
        if (ort is not null && (ort.InputLength != config.InChannels * config.ImageSize * config.ImageSize || ort.OutputLength != config.Classes))
            throw new InputException($"{a.OnnxRuntime} takes {Baselines.OnnxRuntimeRunner.Shape(ort.InputShape)} -> {Baselines.OnnxRuntimeRunner.Shape(ort.OutputShape)}, but {Path.GetFileName(a.Model)} is {config.Describe()}");
        Baseline? baseline = ort is null ? null : ort.Run;
#endif
        var preprocessor = new ImagePreprocessor(Inputs.PreprocessFor(config));
        var logits = new float[config.Classes];
        var best = new int[Math.Min(5, config.Classes)];
        int n = paths.Count, correct1 = 0, correct5 = 0;
        var inferMs = new double[n];
        var decodeMs = new double[n];
        var preprocessMs = new double[n];
        var predicted = new int[n];
        var imageGflops = new double[n];
        double gflopsSum = 0;
        using var logitsFile = a.Logits is null ? null : new BinaryWriter(File.Create(a.Logits));

        if (!a.Json)
            stdout.WriteLine($"model {a.Model} ({config.Describe()}), {(baseline is null ? $"simd {engine.Simd}, {a.Precision.Name}" : $"ONNX Runtime on {a.OnnxRuntime}")}, threads {a.Threads}, {n} images ({a.Split})" +
                (set is null ? ", dense" : $", RCTP budget {set.Budget:0.00} from {a.Pruning.Thresholds}"));

        using (var pipeline = new PreprocessPipeline(paths, preprocessor, a.Prefetch))
        {
            var progress = ProgressOutput.For(stderr, "eval");
            long loopStart = Stopwatch.GetTimestamp();
            for (int i = 0; i < n; i++)
            {
                var item = pipeline.Next();
                long t0 = Stopwatch.GetTimestamp();
                if (baseline is not null)
                {
                    baseline(item.Chw, logits);
                    inferMs[i] = Inputs.Ms(t0, Stopwatch.GetTimestamp());
                }
                else
                {
                    var stats = engine.Infer(item.Chw, logits, thresholds, rule);
                    inferMs[i] = Inputs.Ms(t0, Stopwatch.GetTimestamp());
                    gflopsSum += stats.GFlops;
                    imageGflops[i] = stats.GFlops;
                    for (int l = 0; l < config.Depth; l++) tokensKept[l] += stats.TokensPerBlock[l];
                }
                decodeMs[i] = item.DecodeMs;
                preprocessMs[i] = item.PreprocessMs;
                pipeline.Return(item);

                if (logitsFile is not null) foreach (float v in logits) logitsFile.Write(v);
                int k = Ranking.TopK(logits, best);
                predicted[i] = k > 0 ? best[0] : -1;
                if (k > 0 && best[0] == labels[i]) correct1++;
                if (best.AsSpan(0, k).Contains(labels[i])) correct5++;

                if ((i + 1) % 100 == 0 || i + 1 == n)
                    progress($"{i + 1}/{n} images, top-1 {100.0 * correct1 / (i + 1):F2} %, top-5 {100.0 * correct5 / (i + 1):F2} %, {ProgressOutput.ElapsedAndEta(loopStart, i + 1, n)}");
            }
        }

        double wall = Inputs.Ms(wallStart, Stopwatch.GetTimestamp()) / 1000.0;
        var r = JsonOutput.Round;
        var report = new EvalReport(
            a.Model, config.Describe(), a.Images, a.Synsets, a.Threads, engine.Simd.ToString(), a.Prefetch,
            Images: n,
            Top1: r(100.0 * correct1 / n, 3),
            Top5: r(100.0 * correct5 / n, 3),
            MsMedian: r(Statistics.Median(inferMs), 4),
            MsP10: r(Statistics.Percentile(inferMs, 10), 4),
            MsP90: r(Statistics.Percentile(inferMs, 90), 4),
            MsMean: r(inferMs.Average(), 4),
            DecodeMsMedian: r(Statistics.Median(decodeMs), 4),
            PreprocessMsMedian: r(Statistics.Median(preprocessMs), 4),
            WallS: r(wall, 3),
            ImagesPerS: r(n / wall, 3),
            GflopsMean: r(gflopsSum / n, 6),
            Split: a.Split,
            Budget: set?.Budget,
            TokensKeptPerBlock: tokensKept.Select(t => r(t / n, 2)).ToArray()) { Precision = a.OnnxRuntime is null ? a.Precision.Name : "onnxruntime:" + Path.GetFileName(a.OnnxRuntime) };
        if (a.Predictions is not null) WritePredictions(a.Predictions, paths, labels, predicted, imageGflops);

        if (a.Json)
        {
            JsonOutput.WriteLine(stdout, report, ReportJsonContext.Default.EvalReport);
        }
        else
        {
            stdout.WriteLine($"images      {report.Images}");
            stdout.WriteLine($"top-1       {report.Top1:F2} %");
            stdout.WriteLine($"top-5       {report.Top5:F2} %");
            stdout.WriteLine($"infer       {report.MsMedian:F2} ms median per image (p10 {report.MsP10:F2}, p90 {report.MsP90:F2}), {report.GflopsMean:F3} GFLOPs mean");
            stdout.WriteLine($"decode      {report.DecodeMsMedian:F2} ms median, preprocess {report.PreprocessMsMedian:F2} ms median");
            stdout.WriteLine($"wall        {report.WallS:F1} s ({report.ImagesPerS:F1} images/s)");
            stdout.WriteLine($"tokens      {string.Join(" ", report.TokensKeptPerBlock!.Select(t => t.ToString("F0")))} kept per block (mean)");
        }
        return ExitCodes.Ok;
    }

    private static void WritePredictions(string path, IReadOnlyList<string> paths, int[] labels, int[] predicted, double[] gflops)
    {
        using var w = new StreamWriter(path);
        w.WriteLine("image,label,top1,gflops");
        for (int i = 0; i < paths.Count; i++)
            w.WriteLine($"{Path.GetFileName(paths[i])},{labels[i]},{predicted[i]},{gflops[i].ToString("0.######", System.Globalization.CultureInfo.InvariantCulture)}");
    }
}
