using System.CommandLine;
using System.Diagnostics;
using EdgeViT.Host.Baselines;
using EdgeViT.Host.Evaluation;
using EdgeViT.Host.Output;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Model;

namespace EdgeViT.Host.Commands;

/// <summary>
/// <c>edgevit bench --model FILE [--onnx FILE] [--threads T] [--iterations N] [--warmup W] [--image FILE]</c>:
/// EdgeViT against ONNX Runtime on the same input and thread count, timed alternately, plus a logit check.
/// </summary>
public static class BenchCommand
{
    public const int RandomInputSeed = 20240601;

    public static Command Create(TextWriter stdout)
    {
        var model = CommonOptions.Model("EdgeViT weights (.safetensors or .onnx); ONNX Runtime runs the .onnx (this file, or the sibling with the same stem).");
        var onnx = new Option<string?>("--onnx")
        {
            Description = "The .onnx file ONNX Runtime runs (default: --model if .onnx, else <model stem>.onnx beside it).",
            HelpName = "FILE",
        };
        var threads = CommonOptions.Threads();
        var iterations = CommonOptions.IntInRange(new Option<int>("--iterations", "-i")
        {
            Description = "Timed runs of each engine.",
            DefaultValueFactory = _ => 100,
            HelpName = "N",
        }, 1, 1_000_000);
        var warmup = CommonOptions.IntInRange(new Option<int>("--warmup", "-w")
        {
            Description = "Untimed runs of each engine first.",
            DefaultValueFactory = _ => 10,
            HelpName = "W",
        }, 0, 1_000_000);
        var image = new Option<string?>("--image")
        {
            Description = "Image to use as the input (default: deterministic random normalised input).",
            HelpName = "FILE",
        };
        var images = new Option<string?>("--images")
        {
            Description = "Folder of images to cycle through as inputs (pruned speed depends on the image); see --split, --limit.",
            HelpName = "DIR",
        };
        var limit = CommonOptions.IntInRange(new Option<int>("--limit", "-n")
        {
            Description = "With --images: how many images to cycle through.",
            DefaultValueFactory = _ => 32,
            HelpName = "N",
        }, 1);
        var split = CommonOptions.Split();
        var simd = CommonOptions.Simd();
        var json = CommonOptions.Json();

        var command = new Command("bench", "Time EdgeViT (dense or RCTP-pruned) against ONNX Runtime (alternating runs, same inputs and threads).")
        {
            model, onnx, threads, iterations, warmup, image, images, limit, split, simd, json,
        };
        var pruning = new PruningOptions();
        pruning.AddTo(command);
        command.SetAction(parse => Run(stdout, new BenchArgs(
            parse.GetRequiredValue(model), parse.GetValue(onnx), parse.GetValue(threads), parse.GetValue(iterations),
            parse.GetValue(warmup), parse.GetValue(image), CommonOptions.ParseSimd(parse.GetValue(simd)), parse.GetValue(json))
        {
            Images = parse.GetValue(images), Limit = parse.GetValue(limit), Split = parse.GetValue(split) ?? "all", Pruning = pruning.Read(parse),
        }));
        return command;
    }

    public sealed record BenchArgs(string Model, string? Onnx, int Threads, int Iterations, int Warmup, string? Image,
        Kernels.Simd.SimdLevel? Simd, bool Json)
    {
        public string? Images { get; init; }
        public int Limit { get; init; } = 32;
        public string Split { get; init; } = "all";
        public PruningOptions.Choice Pruning { get; init; } = new(null, null, null);
    }

