using System.ComponentModel.DataAnnotations;

namespace EdgeViT.Host.Service;

/// <summary>
/// Everything <c>edgevit run</c> reads from configuration, bound from the configuration root: keys are
/// <c>Model</c>, <c>Thresholds</c>, <c>Synsets</c>, <c>Threads</c>, <c>Precision</c>, <c>Quantized</c>, <c>TopK</c> and the sections <c>Source:*</c>,
/// <c>Trigger:*</c>, <c>Budget:*</c>, <c>Results:*</c>, <c>Http:*</c>, <c>Telemetry:*</c>.
/// Enumerations are enums (bound case-insensitively; a value that names no member is reported with the key and
/// the choices), ranges are attributes. This is the one settings model: start-up, file reloads, PUT /v1/budget
/// (through <see cref="BudgetOptions"/>) and the controller all go through <see cref="EdgeVitOptionsValidator"/>.
/// Keys that name no property here are errors (<see cref="ConfigurationKeys"/>).
/// </summary>
public sealed class EdgeVitOptions
{
    /// <summary>Options name of the reloadable copy (file reloadOnChange); the default name is the start-up snapshot.</summary>
    public const string Live = "live";

    /// <summary>Model weights (.safetensors or .onnx).</summary>
    [Required(ErrorMessage = "is required (path of the .safetensors or .onnx weights)")]
    public string? Model { get; set; }

    /// <summary>
    /// Model:Name — the model's name in the Open Inference Protocol (/v2/models/NAME); default: the weights file name
    /// without extension. Bound by hand (<c>Model</c> itself holds the path).
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? ModelName { get; set; }

    /// <summary>RCTP thresholds file from 'edgevit calibrate'; absent = dense model, budget controller inactive.</summary>
    public string? Thresholds { get; set; }

    /// <summary>Synsets file to name classes in verdicts; absent = class indices only.</summary>
    public string? Synsets { get; set; }

    [IntRange(1, 256)]
    public int Threads { get; set; } = 1;

    /// <summary>fp32, or int8 (block linear layers on int8 weights per channel and activations per token); the thresholds file must be fitted on the same.</summary>
    [DefinedEnum] public Kernels.Engine.Precision Precision { get; set; } = Kernels.Engine.Precision.Fp32;

    /// <summary>int8 weights from 'edgevit quantize --out' (needs Precision=int8); absent = quantise at start-up.</summary>
    public string? Quantized { get; set; }

    /// <summary>Classes per verdict.</summary>
    [IntRange(1, 100)]
    public int TopK { get; set; } = 5;

    public SourceOptions Source { get; set; } = new();
    public TriggerOptions Trigger { get; set; } = new();
    public BudgetOptions Budget { get; set; } = new();
    public ResultsOptions Results { get; set; } = new();
    public HttpOptions Http { get; set; } = new();
    public TelemetryOptions Telemetry { get; set; } = new();
    public InputOptions Input { get; set; } = new();
    public MqttOptions Mqtt { get; set; } = new();
    public LiveOptions LiveView { get; set; } = new();

    /// <summary>Values that could not be converted (e.g. "abc" for a number): reported like validation failures.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public List<string> BindingErrors { get; } = [];
}

public enum SourceKind { V4l2, Libcamera, Ffmpeg, Folder, Synthetic, None }
public enum LibcameraCodec { Mjpeg, Yuv420 }
public enum TriggerMode { Continuous, Interval, Gpio, Http }
public enum GpioEdge { Rising, Falling, Both }
public enum GpioPull { None, Up, Down }
public enum ResultsSinkKind { Stdout, File, None }
public enum OtlpMode { Auto, On, Off }

public sealed class SourceOptions
{
    /// <summary>v4l2 (camera), libcamera (Pi CSI camera via rpicam-vid), ffmpeg (stream or file), folder (images replayed), synthetic (test pattern), none (HTTP only).</summary>
    [DefinedEnum] public SourceKind Kind { get; set; } = SourceKind.Synthetic;

    /// <summary>V4L2 device, e.g. /dev/video0.</summary>
    public string Device { get; set; } = "/dev/video0";

    /// <summary>ffmpeg input: a file, rtsp://, http://...</summary>
    public string? Url { get; set; }

    /// <summary>Image folder for Kind=folder.</summary>
    public string? Folder { get; set; }

    [IntRange(0, 16384)] public int Width { get; set; } = 640;
    [IntRange(0, 16384)] public int Height { get; set; } = 480;

    /// <summary>Frames per second the source delivers (folder/synthetic pace themselves; 0 = as fast as possible).</summary>
    [DoubleRange(0, 1000)] public double Fps { get; set; } = 10;

