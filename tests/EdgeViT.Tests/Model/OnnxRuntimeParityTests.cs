using Xunit;
using EdgeViT.Host.Baselines;
using EdgeViT.Host.Evaluation;
using EdgeViT.Imaging;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Model;

namespace EdgeViT.Tests.Model;

/// <summary>EdgeViT (weights from .safetensors) against ONNX Runtime (the .onnx of the same model) on real photos.</summary>
public class OnnxRuntimeParityTests
{
    private const int ImageCount = 20;
    private const double Tolerance = 1e-3;

    [Fact]
    public void LogitsMatchOnnxRuntimeOnTheFirst20SharedImages()
    {
        var weights = ModelLoader.Load(SharedAssets.ModelSafetensors);
        using var engine = new VitEngine(weights, new EngineOptions(Threads: 1));
        using var ort = new OnnxRuntimeRunner(SharedAssets.ModelOnnx, threads: 1);
        var preprocessor = new ImagePreprocessor();
        Assert.Equal(ort.InputLength, preprocessor.OutputLength);
        Assert.Equal(ort.OutputLength, weights.Config.Classes);

        var chw = new float[preprocessor.OutputLength];
        var ours = new float[weights.Config.Classes];
        var theirs = new float[weights.Config.Classes];
        var failures = new List<string>();
        double worst = 0;
        foreach (var path in SharedAssets.Images().Take(ImageCount))
        {
            var image = ImageDecoder.Decode(path);
            preprocessor.Process(image.Pixels, image.Width, image.Height, image.Stride, chw);
            engine.Infer(chw, ours);
            ort.Run(chw, theirs);

            double maxDiff = 0;
            for (int i = 0; i < ours.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs((double)ours[i] - theirs[i]));
            worst = Math.Max(worst, maxDiff);
            int a = Ranking.ArgMax(ours), b = Ranking.ArgMax(theirs);
            if (!(maxDiff <= Tolerance) || a != b)
                failures.Add($"{Path.GetFileName(path)}: max |diff| {maxDiff:G3}, argmax {a} vs {b}");
        }
        Assert.True(failures.Count == 0, $"worst max |diff| {worst:G3}; mismatches:\n" + string.Join("\n", failures));
    }
}
