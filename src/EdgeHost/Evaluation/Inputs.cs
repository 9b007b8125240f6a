using EdgeViT.Host.Commands;
using EdgeViT.Imaging;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Model;

namespace EdgeViT.Host.Evaluation;

/// <summary>Loading models and images with errors that name the file (one line, exit code 1).</summary>
public static class Inputs
{
    public static void RequireFile(string path, string what)
    {
        if (Directory.Exists(path)) throw new InputException($"{what} is a directory, not a file: {path}");
        if (!File.Exists(path)) throw new InputException($"{what} not found: {path}");
    }

    public static VitWeights LoadModel(string path)
    {
        RequireFile(path, "model file");
        try { return ModelLoader.Load(path); }
        catch (ModelFormatException ex) { throw Named(ex, path); }
        catch (FileNotFoundException) { throw new InputException($"model file not found: {path}"); }
    }

    /// <summary>Preprocessing for a model: the DeiT eval recipe scaled to the model's input size (resize 256/224 of it).</summary>
    public static PreprocessOptions PreprocessFor(VitConfig config) =>
        config.ImageSize == 224 ? new PreprocessOptions()
        : new PreprocessOptions(ResizeShortSide: (int)Math.Round(config.ImageSize * 256.0 / 224.0), CropSize: config.ImageSize);

    public static RgbImage Decode(string path)
    {
        RequireFile(path, "image");
        try { return ImageDecoder.Decode(path); }
        catch (ImageDecodeException ex) { throw Named(ex, path); }
        catch (FileNotFoundException) { throw new InputException($"image not found: {path}"); }
    }

    /// <summary>Decodes and preprocesses one image into <paramref name="chw"/>; returns (decode ms, preprocess ms).</summary>
    public static (double DecodeMs, double PreprocessMs) LoadImage(string path, ImagePreprocessor preprocessor, Span<float> chw)
    {
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        var image = Decode(path);
        long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
        try { preprocessor.Process(image.Pixels, image.Width, image.Height, image.Stride, chw); }
        catch (ArgumentException ex) { throw new InputException($"{Path.GetFileName(path)}: cannot preprocess ({image.Width}x{image.Height}): {ex.Message}", ex); }
        long t2 = System.Diagnostics.Stopwatch.GetTimestamp();
        return (Ms(t0, t1), Ms(t1, t2));
    }

    public static double Ms(long from, long to) => (to - from) * 1000.0 / System.Diagnostics.Stopwatch.Frequency;

    // The loaders promise messages that name the file; make sure of it without doubling the name.
    private static Exception Named(Exception ex, string path)
    {
        string file = Path.GetFileName(path);
        return ex.Message.Contains(file, StringComparison.Ordinal) ? ex : new InputException($"{path}: {ex.Message}", ex);
    }
}