    /// <summary>Replay a finite source (folder, file) from the start when it ends.</summary>
    public bool Loop { get; set; } = true;

    /// <summary>ffmpeg: read the input at its native rate (-re), for files replayed as if live.</summary>
    public bool Realtime { get; set; }

    /// <summary>libcamera: camera index (rpicam-hello --list-cameras).</summary>
    [IntRange(0, 16)] public int Camera { get; set; }

    /// <summary>libcamera: 0 or 180 degrees.</summary>
    [IntRange(0, 180)] public int Rotation { get; set; }

    /// <summary>libcamera: mirror horizontally / vertically.</summary>
    public bool Hflip { get; set; }
    public bool Vflip { get; set; }

    /// <summary>libcamera: mjpeg (decoded by the service) or yuv420 (raw frames).</summary>
    [DefinedEnum] public LibcameraCodec Codec { get; set; } = LibcameraCodec.Mjpeg;

    /// <summary>Delay before reopening a source that failed.</summary>
    [IntRange(10, 600_000)] public int ReopenDelayMs { get; set; } = 1000;

    /// <summary>Same settings (a reload that changes none of them keeps the running source).</summary>
    public static bool Same(SourceOptions a, SourceOptions b) =>
        a.Kind == b.Kind && a.Device == b.Device && a.Url == b.Url && a.Folder == b.Folder && a.Width == b.Width && a.Height == b.Height
        && a.Fps.Equals(b.Fps) && a.Loop == b.Loop && a.Realtime == b.Realtime && a.ReopenDelayMs == b.ReopenDelayMs
        && a.Camera == b.Camera && a.Rotation == b.Rotation && a.Hflip == b.Hflip && a.Vflip == b.Vflip && a.Codec == b.Codec;
}

public sealed class TriggerOptions
{
    /// <summary>continuous (every frame, latest wins), interval (one frame every IntervalMs), gpio (one per edge), http (POST /v1/classify only).</summary>
    [DefinedEnum] public TriggerMode Mode { get; set; } = TriggerMode.Continuous;

    [IntRange(1, 86_400_000)] public int IntervalMs { get; set; } = 1000;

    /// <summary>
    /// Mode http: close the source (camera off, no capture) after this long without a request; the next request opens
    /// it again and classifies a frame captured after it arrived. 0 = capture all the time. Read at start-up.
    /// </summary>
    [IntRange(0, 86_400_000)] public int StandbyAfterMs { get; set; } = 10_000;

    public GpioOptions Gpio { get; set; } = new();
}

public sealed class GpioOptions
{
    /// <summary>Input pin (logical/BCM numbering) for Trigger:Mode=gpio.</summary>
    [IntRange(-1, 1023)] public int Pin { get; set; } = -1;

    [DefinedEnum] public GpioEdge Edge { get; set; } = GpioEdge.Rising;

    [DefinedEnum] public GpioPull Pull { get; set; } = GpioPull.Up;

    [IntRange(0, 10_000)] public int DebounceMs { get; set; } = 50;

    /// <summary>Optional output pin driven high while the verdict matches OutputClass (-1 = none).</summary>
    [IntRange(-1, 1023)] public int OutputPin { get; set; } = -1;

    /// <summary>Class index or synset id (n01440764) whose top-1 verdict drives the output pin.</summary>
    public string? OutputClass { get; set; }

    /// <summary>Minimum top-1 probability to drive the output.</summary>
    [DoubleRange(0, 1)] public double OutputMinScore { get; set; } = 0.5;

    [IntRange(1, 600_000)] public int OutputHoldMs { get; set; } = 500;

    /// <summary>GPIO chip number (/dev/gpiochipN).</summary>
    [IntRange(0, 64)] public int Chip { get; set; } = 0;
}

public sealed class BudgetOptions
{
    /// <summary>flops (hold mean GFLOPs at Target), latency (hold p95 at TargetP95Ms), fixed (the set for Target).</summary>
    [DefinedEnum] public BudgetMode Mode { get; set; } = BudgetMode.Fixed;

    /// <summary>FLOPs budget as a fraction of the dense model, in (0, 1]. flops and fixed modes.</summary>
    [DoubleRange(0, 1, MinExclusive = true)]
    public double Target { get; set; } = 1.0;

    /// <summary>FLOPs budget in GFLOPs per frame; when set it replaces Target.</summary>
    [DoubleRange(0, 1e6, MinExclusive = true)]
    public double? TargetGFlops { get; set; }

    /// <summary>Latency mode: p95 of the per-frame processing latency (decode+preprocess+infer) to hold, ms.</summary>
    [DoubleRange(0, 1e7, MinExclusive = true)]
    public double TargetP95Ms { get; set; } = 200;

