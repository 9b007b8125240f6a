using System.Device.Gpio;
using EdgeViT.Capture;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

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
/// Builds the device side from configuration with EdgeViT.Capture's sources, GpioTrigger and GpioOutput.
/// Registered as a singleton, so tests substitute their own sources and GPIO doubles.
/// </summary>
public class FrameSourceFactory
{
    private readonly ILoggerFactory _loggers;

    public FrameSourceFactory() : this(null) { }

    public FrameSourceFactory(ILoggerFactory? loggers) => _loggers = loggers ?? NullLoggerFactory.Instance;

    private static double? Fps(SourceOptions o) => o.Fps > 0 ? o.Fps : null;

    /// <summary>A source for the options, not yet opened; null for Kind=none.</summary>
    public virtual IFrameSource? Create(SourceOptions o) => o.Kind switch
    {
        SourceKind.None => null,
        SourceKind.Folder => new ImageFolderFrameSource(new ImageFolderOptions { Folder = o.Folder!, Loop = o.Loop, MaxFps = Fps(o) }),
        SourceKind.Synthetic => new SyntheticFrameSource(new SyntheticOptions { Width = o.Width, Height = o.Height, Fps = Fps(o) }),
        SourceKind.V4l2 => new V4l2FrameSource(new V4l2Options { Device = o.Device, Width = o.Width, Height = o.Height, Fps = Fps(o) },
            _loggers.CreateLogger<V4l2FrameSource>()),
        SourceKind.Libcamera => new LibcameraFrameSource(new LibcameraOptions
        {
            Camera = o.Camera,
            Width = o.Width,
            Height = o.Height,
            Fps = o.Fps > 0 ? (int)Math.Round(o.Fps) : null,
            Rotation = o.Rotation,
            Hflip = o.Hflip,
            Vflip = o.Vflip,
            Codec = o.Codec == LibcameraCodec.Yuv420 ? "yuv420" : "mjpeg",
        }, _loggers.CreateLogger<LibcameraFrameSource>()),
        SourceKind.Ffmpeg => new FfmpegFrameSource(new FfmpegOptions
        {
            Input = o.Url!,
            Width = o.Width > 0 ? o.Width : null,
            Height = o.Height > 0 ? o.Height : null,
            Fps = Fps(o),
            Loop = o.Loop,
            Realtime = o.Realtime,
        }, _loggers.CreateLogger<FfmpegFrameSource>()),
        _ => throw new FrameSourceException($"Source:Kind must be one of {DefinedEnumAttribute.EnumChoices(typeof(SourceKind))} (got '{o.Kind}')"),
    };

    public virtual ReopenPolicy ReopenPolicy(SourceOptions o) => new()
    {
        InitialDelay = TimeSpan.FromMilliseconds(o.ReopenDelayMs),
        MaxDelay = TimeSpan.FromMilliseconds(Math.Max(o.ReopenDelayMs, 30_000)),
        MaxAttempts = null, // a camera may be replugged at any time
    };

    public virtual IGpioTrigger CreateGpioTrigger(GpioOptions o)
    {
        var controller = OpenController(o.Chip);
        try
        {
            var trigger = new GpioTrigger(controller, new GpioTriggerOptions
            {
                Pin = o.Pin,
                Edge = o.Edge switch { GpioEdge.Rising => TriggerEdge.Rising, GpioEdge.Both => TriggerEdge.Both, _ => TriggerEdge.Falling },
                Pull = o.Pull switch { GpioPull.Up => PinPull.Up, GpioPull.Down => PinPull.Down, _ => PinPull.None },
                Debounce = TimeSpan.FromMilliseconds(o.DebounceMs),
            }, _loggers.CreateLogger<GpioTrigger>());
            return new TriggerAdapter(trigger, controller);
        }
        catch
        {
            controller.Dispose();
            throw;
        }
    }

    public virtual IGpioOutput? CreateGpioOutput(GpioOptions o)
    {
        if (o.OutputPin < 0) return null;
        var controller = OpenController(o.Chip);
        try { return new OutputAdapter(new GpioOutput(controller, o.OutputPin, logger: _loggers.CreateLogger<GpioOutput>()), controller, TimeSpan.FromMilliseconds(o.OutputHoldMs)); }
        catch
        {
            controller.Dispose();
            throw;
        }
    }

    private static GpioController OpenController(int chip)
    {
        try { return chip == 0 ? new GpioController() : new GpioController(new System.Device.Gpio.Drivers.LibGpiodDriver(chip)); }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new TriggerException($"GPIO: cannot open gpiochip{chip} ({ex.Message.ReplaceLineEndings(" ")}); is this a board with GPIO and the user in the 'gpio' group?", ex);
        }
    }

    private sealed class TriggerAdapter(GpioTrigger trigger, GpioController controller) : IGpioTrigger
    {
        public async Task WaitForPressAsync(CancellationToken ct) => await trigger.WaitAsync(ct);
        public void Dispose()
        {
            trigger.Dispose();
            controller.Dispose();
        }
    }

    private sealed class OutputAdapter(GpioOutput output, GpioController controller, TimeSpan hold) : IGpioOutput
    {
        public void Pulse() => output.Pulse(hold);
        public void Dispose()
        {
            output.Dispose();
            controller.Dispose();
        }
    }
}
