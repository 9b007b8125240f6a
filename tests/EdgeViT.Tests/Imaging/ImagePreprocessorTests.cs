using EdgeViT.Tests.Support;
using EdgeViT.Imaging;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Simd;
using Xunit;

namespace EdgeViT.Tests.Imaging;

public class ImagePreprocessorTests
{
    private const int Crop = 224;
    private static readonly PreprocessOptions Defaults = new();

    public static TheoryData<SimdLevel> Levels() => [.. SimdLevels.Supported];

    /// <summary>
    /// Sizes that exercise each branch: 1-pixel and tiny (upscaling on both axes), odd sizes, exactly 256
    /// (no resize on the short axis), 224, portrait and landscape, extreme aspect ratios, a strong downscale.
    /// </summary>
    private static readonly (int W, int H)[] Sizes =
    [
        (1, 1), (2, 3), (7, 300), (300, 7), (37, 50), (100, 80), (223, 224), (224, 224), (256, 256),
        (255, 257), (257, 259), (333, 500), (500, 375), (1000, 20), (20, 1000), (1201, 799),
    ];

    public static TheoryData<SimdLevel, int> LevelsAndCases()
    {
        var data = new TheoryData<SimdLevel, int>();
        foreach (var level in SimdLevels.Supported)
            for (int i = 0; i < Sizes.Length + 6; i++) data.Add(level, i);
        return data;
    }