    public static int Run(TextWriter stdout, BenchArgs a)
    {
        Inputs.RequireFile(a.Model, "model file");
        string onnxPath = a.Onnx ?? OnnxRuntimeRunner.FindOnnxFor(a.Model)
            ?? throw new InputException($"no ONNX model for ONNX Runtime: {Path.ChangeExtension(a.Model, ".onnx")} does not exist (pass --onnx FILE)");
        Inputs.RequireFile(onnxPath, "ONNX model");
        if (a.Image is not null) Inputs.RequireFile(a.Image, "image");
        if (a.Image is not null && a.Images is not null) throw new UsageException("give either --image or --images, not both");
        a.Pruning.Validate();
        var paths = a.Images is null ? null : ImageFolder.List(a.Images, a.Limit, a.Split);

        var weights = Inputs.LoadModel(a.Model);
        var config = weights.Config;
        var set = a.Pruning.Resolve(weights);
        using var runner = new OnnxRuntimeRunner(onnxPath, a.Threads);
        var preprocessor = new ImagePreprocessor(Inputs.PreprocessFor(config));
        if (runner.InputLength != preprocessor.OutputLength || runner.OutputLength != config.Classes)
            throw new InputException($"{Path.GetFileName(onnxPath)} takes {OnnxRuntimeRunner.Shape(runner.InputShape)} -> {OnnxRuntimeRunner.Shape(runner.OutputShape)}, " +
                $"but {Path.GetFileName(a.Model)} is {config.Describe()}");

        // Inputs: every image of --images (cycled), one --image, or deterministic random input.
        var inputs = new List<float[]>();
        string inputName;
        if (paths is not null)
        {
            foreach (var path in paths) { var x = new float[preprocessor.OutputLength]; Inputs.LoadImage(path, preprocessor, x); inputs.Add(x); }
            inputName = $"{paths.Count} images of {a.Images} ({a.Split})";
        }
        else if (a.Image is not null)
        {
            var x = new float[preprocessor.OutputLength];
            Inputs.LoadImage(a.Image, preprocessor, x);
            inputs.Add(x);
            inputName = a.Image;
        }
        else
        {
            var x = new float[preprocessor.OutputLength];
            FillRandomNormalised(x, preprocessor.Options, RandomInputSeed);
            inputs.Add(x);
            inputName = $"random({RandomInputSeed})";
        }

        float[] thresholds = set?.Thresholds ?? [];
        var rule = set?.Rule ?? EdgeViT.Kernels.Reduction.ThresholdRule.Raw;
        using var engine = new VitEngine(weights, new EngineOptions(a.Threads, a.Simd));
        // With pruning, the dense engine runs in the same alternation: pruned vs dense on one clock.
        using var dense = set is null ? null : new VitEngine(weights, new EngineOptions(a.Threads, a.Simd));
        var logits = new float[config.Classes];

        if (!a.Json)
            stdout.WriteLine($"model {a.Model} ({config.Describe()}) vs ONNX Runtime on {onnxPath}; simd {engine.Simd}, threads {a.Threads}, input {inputName}" +
                (set is null ? "" : $"; RCTP budget {set.Budget:0.00}"));

        // Warm everything up (JIT, caches, ORT's arena), then check dense EdgeViT and ORT agree on the first input.
        for (int i = 0; i < a.Warmup; i++)
        {
            var x = inputs[i % inputs.Count];
            engine.Infer(x, logits, thresholds, rule); dense?.Infer(x, logits); x.CopyTo(runner.Input); runner.Run();
        }
        inputs[0].CopyTo(runner.Input);
        (dense ?? engine).Infer(inputs[0], logits);
        runner.Run();
        double maxDiff = MaxAbsDifference(logits, runner.Output);
        int edgeArgmax = Ranking.ArgMax(logits), ortArgmax = Ranking.ArgMax(runner.Output);

        // Alternate edgevit[, dense], ort, ... so drift (thermal, other load) hits all alike.
        var edgeMs = new double[a.Iterations];
        var denseMs = new double[a.Iterations];
        var ortMs = new double[a.Iterations];
        var ratios = new double[a.Iterations];
        var prunedVsDense = new double[a.Iterations];
        double gflopsSum = 0;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        for (int i = 0; i < a.Iterations; i++)
        {
            var x = inputs[i % inputs.Count];
            x.CopyTo(runner.Input);
            long t0 = Stopwatch.GetTimestamp();
            gflopsSum += engine.Infer(x, logits, thresholds, rule).GFlops;
            long t1 = Stopwatch.GetTimestamp();
            dense?.Infer(x, logits);
            long t2 = Stopwatch.GetTimestamp();
            runner.Run();
            long t3 = Stopwatch.GetTimestamp();
            edgeMs[i] = Inputs.Ms(t0, t1);
            denseMs[i] = Inputs.Ms(t1, t2);
            ortMs[i] = Inputs.Ms(t2, t3);
            ratios[i] = ortMs[i] > 0 ? edgeMs[i] / ortMs[i] : double.PositiveInfinity;
            prunedVsDense[i] = denseMs[i] > 0 ? edgeMs[i] / denseMs[i] : double.NaN;
        }
        double gflops = gflopsSum / a.Iterations;

        var r = JsonOutput.Round;
        var report = new BenchReport(
            a.Model, onnxPath, config.Describe(), inputName, a.Threads, engine.Simd.ToString(), a.Iterations, a.Warmup,
            EdgevitMs: r(Statistics.Median(edgeMs), 4),
            EdgevitP10Ms: r(Statistics.Percentile(edgeMs, 10), 4),
            EdgevitP90Ms: r(Statistics.Percentile(edgeMs, 90), 4),
            OnnxruntimeMs: r(Statistics.Median(ortMs), 4),
            OnnxruntimeP10Ms: r(Statistics.Percentile(ortMs, 10), 4),
            OnnxruntimeP90Ms: r(Statistics.Percentile(ortMs, 90), 4),
            Ratio: r(Statistics.Median(ratios), 4),
            RatioP10: r(Statistics.Percentile(ratios, 10), 4),
            RatioP90: r(Statistics.Percentile(ratios, 90), 4),
            MaxAbsLogitDiff: maxDiff,
            ArgmaxMatch: edgeArgmax == ortArgmax,
            EdgevitArgmax: edgeArgmax,
            OnnxruntimeArgmax: ortArgmax,
            Gflops: r(gflops, 6),
            Budget: set?.Budget,
            EdgevitDenseMs: dense is null ? null : r(Statistics.Median(denseMs), 4),
            PrunedVsDense: dense is null ? null : r(Statistics.Median(prunedVsDense), 4),
            DenseGflops: dense is null ? null : r(new Kernels.Rctp.FlopsModel(config).Dense / 1e9, 6),
            Images: inputs.Count);

        if (a.Json)
        {
            JsonOutput.WriteLine(stdout, report, ReportJsonContext.Default.BenchReport);
        }
        else
        {
            stdout.WriteLine($"edgevit      {report.EdgevitMs,9:F3} ms median  (p10 {report.EdgevitP10Ms:F3}, p90 {report.EdgevitP90Ms:F3}), {report.Gflops:F3} GFLOPs");
            stdout.WriteLine($"onnxruntime  {report.OnnxruntimeMs,9:F3} ms median  (p10 {report.OnnxruntimeP10Ms:F3}, p90 {report.OnnxruntimeP90Ms:F3})");
            if (dense is not null)
                stdout.WriteLine($"dense        {report.EdgevitDenseMs,9:F3} ms median; pruned/dense {report.PrunedVsDense:F3} (median of paired ratios), {report.DenseGflops:F3} GFLOPs dense");
            stdout.WriteLine($"ratio        {report.Ratio,9:F3} edgevit/ort, median of {a.Iterations} pairs (p10 {report.RatioP10:F3}, p90 {report.RatioP90:F3})");
            stdout.WriteLine($"logits       max |diff| {report.MaxAbsLogitDiff:G4}, argmax {edgeArgmax} vs {ortArgmax}{(report.ArgmaxMatch ? "" : "  MISMATCH")}");
        }
        return ExitCodes.Ok;
    }

    /// <summary>Like a normalised photo: uniform [0,1) pixels through the preprocessing's mean/std, per channel (CHW).</summary>
    public static void FillRandomNormalised(Span<float> chw, PreprocessOptions options, int seed)
    {
        var rng = new Random(seed);
        int plane = chw.Length / 3;
        for (int c = 0; c < 3; c++)
        {
            float mean = options.Mean[c], std = options.Std[c];
            var channel = chw.Slice(c * plane, plane);
            for (int i = 0; i < channel.Length; i++) channel[i] = ((float)rng.NextDouble() - mean) / std;
        }
    }

    public static double MaxAbsDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException("lengths differ");
        double max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            if (double.IsNaN(d)) return double.NaN;
            if (d > max) max = d;
        }
        return max;
    }
}
