using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Iot.Device.Camera.Settings;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeViT.Capture;

/// <summary>What rpicam-vid should capture.</summary>
public sealed record LibcameraOptions
{
    /// <summary>Camera index as rpicam-hello --list-cameras numbers them.</summary>
    public int Camera { get; init; }
    public int Width { get; init; } = 640;
    public int Height { get; init; } = 480;
    /// <summary>Frames per second (null = the camera's default).</summary>
    public int? Fps { get; init; }
    /// <summary>0 or 180 (libcamera rotates by flipping; 90/270 are not supported by the sensor pipeline).</summary>
    public int Rotation { get; init; }
    public bool Hflip { get; init; }
    public bool Vflip { get; init; }
    /// <summary>mjpeg (JPEG frames, decoded by the service) or yuv420 (raw I420 converted to RGB24 here).</summary>
    public string Codec { get; init; } = "mjpeg";
    /// <summary>MJPEG quality 1..100.</summary>
    public int Quality { get; init; } = 80;
    /// <summary>Programs tried in order; a bare name is looked up on <see cref="SearchPath"/>.</summary>
    public IReadOnlyList<string> Executables { get; init; } = ["rpicam-vid", ProcessSettingsFactory.LibcameraVid];
    /// <summary>Directories searched for the programs (null = $PATH).</summary>
    public string? SearchPath { get; init; }
    public TimeSpan FrameTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Allowance for the first frame (camera start, auto exposure settling).</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(20);
    public int PoolSize { get; init; } = 4;
}

/// <summary>
/// A Raspberry Pi CSI camera through libcamera: a child <c>rpicam-vid</c> (or, on older Raspberry Pi OS,
/// <c>libcamera-vid</c>) streaming MJPEG or YUV420 to stdout, its arguments built with dotnet/iot's
/// <see cref="CommandOptionsBuilder"/> (Iot.Device.Camera). MJPEG frames come out <see cref="FrameFormat.Encoded"/>;
/// YUV420 is converted to <see cref="FrameFormat.Rgb24"/>. The process is run here rather than through
/// Iot.Device.Camera's ProcessRunner because rpicam-vid logs every frame to stderr and ProcessRunner never drains
/// it (the pipe fills and the camera stalls) nor reports it, and the errors below come from those lines.
/// Failures are <see cref="FrameSourceException"/>s with one line: the program missing, no camera, camera busy,
/// the process dying (its last stderr line and exit code); the capture loop reopens (restarts the process).
/// </summary>
public sealed class LibcameraFrameSource : IFrameSource
{
    private readonly LibcameraOptions _o;
    private readonly ILogger _log;
    private readonly FramePool _pool;
    private readonly JpegStreamSplitter _splitter = new();
    private readonly Queue<string> _stderr = new();
    private Process? _process;
    private Stream? _stdout;
    private string? _program;
    private byte[] _yuv = [];
    private long _sequence;
    private bool _awaitingFirstFrame;

    public LibcameraFrameSource(LibcameraOptions options, ILogger? logger = null)
    {
        _o = options ?? throw new ArgumentNullException(nameof(options));
        if (options.Width <= 0 || options.Height <= 0) throw new ArgumentException($"libcamera size must be positive (got {options.Width}x{options.Height})");
        if (options.Rotation is not (0 or 180)) throw new ArgumentException($"libcamera rotation must be 0 or 180 (got {options.Rotation})");
        if (options.Codec is not ("mjpeg" or "yuv420")) throw new ArgumentException($"libcamera codec must be mjpeg or yuv420 (got '{options.Codec}')");
        if (options.Codec == "yuv420" && (options.Width % 2 != 0 || options.Height % 2 != 0))
            throw new ArgumentException($"libcamera yuv420 needs an even width and height (got {options.Width}x{options.Height})");
        _log = logger ?? NullLogger.Instance;
        _pool = new FramePool(Math.Max(1, options.PoolSize));
    }

    public string Name => $"libcamera:{_o.Camera} {_o.Width}x{_o.Height} {_o.Codec}";
    public FramePool Pool => _pool;
    /// <summary>The program that was started (full path), after OpenAsync.</summary>
    public string? Program => _program;
    public long Restarts { get; private set; }

