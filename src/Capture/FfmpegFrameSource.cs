using System.ComponentModel;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeViT.Capture;

/// <summary>What ffmpeg should read and how to scale it.</summary>
public sealed record FfmpegOptions
{
    /// <summary>ffmpeg's -i argument: an RTSP/HTTP URL, a file, a lavfi graph (with InputOptions ["-f", "lavfi"])...</summary>
    public required string Input { get; init; }
    /// <summary>Options placed before -i, e.g. ["-f", "lavfi"], ["-rtsp_transport", "tcp"], ["-f", "v4l2", "-input_format", "mjpeg"].</summary>
    public IReadOnlyList<string> InputOptions { get; init; } = [];
    /// <summary>Output size. When either is null the input is probed with ffprobe (the other keeps the aspect ratio).</summary>
    public int? Width { get; init; }
    public int? Height { get; init; }
    /// <summary>Output frame rate (an fps filter after scaling); null keeps the input's.</summary>
    public double? Fps { get; init; }
    /// <summary>Read a file at its native rate (-re) instead of as fast as possible.</summary>
    public bool Realtime { get; init; }
    /// <summary>Loop a file forever (-stream_loop -1).</summary>
    public bool Loop { get; init; }
    public string FfmpegPath { get; init; } = "ffmpeg";
    public string FfprobePath { get; init; } = "ffprobe";
    /// <summary>No complete frame for this long is a stall (FrameSourceException).</summary>
    public TimeSpan FrameTimeout { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>Allowance for the first frame after open (ffmpeg start, stream connect, probing the codec).</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(30);
    public int PoolSize { get; init; } = 4;
}

/// <summary>
/// Anything ffmpeg reads (RTSP/HTTP streams, files, devices, lavfi test patterns), decoded and scaled by a child
/// <c>ffmpeg ... -vf scale=W:H -pix_fmt rgb24 -f rawvideo -</c> whose stdout is read in exact W*H*3-byte frames
/// into pooled <see cref="FrameFormat.Rgb24"/> frames. NextAsync returns null when the input ends normally;
/// ffmpeg failing is a <see cref="FrameSourceException"/> carrying its last stderr line. The process is killed on
/// dispose and on reopen. Credentials in URLs are masked in names and messages.
/// </summary>
public sealed partial class FfmpegFrameSource : IFrameSource
{
    private readonly FfmpegOptions _options;
    private readonly ILogger _log;
    private readonly FramePool _pool;
    private readonly string _display;
    private Process? _process;
    private Stream? _stdout;
    private volatile string? _lastError;
    private CancellationTokenSource _readTimeout = new();
    private long _sequence;
    private bool _awaitingFirstFrame;

    public FfmpegFrameSource(FfmpegOptions options, ILogger? logger = null)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if (string.IsNullOrWhiteSpace(options.Input)) throw new ArgumentException("ffmpeg input is empty");
        if (options.Width is <= 0 || options.Height is <= 0) throw new ArgumentException($"ffmpeg output size must be positive (got {options.Width}x{options.Height})");
        _log = logger ?? NullLogger.Instance;
        _pool = new FramePool(Math.Max(1, options.PoolSize));
        _display = Redact(options.Input);
    }

    public int Width { get; private set; }
    public int Height { get; private set; }
    public FramePool Pool => _pool;
    /// <summary>The last line ffmpeg wrote to stderr (errors only: it runs with -loglevel error).</summary>
    public string? LastError => _lastError;

    public string Name => Width > 0 ? $"ffmpeg:{_display} {Width}x{Height}" : $"ffmpeg:{_display}";

