using EdgeViT.Tests.Support;
using EdgeViT.Imaging;
using SkiaSharp;
using Xunit;

namespace EdgeViT.Tests.Imaging;

public sealed class ImageDecoderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("edgevit-imaging-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Tench => Path.Combine(SharedAssets.ImagesDir, "n01440764_tench.JPEG");

    [Fact]
    public void DecodesASharedJpegAtItsSize()
    {
        var image = ImageDecoder.Decode(Tench);
        Assert.Equal((500, 375), (image.Width, image.Height)); // as PIL reports it
        Assert.Equal(500 * 3, image.Stride);
        Assert.Equal(500 * 375 * 3, image.Pixels.Length);
        Assert.Contains(image.Pixels, b => b != image.Pixels[0]); // a photo, not a blank buffer
    }

    [Fact]
    public void PngRoundTripIsExactAndKeepsColourUnderAlpha()
    {
        // Odd size so the vector conversion's scalar tail runs; partial and zero alpha because PIL's
        // convert("RGB") drops alpha without premultiplying, so the stored colour must come back unchanged.
        int w = 37, h = 23;
        using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                bitmap.SetPixel(x, y, Pattern(x, y));
        using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);

        var image = ImageDecoder.Decode(png.AsSpan(), "pattern.png");

        Assert.Equal((w, h), (image.Width, image.Height));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var expected = Pattern(x, y);
                int o = y * image.Stride + x * 3;
                Assert.True((image.Pixels[o], image.Pixels[o + 1], image.Pixels[o + 2]) == (expected.Red, expected.Green, expected.Blue),
                    $"pixel ({x},{y}): got {image.Pixels[o]},{image.Pixels[o + 1]},{image.Pixels[o + 2]}, expected {expected}");
            }
    }

    private static SKColor Pattern(int x, int y) =>
        new((byte)(x * 7 + y), (byte)(y * 11), (byte)(x * y + 3), (byte)((x + y) % 3 == 0 ? 255 : (x * 13 + y * 5) % 256));

    [Fact]
    public void GreyscalePngDecodesToEqualChannels()
    {
        using var bitmap = new SKBitmap(new SKImageInfo(9, 4, SKColorType.Gray8, SKAlphaType.Opaque));
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 9; x++)
                bitmap.SetPixel(x, y, new SKColor((byte)(x * 25 + y), (byte)(x * 25 + y), (byte)(x * 25 + y)));
        using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);

        var image = ImageDecoder.Decode(png.AsSpan(), "grey.png");

        for (int i = 0; i < 9 * 4; i++)
        {
            byte expected = (byte)(i % 9 * 25 + i / 9);
            Assert.Equal([expected, expected, expected], image.Pixels.AsSpan(i * 3, 3).ToArray());
        }
    }

    [Fact]
    public void IgnoresExifOrientationAsPilDoes()
    {
        int w = 40, h = 20;
        using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                bitmap.SetPixel(x, y, x < w / 2 ? SKColors.Red : SKColors.Blue);
        using var jpeg = bitmap.Encode(SKEncodedImageFormat.Jpeg, 95);
        var plain = jpeg.ToArray();
        var rotated = WithExifOrientation(plain, 6); // "rotate 90° clockwise to display"

        using (var codec = SKCodec.Create(new MemoryStream(rotated)))
            Assert.Equal(SKEncodedOrigin.RightTop, codec.EncodedOrigin); // the tag is really there

        var expected = ImageDecoder.Decode(plain, "plain.jpg");
        var image = ImageDecoder.Decode(rotated, "rotated.jpg");
        Assert.Equal((w, h), (image.Width, image.Height));
        Assert.Equal(expected.Pixels, image.Pixels);
    }

    /// <summary>Inserts an APP1 Exif segment holding one IFD0 entry, Orientation, right after the JPEG's SOI.</summary>
    private static byte[] WithExifOrientation(byte[] jpeg, ushort orientation)
    {
        byte[] app1 =
        [
            0xFF, 0xE1, 0x00, 34, (byte)'E', (byte)'x', (byte)'i', (byte)'f', 0, 0,
            (byte)'M', (byte)'M', 0x00, 0x2A, 0, 0, 0, 8,                 // big-endian TIFF header, IFD0 at 8
            0, 1,                                                          // one entry
            0x01, 0x12, 0, 3, 0, 0, 0, 1, (byte)(orientation >> 8), (byte)orientation, 0, 0, // Orientation, SHORT
            0, 0, 0, 0,                                                    // no next IFD
        ];
        return [.. jpeg.AsSpan(0, 2), .. app1, .. jpeg.AsSpan(2)];
    }

    [Fact]
    public void TextFileIsADecodeErrorNamingTheFile()
    {
        var path = Path.Combine(_dir, "notes.txt");
        File.WriteAllText(path, "these are notes, not pixels\n");
        AssertOneLineError(path, "notes.txt");
    }

    [Fact]
    public void EmptyFileIsADecodeError()
    {
        var path = Path.Combine(_dir, "empty.jpg");
        File.WriteAllBytes(path, []);
        AssertOneLineError(path, "empty.jpg");
    }

    [Fact]
    public void TruncatedJpegIsADecodeError()
    {
        var bytes = File.ReadAllBytes(Tench);
        var path = Path.Combine(_dir, "half.jpg");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        AssertOneLineError(path, "half.jpg");
    }

    [Fact]
    public void TruncatedPngIsADecodeError()
    {
        using var bitmap = new SKBitmap(new SKImageInfo(64, 64, SKColorType.Rgba8888, SKAlphaType.Opaque));
        for (int i = 0; i < 64 * 64; i++) bitmap.SetPixel(i % 64, i / 64, new SKColor((byte)(i * 31), (byte)(i * 7), (byte)i));
        using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        var bytes = png.ToArray();
        var ex = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(bytes.AsSpan(0, bytes.Length * 2 / 3), "cut.png"));
        Assert.StartsWith("cut.png: ", ex.Message);
    }

    private static void AssertOneLineError(string path, string fileName)
    {
        var ex = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(path));
        Assert.Contains(fileName, ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
        Assert.DoesNotContain('\r', ex.Message);
        // The reusable decoder reports the same way.
        Assert.Equal(ex.Message, Assert.Throws<ImageDecodeException>(() => new ReusableImageDecoder().Decode(path)).Message);
    }

    [Fact]
    public void MissingPathIsFileNotFoundNamingThePath()
    {
        var path = Path.Combine(_dir, "no-such-image.jpg");
        var ex = Assert.Throws<FileNotFoundException>(() => ImageDecoder.Decode(path));
        Assert.Equal(path, ex.FileName);
        Assert.Contains(path, ex.Message);
        Assert.Throws<FileNotFoundException>(() => new ReusableImageDecoder().Decode(path));
    }

    [Fact]
    public void ReusableDecoderMatchesOneShotAndReusesItsBuffer()
    {
        var large = Path.Combine(SharedAssets.ImagesDir, "n01622779_great_grey_owl.JPEG"); // 845x563
        var small = Path.Combine(SharedAssets.ImagesDir, "n01871265_tusker.JPEG");          // 75x56
        var decoder = new ReusableImageDecoder();

        var first = decoder.Decode(large);
        Assert.Equal(ImageDecoder.Decode(large).Pixels, first.Pixels.ToArray());
        var buffer = first.Buffer;

        var second = decoder.Decode(small); // smaller: same buffer, only the frame's prefix is meaningful
        Assert.Same(buffer, second.Buffer);
        Assert.Equal(ImageDecoder.Decode(small).Pixels, second.Pixels.ToArray());

        long allocated = SteadyAllocation.Bytes(() => decoder.Decode(large));
        var third = decoder.Decode(large);
        Assert.Same(buffer, third.Buffer);
        Assert.Equal(first.Pixels.ToArray(), third.Pixels.ToArray());
        // Only Skia's handle objects and the file handle: no pixel or file buffers (this image is ~1.4 MB RGB).
        Assert.True(allocated < 16 * 1024, $"steady-state decode allocated {allocated} bytes");
    }
}
