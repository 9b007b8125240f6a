using EdgeViT.Capture;
using Xunit;

namespace EdgeViT.Tests.Capture;

public sealed class FolderAndSyntheticSourceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("edgevit-capture-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task FolderLoopsInNameOrderAndCounts()
    {
        var images = SharedAssets.Images().Take(3).ToArray();
        string[] names = ["b.JPEG", "a.jpg", "c.jpeg"];
        for (int i = 0; i < 3; i++) File.Copy(images[i], Path.Combine(_dir, names[i]));
        File.WriteAllText(Path.Combine(_dir, "notes.txt"), "not an image");

        await using var source = new ImageFolderFrameSource(new ImageFolderOptions { Folder = _dir });
        await source.OpenAsync(default);
        Assert.Equal(["a.jpg", "b.JPEG", "c.jpeg"], source.Files.Select(Path.GetFileName));

        var expected = new[] { images[1], images[0], images[2] };
        for (int i = 0; i < 7; i++)
        {
            var frame = (await source.NextAsync(default))!;
            Assert.Equal(FrameFormat.Encoded, frame.Format);
            Assert.Equal(i + 1, frame.Sequence);
            Assert.Equal(File.ReadAllBytes(expected[i % 3]), frame.Data.ToArray());
            Assert.EndsWith(names[Array.IndexOf(images, expected[i % 3])], frame.Origin);
            source.Release(frame);
        }
        Assert.Equal(2, source.Cycles);
        Assert.Equal(1, source.Pool.Created);
    }

    [Fact]
    public async Task FolderOnceEndsAndRateLimitHolds()
    {
        foreach (var (image, i) in SharedAssets.Images().Take(4).Select((p, i) => (p, i)))
            File.Copy(image, Path.Combine(_dir, $"{i}.jpg"));
        await using var source = new ImageFolderFrameSource(new ImageFolderOptions { Folder = _dir, Loop = false, MaxFps = 20 });
        await source.OpenAsync(default);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int count = 0;
        while (await source.NextAsync(default) is { } frame)
        {
            count++;
            source.Release(frame);
        }
        Assert.Equal(4, count);
        Assert.True(clock.ElapsedMilliseconds >= 3 * 50 - 10, $"4 frames at 20 fps took {clock.ElapsedMilliseconds} ms");
        Assert.Null(await source.NextAsync(default));
    }

    [Fact]
    public async Task MissingOrEmptyFolderIsAClearError()
    {
        string missing = Path.Combine(_dir, "nope");
        await using var a = new ImageFolderFrameSource(new ImageFolderOptions { Folder = missing });
        Assert.Equal($"image folder {missing} not found", (await Assert.ThrowsAsync<FrameSourceException>(() => a.OpenAsync(default).AsTask())).Message);

        File.WriteAllText(Path.Combine(_dir, "readme.md"), "");
        await using var b = new ImageFolderFrameSource(new ImageFolderOptions { Folder = _dir });
        var ex = await Assert.ThrowsAsync<FrameSourceException>(() => b.OpenAsync(default).AsTask());
        Assert.StartsWith($"image folder {_dir} contains no images (.jpg, .jpeg", ex.Message);
    }

    [Fact]
    public async Task SyntheticPatternMovesAndEnds()
    {
        await using var source = new SyntheticFrameSource(new SyntheticOptions { Width = 64, Height = 48, Fps = null, FrameCount = 5 });
        await source.OpenAsync(default);
        byte[]? previous = null;
        int count = 0;
        while (await source.NextAsync(default) is { } frame)
        {
            count++;
            Assert.Equal((FrameFormat.Rgb24, 64, 48, 64 * 3, 64 * 48 * 3), (frame.Format, frame.Width, frame.Height, frame.Stride, frame.Length));
            var pixels = frame.Data.ToArray();
            Assert.Contains(pixels, p => p != pixels[0]);
            if (previous is not null) Assert.NotEqual(previous, pixels);
            previous = pixels;
            source.Release(frame);
        }
        Assert.Equal(5, count);
    }

    [Theory]
    [InlineData(64, 48)]
    [InlineData(33, 17)]  // rows not a multiple of the vector width
    [InlineData(5, 3)]    // smaller than one vector
    [InlineData(640, 480)]
    public async Task SyntheticFramesAreThePatternDrawnPixelByPixel(int width, int height)
    {
        await using var source = new SyntheticFrameSource(new SyntheticOptions { Width = width, Height = height, Fps = null });
        await source.OpenAsync(default);
        var expected = new byte[width * height * 3];
        for (long n = 1; n <= 70; n++) // past a full wrap of the colour shift (64 frames) and square bounces
        {
            var frame = (await source.NextAsync(default))!;
            Assert.Equal(n, frame.Sequence);
            SyntheticFrameSource.Draw(expected, width, height, n);
            Assert.True(expected.AsSpan().SequenceEqual(frame.Data), $"frame {n} of {width}x{height} differs from Draw");
            source.Release(frame);
        }
    }

    [Fact]
    public async Task SyntheticFramesAllocateNothingOnceWarm()
    {
        await using var source = new SyntheticFrameSource(new SyntheticOptions { Width = 640, Height = 480, Fps = null });
        await source.OpenAsync(default);
        long bytes = Support.SteadyAllocation.Bytes(() =>
        {
            for (int i = 0; i < 8; i++)
            {
                var frame = source.NextAsync(default).Result!;
                source.Release(frame);
            }
        });
        Assert.Equal(0, bytes);
    }

    [Fact]
    public async Task SyntheticRateIsPaced()
    {
        await using var source = new SyntheticFrameSource(new SyntheticOptions { Width = 32, Height = 32, Fps = 50, FrameCount = 6 });
        await source.OpenAsync(default);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (await source.NextAsync(default) is { } frame) source.Release(frame);
        Assert.True(clock.ElapsedMilliseconds >= 5 * 20 - 10, $"6 frames at 50 fps took {clock.ElapsedMilliseconds} ms");
    }
}
