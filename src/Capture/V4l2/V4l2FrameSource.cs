using System.Diagnostics;
using EdgeViT.Capture.Interop;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using static EdgeViT.Capture.Interop.V4l2;

namespace EdgeViT.Capture;

/// <summary>
/// A V4L2 camera (USB/UVC webcams, CSI bridges that expose a plain capture node) read through mmap streaming:
/// QUERYCAP, ENUM_FMT, format/size/rate negotiation, REQBUFS + QUERYBUF + mmap, QBUF, STREAMON; each
/// <see cref="NextAsync"/> polls, dequeues one buffer, copies it into a pooled frame (YUYV converted to RGB24,
/// RGB24 copied, MJPEG passed on encoded with Huffman tables ensured) and queues the buffer back.
/// </summary>
/// <remarks>
/// <see cref="NextAsync"/> blocks its thread in poll() (in 100 ms slices, so cancellation is seen) and completes
/// synchronously: run it on a dedicated thread such as <see cref="CaptureLoop"/>'s. <see cref="OpenAsync"/> may be
/// called again after a failure (device lost, stalled): it closes whatever is left and renegotiates.
/// Release may be called from any thread.
/// </remarks>
public sealed unsafe class V4l2FrameSource : IFrameSource
{
    private const int PollSliceMs = 100;

    private readonly V4l2Options _options;
    private readonly IV4l2Io _io;
    private readonly ILogger _log;
    private readonly FramePool _pool;
    private readonly object _gate = new();
    private int _fd = -1;
    private (nint Address, nuint Length)[] _buffers = [];
    private bool _streaming;
    private volatile bool _disposed;
    private long _sequence;
    private uint _lastDriverSequence;
    private bool _haveDriverSequence;
    private long _corruptFrames;

    public V4l2FrameSource(V4l2Options? options = null, ILogger? logger = null)
        : this(options ?? new V4l2Options(), LibcV4l2Io.Instance, logger) { }

    internal V4l2FrameSource(V4l2Options options, IV4l2Io io, ILogger? logger)
    {
        _options = options;
        if (options.Width <= 0 || options.Height <= 0) throw new ArgumentException($"camera size must be positive (got {options.Width}x{options.Height})");
        if (options.Formats.Count == 0) throw new ArgumentException("camera format preference list is empty");
        if (options.BufferCount < 2) throw new ArgumentException($"camera needs at least 2 buffers (got {options.BufferCount})");
        _io = io;
        _log = logger ?? NullLogger.Instance;
        _pool = new FramePool(Math.Max(1, options.PoolSize));
    }

    public string Device => _options.Device;

    /// <summary>The negotiated stream after <see cref="OpenAsync"/> (kept after a failure, for messages).</summary>
    public V4l2StreamInfo? Stream { get; private set; }

    /// <summary>What the camera offered at the last open.</summary>
    public IReadOnlyList<V4l2FormatInfo> OfferedFormats { get; private set; } = [];

    /// <summary>Buffers the driver flagged as errored, empty or short, and undecodable MJPEG headers; skipped.</summary>
    public long CorruptFrames => Interlocked.Read(ref _corruptFrames);

    /// <summary>The frame pool (for diagnostics: Created stays flat in steady state).</summary>
    public FramePool Pool => _pool;

