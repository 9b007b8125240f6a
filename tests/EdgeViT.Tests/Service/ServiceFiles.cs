using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;

namespace EdgeViT.Tests.Service;

/// <summary>Files the service tests hand to the host.</summary>
public static class ServiceFiles
{
    private static readonly Lazy<VitWeights> Weights = new(() => ModelLoader.Load(SharedAssets.ModelSafetensors));

    /// <summary>
    /// A thresholds file for the shared DeiT-Tiny (its real fingerprint) with sets at budgets 0.6 and 0.8: uniform
    /// class-attention thresholds that prune, so a verdict at 0.6 costs fewer GFLOPs than dense.
    /// </summary>
    public static string WriteThresholds(string path)
    {
        var w = Weights.Value;
        double dense = new FlopsModel(w.Config).Dense / 1e9;
        ThresholdSet Set(double budget, float tau) => new(budget, Enumerable.Repeat(tau, w.Config.Depth).ToArray(),
            Enumerable.Repeat(budget, w.Config.Depth).ToArray(), budget * dense, budget * dense, 0, Enumerable.Repeat(100.0, w.Config.Depth).ToArray());
        new ThresholdFile
        {
            ModelFingerprint = w.Fingerprint,
            ModelDescription = w.Config.Describe(),
            Depth = w.Config.Depth,
            DenseGFlops = dense,
            CalibrationImages = 0,
            CalibrationOptions = new Dictionary<string, string> { ["note"] = "service test" },
            Sets = [Set(0.6, 0.004f), Set(0.8, 0.002f)],
        }.Save(path);
        return path;
    }

    /// <summary>The smallest shared image (for tight body limits).</summary>
    public static string SmallestImage() => SharedAssets.Images().OrderBy(f => new FileInfo(f).Length).First();
}
