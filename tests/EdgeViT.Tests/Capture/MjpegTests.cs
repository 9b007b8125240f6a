using System.Buffers;
using EdgeViT.Capture;
using EdgeViT.Imaging;
using SkiaSharp;
using Xunit;

namespace EdgeViT.Tests.Capture;

public sealed class MjpegTests
{
    /// <summary>A baseline JPEG of a shared photo, encoded by Skia (libjpeg-turbo, standard Huffman tables).</summary>
    internal static byte[] EncodeJpeg(RgbImage image, int quality = 85)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = new byte[image.Width * image.Height * 4];
        for (int i = 0; i < image.Width * image.Height; i++)
        {
            rgba[4 * i] = image.Pixels[3 * i];
            rgba[4 * i + 1] = image.Pixels[3 * i + 1];
            rgba[4 * i + 2] = image.Pixels[3 * i + 2];
            rgba[4 * i + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, quality);
        return data.ToArray();
    }

    /// <summary>Segments (marker, offset, total length) before the first scan.</summary>
    internal static List<(byte Marker, int Offset, int Length)> HeaderSegments(byte[] jpeg)
    {
        var list = new List<(byte, int, int)>();
        int pos = 2;
        while (pos + 3 < jpeg.Length)
        {
            byte marker = jpeg[pos + 1];
            int length = 2 + (jpeg[pos + 2] << 8 | jpeg[pos + 3]);
            list.Add((marker, pos, length));
            if (marker == 0xDA) break;
            pos += length;
        }
        return list;
    }

    /// <summary>The frame as a UVC camera sends it: every DHT segment removed.</summary>
    internal static byte[] StripHuffmanTables(byte[] jpeg)
    {
        var output = new List<byte>(jpeg.Length);
        int copied = 0;
        foreach (var (marker, offset, length) in HeaderSegments(jpeg))
        {
            if (marker != 0xC4) continue;
            output.AddRange(jpeg.AsSpan(copied, offset - copied).ToArray());
            copied = offset + length;
        }
        output.AddRange(jpeg.AsSpan(copied).ToArray());
        return output.ToArray();
    }

    private static RgbImage Photo() => ImageDecoder.Decode(SharedAssets.Images()[1]);

    /// <summary>
    /// A baseline 4:2:2 MJPEG frame coded with the standard (Annex K) Huffman tables, as UVC cameras code them, from
    /// ffmpeg's MJPEG encoder (-huffman default). Skia cannot serve here: libjpeg-turbo writes optimised tables, and a
    /// frame coded with those cannot be repaired by inserting the standard ones (no camera does that).
    /// </summary>
    internal static byte[] CameraStyleMjpeg(string imagePath)
    {
        string output = Path.Combine(Path.GetTempPath(), $"edgevit-mjpeg-{Guid.NewGuid():N}.jpg");
        try
        {
            var psi = new System.Diagnostics.ProcessStartInfo("ffmpeg") { RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in (string[])["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", imagePath, "-frames:v", "1",
                         "-c:v", "mjpeg", "-huffman", "default", "-pix_fmt", "yuvj422p", "-q:v", "3", "-f", "mjpeg", output])
                psi.ArgumentList.Add(a);
            using var process = System.Diagnostics.Process.Start(psi)!;
            string errors = process.StandardError.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"ffmpeg (apt-get install ffmpeg) failed: {errors}");
            return File.ReadAllBytes(output);
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Fact]
    public void StandardSegmentHoldsTheFourAnnexKTables()
    {
        var dht = Mjpeg.StandardDhtSegment;
        Assert.Equal(Mjpeg.DhtSegmentLength, dht.Length);
        Assert.Equal(0xFF, dht[0]);
        Assert.Equal(0xC4, dht[1]);
        Assert.Equal(dht.Length - 2, dht[2] << 8 | dht[3]);
        int pos = 4;
        var expected = new (byte ClassId, int Count)[] { (0x00, 12), (0x01, 12), (0x10, 162), (0x11, 162) };
        foreach (var (classId, count) in expected)
        {
            Assert.Equal(classId, dht[pos]);
            int sum = 0;
            for (int i = 1; i <= 16; i++) sum += dht[pos + i];
            Assert.Equal(count, sum);
            var symbols = dht.Slice(pos + 17, count).ToArray();
            Assert.Equal(count, symbols.Distinct().Count());
            if (count == 162)
            {
                // AC symbols are exactly EOB, ZRL and every (run 0..15, size 1..10).
                var all = new HashSet<byte> { 0x00, 0xF0 };
                for (int run = 0; run < 16; run++)
                    for (int size = 1; size <= 10; size++) all.Add((byte)(run << 4 | size));
                Assert.True(all.SetEquals(symbols));
            }
            else Assert.Equal(Enumerable.Range(0, 12).Select(i => (byte)i), symbols);
            pos += 17 + count;
        }
        Assert.Equal(dht.Length, pos);
    }