    /// <summary>The rpicam-vid arguments (one list element per argument).</summary>
    public IReadOnlyList<string> Arguments()
    {
        var b = new CommandOptionsBuilder(includeOutputToStdio: true)
            .WithContinuousStreaming(0)
            .WithCamera(_o.Camera)
            .WithResolution(_o.Width, _o.Height);
        if (_o.Fps is int fps and > 0) b = b.WithVideoFramerate(fps);
        if (_o.Codec == "mjpeg") b = b.WithMJPEGVideoOptions(_o.Quality);
        else b = b.With(CommandOptionAndValue.Create(Command.Codec, "yuv420"));
        if (_o.Rotation == 180) b = b.With(CommandOptionAndValue.Create(Command.Rotation, "180"));
        if (_o.Hflip) b = b.WithHflip();
        if (_o.Vflip) b = b.WithVflip();
        b = b.With(CommandOptionAndValue.Create(Command.Nopreview, ""));
        // GetArguments gives "--option value" strings for a shell line; split them for ArgumentList.
        var args = new List<string>();
        foreach (var a in b.GetArguments())
        {
            int space = a.IndexOf(' ');
            if (space < 0) args.Add(a);
            else { args.Add(a[..space]); args.Add(a[(space + 1)..]); }
        }
        return args;
    }

    /// <summary>The first of <see cref="LibcameraOptions.Executables"/> found (full path), or null.</summary>
    public string? Resolve()
    {
        var dirs = (_o.SearchPath ?? Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries);
        foreach (var exe in _o.Executables)
        {
            if (exe.Contains('/')) { if (File.Exists(exe)) return exe; continue; }
            foreach (var dir in dirs)
            {
                string full = Path.Combine(dir, exe);
                if (File.Exists(full) && (File.GetUnixFileMode(full) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0) return full;
            }
        }
        return null;
    }

    public async ValueTask OpenAsync(CancellationToken cancellationToken)
    {
        StopProcess();
        _program = Resolve() ?? throw new FrameSourceException(
            $"libcamera camera {_o.Camera}: none of {string.Join(", ", _o.Executables)} found on PATH: install rpicam-apps (Raspberry Pi OS Bookworm: sudo apt install rpicam-apps; older: libcamera-apps)");
        var psi = new ProcessStartInfo(_program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            CreateNoWindow = true,
        };
        foreach (var a in Arguments()) psi.ArgumentList.Add(a);
        var process = new Process { StartInfo = psi };
        lock (_stderr) _stderr.Clear();
        process.ErrorDataReceived += (_, e) =>
        {
            if (string.IsNullOrWhiteSpace(e.Data)) return;
            lock (_stderr)
            {
                _stderr.Enqueue(e.Data.Trim());
                if (_stderr.Count > 20) _stderr.Dequeue();
            }
        };
        try { process.Start(); }
        catch (Win32Exception ex)
        {
            process.Dispose();
            throw new FrameSourceException($"libcamera camera {_o.Camera}: cannot start {_program}: {ex.Message}", ex);
        }
        process.BeginErrorReadLine();
        _process = process;
        _stdout = process.StandardOutput.BaseStream;
        _awaitingFirstFrame = true;
        if (_sequence > 0) Restarts++;
        _log.LogInformation("Started {Program} for {Name} (pid {Pid})", _program, Name, process.Id);
        await Task.CompletedTask;
    }

    public async ValueTask<Frame?> NextAsync(CancellationToken cancellationToken)
    {
        var stdout = _stdout ?? throw new InvalidOperationException($"{Name}: not open (call OpenAsync first, or again after a failure)");
        var timeout = _awaitingFirstFrame ? _o.StartTimeout : _o.FrameTimeout;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        long start = Stopwatch.GetTimestamp();
        var frame = _pool.Rent(_o.Codec == "mjpeg" ? 64 * 1024 : _o.Width * _o.Height * 3);
        bool ok;
        string? partial = null;
        try
        {
            ok = _o.Codec == "mjpeg" ? await _splitter.ReadAsync(stdout, frame, cts.Token).ConfigureAwait(false) : await ReadYuvAsync(stdout, frame, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            _pool.Return(frame);
            StopProcess();
            throw new FrameSourceException($"{Name}: no frame for {timeout.TotalSeconds:0.#} s ({(_awaitingFirstFrame ? "camera did not start" : "stream stalled")}){Suffix(LastLines())}");
        }
        catch (OperationCanceledException)
        {
            _pool.Return(frame);
            throw;
        }
        catch (Exception ex) when (ex is EndOfStreamException or IOException)
        {
            ok = false;
            partial = ex.Message;
        }
        if (ok)
        {
            _awaitingFirstFrame = false;
            frame.Width = _o.Width;
            frame.Height = _o.Height;
            frame.Sequence = ++_sequence;
            frame.Timestamp = DateTimeOffset.UtcNow;
            frame.CaptureTime = Stopwatch.GetElapsedTime(start);
            frame.Origin = Name;
            return frame;
        }
        _pool.Return(frame);
        int? code = await WaitForExitAsync(TimeSpan.FromSeconds(3)).ConfigureAwait(false);
        var lines = LastLines();
        StopProcess();
        throw Explain(lines, code, partial);
    }

    private async ValueTask<bool> ReadYuvAsync(Stream stdout, Frame frame, CancellationToken ct)
    {
        int w = _o.Width, h = _o.Height, size = w * h * 3 / 2;
        if (_yuv.Length < size) _yuv = new byte[size];
        int read = 0;
        while (read < size)
        {
            int n = await stdout.ReadAsync(_yuv.AsMemory(read, size - read), ct).ConfigureAwait(false);
            if (n == 0)
            {
                if (read == 0) return false;
                throw new EndOfStreamException($"stream ended inside a YUV420 frame ({read} of {size} bytes)");
            }
            read += n;
        }
        frame.EnsureCapacity(w * h * 3);
        I420.ToRgb24(_yuv.AsSpan(0, size), w, h, frame.Buffer);
        frame.Format = FrameFormat.Rgb24;
        frame.Stride = w * 3;
        frame.Length = w * h * 3;
        return true;
    }

    /// <summary>One line for why the camera process ended, from what it printed.</summary>
    private FrameSourceException Explain(IReadOnlyList<string> lines, int? code, string? partial)
    {
        string all = string.Join("\n", lines);
        string cam = $"libcamera camera {_o.Camera}";
        string exit = code is int c ? $"exit code {c}" : "still running";
        if (Has(all, "no cameras available"))
            return new FrameSourceException($"{cam}: no camera found by libcamera (is the ribbon cable seated and the camera enabled? check with rpicam-hello --list-cameras) ({exit})");
        if (Has(all, "Device or resource busy") || Has(all, "failed to acquire camera") || Has(all, "Pipeline handler in use"))
            return new FrameSourceException($"{cam} is busy: another program (an rpicam app, a browser, a second edgevit) holds it ({exit})");
        if (Has(all, "invalid camera") || Has(all, "No camera with index") || Has(all, "camera index"))
            return new FrameSourceException($"{cam} does not exist (rpicam-hello --list-cameras lists the indices) ({exit})");
        string last = lines.Count > 0 ? lines[^1] : "no error output";
        string what = partial is not null ? $"stopped mid-frame ({partial})" : code == 0 ? "ended" : "failed";
        return new FrameSourceException($"{cam}: {Path.GetFileName(_program)} {what}: {last} ({exit})");
    }

    private static bool Has(string text, string what) => text.Contains(what, StringComparison.OrdinalIgnoreCase);

    private List<string> LastLines()
    {
        lock (_stderr) return [.. _stderr];
    }

    private static string Suffix(List<string> lines) => lines.Count > 0 ? $": {lines[^1]}" : "";

    public void Release(Frame frame) => _pool.Return(frame);

    public ValueTask DisposeAsync()
    {
        StopProcess();
        return ValueTask.CompletedTask;
    }

    private async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        if (_process is not { } p) return null;
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            p.WaitForExit(); // drains stderr
            return p.ExitCode;
        }
        catch (OperationCanceledException) { return null; }
    }

