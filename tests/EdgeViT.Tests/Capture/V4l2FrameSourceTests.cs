using EdgeViT.Capture;
using EdgeViT.Capture.Interop;
using EdgeViT.Imaging;
using Xunit;
using static EdgeViT.Capture.Interop.V4l2;

namespace EdgeViT.Tests.Capture;

public sealed class V4l2FrameSourceTests
{
    private static V4l2Options Options(int width = 640, int height = 480, params CameraPixelFormat[] formats) => new()
    {
        Device = "/dev/video7",
        Width = width,
        Height = height,
        Fps = 15,
        Formats = formats.Length > 0 ? formats : [CameraPixelFormat.Yuyv, CameraPixelFormat.Mjpeg, CameraPixelFormat.Rgb24],
        FrameTimeout = TimeSpan.FromSeconds(2),
    };

    private static async Task<FrameSourceException> OpenFails(FakeCamera camera, V4l2Options? options = null)
    {
        await using var source = new V4l2FrameSource(options ?? Options(), camera, null);
        var ex = await Assert.ThrowsAsync<FrameSourceException>(() => source.OpenAsync(default).AsTask());
        Assert.DoesNotContain('\n', ex.Message);
        Assert.False(camera.IsOpen);   // nothing left open
        Assert.Equal(0, camera.Mapped);
        return ex;
    }

    [Fact]
    public async Task MissingDeviceGivesTheClearError()
    {
        await using var source = new V4l2FrameSource(new V4l2Options { Device = "/dev/video99" });
        var ex = await Assert.ThrowsAsync<FrameSourceException>(() => source.OpenAsync(default).AsTask());
        Assert.Equal("camera /dev/video99 not found (is it connected? is the user in the 'video' group?)", ex.Message);
    }

    [Fact]
    public async Task RealSystemCallsRecogniseANonVideoDevice()
    {
        await using var source = new V4l2FrameSource(new V4l2Options { Device = "/dev/null" });
        var ex = await Assert.ThrowsAsync<FrameSourceException>(() => source.OpenAsync(default).AsTask());
        // ENOTTY from a kernel; ENOSYS when this runs as an arm64 build under qemu-user (tests/run.sh).
        Assert.Matches(@"^camera /dev/null is not a V4L2 video device \(VIDIOC_QUERYCAP: (Inappropriate ioctl for device \(ENOTTY\)|Function not implemented \(ENOSYS\))\)$", ex.Message);
    }

