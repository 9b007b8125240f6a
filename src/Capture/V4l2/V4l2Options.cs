namespace EdgeViT.Capture;

/// <summary>Pixel formats the V4L2 source can take from a camera.</summary>
public enum CameraPixelFormat
{
    /// <summary>Packed YUV 4:2:2 (fourcc YUYV), converted to RGB24 on capture (BT.601 limited range).</summary>
    Yuyv,
    /// <summary>Motion JPEG (fourcc MJPG or JPEG), passed on as <see cref="FrameFormat.Encoded"/> with Huffman tables ensured.</summary>
    Mjpeg,
    /// <summary>Packed RGB24 (fourcc RGB3), copied as is.</summary>
    Rgb24,
}

/// <summary>What to ask a V4L2 camera for. The nearest resolution the camera offers is taken.</summary>
public sealed record V4l2Options
{
    public string Device { get; init; } = "/dev/video0";
    public int Width { get; init; } = 640;
    public int Height { get; init; } = 480;
    /// <summary>Frames per second to request (VIDIOC_S_PARM); null keeps the driver's default.</summary>
    public double? Fps { get; init; } = 30;
    /// <summary>Formats in order of preference; the first one the camera offers is used.</summary>
    public IReadOnlyList<CameraPixelFormat> Formats { get; init; } = [CameraPixelFormat.Yuyv, CameraPixelFormat.Mjpeg, CameraPixelFormat.Rgb24];
    /// <summary>Driver buffers to request (mmap); the driver may grant more or fewer (at least 2 are needed).</summary>
    public int BufferCount { get; init; } = 4;
    /// <summary>How long NextAsync waits for a frame before declaring the camera stalled.</summary>
    public TimeSpan FrameTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Frames kept for reuse once released (beyond this, released frames are left to the GC).</summary>
    public int PoolSize { get; init; } = 4;
}

/// <summary>One format a camera offers (VIDIOC_ENUM_FMT).</summary>
public sealed record V4l2FormatInfo(string FourCc, string Description, bool Compressed, bool Emulated)
{
    public override string ToString() => string.IsNullOrEmpty(Description) || Description == FourCc ? FourCc : $"{FourCc} ({Description})";
}

/// <summary>What was negotiated with the camera.</summary>
public sealed record V4l2StreamInfo(
    string Device, string Driver, string Card, string BusInfo,
    CameraPixelFormat Format, string FourCc, int Width, int Height, int BytesPerLine, int SizeImage,
    double? Fps, int Buffers);

/// <summary>A /dev/video* node as <see cref="V4l2FrameSource.Describe(string)"/> found it.</summary>
/// <param name="IsCapture">A streaming video-capture node (what <see cref="V4l2FrameSource"/> can open).</param>
/// <param name="Error">Why it cannot be used (not found, permission, metadata/codec node...), or null.</param>
public sealed record V4l2DeviceInfo(string Device, string Driver, string Card, string BusInfo, bool IsCapture,
    IReadOnlyList<V4l2FormatInfo> Formats, string? Error);