    [Theory]
    [MemberData(nameof(LevelsAndCases))]
    public void MatchesThePlainPilReferenceExactly(SimdLevel level, int caseIndex)
    {
        var random = new Random(1000 + caseIndex); // the same images for every level
        var (w, h) = caseIndex < Sizes.Length ? Sizes[caseIndex] : (random.Next(1, 900), random.Next(1, 900));
        int stride = w * 3 + (caseIndex % 3 == 0 ? 0 : random.Next(1, 8)); // padded rows must be skipped
        var rgb = RandomImage(random, w, h, stride, smooth: caseIndex % 2 == 1);

        var pre = new ImagePreprocessor(simd: level);
        var crop = new byte[Crop * Crop * 3];
        pre.ResizeCrop(rgb, w, h, stride, crop);
        var output = new float[pre.OutputLength];
        pre.Process(rgb, w, h, stride, output);

        // Exact equality, not a tolerance: PIL's resampler is integer arithmetic (22-bit fixed-point weights,
        // int32 sums), which is order-independent, so every SIMD level must produce PIL's bytes exactly; and
        // normalisation maps each byte through the same float32 operations as the reference, so equal bytes give
        // bit-identical floats. Any difference at all is a bug (a wrong tap, bound, offset or rounding).
        var expectedBytes = PilReference.ResizeCrop(rgb, w, h, stride, Defaults.ResizeShortSide, Crop);
        int firstDiff = crop.AsSpan().CommonPrefixLength(expectedBytes);
        Assert.True(firstDiff == crop.Length,
            $"{w}x{h} stride {stride} {level}: byte {firstDiff} (y {firstDiff / 3 / Crop}, x {firstDiff / 3 % Crop}, c {firstDiff % 3}) is " +
            $"{(firstDiff < crop.Length ? crop[firstDiff] : 0)}, reference {(firstDiff < crop.Length ? expectedBytes[firstDiff] : 0)}");
        var expected = PilReference.Normalize(expectedBytes, Crop, Defaults.Mean, Defaults.Std);
        Assert.Equal(expected, output);
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public void MatchesTheReferenceWithOtherOptions(SimdLevel level)
    {
        // Crop 97: rows of 291 bytes are no multiple of any vector width, so every tail path runs.
        var options = new PreprocessOptions(ResizeShortSide: 113, CropSize: 97) { Mean = [0.5f, 0.25f, 0.125f], Std = [0.5f, 0.75f, 2f] };
        var pre = new ImagePreprocessor(options, level);
        var random = new Random(11);
        foreach (var (w, h) in new[] { (150, 131), (60, 301), (113, 113), (90, 40) })
        {
            var rgb = RandomImage(random, w, h, w * 3, smooth: w % 2 == 0);
            var output = new float[pre.OutputLength];
            pre.Process(rgb, w, h, w * 3, output);
            var expected = PilReference.Normalize(PilReference.ResizeCrop(rgb, w, h, w * 3, 113, 97), 97, options.Mean, options.Std);
            Assert.Equal(expected, output);
        }
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public void NormalisesAConstantImageWithEachChannelsMeanAndStd(SimdLevel level)
    {
        byte[] colour = [10, 128, 250]; // distinct per channel, so a swapped channel or plane shows
        int w = 301, h = 203;
        var rgb = new byte[w * h * 3];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = colour[i % 3];

        var pre = new ImagePreprocessor(simd: level);
        var output = new float[pre.OutputLength];
        pre.Process(rgb, w, h, w * 3, output);

        // Resampling a constant keeps it exactly (weights sum to 1 within rounding far below half a byte).
        for (int c = 0; c < 3; c++)
        {
            double expected = (colour[c] / 255.0 - Defaults.Mean[c]) / Defaults.Std[c];
            var plane = output.AsSpan(c * Crop * Crop, Crop * Crop);
            foreach (var v in plane) Assert.Equal(expected, v, 1e-6);
        }
    }

    [Fact]
    public void OutputIsThreeCropPlanesAndEveryValueIsWritten()
    {
        var pre = new ImagePreprocessor();
        Assert.Equal(3 * 224 * 224, pre.OutputLength);

        var rgb = RandomImage(new Random(5), 640, 480, 640 * 3, smooth: true);
        var output = new float[pre.OutputLength];
        Array.Fill(output, float.NaN);
        pre.Process(rgb, 640, 480, 640 * 3, output);
        Assert.DoesNotContain(output, float.IsNaN);
        Assert.Throws<ArgumentException>(() => pre.Process(rgb, 640, 480, 640 * 3, new float[pre.OutputLength - 1]));
    }

    [Theory]
    [MemberData(nameof(Levels))]
    public void RepeatedCallsOnOneSizeAllocateNothing(SimdLevel level)
    {
        var pre = new ImagePreprocessor(simd: level);
        var rgb = RandomImage(new Random(7), 500, 375, 500 * 3, smooth: false);
        var output = new float[pre.OutputLength];
        // The first call of a size builds its plan and buffers; JIT tiering is filtered out by SteadyAllocation.
        Assert.Equal(0, SteadyAllocation.Bytes(() => pre.Process(rgb, 500, 375, 500 * 3, output)));
    }

    [Theory]
    [InlineData(500, 375, 341, 256)]
    [InlineData(333, 500, 256, 384)] // 256*500/333 = 384.38: truncated, as torchvision's int() does
    [InlineData(75, 56, 342, 256)]   // upscaling
    [InlineData(256, 256, 256, 256)]
    [InlineData(1, 5000, 256, 1280000)]
    public void ResizedSizeFollowsTorchvision(int w, int h, int expectedW, int expectedH) =>
        Assert.Equal((expectedW, expectedH), ImagePreprocessor.ResizedSize(w, h, 256));

    [Theory]
    [InlineData(256, 16)]
    [InlineData(257, 16)] // 16.5 rounds to even, as Python's round() does
    [InlineData(259, 18)] // 17.5 rounds to even
    [InlineData(341, 58)] // 58.5
    [InlineData(224, 0)]
    public void CropOffsetRoundsHalfToEvenLikePython(int size, int expected) =>
        Assert.Equal(expected, ImagePreprocessor.CropOffset(size, 224));

    [Fact]
    public void RejectsACropLargerThanTheResize() =>
        Assert.Throws<ArgumentException>(() => new ImagePreprocessor(new PreprocessOptions(ResizeShortSide: 200, CropSize: 224)));

    /// <summary>
    /// Real-PIL parity on shared photos: SHA-256 of the crop bytes and of the normalised float32 CHW tensor, as
    /// produced by Pillow 9.4 (Image.open().convert("RGB"), resize BICUBIC, crop) and numpy float32 ToTensor +
    /// Normalize with torchvision's geometry. Covers the decoder too (greyscale JPEGs, an upscaled 75x56, a 2400x1600).
    /// </summary>
    public static TheoryData<SimdLevel, string, int, int, string, string> PilFixtures()
    {
        string[][] rows =
        [
            ["n01440764_tench.JPEG", "500", "375", "f780e93424d0fef912da60669bce120cf622f501a0d69904ef5178be48766ce3", "da48d9a545d2c4726132b9d3555c88ad889546b7f18f283d4e7cd723d0a3a01a"],
            ["n01494475_hammerhead.JPEG", "333", "500", "060de984f3aeaa2ab9bfbfeed76494a4fbfa74f1cbaa5875d1ac9cf19be2bfdb", "fbc79f0e0c1e23ecbf669ff040b0284608a6cea124488b1a9bc3dde6298eac1d"],
            ["n01622779_great_grey_owl.JPEG", "845", "563", "6529714c99100604c82ae401438fda370ccb7ff46989db19c0399aada8990c79", "671ca1edb164f9a8e9701e7a744e201d02a1546639cad7ff747dbe433c551d57"],
            ["n01871265_tusker.JPEG", "75", "56", "b754d9e0912c30e6218fcbfd5b7cafc64a217dc93f76c72703e3c88324b68104", "34c7f99bd9afb94826eff76b92354aeafe9696f90eee4e580415a7e80941163a"],
            ["n02091032_Italian_greyhound.JPEG", "2400", "1600", "7efdcea5f5de1063fbdb5dab5446bd482152ccba6dd7eedeb42c4ca42a3cda5f", "3921ab3cb13482416bf4e88e2fe567a7aba9fed67f4ee792f9c5a1d85dd9e456"],
            ["n02096051_Airedale.JPEG", "500", "330", "b23519a4bc2bc493ba0d4990d66c0aef0abcc00efe716fb87d443b476bbb330d", "7363c7cd56a75c0952787c27dfab4da6e58bd576fba4fe664a145b24aea41193"], // greyscale
            ["n02110185_Siberian_husky.JPEG", "500", "374", "e82fb2a6127f52c94b01654c5649c5f71a4804760cecdfb33a31d009ec995891", "9f3d875a26e477246fbb14fa10a01bb6f194179fb37e25646e3cf0c5f8ffd34c"],
            ["n02676566_acoustic_guitar.JPEG", "700", "467", "3fd38ace8ac035ad5f44dbe87a6a5fabbcb00530429fd84a59d8cd550da77587", "71243b8fb4bd0e51c0d769fca7c85172d8149b6d2fc7ac0ae33b39e8f4ec726f"], // greyscale
            ["n04033995_quilt.JPEG", "422", "500", "c404f58269e847e912e5c587b68270be19a1c9274f2f551dad2a8e8e7881e3b9", "94b1edfa6708baeceeab75be859e2f1c91433545ccc92998e3e1193f7cc469c5"],
            ["n04487394_trombone.JPEG", "500", "426", "45685edb149193ea1aebc92d10b18c042a07361405ebbf72b6f2f87dfdbd2ece", "9b8d6a385b03fa10e5b8c16568e786c7d230aa7daa4fe984cb8611a8ad74e44b"],
        ];
        var data = new TheoryData<SimdLevel, string, int, int, string, string>();
        foreach (var level in SimdLevels.Supported)
            foreach (var r in rows) data.Add(level, r[0], int.Parse(r[1]), int.Parse(r[2]), r[3], r[4]);
        return data;
    }

    [Theory]
    [MemberData(nameof(PilFixtures))]
    public void MatchesRealPilOnSharedPhotos(SimdLevel level, string file, int w, int h, string cropSha256, string tensorSha256)
    {
        var image = ImageDecoder.Decode(Path.Combine(SharedAssets.ImagesDir, file));
        Assert.Equal((w, h), (image.Width, image.Height));

        var pre = new ImagePreprocessor(simd: level);
        var crop = new byte[Crop * Crop * 3];
        pre.ResizeCrop(image.Pixels, image.Width, image.Height, image.Stride, crop);
        Assert.Equal(cropSha256, ManagedSha256.HexDigest(crop));

        var output = new float[pre.OutputLength];
        pre.Process(image.Pixels, image.Width, image.Height, image.Stride, output);
        Assert.True(BitConverter.IsLittleEndian); // the fixture hashes little-endian float32
        Assert.Equal(tensorSha256, ManagedSha256.HexDigest(System.Runtime.InteropServices.MemoryMarshal.AsBytes(output.AsSpan())));
    }

    /// <summary>Noise (stresses the clamp: bicubic overshoots on sharp edges) or smooth gradients with noise.</summary>
    private static byte[] RandomImage(Random random, int w, int h, int stride, bool smooth)
    {
        var rgb = new byte[stride * h];
        random.NextBytes(rgb); // padding bytes hold junk, so reading them would show
        if (!smooth) return rgb;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                    rgb[y * stride + x * 3 + c] = (byte)Math.Clamp(128 + 90 * Math.Sin(x / (5.0 + c)) + 30 * Math.Cos(y / 7.0) + random.Next(-8, 9), 0, 255);
        return rgb;
    }
    [Fact]
    public void MirrorHorizontallyIsTheLeftRightMirrorOfEveryChannelAndItsOwnInverse()
    {
        const int channels = 3, size = 5;
        var chw = Enumerable.Range(0, channels * size * size).Select(i => (float)i * 0.5f).ToArray();
        var mirrored = (float[])chw.Clone();
        ImagePreprocessor.MirrorHorizontally(mirrored, channels, size);
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    Assert.Equal(chw[(c * size + y) * size + (size - 1 - x)], mirrored[(c * size + y) * size + x]);
        ImagePreprocessor.MirrorHorizontally(mirrored, channels, size);
        Assert.Equal(chw, mirrored);
        Assert.Throws<ArgumentException>(() => ImagePreprocessor.MirrorHorizontally(new float[10], channels, size));
    }
}