    [Fact]
    public void StandardSegmentIsByteForByteWhatAStandardTableEncoderWrites()
    {
        var mjpeg = CameraStyleMjpeg(SharedAssets.Images()[1]);
        var (_, offset, length) = HeaderSegments(mjpeg).Single(s => s.Marker == 0xC4);
        Assert.Equal(Mjpeg.StandardDhtSegment.ToArray(), mjpeg.AsSpan(offset, length).ToArray());
    }

    [Fact]
    public void FrameWithoutHuffmanTablesIsRepairedAndDecodesExactly()
    {
        var mjpeg = CameraStyleMjpeg(SharedAssets.Images()[1]);
        Assert.True(Mjpeg.HasHuffmanTables(mjpeg));
        var original = ImageDecoder.Decode(mjpeg, "original.jpg");

        var stripped = StripHuffmanTables(mjpeg);   // what the camera sends
        Assert.DoesNotContain(HeaderSegments(stripped), s => s.Marker == 0xC4);
        Assert.False(Mjpeg.HasHuffmanTables(stripped));

        var writer = new ArrayBufferWriter<byte>();
        Assert.True(Mjpeg.EnsureHuffmanTables(stripped, writer));
        var repaired = writer.WrittenSpan.ToArray();
        Assert.Equal(stripped.Length + Mjpeg.DhtSegmentLength, repaired.Length);
        var segments = HeaderSegments(repaired);
        int dht = segments.FindIndex(s => s.Marker == 0xC4), sos = segments.FindIndex(s => s.Marker == 0xDA);
        Assert.True(dht >= 0 && dht == sos - 1, "the DHT goes right before the start of scan");

        var decoded = ImageDecoder.Decode(repaired, "repaired.jpg");
        Assert.Equal((original.Width, original.Height), (decoded.Width, decoded.Height));
        Assert.Equal(original.Pixels, decoded.Pixels);   // the tables the encoder used: bit-exact

        // Span form agrees.
        var buffer = new byte[stripped.Length + Mjpeg.DhtSegmentLength];
        int n = Mjpeg.EnsureHuffmanTables(stripped, buffer, out bool inserted);
        Assert.True(inserted);
        Assert.Equal(repaired, buffer.AsSpan(0, n).ToArray());
    }

    [Fact]
    public void FrameWithTablesPassesThroughUnchanged()
    {
        var jpeg = EncodeJpeg(Photo());
        var writer = new ArrayBufferWriter<byte>();
        Assert.False(Mjpeg.EnsureHuffmanTables(jpeg, writer));
        Assert.Equal(jpeg, writer.WrittenSpan.ToArray());

        var buffer = new byte[jpeg.Length];
        Assert.Equal(jpeg.Length, Mjpeg.EnsureHuffmanTables(jpeg, buffer, out bool inserted));
        Assert.False(inserted);
        Assert.Equal(jpeg, buffer);
    }

    [Fact]
    public void NonJpegAndTruncatedFramesAreFormatErrors()
    {
        var writer = new ArrayBufferWriter<byte>();
        Assert.Contains("SOI", Assert.Throws<FormatException>(() => Mjpeg.EnsureHuffmanTables("GIF89a..."u8, writer)).Message);
        var stripped = StripHuffmanTables(EncodeJpeg(Photo()));
        int sos = HeaderSegments(stripped).Single(s => s.Marker == 0xDA).Offset;
        Assert.Contains("truncated", Assert.Throws<FormatException>(() => Mjpeg.EnsureHuffmanTables(stripped.AsSpan(0, sos - 3), writer)).Message);
        Assert.Throws<ArgumentException>(() => Mjpeg.EnsureHuffmanTables(stripped, new byte[stripped.Length], out _));
    }
}
