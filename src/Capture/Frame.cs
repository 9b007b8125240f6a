namespace EdgeViT.Capture;

/// <summary>How a frame's bytes are laid out.</summary>
public enum FrameFormat
{
    /// <summary>Packed RGB24 rows of <see cref="Frame.Stride"/> bytes.</summary>
    Rgb24,
    /// <summary>A compressed image (JPEG/MJPEG, PNG...) to decode; Width/Height may be 0 until decoded.</summary>
    Encoded,
}

/// <summary>
/// One captured frame in a buffer owned by the source's pool. The consumer returns it with
/// <see cref="IFrameSource.Release"/> (or the queue does when it drops it), so steady-state capture allocates nothing.
/// </summary>
public sealed class Frame(int capacity)
{
    public byte[] Buffer { get; private set; } = new byte[capacity];
    public int Length { get; set; }
    public FrameFormat Format { get; set; }
    public int Width { get; set; }
    public int Height { get; set; }
    public int Stride { get; set; }
    /// <summary>Monotonic per source, starting at 1; gaps mean frames were dropped.</summary>
    public long Sequence { get; set; }
    public DateTimeOffset Timestamp { get; set; }
    /// <summary>Time the capture itself took (device dequeue, pipe read, file read).</summary>
    public TimeSpan CaptureTime { get; set; }
    /// <summary>Where it came from: "/dev/video0", a file name, an RTSP URL...</summary>
    public string Origin { get; set; } = "";

    public Span<byte> Data => Buffer.AsSpan(0, Length);

    /// <summary>Grows the buffer when a frame is larger than any before (rare: resolution change).</summary>
    public void EnsureCapacity(int bytes)
    {
        if (Buffer.Length < bytes) Buffer = new byte[bytes];
    }
}

/// <summary>A source that cannot deliver (missing camera, bad URL, unreadable folder); the message is one line.</summary>
public sealed class FrameSourceException(string message, Exception? inner = null) : Exception(message, inner);
