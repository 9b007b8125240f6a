namespace EdgeViT.Capture;

/// <summary>
/// Anything that yields frames: a V4L2 camera, an ffmpeg-decoded stream or file, an image folder replayed
/// in a loop, a synthetic pattern. Capture runs on the source's own schedule; the service decides when to
/// classify (continuous, interval, GPIO edge, HTTP), through <see cref="LatestFrameQueue"/>.
/// </summary>
public interface IFrameSource : IAsyncDisposable
{
    /// <summary>Human-readable identity for logs and verdicts, e.g. "v4l2:/dev/video0 640x480 YUYV".</summary>
    string Name { get; }

    /// <summary>Opens the device/stream; throws <see cref="FrameSourceException"/> with a clear one-line reason.</summary>
    ValueTask OpenAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Waits for and returns the next frame (a pooled buffer: give it back with <see cref="Release"/>).
    /// Returns null at the end of a finite source. Throws <see cref="FrameSourceException"/> when the device
    /// is lost; the caller may reopen after a delay.
    /// </summary>
    ValueTask<Frame?> NextAsync(CancellationToken cancellationToken);

    /// <summary>Returns a frame's buffer to the source's pool.</summary>
    void Release(Frame frame);
}
