using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Simd;
using Xunit;

namespace EdgeViT.Tests.Imaging;

public class PixelConvertTests
{
    public static TheoryData<SimdLevel> Levels() => [.. SimdLevels.Supported];

    [Theory]
    [MemberData(nameof(Levels))]
    public void RgbaToRgbDropsAlphaAndTouchesNothingPastThePixels(SimdLevel level)
    {
        var random = new Random(3);
        for (int pixels = 0; pixels <= 70; pixels++) // every remainder of the 4-pixel vector step, with tails
        {
            var rgba = new byte[pixels * 4];
            random.NextBytes(rgba);
            var rgb = new byte[pixels * 3 + 20];
            Array.Fill(rgb, (byte)0xA5); // sentinel past the pixels: a longer reused buffer must stay untouched

            PixelConvert.RgbaToRgb(rgba, rgb, level);

            for (int p = 0; p < pixels; p++)
                Assert.Equal(rgba.AsSpan(p * 4, 3).ToArray(), rgb.AsSpan(p * 3, 3).ToArray());
            Assert.All(rgb[(pixels * 3)..], b => Assert.Equal(0xA5, b));
        }
    }
}
