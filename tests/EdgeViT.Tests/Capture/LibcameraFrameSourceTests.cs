using EdgeViT.Capture;
using EdgeViT.Imaging;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace EdgeViT.Tests.Capture;

/// <summary>
/// The libcamera source against a stand-in <c>rpicam-vid</c> (a shell script found on the source's search path)
/// that streams MJPEG or YUV420 from Debian's ffmpeg, dies mid-stream, or prints what the real one prints when
/// there is no camera or the camera is busy.
/// </summary>
public sealed class LibcameraFrameSourceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("edgevit-rpicam-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>
    /// Writes the stand-in under <paramref name="name"/>. mode: ok (stream forever), die (N frames, then a half frame
    /// and exit 1 with an error line), nocamera, busy. It records its arguments in args.txt.
    /// </summary>
    private void StandIn(string mode, string name = "rpicam-vid", int frames = 5)
    {
        string script = $$"""
            #!/bin/bash
            echo "$@" > "{{_dir}}/args.txt"
            echo "$((`cat "{{_dir}}/starts" 2>/dev/null || echo 0` + 1))" > "{{_dir}}/starts"
            W=640; H=480; FPS=30; CODEC=yuv420
            while [ $# -gt 0 ]; do
              case "$1" in
                --width) W=$2; shift;; --height) H=$2; shift;; --framerate) FPS=$2; shift;; --codec) CODEC=$2; shift;;
              esac; shift
            done
            for i in $(seq 1 40); do echo "#$i (30.00 fps) exp 33251.00 ag 8.00 dg 1.00" >&2; done
            case "{{mode}}" in
              nocamera) echo "ERROR: *** no cameras available ***" >&2; exit 255;;
              busy) echo "[0:00:01.1] ERROR RPI pipeline_base.cpp:678 Failed to acquire camera: Device or resource busy" >&2
                    echo "ERROR: *** failed to acquire camera /base/soc/i2c0mux/i2c@1/imx708@1a ***" >&2; exit 255;;
            esac
            if [ "$CODEC" = mjpeg ]; then FMT="-f mjpeg -q:v 5"; else FMT="-f rawvideo -pix_fmt yuv420p"; fi
            if [ "{{mode}}" = die ]; then
              ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=${W}x${H}:rate=$FPS -frames:v {{frames}} $FMT - 
              ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=${W}x${H}:rate=$FPS -frames:v 1 $FMT - | head -c 2000
              echo "ERROR: *** camera frontend has timed out! ***" >&2
              exit 1
            fi
            exec ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=${W}x${H}:rate=$FPS $FMT -
            """;
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, script.Replace("\r", ""));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private LibcameraOptions Options(string codec = "mjpeg") => new()
    {
        Width = 320, Height = 240, Fps = 30, Codec = codec, Camera = 0, Rotation = 180,
        SearchPath = _dir, StartTimeout = TimeSpan.FromSeconds(20), FrameTimeout = TimeSpan.FromSeconds(10),
    };

    [Fact(Timeout = 60_000)]
    public async Task MjpegFramesDecodeAtTheRequestedSizeAndArgumentsReachTheProgram()
    {
        StandIn("ok");
        await using var source = new LibcameraFrameSource(Options(), NullLogger.Instance);
        await source.OpenAsync(default);
        var decoder = new ReusableImageDecoder();
        for (int i = 1; i <= 10; i++)
        {
            var frame = await source.NextAsync(default);
            Assert.NotNull(frame);
            Assert.Equal(FrameFormat.Encoded, frame!.Format);
            Assert.Equal(i, frame.Sequence);
            var rgb = decoder.Decode(frame.Data, "frame");
            Assert.Equal((320, 240), (rgb.Width, rgb.Height));
            source.Release(frame);
        }
        string args = File.ReadAllText(Path.Combine(_dir, "args.txt")).Trim();
        foreach (var expected in new[] { "--camera 0", "--width 320", "--height 240", "--framerate 30", "--codec mjpeg", "--rotation 180", "--timeout 0", "--output -", "--nopreview" })
            Assert.Contains(expected, args);
        Assert.Equal(Path.Combine(_dir, "rpicam-vid"), source.Program);
        Assert.True(source.Pool.Created <= 4, $"pool created {source.Pool.Created} frames for 10 reads: frames are not reused");
    }

    [Fact(Timeout = 60_000)]
    public async Task Yuv420IsConvertedToRgb()
    {
        StandIn("ok");
        await using var source = new LibcameraFrameSource(Options("yuv420"));
        await source.OpenAsync(default);
        var frame = (await source.NextAsync(default))!;
        Assert.Equal((FrameFormat.Rgb24, 320, 240, 960, 320 * 240 * 3), (frame.Format, frame.Width, frame.Height, frame.Stride, frame.Length));
        // testsrc2 is colourful: the converted frame is not grey.
        var px = frame.Data;
        int coloured = 0;
        for (int i = 0; i < px.Length; i += 3) if (Math.Abs(px[i] - px[i + 1]) > 40 || Math.Abs(px[i + 1] - px[i + 2]) > 40) coloured++;
        Assert.True(coloured > 320 * 240 / 10, $"{coloured} coloured pixels");
        source.Release(frame);
    }

    [Fact(Timeout = 60_000)]
    public async Task FallsBackToLibcameraVid()
    {
        StandIn("ok", name: "libcamera-vid");
        await using var source = new LibcameraFrameSource(Options());
        await source.OpenAsync(default);
        Assert.Equal(Path.Combine(_dir, "libcamera-vid"), source.Program);
        source.Release((await source.NextAsync(default))!);
    }

    [Theory(Timeout = 60_000)]
    [InlineData("missing", "none of rpicam-vid, libcamera-vid found on PATH: install rpicam-apps")]
    [InlineData("nocamera", "libcamera camera 0: no camera found by libcamera")]
    [InlineData("busy", "libcamera camera 0 is busy: another program")]
    public async Task FailuresAreOneClearLine(string mode, string expected)
    {
        if (mode != "missing") StandIn(mode);
        await using var source = new LibcameraFrameSource(Options());
        var ex = await Assert.ThrowsAsync<FrameSourceException>(async () =>
        {
            await source.OpenAsync(default);
            await source.NextAsync(default);
        });
        Assert.Contains(expected, ex.Message);
        Assert.DoesNotContain("\n", ex.Message);
    }

    [Fact(Timeout = 90_000)]
    public async Task StandInDyingMidStreamIsRestartedByTheCaptureLoop()
    {
        StandIn("die", frames: 5);
        await using var source = new LibcameraFrameSource(Options());
        using var queue = new LatestFrameQueue(source);
        await using var loop = new CaptureLoop(source, queue, new ReopenPolicy { InitialDelay = TimeSpan.FromMilliseconds(50), MaxDelay = TimeSpan.FromMilliseconds(200) }, NullLogger.Instance);
        loop.Start();
        var decoder = new ReusableImageDecoder();
        int taken = 0;
        while (taken < 14)
        {
            var frame = await queue.TakeAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
            Assert.NotNull(frame);
            decoder.Decode(frame!.Data, "frame"); // every delivered frame is whole: the half frame was dropped
            queue.Release(frame);
            taken++;
        }
        // 5 frames per run: 14 frames need at least 3 runs of the stand-in.
        Assert.True(int.Parse(File.ReadAllText(Path.Combine(_dir, "starts")).Trim()) >= 3);
        Assert.True(loop.Reopens >= 2, $"{loop.Reopens} reopens");
        Assert.Contains("stopped mid-frame", loop.LastError);
        Assert.Contains("camera frontend has timed out", loop.LastError);
    }

    [Fact]
    public async Task SplitterCutsConcatenatedJpegsAcrossShortReads()
    {
        byte[] a = File.ReadAllBytes(SharedAssets.Images()[0]), b = File.ReadAllBytes(SharedAssets.Images()[1]);
        byte[] stream = [0x00, 0x12, .. a, .. b, .. a];
        var splitter = new JpegStreamSplitter();
        using var trickle = new TrickleStream(stream, 997);
        var frame = new Frame(16);
        var got = new List<byte[]>();
        while (await splitter.ReadAsync(trickle, frame, default)) got.Add(frame.Data.ToArray());
        Assert.Equal(3, got.Count);
        Assert.Equal(a, got[0]);
        Assert.Equal(b, got[1]);
        Assert.Equal(a, got[2]);
        Assert.Equal(2, splitter.SkippedBytes);
    }

    /// <summary>Returns at most <c>chunk</c> bytes per read, like a pipe.</summary>
    private sealed class TrickleStream(byte[] data, int chunk) : MemoryStream(data)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, chunk)], cancellationToken);
    }
}
