using EdgeViT.Capture;
using Xunit;

namespace EdgeViT.Tests.Capture;

/// <summary>End to end through Debian's ffmpeg (apt-get install ffmpeg), on its own lavfi test pattern.</summary>
public sealed class FfmpegFrameSourceTests
{
    private static FfmpegOptions TestPattern(string size = "320x240", double seconds = 2, int? width = 320, int? height = 240) => new()
    {
        Input = $"testsrc=size={size}:rate=10:duration={seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
        InputOptions = ["-f", "lavfi"],
        Width = width,
        Height = height,
    };

    private static async Task<List<(long Sequence, byte[] Pixels, int Width, int Height, int Stride, FrameFormat Format)>> ReadAll(IFrameSource source)
    {
        var frames = new List<(long, byte[], int, int, int, FrameFormat)>();
        await source.OpenAsync(default);
        while (await source.NextAsync(default) is { } frame)
        {
            frames.Add((frame.Sequence, frame.Data.ToArray(), frame.Width, frame.Height, frame.Stride, frame.Format));
            source.Release(frame);
        }
        return frames;
    }

    [Fact]
    public async Task LavfiTestPatternArrivesAsExactRgbFrames()
    {
        await using var source = new FfmpegFrameSource(TestPattern());
        var frames = await ReadAll(source);

        Assert.Equal(20, frames.Count);   // 2 s at 10 fps, then a clean end (null)
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), frames.Select(f => f.Sequence));
        foreach (var f in frames)
        {
            Assert.Equal((FrameFormat.Rgb24, 320, 240, 960), (f.Format, f.Width, f.Height, f.Stride));
            Assert.Equal(320 * 240 * 3, f.Pixels.Length);
            Assert.Contains(f.Pixels, b => b != f.Pixels[0]);
        }
        Assert.NotEqual(frames[0].Pixels, frames[10].Pixels);   // testsrc moves
        Assert.True(source.Pool.Created <= 2, $"{source.Pool.Created} frames allocated for 20 read one at a time");
        Assert.Equal("ffmpeg:testsrc=size=320x240:rate=10:duration=2 320x240", source.Name);
    }

    [Fact]
    public async Task ScalesToTheConfiguredSize()
    {
        await using var source = new FfmpegFrameSource(TestPattern(seconds: 0.5, width: 160, height: 90));
        var frames = await ReadAll(source);
        Assert.Equal(5, frames.Count);
        Assert.All(frames, f => Assert.Equal((160, 90, 160 * 90 * 3), (f.Width, f.Height, f.Pixels.Length)));
    }

    [Fact]
    public async Task ProbesTheSizeWhenNotGiven()
    {
        await using var source = new FfmpegFrameSource(TestPattern(size: "256x144", seconds: 0.3, width: null, height: null));
        var frames = await ReadAll(source);
        Assert.Equal((256, 144), (source.Width, source.Height));
        Assert.Equal(3, frames.Count);

        await using var half = new FfmpegFrameSource(TestPattern(size: "256x144", seconds: 0.1, width: 128, height: null));
        await half.OpenAsync(default);
        Assert.Equal((128, 72), (half.Width, half.Height));   // aspect kept
    }

    [Fact]
    public async Task MissingFfmpegIsAClearError()
    {
        await using var source = new FfmpegFrameSource(TestPattern() with { FfmpegPath = "/nonexistent/ffmpeg" });
        var ex = await Assert.ThrowsAsync<FrameSourceException>(() => source.OpenAsync(default).AsTask());
        Assert.Equal("ffmpeg not found at /nonexistent/ffmpeg: apt-get install ffmpeg, or fix the path", ex.Message);

        await using var onPath = new FfmpegFrameSource(TestPattern() with { FfmpegPath = "ffmpeg-edgevit-missing" });
        // Any name that is not the default is reported as a path; the default one says "on PATH".
        Assert.Contains("not found", (await Assert.ThrowsAsync<FrameSourceException>(() => onPath.OpenAsync(default).AsTask())).Message);
    }

    [Fact]
    public async Task StreamErrorsCarryFfmpegsLastStderrLine()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"edgevit-missing-{Guid.NewGuid():N}.mp4");
        await using var source = new FfmpegFrameSource(new FfmpegOptions { Input = missing, Width = 64, Height = 48 });
        await source.OpenAsync(default);
        var ex = await Assert.ThrowsAsync<FrameSourceException>(() => source.NextAsync(default).AsTask());
        Assert.StartsWith($"ffmpeg failed on {missing}: ", ex.Message);
        Assert.Contains("No such file or directory", ex.Message);
        Assert.Contains("exit code", ex.Message);

        await using var probe = new FfmpegFrameSource(new FfmpegOptions { Input = missing });
        var pex = await Assert.ThrowsAsync<FrameSourceException>(() => probe.OpenAsync(default).AsTask());
        Assert.StartsWith($"ffprobe cannot read {missing}: ", pex.Message);
    }

    [Fact]
    public async Task DisposeKillsTheProcessAndCredentialsAreMasked()
    {
        await using var source = new FfmpegFrameSource(TestPattern(seconds: 3600) with { Realtime = true });
        await source.OpenAsync(default);
        source.Release((await source.NextAsync(default))!);
        var ffmpeg = typeof(FfmpegFrameSource).GetField("_process", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!
            .GetValue(source) as System.Diagnostics.Process;
        int pid = ffmpeg!.Id;
        await source.DisposeAsync();
        for (int i = 0; i < 40 && Directory.Exists($"/proc/{pid}"); i++) await Task.Delay(50);
        Assert.False(Directory.Exists($"/proc/{pid}"), $"ffmpeg {pid} still running after dispose");

        Assert.Equal("rtsp://admin:***@192.0.2.7:554/stream1", FfmpegFrameSource.Redact("rtsp://admin:hunter2@192.0.2.7:554/stream1"));
        Assert.Equal("rtsp://192.0.2.7/s", FfmpegFrameSource.Redact("rtsp://192.0.2.7/s"));
    }

    [Fact]
    public async Task StalledStreamTimesOutAndCancellationIsPrompt()
    {
        // One frame every 5 s in real time: after a frame, a 300 ms timeout must fire. (-re lets ffmpeg burst to
        // catch up when a loaded machine started it late, so a few frames may come at once before the gap.)
        var slow = new FfmpegOptions
        {
            Input = "testsrc=size=64x48:rate=1/5", InputOptions = ["-f", "lavfi"], Width = 64, Height = 48,
            Realtime = true, FrameTimeout = TimeSpan.FromMilliseconds(300),
        };
        await using (var source = new FfmpegFrameSource(slow))
        {
            await source.OpenAsync(default);
            source.Release((await source.NextAsync(default))!);
            FrameSourceException? stalled = null;
            for (int burst = 0; burst < 3 && stalled is null; burst++)
            {
                try { source.Release((await source.NextAsync(default))!); }
                catch (FrameSourceException ex) { stalled = ex; }
            }
            Assert.NotNull(stalled);
            Assert.Equal("ffmpeg testsrc=size=64x48:rate=1/5: no frame for 0.3 s (stream stalled)", stalled.Message);
        }

        await using (var source = new FfmpegFrameSource(slow with { FrameTimeout = TimeSpan.FromSeconds(30) }))
        {
            await source.OpenAsync(default);
            source.Release((await source.NextAsync(default))!);
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => source.NextAsync(cts.Token).AsTask());
            Assert.True(clock.ElapsedMilliseconds < 10_000, $"cancellation took {clock.ElapsedMilliseconds} ms");
            // The source stays usable after a cancelled read (its timeout token was reset).
            var next = await source.NextAsync(default);
            Assert.NotNull(next);
        }
    }

    [Fact]
    public void ArgumentsFollowTheDocumentedCommandLine()
    {
        var source = new FfmpegFrameSource(new FfmpegOptions { Input = "in.mp4", Realtime = true, Fps = 5 });
        Assert.Equal(
            "-hide_banner -loglevel error -nostdin -re -i in.mp4 -an -sn -dn -vf scale=224:224,fps=5 -pix_fmt rgb24 -f rawvideo -",
            string.Join(' ', source.Arguments(224, 224)));
    }
}
