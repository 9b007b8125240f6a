namespace EdgeViT.Kernels.Imaging;

/// <summary>Preprocessing constants (timm/DeiT eval defaults).</summary>
public sealed record PreprocessOptions(int ResizeShortSide = 256, int CropSize = 224)
{
    public float[] Mean { get; init; } = [0.485f, 0.456f, 0.406f];
    public float[] Std { get; init; } = [0.229f, 0.224f, 0.225f];
}

/// <summary>
/// RGB24 pixels -> normalised CHW float input: bicubic resize of the short side, centre crop, normalise.
/// CONTRACT STUB (replaced by the real implementation).
/// </summary>
public sealed class ImagePreprocessor(PreprocessOptions? options = null)
{
    public PreprocessOptions Options { get; } = options ?? new PreprocessOptions();
    public int OutputLength => 3 * Options.CropSize * Options.CropSize;

    /// <summary>rgb: rows of width*3 bytes with the given stride. output: [3, Crop, Crop].</summary>
    public void Process(ReadOnlySpan<byte> rgb, int width, int height, int stride, Span<float> output) => throw new NotImplementedException();
}
