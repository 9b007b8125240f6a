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
public sealed class ImageDecodeException(string message) : Exception(message);

/// <summary>
/// Decodes JPEG, PNG and whatever else Skia reads into RGB24 the way PIL's Image.open(...).convert("RGB") does:
/// no EXIF rotation, no colour management (embedded ICC profiles are ignored), alpha dropped unpremultiplied.
/// </summary>
public static class ImageDecoder
{
    /// <summary>FileNotFoundException for a missing path, ImageDecodeException for anything not decodable.</summary>
    public static RgbImage Decode(string path) => ToImage(new ReusableImageDecoder().Decode(path));

    public static RgbImage Decode(ReadOnlySpan<byte> encoded, string what) => ToImage(new ReusableImageDecoder().Decode(encoded, what));

    // A fresh decoder sizes its buffer exactly, so the frame's buffer can be handed over as the image's pixels.
    private static RgbImage ToImage(RgbFrame frame) => new(frame.Width, frame.Height, frame.Buffer);
}

/// <summary>
/// Decoder for hot paths (camera, service): its RGBA scratch, RGB output and file buffers grow to the largest
/// image seen and are reused, so steady-state decoding allocates no pixel memory (only Skia's small handle
/// objects). Not thread-safe: one per decoding thread.
/// </summary>
public sealed class ReusableImageDecoder
{
    private byte[] _rgba = [];
    private byte[] _rgb = [];
    private byte[] _file = [];

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
            long rgbaBytes = 4L * width * height;
            if (width <= 0 || height <= 0 || rgbaBytes > Array.MaxLength)
                throw new ImageDecodeException($"{what}: unsupported image size {width}x{height}");

            // RGBA8888 whatever the source (grey, palette, 16-bit) so one conversion covers all; unpremultiplied so a
            // transparent pixel keeps its colour as PIL reports it; no colour space so Skia applies no ICC transform.
            var alpha = src.AlphaType == SKAlphaType.Opaque ? SKAlphaType.Opaque : SKAlphaType.Unpremul;
            var info = new SKImageInfo(width, height, SKColorType.Rgba8888, alpha, null);
            Grow(ref _rgba, (int)rgbaBytes);
            SKCodecResult result;
            fixed (byte* rgba = _rgba)
                result = codec.GetPixels(info, (IntPtr)rgba, width * 4, SKCodecOptions.Default);
            // IncompleteInput (truncated) still fills the missing rows with grey; PIL refuses such files, so do we.
            if (result != SKCodecResult.Success)
                throw new ImageDecodeException($"{what}: truncated or corrupt {codec.EncodedFormat} data ({result})");

            Grow(ref _rgb, width * height * 3);
            PixelConvert.RgbaToRgb(_rgba.AsSpan(0, (int)rgbaBytes), _rgb, SimdLevels.Best);
            return new RgbFrame(width, height, _rgb);
        }
    }

    // Grow-only and exact: a fresh decoder's buffer is exactly the first image's size (ImageDecoder relies on it).
    private static void Grow(ref byte[] buffer, int length)
    {
        if (buffer.Length < length) buffer = GC.AllocateUninitializedArray<byte>(length);
    }

    private static string OneLine(string what) => what.ReplaceLineEndings(" ");
}