    [Fact]
    public unsafe void LibcSeamOpensMapsPollsAndReportsErrno()
    {
        var io = LibcV4l2Io.Instance;
        Assert.Equal(-Libc.ENOENT, io.Open("/dev/video99"));
        // A regular file stands in for the driver's buffers: mapped shared at a page offset, as V4L2 buffers are.
        string path = Path.Combine(Path.GetTempPath(), $"edgevit-mmap-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(path, Enumerable.Range(0, 3 * 4096).Select(i => (byte)(i / 4096 + 1)).ToArray());
        int fd = io.Open(path);
        Assert.True(fd >= 0, $"open {path}: errno {-fd}");
        try
        {
            nint p = io.Mmap(fd, 8192, 4096, out int errno);
            Assert.True(p != 0, $"mmap failed: errno {errno}");
            var mapped = new Span<byte>((void*)p, 8192);
            Assert.Equal(2, mapped[0]);      // the offset reached the kernel: page 1 of the file
            Assert.Equal(3, mapped[8191]);
            mapped[8191] = 7;                // shared mapping: written through to the file
            io.Munmap(p, 8192);
            Assert.Equal(0, io.Mmap(fd, 8192, 100, out errno));   // unaligned offset: EINVAL
            Assert.Equal(Libc.EINVAL, errno);

            Assert.Equal(1, io.Poll(fd, 1000, out short revents));
            Assert.True((revents & Libc.POLLIN) != 0);
            v4l2_capability cap = default;
            Assert.Contains(io.Ioctl(fd, VIDIOC_QUERYCAP, &cap), new[] { Libc.ENOTTY, Libc.ENOSYS });   // ENOSYS: qemu-user
        }
        finally
        {
            io.Close(fd);
        }
        Assert.Equal(7, File.ReadAllBytes(path)[3 * 4096 - 1]);
        File.Delete(path);
    }

    [Fact]
    public async Task ResilientWrapperRetriesAMissingDeviceWithBackoff()
    {
        var policy = new ReopenPolicy { InitialDelay = TimeSpan.FromMilliseconds(10), Multiplier = 2, MaxAttempts = 4 };
        await using var source = new ResilientFrameSource(new V4l2FrameSource(new V4l2Options { Device = "/dev/video99" }), policy);
        var started = System.Diagnostics.Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<FrameSourceException>(() => source.OpenAsync(default).AsTask());
        Assert.Equal(4, source.OpenAttempts);
        Assert.Equal(4, source.Failures);
        Assert.StartsWith("camera /dev/video99 not found", ex.Message);
        Assert.Contains("gave up after 4 attempts", ex.Message);
        Assert.True(started.ElapsedMilliseconds >= 10 + 20 + 40 - 5, $"backoff 10+20+40 ms, took {started.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task ResilientWrapperOpensOnceTheSourceAppears()
    {
        var inner = new ScriptedSource { OpenFailuresLeft = 2 };
        inner.Script.Enqueue(() => ScriptedSource.MakeFrame(1));
        await using var source = new ResilientFrameSource(inner, new ReopenPolicy { InitialDelay = TimeSpan.FromMilliseconds(1) });
        await source.OpenAsync(default);
        Assert.Equal(3, source.OpenAttempts);
        Assert.Equal(2, source.Failures);
        Assert.Equal(1, (await source.NextAsync(default))!.Sequence);
    }

    [Fact]
    public async Task NegotiatesYuyvAtTheNearestSizeAndConvertsFrames()
    {
        using var camera = new FakeCamera
        {
            StridePadding = 64,
            Generator = (buffer, n) =>
            {
                // Colour-bar red with a luma ramp along x so frames are not uniform.
                int w = 640, stride = w * 2 + 64;
                for (int y = 0; y < 480; y++)
                    for (int x = 0; x < w; x += 2)
                    {
                        int o = y * stride + x * 2;
                        buffer[o] = buffer[o + 2] = (byte)(16 + x * 219 / w);
                        buffer[o + 1] = 90;
                        buffer[o + 3] = 240;
                    }
                return stride * 480;
            },
        };
        await using var source = new V4l2FrameSource(Options(600, 450), camera, null);
        await source.OpenAsync(default);

        var s = source.Stream!;
        Assert.Equal(CameraPixelFormat.Yuyv, s.Format);
        Assert.Equal((640, 480), (s.Width, s.Height));
        Assert.Equal(640 * 2 + 64, s.BytesPerLine);
        Assert.Equal(15, s.Fps);
        Assert.Equal(new v4l2_fract { numerator = 1, denominator = 15 }, camera.TimePerFrame);
        Assert.Equal(4, s.Buffers);
        Assert.Equal(4, camera.Mapped);
        Assert.Equal("v4l2:/dev/video7 640x480 YUYV @15fps", source.Name);

        for (int i = 1; i <= 6; i++)
        {
            var frame = (await source.NextAsync(default))!;
            Assert.Equal(FrameFormat.Rgb24, frame.Format);
            Assert.Equal((640, 480, 640 * 3, 640 * 480 * 3), (frame.Width, frame.Height, frame.Stride, frame.Length));
            Assert.Equal(i, frame.Sequence);
            Assert.Equal("/dev/video7", frame.Origin);
            int x = 500, px = (100 * 640 + x) * 3;
            var expected = PixelFormatsTests.Reference(16 + x * 219 / 640, 90, 240);
            Assert.InRange(frame.Data[px], expected.R - 1, expected.R + 1);
            Assert.InRange(frame.Data[px + 1], expected.G - 1, expected.G + 1);
            Assert.InRange(frame.Data[px + 2], expected.B - 1, expected.B + 1);
            source.Release(frame);
        }
        Assert.Equal(1, source.Pool.Created);   // released frames are reused
        await source.DisposeAsync();
        Assert.Equal(0, camera.Mapped);
        Assert.Equal(1, camera.Closes);
    }

    [Fact]
    public async Task MjpegFramesArePassedEncodedWithHuffmanTables()
    {
        var photo = ImageDecoder.Decode(SharedAssets.Images()[2]);
        var uvcFrame = MjpegTests.StripHuffmanTables(MjpegTests.CameraStyleMjpeg(SharedAssets.Images()[2]));
        using var camera = new FakeCamera
        {
            Formats = [("MJPG", "Motion-JPEG")],
            Sizes = [(photo.Width, photo.Height)],
            Generator = (buffer, n) =>
            {
                uvcFrame.CopyTo(buffer);
                return uvcFrame.Length;
            },
        };
        await using var source = new V4l2FrameSource(Options(), camera, null);
        await source.OpenAsync(default);
        Assert.Equal(CameraPixelFormat.Mjpeg, source.Stream!.Format);

        var frame = (await source.NextAsync(default))!;
        Assert.Equal(FrameFormat.Encoded, frame.Format);
        Assert.Equal((photo.Width, photo.Height), (frame.Width, frame.Height));
        Assert.Equal(uvcFrame.Length + Mjpeg.DhtSegmentLength, frame.Length);
        Assert.True(Mjpeg.HasHuffmanTables(frame.Data));
        var decoded = ImageDecoder.Decode(frame.Data, "mjpeg frame");
        Assert.Equal((photo.Width, photo.Height), (decoded.Width, decoded.Height));
        Assert.True(PixelFormatsTests.Psnr(photo.Pixels, decoded.Pixels) > 30, "the repaired frame shows the photo");
    }

    [Fact]
    public async Task PreferenceOrderDecidesTheFormat()
    {
        using var camera = new FakeCamera { Formats = [("YUYV", "YUYV 4:2:2"), ("MJPG", "Motion-JPEG"), ("RGB3", "RGB24")] };
        await using var source = new V4l2FrameSource(Options(640, 480, CameraPixelFormat.Rgb24, CameraPixelFormat.Yuyv), camera, null);
        await source.OpenAsync(default);
        Assert.Equal(CameraPixelFormat.Rgb24, source.Stream!.Format);
        Assert.Equal("RGB3", source.Stream.FourCc);
    }

    [Fact]
    public async Task ErroredBuffersAreSkippedAndDriverDropsShowAsSequenceGaps()
    {
        using var camera = new FakeCamera { SequenceStep = 2 };
        camera.ErrorFrames.Add(2);
        await using var source = new V4l2FrameSource(Options(320, 240), camera, null);
        await source.OpenAsync(default);
        var a = (await source.NextAsync(default))!;
        long first = a.Sequence;
        source.Release(a);
        var b = (await source.NextAsync(default))!;   // frame 2 was flagged V4L2_BUF_FLAG_ERROR
        Assert.Equal(1, source.CorruptFrames);
        Assert.Equal(first + 4, b.Sequence);          // driver sequence 2 -> 6
    }

    [Fact]
    public async Task UnpluggedCameraFailsClearlyAndTheWrapperReopensIt()
    {
        using var camera = new FakeCamera { UnplugAfterFrames = 3 };
        var v4l2 = new V4l2FrameSource(Options(320, 240), camera, null);

        // Bare source: the loss is a FrameSourceException and everything is released.
        await v4l2.OpenAsync(default);
        for (int i = 0; i < 3; i++) v4l2.Release((await v4l2.NextAsync(default))!);
        var ex = await Assert.ThrowsAsync<FrameSourceException>(() => v4l2.NextAsync(default).AsTask());
        Assert.Equal("camera /dev/video7 was disconnected or failed (VIDIOC_DQBUF: No such device (ENODEV))", ex.Message);
        Assert.Equal(0, camera.Mapped);
        Assert.Equal(camera.OpenCalls, camera.Closes);

        // Wrapped: the next loss is ridden out (two failed opens while the camera is away, then streaming again).
        camera.UnplugAfterFrames = (int)camera.Delivered + 2;
        camera.AbsentOpensAfterUnplug = 2;
        await using var resilient = new ResilientFrameSource(v4l2, new ReopenPolicy { InitialDelay = TimeSpan.FromMilliseconds(2), MaxAttempts = 5 });
        await resilient.OpenAsync(default);
        for (int i = 0; i < 5; i++) resilient.Release((await resilient.NextAsync(default))!);
        Assert.Equal(1, resilient.Reopens);
        Assert.Equal(3, resilient.Failures);   // the loss and two absent opens
        Assert.Equal(3, camera.StreamOns);     // first open, the wrapper's open, the reopen
    }

    [Fact]
    public async Task OpenErrorsAreOneLineAndSayWhatTheDeviceOffers()
    {
        Assert.Contains("permission denied (add the user to the 'video' group",
            (await OpenFails(new FakeCamera { OpenErrno = Libc.EACCES })).Message);
        Assert.Contains("is busy", (await OpenFails(new FakeCamera { OpenErrno = Libc.EBUSY })).Message);

        var meta = await OpenFails(new FakeCamera { DeviceCaps = V4L2_CAP_META_CAPTURE | V4L2_CAP_STREAMING });
        Assert.Contains("metadata node", meta.Message);

        var codec = await OpenFails(new FakeCamera { Driver = "bcm2835-codec", Card = "bcm2835-codec-decode", DeviceCaps = V4L2_CAP_VIDEO_M2M_MPLANE | V4L2_CAP_STREAMING });
        Assert.Contains("memory-to-memory codec/ISP node, not a camera", codec.Message);
        Assert.Contains("libcamera", codec.Message);

        var noStreaming = await OpenFails(new FakeCamera { DeviceCaps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_READWRITE });
        Assert.Contains("does not support streaming", noStreaming.Message);

        var unsupported = await OpenFails(new FakeCamera { Formats = [("H264", "H.264"), ("NV12", "Y/UV 4:2:0")] });
        Assert.Equal("camera /dev/video7 (Fake UVC Camera, driver uvcvideo) offers none of YUYV, MJPEG, RGB24; it offers: H264 (H.264), NV12 (Y/UV 4:2:0)", unsupported.Message);

        var onlyMjpegWanted = await OpenFails(new FakeCamera(), Options(640, 480, CameraPixelFormat.Rgb24));
        Assert.Contains("offers none of RGB24; it offers: YUYV (YUYV 4:2:2), MJPG (Motion-JPEG)", onlyMjpegWanted.Message);
    }

    [Fact]
    public async Task LibcameraOnlyCsiCamerasAreNamedAsSuch()
    {
        var bayer = await OpenFails(new FakeCamera
        {
            Driver = "unicam", Card = "unicam",
            Formats = [("pRAA", "10-bit Bayer RGRG/GBGB Packed"), ("RG10", "10-bit Bayer RGRG/GBGB")],
        });
        Assert.Contains("it offers: pRAA (10-bit Bayer RGRG/GBGB Packed), RG10 (10-bit Bayer RGRG/GBGB)", bayer.Message);
        Assert.Contains("raw Bayer sensor data only", bayer.Message);
        Assert.Contains("libcamera-only CSI camera", bayer.Message);
        Assert.Contains("rpicam-vid", bayer.Message);

        var empty = await OpenFails(new FakeCamera { Driver = "rp1-cfe", Card = "rp1-cfe", Formats = [] });
        Assert.Contains("offers no capture formats", empty.Message);
        Assert.Contains("libcamera-only", empty.Message);
    }

    [Fact]
    public async Task StalledCameraTimesOut()
    {
        using var camera = new FakeCamera();
        await using var source = new V4l2FrameSource(Options(320, 240) with { FrameTimeout = TimeSpan.FromMilliseconds(200) }, camera, null);
        await source.OpenAsync(default);
        source.Release((await source.NextAsync(default))!);
        camera.Stalled = true;
        var ex = await Assert.ThrowsAsync<FrameSourceException>(() => source.NextAsync(default).AsTask());
        Assert.Equal("camera /dev/video7 delivered no frame in 0.2 s (stalled: unplugged, or not enough USB bandwidth?)", ex.Message);
        Assert.Equal(0, camera.Mapped);
    }

    [Fact]
    public async Task CancellationStopsAWaitingNext()
    {
        // A 30 s frame timeout, so only the cancellation can end the wait; the bound is loose because the
        // cancel timer runs on a thread pool that a loaded CI box (the whole suite in parallel) can starve.
        using var camera = new FakeCamera { Stalled = true };
        await using var source = new V4l2FrameSource(Options(320, 240) with { FrameTimeout = TimeSpan.FromSeconds(30) }, camera, null);
        await source.OpenAsync(default);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        var started = System.Diagnostics.Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Task.Run(() => source.NextAsync(cts.Token).AsTask()));
        Assert.True(started.ElapsedMilliseconds < 10_000, $"cancellation took {started.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void DescribeReportsNodesWithoutThrowing()
    {
        using var camera = new FakeCamera();
        var info = V4l2FrameSource.Describe(camera, "/dev/video0");
        Assert.True(info.IsCapture);
        Assert.Equal(("uvcvideo", "Fake UVC Camera"), (info.Driver, info.Card));
        Assert.Equal(["YUYV (YUYV 4:2:2)", "MJPG (Motion-JPEG)"], info.Formats.Select(f => f.ToString()));
        Assert.True(info.Formats[1].Compressed);
        Assert.Null(info.Error);
        Assert.False(camera.IsOpen);

        using var meta = new FakeCamera { DeviceCaps = V4L2_CAP_META_CAPTURE | V4L2_CAP_STREAMING };
        var metaInfo = V4l2FrameSource.Describe(meta, "/dev/video1");
        Assert.False(metaInfo.IsCapture);
        Assert.Contains("metadata node", metaInfo.Error);

        var missing = V4l2FrameSource.Describe("/dev/video99");
        Assert.Equal("camera /dev/video99 not found (is it connected? is the user in the 'video' group?)", missing.Error);
        Assert.All(V4l2FrameSource.ListDevices(), d => Assert.StartsWith("/dev/video", d.Device));
    }

    [Fact]
    public void NearestSizeAndFrameRateFractions()
    {
        (int, int)[] sizes = [(160, 120), (320, 240), (640, 480), (1280, 720), (1920, 1080)];
        Assert.Equal((640, 480), V4l2FrameSource.NearestSize(sizes, 600, 450));
        Assert.Equal((1280, 720), V4l2FrameSource.NearestSize(sizes, 1280, 700));
        Assert.Equal((160, 120), V4l2FrameSource.NearestSize(sizes, 1, 1));
        Assert.Equal((1920, 1080), V4l2FrameSource.NearestSize(sizes, 4000, 3000));
        Assert.Equal(new v4l2_fract { numerator = 1, denominator = 30 }, V4l2FrameSource.ToFraction(1 / 30.0));
        Assert.Equal(new v4l2_fract { numerator = 2, denominator = 15 }, V4l2FrameSource.ToFraction(1 / 7.5));
    }
}
