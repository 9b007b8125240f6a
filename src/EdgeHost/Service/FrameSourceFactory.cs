using EdgeViT.Capture;
using EdgeViT.Host.Service.Interim;

namespace EdgeViT.Host.Service;

/// <summary>What the frame loop needs of a GPIO trigger: one completion per debounced press.</summary>
public interface IGpioTrigger : IDisposable
{
    Task WaitForPressAsync(CancellationToken ct);
}

/// <summary>What the frame loop needs of a GPIO output: drive the pin for its hold time.</summary>
public interface IGpioOutput : IDisposable
{
    void Pulse();
}

/// <summary>
/// Builds the device side from configuration. THE ONE PLACE TO WIRE feat/capture: every "WIRE:" line below names
/// the Capture class that replaces the interim one (and FramePipeline's queue, see "WIRE:" there). Registered as a
/// singleton, so tests may substitute their own factory.
/// </summary>
public class FrameSourceFactory
{
    /// <summary>A source for the options, not yet opened; null for Kind=none.</summary>
    public virtual IFrameSource? Create(SourceOptions o) => o.Kind.ToLowerInvariant() switch
    {
        "none" => null,
        // WIRE: new ImageFolderFrameSource(o.Folder, o.Fps, o.Loop, ...)
        "folder" => new InterimFolderSource(o.Folder!, o.Fps, o.Loop),
        // WIRE: new SyntheticFrameSource(o.Width, o.Height, o.Fps, ...)
        "synthetic" => new InterimSyntheticSource(o.Width, o.Height, o.Fps),
        // WIRE: new V4l2FrameSource(o.Device, o.Width, o.Height, o.Fps, ...)
        "v4l2" => throw new FrameSourceException($"Source:Kind v4l2 ({o.Device}) needs EdgeViT.Capture's V4l2FrameSource, not wired into this build yet"),
        // WIRE: new FfmpegFrameSource(o.Url, o.Width, o.Height, o.Fps, o.Loop, ...)
        "ffmpeg" => throw new FrameSourceException($"Source:Kind ffmpeg ({o.Url}) needs EdgeViT.Capture's FfmpegFrameSource, not wired into this build yet"),
        _ => throw new FrameSourceException($"Source:Kind must be one of {string.Join("|", SourceOptions.Kinds)} (got '{o.Kind}')"),
    };

    // WIRE: new GpioTrigger(controller, o.Pin, edge, pull, debounce) adapted to IGpioTrigger
    public virtual IGpioTrigger CreateGpioTrigger(GpioOptions o) => new InterimGpioTrigger(o);

    // WIRE: new GpioOutput(controller, o.OutputPin, hold) adapted to IGpioOutput
    public virtual IGpioOutput? CreateGpioOutput(GpioOptions o) => o.OutputPin >= 0 ? new InterimGpioOutput(o) : null;
}
