using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Simd;
using SkiaSharp;

namespace EdgeViT.Imaging;

/// <summary>A decoded image as tightly packed RGB24 rows (Stride = Width*3).</summary>
public sealed class RgbImage(int width, int height, byte[] pixels)
{
    public int Width { get; } = width;
    public int Height { get; } = height;
    public int Stride => Width * 3;
    public byte[] Pixels { get; } = pixels;
}

/// <summary>
/// A decoded frame inside a <see cref="ReusableImageDecoder"/>'s buffer: tightly packed RGB24, valid until that
/// decoder's next call. <see cref="Buffer"/> may be longer than the frame.
/// </summary>
public readonly record struct RgbFrame(int Width, int Height, byte[] Buffer)
{
    public int Stride => Width * 3;
    public ReadOnlySpan<byte> Pixels => Buffer.AsSpan(0, Height * Stride);
}

/// <summary>A file or buffer that is not a decodable image; message is one line naming it.</summary>
public class ImageDecodeException(string message) : Exception(message);

/// <summary>An image whose header declares more pixels than the decoder's limit: refused before any pixel is decoded.</summary>
public sealed class ImageTooLargeException(string message, int width, int height) : ImageDecodeException(message)
{
    public int Width { get; } = width;
    public int Height { get; } = height;
}

/// <summary>
/// What a decoder may do with an image. <see cref="MaxPixels"/>: width x height read from the header above it is
/// refused (a 1 MB PNG can declare 20000x20000, i.e. 1.6 GB of RGBA). <see cref="MinShortSide"/>: when positive, a
/// JPEG whose shorter side is far above it is decoded at a reduced scale (libjpeg's DCT scaling, k/8) whose shorter
/// side is still at least this: faster and smaller, and the resampler that follows sees the same picture.
/// </summary>
public readonly record struct DecodeLimits(long MaxPixels = DecodeLimits.DefaultMaxPixels, int MinShortSide = 0)
{
    /// <summary>40 MP: 160 MB of RGBA while decoding, which a 2 GB board survives.</summary>
    public const long DefaultMaxPixels = 40_000_000;
    public static DecodeLimits Default => new(DefaultMaxPixels);
}

/// <summary>
/// Decodes JPEG, PNG and whatever else Skia reads into RGB24 the way PIL's Image.open(...).convert("RGB") does:
/// no EXIF rotation, no colour management (embedded ICC profiles are ignored), alpha dropped unpremultiplied.
/// </summary>
public static class ImageDecoder
{
    /// <summary>FileNotFoundException for a missing path, ImageDecodeException for anything not decodable or too large.</summary>
    public static RgbImage Decode(string path, DecodeLimits? limits = null) => ToImage(new ReusableImageDecoder(limits ?? DecodeLimits.Default).Decode(path));

    public static RgbImage Decode(ReadOnlySpan<byte> encoded, string what, DecodeLimits? limits = null) =>
        ToImage(new ReusableImageDecoder(limits ?? DecodeLimits.Default).Decode(encoded, what));

    // A fresh decoder sizes its buffer exactly, so the frame's buffer can be handed over as the image's pixels.
    private static RgbImage ToImage(RgbFrame frame) => new(frame.Width, frame.Height, frame.Buffer);
}

/// <summary>
/// Decoder for hot paths (camera, service): its RGBA scratch, RGB output and file buffers grow to the largest
/// image seen and are reused, so steady-state decoding allocates no pixel memory (only Skia's small handle
/// objects). Buffers above <see cref="RetainedPixels"/> are not kept, so one large image does not pin its memory.
/// Not thread-safe: one per decoding thread.
/// </summary>
public sealed class ReusableImageDecoder(DecodeLimits limits)
{
    /// <summary>Largest image (pixels) whose buffers are kept for reuse: a 12 MP camera still.</summary>
    public const long RetainedPixels = 12_000_000;

    private byte[] _rgba = [];
    private byte[] _rgb = [];
    private byte[] _file = [];

    public ReusableImageDecoder() : this(DecodeLimits.Default) { }

    public DecodeLimits Limits { get; } = limits;

