using EdgeViT.Capture;
using EdgeViT.Imaging;
using Xunit;

namespace EdgeViT.Tests.Capture;

public sealed class PixelFormatsTests
{
    // Independent double-precision BT.601 limited-range reference (ITU-R BT.601: Kr = 0.299, Kb = 0.114;
    // Y' scaled to 16..235 and Cb/Cr to 16..240).
    private const double Kr = 0.299, Kb = 0.114, Kg = 1 - Kr - Kb;

    internal static (byte R, byte G, byte B) Reference(int y, int u, int v)
    {
        double luma = (y - 16) * 255.0 / 219.0;
        double cb = (u - 128) * 255.0 / 224.0, cr = (v - 128) * 255.0 / 224.0;
        double r = luma + 2 * (1 - Kr) * cr;
        double b = luma + 2 * (1 - Kb) * cb;
        double g = (luma - Kr * r - Kb * b) / Kg;   // from Y' = Kr R + Kg G + Kb B
        return (Clamp(r), Clamp(g), Clamp(b));
    }

    private static byte Clamp(double x) => (byte)Math.Clamp(Math.Round(x, MidpointRounding.AwayFromZero), 0, 255);

    /// <summary>The inverse, for making "recorded" camera buffers from RGB images: 4:2:2, chroma of a pair averaged.</summary>
    internal static byte[] RgbToYuyv(byte[] rgb, int width, int height, int stride)
    {
        var yuyv = new byte[stride * height];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x += 2)
            {
                double cbSum = 0, crSum = 0;
                for (int k = 0; k < 2; k++)
                {
                    int i = (y * width + x + k) * 3;
                    double r = rgb[i], g = rgb[i + 1], b = rgb[i + 2];
                    double luma = Kr * r + Kg * g + Kb * b;
                    yuyv[y * stride + (x + k) * 2] = Clamp(16 + luma * 219.0 / 255.0);
                    cbSum += (b - luma) / (2 * (1 - Kb));
                    crSum += (r - luma) / (2 * (1 - Kr));
                }
                yuyv[y * stride + x * 2 + 1] = Clamp(128 + cbSum / 2 * 224.0 / 255.0);
                yuyv[y * stride + x * 2 + 3] = Clamp(128 + crSum / 2 * 224.0 / 255.0);
            }
        return yuyv;
    }

    [Fact]
    public void YuyvMatchesTheDoubleReferenceOnEveryPixel()
    {
        // Every Y at a spread of U/V pairs, plus the extremes outside the nominal range (cameras send them).
        int[] chroma = [0, 1, 16, 40, 90, 127, 128, 129, 160, 200, 240, 254, 255];
        int width = 256 * 2, height = chroma.Length * chroma.Length;
        int stride = width * 2 + 6;   // padded rows
        var yuyv = new byte[stride * height];
        int row = 0;
        foreach (int u in chroma)
            foreach (int v in chroma)
            {
                for (int p = 0; p < width / 2; p++)
                {
                    int o = row * stride + p * 4;
                    yuyv[o] = (byte)(p * 2 % 256);
                    yuyv[o + 1] = (byte)u;
                    yuyv[o + 2] = (byte)((p * 2 + 1) % 256);
                    yuyv[o + 3] = (byte)v;
                }
                row++;
            }
        var rgb = new byte[width * height * 3];
        PixelFormats.YuyvToRgb24(yuyv, width, height, stride, rgb);
        var scalar = new byte[rgb.Length];
        PixelFormats.YuyvToRgb24(yuyv, width, height, stride, scalar, useVectors: false);
        Assert.Equal(scalar, rgb);

        int exact = 0, total = 0, worst = 0;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int o = y * stride + x / 2 * 4;
                var (r, g, b) = Reference(yuyv[o + (x & 1) * 2], yuyv[o + 1], yuyv[o + 3]);
                int i = (y * width + x) * 3;
                int d = Math.Max(Math.Abs(rgb[i] - r), Math.Max(Math.Abs(rgb[i + 1] - g), Math.Abs(rgb[i + 2] - b)));
                Assert.True(d <= 1, $"pixel ({x},{y}) Y={yuyv[o + (x & 1) * 2]} U={yuyv[o + 1]} V={yuyv[o + 3]}: got ({rgb[i]},{rgb[i + 1]},{rgb[i + 2]}), reference ({r},{g},{b})");
                worst = Math.Max(worst, d);
                if (d == 0) exact++;
                total++;
            }
        Assert.True(exact >= total * 0.99, $"only {exact} of {total} pixels match the reference exactly (worst off by {worst})");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(8)]
    [InlineData(14)]
    [InlineData(18)]
    [InlineData(646)]
    public void VectorPathEqualsScalarPath(int width)
    {
        int height = 7, stride = width * 2 + 10;
        var yuyv = new byte[stride * height];
        new Random(width).NextBytes(yuyv);
        var vector = new byte[width * height * 3];
        var scalar = new byte[width * height * 3];
        PixelFormats.YuyvToRgb24(yuyv, width, height, stride, vector, useVectors: true);
        PixelFormats.YuyvToRgb24(yuyv, width, height, stride, scalar, useVectors: false);
        Assert.Equal(scalar, vector);
    }

    [Theory]
    [InlineData(16, 128, 128, 0, 0, 0)]          // black
    [InlineData(235, 128, 128, 255, 255, 255)]   // white
    [InlineData(126, 128, 128, 128, 128, 128)]   // mid grey: 16 + 219*128/255 = 125.9
    [InlineData(81, 90, 240, 255, 0, 0)]         // BT.601 colour-bar red
    [InlineData(145, 54, 34, 0, 255, 0)]         // green
    [InlineData(41, 240, 110, 0, 0, 255)]        // blue
    public void KnownColours(int y, int u, int v, int r, int g, int b)
    {
        byte[] yuyv = [(byte)y, (byte)u, (byte)y, (byte)v];
        var rgb = new byte[6];
        PixelFormats.YuyvToRgb24(yuyv, 2, 1, 4, rgb);
        for (int k = 0; k < 2; k++)
        {
            Assert.InRange(rgb[3 * k], r - 2, r + 2);
            Assert.InRange(rgb[3 * k + 1], g - 2, g + 2);
            Assert.InRange(rgb[3 * k + 2], b - 2, b + 2);
        }
    }

    [Fact]
    public void OddWidthsAndShortBuffersAreRejectedClearly()
    {
        var rgb = new byte[641 * 480 * 3];
        var ex = Assert.Throws<ArgumentException>(() => PixelFormats.YuyvToRgb24(new byte[642 * 2 * 480], 641, 480, 642 * 2, rgb));
        Assert.Contains("width must be even", ex.Message);
        Assert.Contains("641", ex.Message);

        ex = Assert.Throws<ArgumentException>(() => PixelFormats.YuyvToRgb24(new byte[100], 640, 480, 1280, rgb));
        Assert.Contains("needs", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => PixelFormats.YuyvToRgb24(new byte[1280 * 480], 640, 480, 1000, rgb));
        Assert.Contains("stride", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => PixelFormats.YuyvToRgb24(new byte[1280 * 480], 640, 480, 1280, new byte[10]));
        Assert.Contains("RGB buffer", ex.Message);
    }

    [Fact]
    public void RecordedYuyvFromAPhotoConvertsBackWithHighPsnr()
    {
        var photo = ImageDecoder.Decode(SharedAssets.Images()[0]);
        int width = photo.Width & ~1, height = photo.Height;
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++) photo.Pixels.AsSpan(y * photo.Stride, width * 3).CopyTo(rgb.AsSpan(y * width * 3));
        int stride = width * 2 + 32;   // as a driver with 64-byte-aligned lines would
        var recorded = RgbToYuyv(rgb, width, height, stride);

        var back = new byte[rgb.Length];
        PixelFormats.YuyvToRgb24(recorded, width, height, stride, back);
        double psnr = Psnr(rgb, back);
        Assert.True(psnr > 35, $"PSNR {psnr:F1} dB after RGB -> YUYV 4:2:2 -> RGB (expected > 35 dB)");

        // U and V swapped (a YVYU camera read as YUYV) must be visibly wrong: the check can fail.
        var swapped = (byte[])recorded.Clone();
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x += 2)
                (swapped[y * stride + x * 2 + 1], swapped[y * stride + x * 2 + 3]) = (swapped[y * stride + x * 2 + 3], swapped[y * stride + x * 2 + 1]);
        PixelFormats.YuyvToRgb24(swapped, width, height, stride, back);
        Assert.True(Psnr(rgb, back) < psnr - 5, "swapping U and V should cost PSNR");
    }

    [Fact]
    public void CopyRgb24DropsRowPadding()
    {
        int w = 5, h = 3, stride = 20;
        var src = new byte[stride * h];
        for (int i = 0; i < src.Length; i++) src[i] = (byte)i;
        var dst = new byte[w * h * 3];
        PixelFormats.CopyRgb24(src, w, h, stride, dst);
        for (int y = 0; y < h; y++)
            Assert.Equal(src.AsSpan(y * stride, w * 3).ToArray(), dst.AsSpan(y * w * 3, w * 3).ToArray());
    }

    internal static double Psnr(byte[] a, byte[] b)
    {
        double se = 0;
        for (int i = 0; i < a.Length; i++) se += (a[i] - b[i]) * (double)(a[i] - b[i]);
        double mse = se / a.Length;
        return mse == 0 ? double.PositiveInfinity : 10 * Math.Log10(255.0 * 255.0 / mse);
    }
}
