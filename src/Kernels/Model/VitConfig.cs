namespace EdgeViT.Kernels.Model;

/// <summary>The architecture of a ViT/DeiT, inferred from tensor shapes (see <see cref="VitWeights.FromTensors"/>).</summary>
public sealed record VitConfig(
    int EmbedDim, int Depth, int Heads, int PatchSize, int ImageSize, int Classes, int MlpDim,
    bool HasDistillationToken, float LayerNormEps = 1e-6f, int InChannels = 3)
{
    public int HeadDim => EmbedDim / Heads;
    public int GridSize => ImageSize / PatchSize;
    public int Patches => GridSize * GridSize;
    /// <summary>Prefix tokens (class, and distillation when present) that are never pruned.</summary>
    public int PrefixTokens => HasDistillationToken ? 2 : 1;
    public int Tokens => Patches + PrefixTokens;
    public int PatchVectorLength => InChannels * PatchSize * PatchSize;

    public string Describe() =>
        $"ViT d={EmbedDim} depth={Depth} heads={Heads} patch={PatchSize} img={ImageSize} mlp={MlpDim} classes={Classes}" +
        (HasDistillationToken ? " +dist" : "");

    /// <summary>Standard DeiT shapes, for benchmarks and tests with random weights.</summary>
    public static VitConfig DeiT(string size) => size.ToLowerInvariant() switch
    {
        "tiny" => new VitConfig(192, 12, 3, 16, 224, 1000, 768, false),
        "small" => new VitConfig(384, 12, 6, 16, 224, 1000, 1536, false),
        "base" => new VitConfig(768, 12, 12, 16, 224, 1000, 3072, false),
        _ => throw new ArgumentException($"unknown DeiT size '{size}' (tiny, small, base)"),
    };
}