    private void StopProcess()
    {
        var p = _process;
        _process = null;
        _stdout = null;
        ChildProcess.Stop(p);
    }
}

/// <summary>I420 (planar Y, then U and V at half resolution) to RGB24, BT.601 limited range, 8-bit fixed point.</summary>
public static class I420
{
    public static void ToRgb24(ReadOnlySpan<byte> yuv, int width, int height, Span<byte> rgb)
    {
        int ySize = width * height, cw = width / 2, cSize = cw * (height / 2);
        if (yuv.Length < ySize + 2 * cSize) throw new ArgumentException($"I420 {width}x{height} needs {ySize + 2 * cSize} bytes (got {yuv.Length})");
        if (rgb.Length < ySize * 3) throw new ArgumentException($"RGB24 {width}x{height} needs {ySize * 3} bytes (got {rgb.Length})");
        var yp = yuv[..ySize];
        var up = yuv.Slice(ySize, cSize);
        var vp = yuv.Slice(ySize + cSize, cSize);
        for (int y = 0; y < height; y++)
        {
            int crow = (y / 2) * cw;
            for (int x = 0; x < width; x++)
            {
                int c = 298 * (yp[y * width + x] - 16);
                int d = up[crow + x / 2] - 128, e = vp[crow + x / 2] - 128;
                int o = (y * width + x) * 3;
                rgb[o] = Clamp((c + 409 * e + 128) >> 8);
                rgb[o + 1] = Clamp((c - 100 * d - 208 * e + 128) >> 8);
                rgb[o + 2] = Clamp((c + 516 * d + 128) >> 8);
            }
        }
    }

    private static byte Clamp(int v) => (byte)(v < 0 ? 0 : v > 255 ? 255 : v);
}