    /// <summary>The ffmpeg arguments for the current size (for logs and tests).</summary>
    public IReadOnlyList<string> Arguments(int width, int height)
    {
        var args = new List<string> { "-hide_banner", "-loglevel", "error", "-nostdin" };
        if (_options.Realtime) args.Add("-re");
        if (_options.Loop) args.AddRange(["-stream_loop", "-1"]);
        args.AddRange(_options.InputOptions);
        args.AddRange(["-i", _options.Input, "-an", "-sn", "-dn"]);
        string filter = $"scale={width}:{height}";
        if (_options.Fps is > 0 and var fps) filter += $",fps={fps.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
        args.AddRange(["-vf", filter, "-pix_fmt", "rgb24", "-f", "rawvideo", "-"]);
        return args;
    }

    public async ValueTask OpenAsync(CancellationToken cancellationToken)
    {
        StopProcess();
        var (width, height) = await ResolveSizeAsync(cancellationToken).ConfigureAwait(false);
        Width = width;
        Height = height;

        var psi = new ProcessStartInfo(_options.FfmpegPath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
            CreateNoWindow = true,
        };
        foreach (var a in Arguments(width, height)) psi.ArgumentList.Add(a);
        var process = new Process { StartInfo = psi };
        _lastError = null;
        process.ErrorDataReceived += (_, e) =>
        {
            if (!string.IsNullOrWhiteSpace(e.Data)) _lastError = Redact(e.Data.Trim());
        };
        try
        {
            process.Start();
        }
        catch (Win32Exception ex)
        {
            process.Dispose();
            throw NotFound(_options.FfmpegPath, "ffmpeg", ex);
        }
        process.BeginErrorReadLine();
        _process = process;
        _stdout = process.StandardOutput.BaseStream;
        _awaitingFirstFrame = true;
        _log.LogInformation("Started {Name} (pid {Pid})", Name, process.Id);
    }

    public async ValueTask<Frame?> NextAsync(CancellationToken cancellationToken)
    {
        var stdout = _stdout ?? throw new InvalidOperationException($"{Name}: not open (call OpenAsync first, or again after a failure)");
        int size = Width * Height * 3;
        var frame = _pool.Rent(size);
        long start = Stopwatch.GetTimestamp();
        int read = 0;
        bool stalled = false;
        var timeout = _awaitingFirstFrame ? _options.StartTimeout : _options.FrameTimeout;
        try
        {
            using var registration = cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _readTimeout);
            _readTimeout.CancelAfter(timeout);
            try
            {
                while (read < size)
                {
                    int n = await stdout.ReadAsync(frame.Buffer.AsMemory(read, size - read), _readTimeout.Token).ConfigureAwait(false);
                    if (n == 0) break;
                    read += n;
                }
            }
            catch (OperationCanceledException)
            {
                _pool.Return(frame);
                cancellationToken.ThrowIfCancellationRequested();
                stalled = true;
            }
            catch (IOException ex)
            {
                _pool.Return(frame);
                StopProcess();
                throw new FrameSourceException($"ffmpeg {_display}: reading its output failed: {ex.Message}", ex);
            }
        }
        finally
        {
            if (!_readTimeout.TryReset())
            {
                _readTimeout.Dispose();
                _readTimeout = new CancellationTokenSource();
            }
        }
        if (stalled)
        {
            StopProcess();
            throw new FrameSourceException($"ffmpeg {_display}: no frame for {timeout.TotalSeconds:0.#} s ({(_awaitingFirstFrame ? "stream did not start" : "stream stalled")}){LastErrorSuffix()}");
        }

        if (read < size)
        {
            _pool.Return(frame);
            int? exitCode = await WaitForExitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            string? error = _lastError;
            StopProcess();
            if (read == 0 && exitCode == 0)
            {
                _log.LogInformation("{Name} ended after {Frames} frames", Name, _sequence);
                return null;
            }
            string what = read == 0 ? "ffmpeg failed" : $"ffmpeg stopped mid-frame ({read} of {size} bytes)";
            string code = exitCode is { } c ? $"exit code {c}" : "still running";
            throw new FrameSourceException($"{what} on {_display}: {error ?? "no error output"} ({code})");
        }

