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
        var profile = new Option<bool>("--profile")
        {
            Description = "After the timed runs, run EdgeViT alone as many times again and print its mean ms per forward stage.",
        };
        var split = CommonOptions.Split();
        var simd = CommonOptions.Simd();
        var json = CommonOptions.Json();

        var command = new Command("bench", "Time EdgeViT (dense or RCTP-pruned) against ONNX Runtime (alternating runs, same inputs and threads).")
        {
            model, onnx, threads, iterations, warmup, image, images, limit, split, simd, json, profile,
        };
        var pruning = new PruningOptions();
        pruning.AddTo(command);
        var precision = new PrecisionOptions();
        precision.AddTo(command);
        command.SetAction(parse => Run(stdout, new BenchArgs(
            parse.GetRequiredValue(model), parse.GetValue(onnx), parse.GetValue(threads), parse.GetValue(iterations),
            parse.GetValue(warmup), parse.GetValue(image), CommonOptions.ParseSimd(parse.GetValue(simd)), parse.GetValue(json))
        {
            Images = parse.GetValue(images), Limit = parse.GetValue(limit), Split = parse.GetValue(split) ?? "all", Pruning = pruning.Read(parse),
            Precision = precision.Read(parse),
            Profile = parse.GetValue(profile),
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
        public PrecisionOptions.Choice Precision { get; init; } = PrecisionOptions.Choice.Fp32;
        public bool Profile { get; init; }
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
        a.Precision.Validate();
        var paths = a.Images is null ? null : ImageFolder.List(a.Images, a.Limit, a.Split);

        var weights = Inputs.LoadModel(a.Model);
        var config = weights.Config;
        var set = a.Pruning.Resolve(weights, a.Precision.Name);
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

        if (a.Precision.Value == Precision.Int8) return RunInt8(stdout, a, weights, set, runner, onnxPath, inputs, inputName);

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
        var profile = a.Profile ? ProfileStages(engine, inputs, logits, thresholds, a.Iterations) : null;

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
            Images: inputs.Count)
        {
            ProfileMs = profile?.ToDictionary(p => p.Stage, p => r(p.Ms, 4)),
        };

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
            if (profile is not null)
            {
                double total = profile.Sum(p => p.Ms);
                stdout.WriteLine($"profile      EdgeViT alone, mean of {a.Iterations} passes: {total:F3} ms");
                foreach (var (stage, ms) in profile)
                    stdout.WriteLine($"  {stage,-12} {ms,9:F3} ms  {100 * ms / total,5:F1} %");
            }
        }
        return ExitCodes.Ok;
    }

    /// <summary>
    /// --precision int8: EdgeViT int8 (pruned with --thresholds, then also dense), EdgeViT fp32, ONNX Runtime int8 (a
    /// quantize_dynamic-style graph written from the same model to a temp file) and ONNX Runtime fp32, in turn on
    /// every iteration; each ratio is the median of the per-iteration ratios.
    /// </summary>
    private static int RunInt8(TextWriter stdout, BenchArgs a, VitWeights weights, Kernels.Rctp.ThresholdSet? set,
        OnnxRuntimeRunner ortFp32, string onnxPath, List<float[]> inputs, string inputName)
    {
        var config = weights.Config;
        var quantized = a.Precision.Load(weights)!;
        string onnxInt8 = Path.Combine(Path.GetTempPath(), $"edgevit-bench-int8-{Environment.ProcessId}.onnx");
        try
        {
            Kernels.Model.OnnxGraphWriter.Write(onnxInt8, weights, quantized);
            using var ortInt8 = new OnnxRuntimeRunner(onnxInt8, a.Threads);
            float[] thresholds = set?.Thresholds ?? [];
            var rule = set?.Rule ?? EdgeViT.Kernels.Reduction.ThresholdRule.Raw;
            using var int8 = new VitEngine(weights, a.Precision.Engine(a.Threads, a.Simd, quantized));
            using var int8Dense = set is null ? null : new VitEngine(weights, a.Precision.Engine(a.Threads, a.Simd, quantized));
            using var fp32 = new VitEngine(weights, new EngineOptions(a.Threads, a.Simd));
            var logits = new float[config.Classes];
            var fp32Logits = new float[config.Classes];

            if (!a.Json)
                stdout.WriteLine($"model {a.Model} ({config.Describe()}): EdgeViT int8 ({int8.Int8Kernel}) and fp32 vs ONNX Runtime int8 and fp32; " +
                    $"simd {int8.Simd}, threads {a.Threads}, input {inputName}" + (set is null ? "" : $"; RCTP budget {set.Budget:0.00}"));

            void RunOrt(OnnxRuntimeRunner r, float[] x) { x.CopyTo(r.Input); r.Run(); }
            for (int i = 0; i < a.Warmup; i++)
            {
                var x = inputs[i % inputs.Count];
                int8.Infer(x, logits, thresholds, rule); int8Dense?.Infer(x, logits); fp32.Infer(x, logits); RunOrt(ortInt8, x); RunOrt(ortFp32, x);
            }
            // Logit checks on the first input: EdgeViT fp32 against ORT fp32, EdgeViT int8 (dense) against ORT int8.
            (int8Dense ?? int8).Infer(inputs[0], logits);
            fp32.Infer(inputs[0], fp32Logits);
            RunOrt(ortFp32, inputs[0]);
            double maxDiff = MaxAbsDifference(fp32Logits, ortFp32.Output);
            int edgeArgmax = Ranking.ArgMax(fp32Logits), ortArgmax = Ranking.ArgMax(ortFp32.Output);
            RunOrt(ortInt8, inputs[0]);
            double maxDiffInt8 = MaxAbsDifference(logits, ortInt8.Output);
            bool argmaxInt8 = Ranking.ArgMax(logits) == Ranking.ArgMax(ortInt8.Output);

            int n = a.Iterations;
            var ms = new double[5][]; // int8, int8 dense, fp32, ORT int8, ORT fp32
            for (int e = 0; e < ms.Length; e++) ms[e] = new double[n];
            double gflopsSum = 0;
            GC.Collect();
            GC.WaitForPendingFinalizers();
            for (int i = 0; i < n; i++)
            {
                var x = inputs[i % inputs.Count];
                long t0 = Stopwatch.GetTimestamp();
                gflopsSum += int8.Infer(x, logits, thresholds, rule).GFlops;
                long t1 = Stopwatch.GetTimestamp();
                int8Dense?.Infer(x, logits);
                long t2 = Stopwatch.GetTimestamp();
                fp32.Infer(x, logits);
                long t3 = Stopwatch.GetTimestamp();
                RunOrt(ortInt8, x);
                long t4 = Stopwatch.GetTimestamp();
                RunOrt(ortFp32, x);
                long t5 = Stopwatch.GetTimestamp();
                ms[0][i] = Inputs.Ms(t0, t1); ms[1][i] = Inputs.Ms(t1, t2); ms[2][i] = Inputs.Ms(t2, t3);
                ms[3][i] = Inputs.Ms(t3, t4); ms[4][i] = Inputs.Ms(t4, t5);
            }
            var profile = a.Profile ? ProfileStages(int8, inputs, logits, thresholds, n) : null;
            var r = JsonOutput.Round;
            double Med(int e) => r(Statistics.Median(ms[e]), 4);
            double Ratio(int num, int den) => r(Statistics.Median(ms[num].Zip(ms[den], (p, q) => q > 0 ? p / q : double.PositiveInfinity).ToArray()), 4);
            double RatioP(int num, int den, double pct) => r(Statistics.Percentile(ms[num].Zip(ms[den], (p, q) => q > 0 ? p / q : double.PositiveInfinity).ToArray(), pct), 4);
            bool pruned = int8Dense is not null;
            var report = new BenchReport(
                a.Model, onnxPath, config.Describe(), inputName, a.Threads, int8.Simd.ToString(), n, a.Warmup,
                EdgevitMs: Med(0),
                EdgevitP10Ms: r(Statistics.Percentile(ms[0], 10), 4),
                EdgevitP90Ms: r(Statistics.Percentile(ms[0], 90), 4),
                OnnxruntimeMs: Med(4),
                OnnxruntimeP10Ms: r(Statistics.Percentile(ms[4], 10), 4),
                OnnxruntimeP90Ms: r(Statistics.Percentile(ms[4], 90), 4),
                Ratio: Ratio(0, 4), RatioP10: RatioP(0, 4, 10), RatioP90: RatioP(0, 4, 90),
                MaxAbsLogitDiff: maxDiff, ArgmaxMatch: edgeArgmax == ortArgmax, EdgevitArgmax: edgeArgmax, OnnxruntimeArgmax: ortArgmax,
                Gflops: r(gflopsSum / n, 6),
                Budget: set?.Budget,
                EdgevitDenseMs: pruned ? Med(1) : null,
                PrunedVsDense: pruned ? Ratio(0, 1) : null,
                DenseGflops: pruned ? r(new Kernels.Rctp.FlopsModel(config).Dense / 1e9, 6) : null,
                Images: inputs.Count)
            {
                Precision = "int8",
                EdgevitFp32Ms = Med(2),
                OnnxruntimeInt8Ms = Med(3),
                OnnxruntimeFp32Ms = Med(4),
                RatioVsFp32 = Ratio(0, 2),
                RatioVsOrtInt8 = Ratio(0, 3),
                RatioVsOrtFp32 = Ratio(0, 4),
                DenseRatioVsFp32 = pruned ? Ratio(1, 2) : null,
                DenseRatioVsOrtInt8 = pruned ? Ratio(1, 3) : null,
                DenseRatioVsOrtFp32 = pruned ? Ratio(1, 4) : null,
                MaxAbsLogitDiffInt8 = maxDiffInt8,
                ArgmaxMatchInt8 = argmaxInt8,
                OnnxInt8 = "(temporary, written from the model by the quantize_dynamic pattern)",
                ProfileMs = profile?.ToDictionary(p => p.Stage, p => r(p.Ms, 4)),
            };
            if (a.Json) JsonOutput.WriteLine(stdout, report, ReportJsonContext.Default.BenchReport);
            else
            {
                string label = pruned ? "edgevit int8 pruned" : "edgevit int8";
                stdout.WriteLine($"{label,-22}{report.EdgevitMs,9:F3} ms median (p10 {report.EdgevitP10Ms:F3}, p90 {report.EdgevitP90Ms:F3}), {report.Gflops:F3} GFLOPs");
                if (pruned) stdout.WriteLine($"{"edgevit int8 dense",-22}{report.EdgevitDenseMs,9:F3} ms median; pruned/dense {report.PrunedVsDense:F3}");
                stdout.WriteLine($"{"edgevit fp32",-22}{report.EdgevitFp32Ms,9:F3} ms median");
                stdout.WriteLine($"{"onnxruntime int8",-22}{report.OnnxruntimeInt8Ms,9:F3} ms median");
                stdout.WriteLine($"{"onnxruntime fp32",-22}{report.OnnxruntimeFp32Ms,9:F3} ms median");
                stdout.WriteLine($"{"ratios",-22}vs edgevit fp32 {report.RatioVsFp32:F3}, vs ort int8 {report.RatioVsOrtInt8:F3}, vs ort fp32 {report.RatioVsOrtFp32:F3} (medians of {n} paired ratios)");
                if (pruned) stdout.WriteLine($"{"dense int8 ratios",-22}vs edgevit fp32 {report.DenseRatioVsFp32:F3}, vs ort int8 {report.DenseRatioVsOrtInt8:F3}, vs ort fp32 {report.DenseRatioVsOrtFp32:F3}");
                stdout.WriteLine($"{"logits",-22}fp32 vs ort fp32 max |diff| {maxDiff:G4}; int8 vs ort int8 max |diff| {maxDiffInt8:G4}, argmax {(argmaxInt8 ? "agrees" : "DIFFERS")}");
                if (profile is not null)
                {
                    stdout.WriteLine($"{"profile",-22}EdgeViT int8 alone, mean of {n} passes: {profile.Sum(p => p.Ms):F3} ms");
                    foreach (var (stage, stageMs) in profile) stdout.WriteLine($"  {stage,-20}{stageMs,9:F3} ms");
                }
            }
            return ExitCodes.Ok;
        }
        finally
        {
            if (File.Exists(onnxInt8)) File.Delete(onnxInt8);
        }
    }

    /// <summary>Mean ms per forward stage over n more passes of the engine alone (after the alternated timing).</summary>
    private static List<(string Stage, double Ms)> ProfileStages(VitEngine engine, List<float[]> inputs, float[] logits, float[] thresholds, int n)
    {
        var profile = new StageProfile();
        engine.Profile = profile;
        for (int i = 0; i < n; i++) engine.Infer(inputs[i % inputs.Count], logits, thresholds);
        engine.Profile = null;
        return StageProfile.Stages.Select(s => (s.ToString(), profile.MeanMs(s))).ToList();
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