    /// <summary>Reads and decodes a file. FileNotFoundException for a missing path.</summary>
    public RgbFrame Decode(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"image not found: {path}", path);
        int length;
        using (var handle = File.OpenHandle(path))
        {
            long size = RandomAccess.GetLength(handle);
            if (size > Array.MaxLength) throw new ImageDecodeException($"{OneLine(path)}: file too large to be an image ({size} bytes)");
            length = (int)size;
            Grow(ref _file, length);
            int read = 0, n;
            while (read < length && (n = RandomAccess.Read(handle, _file.AsSpan(read, length - read), read)) > 0) read += n;
            length = read;
        }
        return Decode(_file.AsSpan(0, length), path);
    }

    /// <summary>Decodes encoded bytes; <paramref name="what"/> names them in error messages.</summary>
    public unsafe RgbFrame Decode(ReadOnlySpan<byte> encoded, string what)
    {
        what = OneLine(what);
        if (encoded.IsEmpty) throw new ImageDecodeException($"{what}: empty file, not an image (JPEG/PNG expected)");

        fixed (byte* data = encoded)
        {
            // Wraps the caller's bytes without copying; both handles are disposed before the span is unpinned.
            using var skData = SKData.Create((IntPtr)data, encoded.Length);
            using var codec = SKCodec.Create(skData)
                ?? throw new ImageDecodeException($"{what}: not a decodable image (JPEG/PNG expected)");

            var src = codec.Info;
            int width = src.Width, height = src.Height;
            long pixels = (long)width * height;
            if (width <= 0 || height <= 0)
                throw new ImageDecodeException($"{what}: unsupported image size {width}x{height}");
            if (pixels > Limits.MaxPixels || 4 * pixels > Array.MaxLength)
                throw new ImageTooLargeException($"{what}: image of {width}x{height} pixels ({pixels / 1e6:0.#} MP) is above the limit of " +
                    $"{Limits.MaxPixels / 1e6:0.#} MP; refused before decoding", width, height);

            if (Limits.MinShortSide > 0 && codec.EncodedFormat == SKEncodedImageFormat.Jpeg && Math.Min(width, height) >= 2 * Limits.MinShortSide)
            {
                // libjpeg-turbo scales by k/8 and rounds the scale up: the shorter side stays >= MinShortSide.
                var scaled = codec.GetScaledDimensions((float)Limits.MinShortSide / Math.Min(width, height));
                if (scaled.Width > 0 && scaled.Height > 0 && Math.Min(scaled.Width, scaled.Height) >= Limits.MinShortSide)
                    (width, height) = (scaled.Width, scaled.Height);
            }
            long rgbaBytes = 4L * width * height;

            // RGBA8888 whatever the source (grey, palette, 16-bit) so one conversion covers all; unpremultiplied so a
            // transparent pixel keeps its colour as PIL reports it; no colour space so Skia applies no ICC transform.
            var alpha = src.AlphaType == SKAlphaType.Opaque ? SKAlphaType.Opaque : SKAlphaType.Unpremul;
            var info = new SKImageInfo(width, height, SKColorType.Rgba8888, alpha, null);
            bool retain = (long)width * height <= RetainedPixels;
            var rgbaBuffer = Buffer(ref _rgba, (int)rgbaBytes, retain);
            SKCodecResult result;
            fixed (byte* rgba = rgbaBuffer)
                result = codec.GetPixels(info, (IntPtr)rgba, width * 4, SKCodecOptions.Default);
            // IncompleteInput (truncated) still fills the missing rows with grey; PIL refuses such files, so do we.
            if (result != SKCodecResult.Success)
                throw new ImageDecodeException($"{what}: truncated or corrupt {codec.EncodedFormat} data ({result})");

            var rgb = Buffer(ref _rgb, width * height * 3, retain);
            PixelConvert.RgbaToRgb(rgbaBuffer.AsSpan(0, (int)rgbaBytes), rgb, SimdLevels.Best);
            return new RgbFrame(width, height, rgb);
        }
    }

    /// <summary>The reused buffer grown to <paramref name="length"/>, or (too large to keep) a one-off one.</summary>
    private static byte[] Buffer(ref byte[] buffer, int length, bool retain)
    {
        if (buffer.Length >= length) return buffer;
        if (!retain) return GC.AllocateUninitializedArray<byte>(length);
        Grow(ref buffer, length);
        return buffer;
    }

    // Grow-only and exact: a fresh decoder's buffer is exactly the first image's size (ImageDecoder relies on it).
    private static void Grow(ref byte[] buffer, int length)
    {
        if (buffer.Length < length) buffer = GC.AllocateUninitializedArray<byte>(length);
    }

    private static string OneLine(string what) => what.ReplaceLineEndings(" ");
}