        _awaitingFirstFrame = false;
        frame.Format = FrameFormat.Rgb24;
        frame.Width = Width;
        frame.Height = Height;
        frame.Stride = Width * 3;
        frame.Length = size;
        frame.Sequence = ++_sequence;
        frame.Timestamp = DateTimeOffset.UtcNow;
        frame.CaptureTime = Stopwatch.GetElapsedTime(start);
        frame.Origin = _display;
        return frame;
    }

    public void Release(Frame frame) => _pool.Return(frame);

    public ValueTask DisposeAsync()
    {
        StopProcess();
        _readTimeout.Dispose();
        return ValueTask.CompletedTask;
    }

    private string LastErrorSuffix() => _lastError is { } e ? $": {e}" : "";

    private async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        var p = _process;
        if (p is null) return null;
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            p.WaitForExit();   // drains the stderr reader so the last line is in
            return p.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    private void StopProcess()
    {
        var p = _process;
        _process = null;
        _stdout = null;
        ChildProcess.Stop(p);
    }

    private async Task<(int Width, int Height)> ResolveSizeAsync(CancellationToken cancellationToken)
    {
        if (_options.Width is { } w && _options.Height is { } h) return (w, h);
        var (pw, ph) = await ProbeAsync(cancellationToken).ConfigureAwait(false);
        if (_options.Width is { } ow) return (ow, Even(ow * (double)ph / pw));
        if (_options.Height is { } oh) return (Even(oh * (double)pw / ph), oh);
        return (pw, ph);
    }

    private static int Even(double v) => Math.Max(2, (int)Math.Round(v / 2) * 2);

    /// <summary>The input's video size from ffprobe.</summary>
    public async Task<(int Width, int Height)> ProbeAsync(CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo(_options.FfprobePath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            CreateNoWindow = true,
        };
        foreach (var a in (IEnumerable<string>)["-v", "error", .. _options.InputOptions, "-select_streams", "v:0",
                     "-show_entries", "stream=width,height", "-of", "csv=p=0:s=x", "-i", _options.Input])
            psi.ArgumentList.Add(a);
        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (Win32Exception ex)
        {
            throw NotFound(_options.FfprobePath, "ffprobe", ex, " (or configure the width and height)");
        }
        var stdoutTask = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderrTask = process.StandardError.ReadToEndAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.StartTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            cancellationToken.ThrowIfCancellationRequested();
            throw new FrameSourceException($"ffprobe {_display}: no answer in {_options.StartTimeout.TotalSeconds:0.#} s (configure the width and height to skip probing)");
        }
        string output = await stdoutTask.ConfigureAwait(false), errors = await stderrTask.ConfigureAwait(false);
        var m = SizePattern().Match(output);
        if (process.ExitCode != 0 || !m.Success)
        {
            string last = errors.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault()
                          ?? (process.ExitCode == 0 ? "no video stream" : $"exit code {process.ExitCode}");
            throw new FrameSourceException($"ffprobe cannot read {_display}: {Redact(last)}");
        }
        return (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value));
    }

    private static FrameSourceException NotFound(string path, string tool, Exception inner, string extra = "") =>
        path == tool
            ? new FrameSourceException($"{tool} not found on PATH: apt-get install ffmpeg{extra}", inner)
            : new FrameSourceException($"{tool} not found at {path}: apt-get install ffmpeg, or fix the path{extra}", inner);

    /// <summary>Masks the password of URLs like rtsp://user:secret@host/ as rtsp://user:***@host/.</summary>
    public static string Redact(string text) => UserInfoPattern().Replace(text, "$1:***@");

    [GeneratedRegex(@"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+):[^@/\s]*@")]
    private static partial Regex UserInfoPattern();

    [GeneratedRegex(@"^\s*(\d+)x(\d+)", RegexOptions.Multiline)]
    private static partial Regex SizePattern();
}
