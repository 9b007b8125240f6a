using EdgeViT.Host.Evaluation;
using EdgeViT.Imaging;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Reduction;

namespace EdgeViT.Tests.Reduction;

/// <summary>
/// The shared DeiT-Tiny and its first 20 images, preprocessed once per test run, and the sanity check every
/// policy's real-model test uses: dense against the policy on those images.
/// </summary>
internal static class SharedDeit
{
    private static readonly Lazy<VitWeights> LazyWeights = new(() => ModelLoader.Load(SharedAssets.ModelSafetensors));
    private static readonly Lazy<float[][]> LazyImages = new(() =>
    {
        var config = LazyWeights.Value.Config;
        var pre = new ImagePreprocessor();
        return SharedAssets.Images().Take(20).Select(path =>
        {
            var img = ImageDecoder.Decode(path);
            var chw = new float[config.InChannels * config.ImageSize * config.ImageSize];
            pre.Process(img.Pixels, img.Width, img.Height, img.Stride, chw);
            return chw;
        }).ToArray();
    });

    public static VitWeights Weights => LazyWeights.Value;
    public static float[][] Images => LazyImages.Value;

    /// <summary>How many top-1 predictions agree with dense, the mean multiply-adds of each, and on how many images
    /// the policy did not save any. A sanity check, not an accuracy measurement (20 images cannot resolve it).</summary>
    public sealed record Agreement(int Agree, int Images, double DenseMacs, double ReducedMacs, int MacsNotLower)
    {
        public double FlopsFraction => ReducedMacs / DenseMacs;
    }

    public static Agreement Compare(VitEngine engine, ITokenReducer reducer)
    {
        var dense = new float[Weights.Config.Classes];
        var reduced = new float[Weights.Config.Classes];
        int agree = 0, notLower = 0;
        double denseMacs = 0, reducedMacs = 0;
        foreach (var img in Images)
        {
            long a = engine.Infer(img, dense).MultiplyAdds;
            long b = engine.Infer(img, reduced, reducer).MultiplyAdds;
            denseMacs += a; reducedMacs += b;
            if (b >= a) notLower++;
            if (Ranking.ArgMax(dense) == Ranking.ArgMax(reduced)) agree++;
        }
        return new Agreement(agree, Images.Length, denseMacs / Images.Length, reducedMacs / Images.Length, notLower);
    }

    /// <summary><see cref="Compare(VitEngine, ITokenReducer)"/> on a fresh single-threaded engine.</summary>
    public static Agreement Compare(Func<VitConfig, ITokenReducer> create)
    {
        using var engine = new VitEngine(Weights, new EngineOptions(Threads: 1));
        return Compare(engine, create(Weights.Config));
    }
}