    public string Name => Stream is { } s
        ? $"v4l2:{s.Device} {s.Width}x{s.Height} {s.FourCc}{(s.Fps is { } f ? $" @{f:0.##}fps" : "")}"
        : $"v4l2:{_options.Device}";

    public ValueTask OpenAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            CloseDevice();
            try
            {
                OpenDevice();
            }
            catch
            {
                CloseDevice();
                throw;
            }
        }
        return ValueTask.CompletedTask;
    }

    public ValueTask<Frame?> NextAsync(CancellationToken cancellationToken)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(_options.FrameTimeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (!_streaming) throw new InvalidOperationException($"{Name}: not open (call OpenAsync first, or again after a failure)");
                long remainingMs = (deadline - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
                int r = _io.Poll(_fd, (int)Math.Clamp(remainingMs, 0, PollSliceMs), out short revents);
                if (r < 0) throw Lost(-r, "poll");
                if (r > 0 && TryDequeue(revents) is { } frame) return new ValueTask<Frame?>(frame);
                if (Stopwatch.GetTimestamp() >= deadline)
                {
                    CloseDevice();
                    throw new FrameSourceException(
                        $"camera {_options.Device} delivered no frame in {_options.FrameTimeout.TotalSeconds:0.#} s (stalled: unplugged, or not enough USB bandwidth?)");
                }
            }
        }
    }

    public void Release(Frame frame) => _pool.Return(frame);

    public ValueTask DisposeAsync()
    {
        _disposed = true;
        lock (_gate) CloseDevice();
        return ValueTask.CompletedTask;
    }

    // ---------------------------------------------------------------- discovery

    /// <summary>Every /dev/video* node with what it is and offers (for a "which camera?" listing or a status page).</summary>
    public static IReadOnlyList<V4l2DeviceInfo> ListDevices() =>
        Directory.Exists("/dev")
            ? Directory.GetFiles("/dev", "video*")
                .Where(p => int.TryParse(Path.GetFileName(p)["video".Length..], out _))
                .OrderBy(p => int.Parse(Path.GetFileName(p)["video".Length..]))
                .Select(Describe).ToList()
            : [];

    /// <summary>Opens <paramref name="device"/> briefly and reports its identity and capture formats; never throws.</summary>
    public static V4l2DeviceInfo Describe(string device) => Describe(LibcV4l2Io.Instance, device);

    internal static V4l2DeviceInfo Describe(IV4l2Io io, string device)
    {
        int fd = io.Open(device);
        if (fd < 0) return new V4l2DeviceInfo(device, "", "", "", false, [], OpenError(device, -fd).Message);
        try
        {
            v4l2_capability cap = default;
            int e = io.Ioctl(fd, VIDIOC_QUERYCAP, &cap);
            if (e != 0) return new V4l2DeviceInfo(device, "", "", "", false, [], $"camera {device} is not a V4L2 video device (VIDIOC_QUERYCAP: {Libc.Describe(e)})");
            string driver = CString(cap.driver, 16), card = CString(cap.card, 32), bus = CString(cap.bus_info, 32);
            uint caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) != 0 ? cap.device_caps : cap.capabilities;
            bool capture = (caps & V4L2_CAP_VIDEO_CAPTURE) != 0 && (caps & V4L2_CAP_STREAMING) != 0;
            var formats = capture ? EnumerateFormats(io, fd).Select(f => f.Info).ToList() : [];
            string? note = capture ? null : NotCaptureMessage($"camera {device} ({card}, driver {driver})", caps, driver);
            return new V4l2DeviceInfo(device, driver, card, bus, capture, formats, note);
        }
        finally
        {
            io.Close(fd);
        }
    }

    // ---------------------------------------------------------------- open

    private void OpenDevice()
    {
        string dev = _options.Device;
        int fd = _io.Open(dev);
        if (fd < 0) throw OpenError(dev, -fd);
        _fd = fd;

        v4l2_capability cap = default;
        int e = _io.Ioctl(fd, VIDIOC_QUERYCAP, &cap);
        // ENOSYS: what qemu-user answers for ioctls it cannot translate (an arm64 build emulated on a PC).
        if (e is Libc.ENOTTY or Libc.EINVAL or Libc.ENOSYS) throw new FrameSourceException($"camera {dev} is not a V4L2 video device (VIDIOC_QUERYCAP: {Libc.Describe(e)})");
        if (e != 0) throw Failure($"camera {dev}: VIDIOC_QUERYCAP failed: {Libc.Describe(e)}", e);
        string driver = CString(cap.driver, 16), card = CString(cap.card, 32), bus = CString(cap.bus_info, 32);
        uint caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) != 0 ? cap.device_caps : cap.capabilities;
        string who = $"camera {dev} ({(card.Length > 0 ? card + ", " : "")}driver {driver})";

        if ((caps & V4L2_CAP_VIDEO_CAPTURE) == 0) throw new FrameSourceException(NotCaptureMessage(who, caps, driver));
        if ((caps & V4L2_CAP_STREAMING) == 0)
            throw new FrameSourceException($"{who} does not support streaming I/O (mmap buffers), which this source needs");

        var offered = EnumerateFormats(_io, fd);
        var formats = offered.Select(f => f.Info).ToList();
        OfferedFormats = formats;
        if (formats.Count == 0)
            throw new FrameSourceException($"{who} offers no capture formats{LibcameraHint(driver, force: true)}");

        CameraPixelFormat? chosen = null;
        uint fourcc = 0;
        foreach (var want in _options.Formats)
        {
            int hit = offered.FindIndex(f => Matches(want, f.Code));
            if (hit < 0) continue;
            chosen = want;
            fourcc = offered[hit].Code;
            break;
        }
        if (chosen is not { } format)
        {
            bool rawOnly = formats.All(IsRawBayer);
            throw new FrameSourceException(
                $"{who} offers none of {string.Join(", ", _options.Formats.Select(FormatName))}; it offers: {string.Join(", ", formats)}"
                + (rawOnly ? $" (raw Bayer sensor data only){LibcameraHint(driver, force: true)}" : LibcameraHint(driver, force: false)));
        }

        var (width, height) = ChooseSize(fd, fourcc, _options.Width, _options.Height);

        v4l2_format fmt = default;
        fmt.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        fmt.fmt.pix.width = (uint)width;
        fmt.fmt.pix.height = (uint)height;
        fmt.fmt.pix.pixelformat = fourcc;
        fmt.fmt.pix.field = V4L2_FIELD_NONE;
        e = _io.Ioctl(fd, VIDIOC_S_FMT, &fmt);
        if (e == Libc.EBUSY) throw new FrameSourceException($"{who} is busy: another program is streaming from it");
        if (e != 0) throw Failure($"{who}: cannot set format {FourCcToString(fourcc)} {width}x{height}: {Libc.Describe(e)}", e);
        var pix = fmt.fmt.pix;
        if (pix.pixelformat != fourcc)
        {
            if (!Matches(format, pix.pixelformat))
                throw new FrameSourceException($"{who}: asked for {FourCcToString(fourcc)}, the driver set {FourCcToString(pix.pixelformat)}, which is not supported");
            fourcc = pix.pixelformat;
        }
        width = (int)pix.width;
        height = (int)pix.height;
        if (width <= 0 || height <= 0) throw new FrameSourceException($"{who}: driver set an empty frame size {width}x{height}");
        if (format == CameraPixelFormat.Yuyv && (width & 1) != 0) throw new FrameSourceException($"{who}: driver set an odd YUYV width {width}");
        int minLine = format switch { CameraPixelFormat.Yuyv => width * 2, CameraPixelFormat.Rgb24 => width * 3, _ => 0 };
        int bytesPerLine = Math.Max((int)pix.bytesperline, minLine);
        int sizeImage = Math.Max((int)pix.sizeimage, bytesPerLine * height);

        double? fps = NegotiateFrameRate(fd, who);

        v4l2_requestbuffers req = default;
        req.count = (uint)_options.BufferCount;
        req.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        req.memory = V4L2_MEMORY_MMAP;
        e = _io.Ioctl(fd, VIDIOC_REQBUFS, &req);
        if (e == Libc.EBUSY) throw new FrameSourceException($"{who} is busy: another program is streaming from it");
        if (e == Libc.EINVAL) throw new FrameSourceException($"{who} does not support mmap streaming buffers");
        if (e != 0) throw Failure($"{who}: VIDIOC_REQBUFS failed: {Libc.Describe(e)}", e);
        if (req.count < 2) throw new FrameSourceException($"{who}: the driver granted {req.count} buffer(s), at least 2 are needed (out of memory?)");

        _buffers = new (nint, nuint)[req.count];
        for (uint i = 0; i < req.count; i++)
        {
            v4l2_buffer b = default;
            b.index = i;
            b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
            b.memory = V4L2_MEMORY_MMAP;
            e = _io.Ioctl(fd, VIDIOC_QUERYBUF, &b);
            if (e != 0) throw Failure($"{who}: VIDIOC_QUERYBUF {i} failed: {Libc.Describe(e)}", e);
            nint address = _io.Mmap(fd, b.length, b.m.offset, out int mmapErrno);
            if (address == 0) throw Failure($"{who}: cannot map buffer {i} ({b.length} bytes): {Libc.Describe(mmapErrno)}", mmapErrno);
            _buffers[i] = (address, b.length);
        }
        for (uint i = 0; i < req.count; i++)
        {
            e = Queue(i);
            if (e != 0) throw Failure($"{who}: VIDIOC_QBUF {i} failed: {Libc.Describe(e)}", e);
        }

        int type = (int)V4L2_BUF_TYPE_VIDEO_CAPTURE;
        e = _io.Ioctl(fd, VIDIOC_STREAMON, &type);
        if (e == Libc.ENOSPC)
            throw new FrameSourceException($"{who}: not enough USB bandwidth for {FourCcToString(fourcc)} {width}x{height}{(fps is { } f0 ? $"@{f0:0.##}" : "")}: prefer MJPEG, lower the resolution or frame rate, or move the camera to another USB bus");
        if (e != 0) throw Failure($"{who}: VIDIOC_STREAMON failed: {Libc.Describe(e)}{LibcameraHint(driver, force: false)}", e);
        _streaming = true;
        _haveDriverSequence = false;

        Stream = new V4l2StreamInfo(dev, driver, card, bus, format, FourCcToString(fourcc), width, height, bytesPerLine, sizeImage, fps, (int)req.count);
        if (width != _options.Width || height != _options.Height)
            _log.LogInformation("{Device}: asked for {W}x{H}, the camera delivers {Width}x{Height}", dev, _options.Width, _options.Height, width, height);
        _log.LogInformation("Opened {Name} ({Card}, {Buffers} buffers; offers {Formats})", Name, card, req.count, string.Join(", ", formats));
    }

    private static List<(uint Code, V4l2FormatInfo Info)> EnumerateFormats(IV4l2Io io, int fd)
    {
        var list = new List<(uint, V4l2FormatInfo)>();
        for (uint i = 0; i < 256; i++)
        {
            v4l2_fmtdesc d = default;
            d.index = i;
            d.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
            if (io.Ioctl(fd, VIDIOC_ENUM_FMT, &d) != 0) break;   // EINVAL ends the list
            list.Add((d.pixelformat, new V4l2FormatInfo(FourCcToString(d.pixelformat), CString(d.description, 32),
                (d.flags & V4L2_FMT_FLAG_COMPRESSED) != 0, (d.flags & V4L2_FMT_FLAG_EMULATED) != 0)));
        }
        return list;
    }

    /// <summary>The camera's frame size nearest the request (VIDIOC_ENUM_FRAMESIZES); the request itself if it lists none.</summary>
    private (int Width, int Height) ChooseSize(int fd, uint fourcc, int width, int height)
    {
        var discrete = new List<(int, int)>();
        for (uint i = 0; i < 1024; i++)
        {
            v4l2_frmsizeenum s = default;
            s.index = i;
            s.pixel_format = fourcc;
            if (_io.Ioctl(fd, VIDIOC_ENUM_FRAMESIZES, &s) != 0) break;
            if (s.type == V4L2_FRMSIZE_TYPE_DISCRETE)
            {
                discrete.Add(((int)s.size.discrete.width, (int)s.size.discrete.height));
                continue;
            }
            var w = s.size.stepwise;   // stepwise, or continuous (step 1)
            return (Snap(width, w.min_width, w.max_width, s.type == V4L2_FRMSIZE_TYPE_CONTINUOUS ? 1 : w.step_width),
                    Snap(height, w.min_height, w.max_height, s.type == V4L2_FRMSIZE_TYPE_CONTINUOUS ? 1 : w.step_height));
        }
        return discrete.Count == 0 ? (width, height) : NearestSize(discrete, width, height);
    }

    /// <summary>Nearest by scale on each axis (|ln w/W| + |ln h/H|); ties go to the larger size.</summary>
    internal static (int Width, int Height) NearestSize(IReadOnlyList<(int Width, int Height)> sizes, int width, int height)
    {
        (int, int) best = sizes[0];
        double bestCost = double.MaxValue;
        foreach (var (w, h) in sizes)
        {
            if (w <= 0 || h <= 0) continue;
            double cost = Math.Abs(Math.Log((double)w / width)) + Math.Abs(Math.Log((double)h / height));
            if (cost < bestCost - 1e-12 || (Math.Abs(cost - bestCost) <= 1e-12 && (long)w * h > (long)best.Item1 * best.Item2))
            {
                best = (w, h);
                bestCost = cost;
            }
        }
        return best;
    }

    private static int Snap(int value, uint min, uint max, uint step)
    {
        long v = Math.Clamp(value, (long)min, (long)max);
        if (step > 1) v = Math.Min(max, min + (v - min + step / 2) / step * step);
        return (int)v;
    }

    private double? NegotiateFrameRate(int fd, string who)
    {
        v4l2_streamparm parm = default;
        parm.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        if (_io.Ioctl(fd, VIDIOC_G_PARM, &parm) != 0) return null;
        if (_options.Fps is > 0 and var want)
        {
            if ((parm.parm.capture.capability & V4L2_CAP_TIMEPERFRAME) == 0)
                _log.LogInformation("{Who} does not let the frame rate be set; using its default", who);
            else
            {
                parm.parm.capture.timeperframe = ToFraction(1 / want);
                int e = _io.Ioctl(fd, VIDIOC_S_PARM, &parm);
                if (e != 0)
                {
                    _log.LogWarning("{Who}: cannot set {Fps} fps ({Error}); using its default", who, want, Libc.Describe(e));
                    parm = default;
                    parm.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
                    if (_io.Ioctl(fd, VIDIOC_G_PARM, &parm) != 0) return null;
                }
            }
        }
        var tpf = parm.parm.capture.timeperframe;
        return tpf.numerator > 0 && tpf.denominator > 0 ? (double)tpf.denominator / tpf.numerator : null;
    }

    /// <summary>Seconds per frame as a reduced fraction with a denominator up to 1000 x fps (7.5 fps = 2/15).</summary>
    internal static v4l2_fract ToFraction(double secondsPerFrame)
    {
        ulong num = 1000, den = (ulong)Math.Max(1, Math.Round(1000 / secondsPerFrame));
        ulong a = num, b = den;
        while (b != 0) (a, b) = (b, a % b);
        return new v4l2_fract { numerator = (uint)(num / a), denominator = (uint)(den / a) };
    }

    // ---------------------------------------------------------------- capture

    private Frame? TryDequeue(short revents)
    {
        v4l2_buffer b = default;
        b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b.memory = V4L2_MEMORY_MMAP;
        int e = _io.Ioctl(_fd, VIDIOC_DQBUF, &b);
        if (e == Libc.EAGAIN)
        {
            if ((revents & (Libc.POLLERR | Libc.POLLHUP | Libc.POLLNVAL)) != 0) throw Lost(Libc.EIO, "poll reported an error and no buffer is ready");
            return null;
        }
        if (e != 0) throw Lost(e, "VIDIOC_DQBUF");
        if (b.index >= _buffers.Length) throw Lost(Libc.EIO, $"VIDIOC_DQBUF returned buffer {b.index} of {_buffers.Length}");

        long t0 = Stopwatch.GetTimestamp();
        Frame? frame = null;
        try
        {
            if ((b.flags & V4L2_BUF_FLAG_ERROR) != 0 || b.bytesused == 0) Interlocked.Increment(ref _corruptFrames);
            else frame = CopyOut(_buffers[b.index], b.bytesused);
        }
        catch
        {
            Queue(b.index);
            throw;
        }
        e = Queue(b.index);
        if (e != 0)
        {
            if (frame is not null) _pool.Return(frame);
            throw Lost(e, "VIDIOC_QBUF");
        }
        if (frame is null) return null;

        if (_haveDriverSequence)
        {
            uint delta = b.sequence - _lastDriverSequence;
            _sequence += delta is > 0 and < 10_000 ? delta : 1;
        }
        else _sequence++;
        _lastDriverSequence = b.sequence;
        _haveDriverSequence = true;

        frame.Sequence = _sequence;
        frame.Timestamp = DateTimeOffset.UtcNow;
        frame.CaptureTime = Stopwatch.GetElapsedTime(t0);
        frame.Origin = _options.Device;
        return frame;
    }

    private Frame? CopyOut((nint Address, nuint Length) buffer, uint bytesUsed)
    {
        var s = Stream!;
        var src = new ReadOnlySpan<byte>((void*)buffer.Address, (int)Math.Min(bytesUsed, (uint)buffer.Length));
        Frame frame;
        switch (s.Format)
        {
            case CameraPixelFormat.Yuyv:
            case CameraPixelFormat.Rgb24:
            {
                int need = (s.Height - 1) * s.BytesPerLine + s.Width * (s.Format == CameraPixelFormat.Yuyv ? 2 : 3);
                if (src.Length < need) { Interlocked.Increment(ref _corruptFrames); return null; }
                frame = _pool.Rent(s.Width * s.Height * 3);
                if (s.Format == CameraPixelFormat.Yuyv) PixelFormats.YuyvToRgb24(src, s.Width, s.Height, s.BytesPerLine, frame.Buffer);
                else PixelFormats.CopyRgb24(src, s.Width, s.Height, s.BytesPerLine, frame.Buffer);
                frame.Format = FrameFormat.Rgb24;
                frame.Length = s.Width * s.Height * 3;
                frame.Stride = s.Width * 3;
                break;
            }
            default:
                frame = _pool.Rent(src.Length + Mjpeg.DhtSegmentLength);
                try
                {
                    frame.Length = Mjpeg.EnsureHuffmanTables(src, frame.Buffer, out _);
                }
                catch (FormatException ex)
                {
                    _pool.Return(frame);
                    Interlocked.Increment(ref _corruptFrames);
                    _log.LogDebug("{Device}: skipped a corrupt MJPEG frame: {Reason}", s.Device, ex.Message);
                    return null;
                }
                frame.Format = FrameFormat.Encoded;
                frame.Stride = 0;
                break;
        }
        frame.Width = s.Width;
        frame.Height = s.Height;
        return frame;
    }

    private int Queue(uint index)
    {
        v4l2_buffer b = default;
        b.index = index;
        b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b.memory = V4L2_MEMORY_MMAP;
        return _io.Ioctl(_fd, VIDIOC_QBUF, &b);
    }

    private void CloseDevice()
    {
        if (_fd < 0) return;
        if (_streaming)
        {
            int type = (int)V4L2_BUF_TYPE_VIDEO_CAPTURE;
            _io.Ioctl(_fd, VIDIOC_STREAMOFF, &type);
            _streaming = false;
        }
        foreach (var (address, length) in _buffers)
            if (address != 0) _io.Munmap(address, length);
        _buffers = [];
        _io.Close(_fd);
        _fd = -1;
    }

    // ---------------------------------------------------------------- errors

    private FrameSourceException Lost(int errno, string what)
    {
        CloseDevice();
        string reason = errno is Libc.ENODEV or Libc.EIO or Libc.ENXIO ? "was disconnected or failed" : "stopped streaming";
        return new FrameSourceException($"camera {_options.Device} {reason} ({what}: {Libc.Describe(errno)})");
    }

    private static FrameSourceException Failure(string message, int errno) =>
        new(message, new System.ComponentModel.Win32Exception(errno));

    internal static FrameSourceException OpenError(string device, int errno) => errno switch
    {
        Libc.ENOENT or Libc.ENODEV or Libc.ENXIO =>
            new FrameSourceException($"camera {device} not found (is it connected? is the user in the 'video' group?)"),
        Libc.EACCES or Libc.EPERM =>
            new FrameSourceException($"camera {device}: permission denied (add the user to the 'video' group: sudo usermod -aG video $USER, then log in again)"),
        Libc.EBUSY => new FrameSourceException($"camera {device} is busy (another program has it open)"),
        _ => new FrameSourceException($"camera {device}: cannot open: {Libc.Describe(errno)}"),
    };

    private static readonly string[] LibcameraDrivers = ["unicam", "bcm2835-unicam", "rp1-cfe", "pispbe", "bcm2835-isp", "bcm2835-codec", "tegra-video", "tegra-camrtc"];

    private static bool IsLibcameraDriver(string driver) =>
        LibcameraDrivers.Any(d => driver.Equals(d, StringComparison.OrdinalIgnoreCase));

    private static string LibcameraHint(string driver, bool force) =>
        force || IsLibcameraDriver(driver)
            ? "; this looks like a libcamera-only CSI camera (Raspberry Pi camera module, Jetson CSI sensor), which has no directly usable V4L2 capture node:"
              + " use Source:Kind=libcamera (rpicam-vid, from rpicam-apps), or run under libcamerify"
            : "";

    private static string NotCaptureMessage(string who, uint caps, string driver)
    {
        if ((caps & V4L2_CAP_META_CAPTURE) != 0)
            return $"{who} is a metadata node, not an image capture node: UVC cameras create two nodes and the images are on the other one (usually the even-numbered /dev/videoN)";
        if ((caps & (V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE)) != 0)
            return $"{who} is a memory-to-memory codec/ISP node, not a camera{LibcameraHint(driver, force: IsLibcameraDriver(driver))}";
        if ((caps & V4L2_CAP_VIDEO_CAPTURE_MPLANE) != 0)
            return $"{who} offers only the multi-planar capture API, which this source does not support{LibcameraHint(driver, force: false)}";
        return $"{who} is not a video capture device (capabilities 0x{caps:X8}){LibcameraHint(driver, force: false)}";
    }

    private static bool Matches(CameraPixelFormat format, uint fourcc) => format switch
    {
        CameraPixelFormat.Yuyv => fourcc == V4L2_PIX_FMT_YUYV,
        CameraPixelFormat.Mjpeg => fourcc == V4L2_PIX_FMT_MJPEG || fourcc == V4L2_PIX_FMT_JPEG,
        CameraPixelFormat.Rgb24 => fourcc == V4L2_PIX_FMT_RGB24,
        _ => false,
    };

    private static string FormatName(CameraPixelFormat f) => f switch
    {
        CameraPixelFormat.Yuyv => "YUYV",
        CameraPixelFormat.Mjpeg => "MJPEG",
        _ => "RGB24",
    };

    private static readonly HashSet<string> BayerFourCcs =
    [
        "BA81", "GBRG", "GRBG", "RGGB", "BG10", "GB10", "BA10", "RG10", "BG12", "GB12", "BA12", "RG12",
        "BG14", "GB14", "GR14", "RG14", "BYR2", "GB16", "GR16", "RG16", "pBAA", "pGAA", "pgAA", "pRAA",
        "pBCC", "pGCC", "pgCC", "pRCC", "pBEE", "pGEE", "pgEE", "pREE", "pB16", "pG16", "pg16", "pR16",
        "PC1B", "PC1G", "PC1g", "PC1R", "GREY", "Y10P", "Y10 ", "Y12 ", "Y16 ", "Y10", "Y12", "Y16",
    ];

    private static bool IsRawBayer(V4l2FormatInfo f) =>
        BayerFourCcs.Contains(f.FourCc) || f.Description.Contains("Bayer", StringComparison.OrdinalIgnoreCase);
}
