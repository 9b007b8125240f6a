using System.CommandLine;
using System.Diagnostics;
using EdgeViT.Host.Evaluation;
using EdgeViT.Host.Output;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Imaging;

namespace EdgeViT.Host.Commands;

/// <summary><c>edgevit predict --model FILE IMAGE... [--top K] [--synsets FILE]</c>: the top-K classes of each image.</summary>
public static class PredictCommand
{
    public static Command Create(TextWriter stdout)
    {
        var model = CommonOptions.Model("Model weights (.safetensors or .onnx).");
        var images = CommonOptions.Files("IMAGE", "Image files to classify.");
        var threads = CommonOptions.Threads();
        var top = CommonOptions.IntInRange(new Option<int>("--top", "-k")
        {
            Description = "How many classes to show per image.",
            DefaultValueFactory = _ => 5,
            HelpName = "K",
        }, 1);
        var synsets = new Option<string?>("--synsets")
        {
            Description = "Synsets file (line i = \"nXXXXXXXX words\" of class i) to print class names; without it only indices.",
            HelpName = "FILE",
        };
        var simd = CommonOptions.Simd();
        var json = CommonOptions.Json();

        var command = new Command("predict", "Classify images: top-K classes with softmax probabilities.")
        {
            model, images, threads, top, synsets, simd, json,
        };
        var pruning = new PruningOptions();
        pruning.AddTo(command);
        var precision = new PrecisionOptions();
        precision.AddTo(command);
        command.SetAction(parse => Run(stdout, new PredictArgs(
            parse.GetRequiredValue(model), parse.GetRequiredValue(images), parse.GetValue(threads), parse.GetValue(top),
            parse.GetValue(synsets), CommonOptions.ParseSimd(parse.GetValue(simd)), parse.GetValue(json)) { Pruning = pruning.Read(parse), Precision = precision.Read(parse) }));
        return command;
    }

    public sealed record PredictArgs(string Model, string[] Images, int Threads, int Top, string? Synsets, Kernels.Simd.SimdLevel? Simd, bool Json)
    {
        public PruningOptions.Choice Pruning { get; init; } = new(null, null, null);
        public PrecisionOptions.Choice Precision { get; init; } = PrecisionOptions.Choice.Fp32;
    }

    public static int Run(TextWriter stdout, PredictArgs a)
    {
        // Cheap checks first, so a typo costs no model load.
        Inputs.RequireFile(a.Model, "model file");
        foreach (var image in a.Images) Inputs.RequireFile(image, "image");
        a.Pruning.Validate();
        a.Precision.Validate();
        var synsets = a.Synsets is null ? null : SynsetTable.Load(a.Synsets);

        var weights = Inputs.LoadModel(a.Model);
        var config = weights.Config;
        if (synsets is not null && synsets.Count != config.Classes)
            throw new InputException($"{a.Synsets} lists {synsets.Count} classes but the model has {config.Classes}");

        var set = a.Pruning.Resolve(weights, a.Precision.Name);
        float[] thresholds = set?.Thresholds ?? [];
        var rule = set?.Rule ?? EdgeViT.Kernels.Reduction.ThresholdRule.Raw;
        var preprocessor = new ImagePreprocessor(Inputs.PreprocessFor(config));
        using var engine = new VitEngine(weights, a.Precision.Engine(a.Threads, a.Simd, a.Precision.Load(weights)));
        var chw = new float[preprocessor.OutputLength];
        var logits = new float[config.Classes];
        var probs = new float[config.Classes];
        var best = new int[Math.Min(a.Top, config.Classes)];

        var results = new List<PredictImageResult>(a.Images.Length);
        if (!a.Json) stdout.WriteLine($"model {a.Model} ({config.Describe()}), simd {engine.Simd}, {a.Precision.Name}, threads {a.Threads}");
        foreach (var image in a.Images)
        {
            Inputs.LoadImage(image, preprocessor, chw);
            long t0 = Stopwatch.GetTimestamp();
            var stats = engine.Infer(chw, logits, thresholds, rule);
            double ms = Inputs.Ms(t0, Stopwatch.GetTimestamp());
            Ranking.Softmax(logits, probs);
            int n = Ranking.TopK(logits, best);
            var top = new List<PredictClass>(n);
            for (int i = 0; i < n; i++)
            {
                int c = best[i];
                top.Add(new PredictClass(c, synsets?[c].Id, synsets?[c].Words, JsonOutput.Round(probs[c], 6)));
            }
            results.Add(new PredictImageResult(image, JsonOutput.Round(ms, 3), top, JsonOutput.Round(stats.GFlops, 6), (int[])stats.TokensPerBlock.Clone()));
            if (!a.Json) WriteText(stdout, results[^1]);
        }

        if (a.Json)
            JsonOutput.WriteLine(stdout, new PredictReport(a.Model, config.Describe(), a.Threads, engine.Simd.ToString(), results, set?.Budget) { Precision = a.Precision.Name },
                ReportJsonContext.Default.PredictReport);
        return ExitCodes.Ok;
    }

    private static void WriteText(TextWriter stdout, PredictImageResult r)
    {
        stdout.WriteLine($"{r.Image}  ({r.Ms:F1} ms, {r.Gflops:F3} GFLOPs, tokens kept {string.Join(" ", r.TokensKeptPerBlock)})");
        for (int i = 0; i < r.Top.Count; i++)
        {
            var c = r.Top[i];
            string name = c.Label is null ? "" : $"  {c.Synset} {c.Label}";
            stdout.WriteLine($"  {i + 1,2}. class {c.Class,4}  {c.Prob * 100,6:F2} %{name}");
        }
    }
}
