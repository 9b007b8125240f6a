using System.CommandLine;
using EdgeViT.Host.Evaluation;
using EdgeViT.Imaging;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Imaging;

namespace EdgeViT.Host.Commands;

/// <summary>
/// <c>edgevit explain --model FILE --thresholds FILE --budget B IMAGE --out FILE.png</c>: one panel per block
/// showing which patch tokens survive RCTP pruning at that budget.
/// </summary>
public static class ExplainCommand
{
    public static Command Create(TextWriter stdout)
    {
        var model = CommonOptions.Model("Model weights (.safetensors or .onnx).");
        var image = new Argument<string>("IMAGE") { Description = "Image to explain." };
        var output = new Option<string>("--out", "-o") { Description = "PNG to write.", Required = true, HelpName = "FILE.png" };
        var synsets = new Option<string?>("--synsets") { Description = "Synsets file, to name the predicted class.", HelpName = "FILE" };
        var json = CommonOptions.Json();
        var pruning = new PruningOptions();
        var precision = new PrecisionOptions();
        var command = new Command("explain", "Draw the tokens each block keeps under RCTP pruning (a grid of panels).") { model, image, output, synsets, json };
        pruning.AddTo(command);
        precision.AddTo(command);
        command.SetAction(parse => Run(stdout, parse.GetRequiredValue(model), parse.GetRequiredValue(image), parse.GetRequiredValue(output),
            parse.GetValue(synsets), pruning.Read(parse), parse.GetValue(json), precision.Read(parse)));
        return command;
    }

    public static int Run(TextWriter stdout, string modelPath, string imagePath, string outPath, string? synsetsPath, PruningOptions.Choice pruning, bool json,
        PrecisionOptions.Choice? precision = null)
    {
        precision ??= PrecisionOptions.Choice.Fp32;
        Inputs.RequireFile(modelPath, "model file");
        Inputs.RequireFile(imagePath, "image");
        if (pruning.Thresholds is null) throw new UsageException("explain needs --thresholds FILE and --budget B (or --gflops G)");
        pruning.Validate();
        precision.Validate();
        if (!outPath.EndsWith(".png", StringComparison.OrdinalIgnoreCase)) throw new UsageException($"--out must name a .png file (got {outPath})");
        var synsets = synsetsPath is null ? null : SynsetTable.Load(synsetsPath);

        var weights = Inputs.LoadModel(modelPath);
        var c = weights.Config;
        // A threshold file states the precision it was fitted for; Resolve rejects one fitted for the other.
        var set = pruning.Resolve(weights, precision.Name)
            ?? throw new UsageException("the budget selects the dense model, which prunes nothing to draw: give a budget below 1");
        var preprocessor = new ImagePreprocessor(Inputs.PreprocessFor(c));
        var chw = new float[preprocessor.OutputLength];
        Inputs.LoadImage(imagePath, preprocessor, chw);
        using var engine = new VitEngine(weights, precision.Engine(1, null, precision.Load(weights)));
        var logits = new float[c.Classes];
        var stats = engine.Infer(chw, logits, set.Thresholds, set.Rule);
        int top = Ranking.ArgMax(logits);

        // Kept ids are token indices (prefix first); patches are the ids past the prefix.
        var kept = new List<IReadOnlyCollection<int>>();
        var captions = new List<string>();
        for (int l = 0; l < c.Depth; l++)
        {
            int n = stats.TokensPerBlock[l];
            kept.Add(stats.KeptTokenIds.Skip(l * c.Tokens).Take(n).Where(t => t >= c.PrefixTokens).Select(t => t - c.PrefixTokens).ToHashSet());
            captions.Add($"block {l}: {n - c.PrefixTokens}/{c.Patches}");
        }
        var crop = Denormalise(chw, c.ImageSize, preprocessor.Options);
        string label = synsets is null ? $"class {top}" : synsets[top].Words.Split(',')[0];
        TokenMapRenderer.Render(outPath, crop, c.ImageSize, c.PatchSize, kept, captions,
            $"{Path.GetFileName(imagePath)}: {label}, budget {set.Budget:0.00}, {stats.GFlops:F3} GFLOPs, {precision.Name}");
        if (json) stdout.WriteLine($"{{\"out\":{System.Text.Json.JsonSerializer.Serialize(outPath)},\"class\":{top},\"gflops\":{stats.GFlops:F6},\"precision\":\"{precision.Name}\",\"tokens_kept_per_block\":[{string.Join(",", stats.TokensPerBlock)}]}}");
        else stdout.WriteLine($"wrote {outPath}: {label}, {stats.GFlops:F3} GFLOPs, tokens kept {string.Join(" ", stats.TokensPerBlock)}");
        return ExitCodes.Ok;
    }

    private static byte[] Denormalise(float[] chw, int size, PreprocessOptions o)
    {
        var rgb = new byte[size * size * 3];
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < size * size; i++)
                rgb[3 * i + ch] = (byte)Math.Clamp(MathF.Round((chw[ch * size * size + i] * o.Std[ch] + o.Mean[ch]) * 255f), 0, 255);
        return rgb;
    }
}