    /// <summary>Latency mode: step to a richer set only when it is predicted under TargetP95Ms*(1-Hysteresis).</summary>
    [DoubleRange(0, 0.9)]
    public double Hysteresis { get; set; } = 0.15;

    /// <summary>Latency mode: sliding window for the p95.</summary>
    [IntRange(100, 600_000)] public int WindowMs { get; set; } = 2000;

    /// <summary>Latency mode: samples of the current set needed before deciding.</summary>
    [IntRange(1, 10_000)] public int MinSamples { get; set; } = 5;

    /// <summary>Minimum time on a set before stepping to a cheaper one.</summary>
    [IntRange(0, 600_000)] public int MinDwellMs { get; set; } = 500;

    /// <summary>Minimum time on a set before stepping to a richer one (recovery is slower than retreat).</summary>
    [IntRange(0, 600_000)] public int MinDwellUpMs { get; set; } = 3000;

    /// <summary>flops mode: frames in the running mean (it sizes a buffer, hence the bound).</summary>
    [IntRange(1, 10_000)] public int FlopsWindow { get; set; } = 64;

    /// <summary>
    /// Thermal guard: above this SoC temperature (hottest thermal zone), or while the Pi firmware reports throttling,
    /// the set frames run with steps down one calibrated set per ThermalPollMs; it steps back up once the SoC is
    /// ThermalHysteresis below it and not throttled. 0 = off. Read at start-up.
    /// </summary>
    [DoubleRange(0, 150)] public double ThrottleCelsius { get; set; } = 80;

    [DoubleRange(0, 50)] public double ThermalHysteresis { get; set; } = 5;

    [IntRange(100, 600_000)] public int ThermalPollMs { get; set; } = 2000;
}

public sealed class ResultsOptions
{
    [DefinedEnum] public ResultsSinkKind Sink { get; set; } = ResultsSinkKind.Stdout;

    /// <summary>Verdict file for Sink=file; rotated to Path.1, Path.2... when it reaches MaxBytes.</summary>
    public string? Path { get; set; }

    [IntRange(1024, long.MaxValue)] public long MaxBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>Rotated files kept besides the current one.</summary>
    [IntRange(0, 1000)] public int MaxFiles { get; set; } = 5;
}

public sealed class HttpOptions
{
    /// <summary>Kestrel listen URLs, ';'-separated. Loopback by default: put a reverse proxy in front to expose it.</summary>
    [Required(ErrorMessage = "is required (e.g. http://127.0.0.1:8080)")]
    public string Urls { get; set; } = "http://127.0.0.1:8080";

    /// <summary>Largest accepted request body (POST /v1/classify, PUT /v1/budget); larger -> 413.</summary>
    [IntRange(1024, 1L << 30)] public long MaxBodyBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>Required when Urls binds a non-loopback address: clients send it as "Authorization: Bearer KEY" or "X-Api-Key: KEY".</summary>
    public string? ApiKey { get; set; }

    /// <summary>Serve a non-loopback address without ApiKey (behind an authenticating proxy, say).</summary>
    public bool AllowAnonymous { get; set; }
}

public sealed class InputOptions
{
    /// <summary>Images declaring more pixels (width x height, read from the header) are refused before decoding (HTTP 422).</summary>
    [IntRange(1, 268_435_456)] public long MaxPixels { get; set; } = EdgeViT.Imaging.DecodeLimits.DefaultMaxPixels; // the CLI's limit too

    /// <summary>Requests that may wait for the engine besides the one running; more get HTTP 503 with Retry-After.</summary>
    [IntRange(1, 1024)] public int QueueLength { get; set; } = 4;
}

public sealed class TelemetryOptions
{
    /// <summary>OTLP export: auto (when OTEL_EXPORTER_OTLP_*ENDPOINT is set), on, off. Endpoint/protocol from OTEL_* variables.</summary>
    [DefinedEnum] public OtlpMode Otlp { get; set; } = OtlpMode.Auto;

    /// <summary>Serve a Prometheus scrape endpoint (its own HttpListener) at http://PrometheusHost:PrometheusPort/metrics.</summary>
    public bool Prometheus { get; set; }

    [Required(ErrorMessage = "is required when Telemetry:Prometheus is on")]
    public string PrometheusHost { get; set; } = "127.0.0.1";

    [IntRange(1, 65535)] public int PrometheusPort { get; set; } = 9464;

    /// <summary>Root of /sys for the SoC temperature/throttling gauges (tests point it at a fake tree).</summary>
    public string SysfsRoot { get; set; } = "/sys";
}
