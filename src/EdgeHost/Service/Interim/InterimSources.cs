using System.Runtime.CompilerServices;
using System.Diagnostics;
using EdgeViT.Capture;

namespace EdgeViT.Host.Service.Interim;

// ============================================================================================================
// INTERIM (until feat/capture lands): minimal sources behind the EdgeViT.Capture contract so the service runs
// and is tested end to end. FrameSourceFactory picks them; replace them there with Capture's
// ImageFolderFrameSource / SyntheticFrameSource and delete this file.
// ============================================================================================================

/// <summary>A small pool of frames: the queue holds one, the classifier one, the source fills one.</summary>
internal sealed class FramePool(int capacity)
{
    private readonly Stack<Frame> _free = new();
    private readonly object _lock = new();

    public Frame Rent()
    {
        lock (_lock)
            if (_free.Count > 0) return _free.Pop();
        return new Frame(capacity);
    }

    public void Return(Frame frame)
    {
        lock (_lock)
            if (_free.Count < 8) _free.Push(frame);
    }
}

/// <summary>Paces a source at a frame rate without allocating per frame (0 fps = as fast as asked).</summary>
internal sealed class Pacer(double fps) : IDisposable
{
    private readonly PeriodicTimer? _timer = fps > 0 ? new PeriodicTimer(TimeSpan.FromSeconds(1 / fps)) : null;
    private bool _first = true;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WaitAsync(CancellationToken ct)
    {
        if (_timer is null || _first) { _first = false; return; }
        await _timer.WaitForNextTickAsync(ct).ConfigureAwait(false);
    }

    public void Dispose() => _timer?.Dispose();
}

/// <summary>INTERIM: replays the image files of a folder (file-name order) as encoded frames.</summary>
public sealed class InterimFolderSource(string folder, double fps, bool loop) : IFrameSource
{
    private static readonly HashSet<string> Extensions = new(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp" };
    private readonly FramePool _pool = new(1 << 20);
    private readonly Pacer _pacer = new(fps);
    private string[] _files = [];
    private int _next;
    private long _sequence;

    public string Name { get; private set; } = $"folder:{folder}";

    public ValueTask OpenAsync(CancellationToken cancellationToken)
    {
        if (!Directory.Exists(folder)) throw new FrameSourceException($"image folder not found: {folder}");
        try
        {
            _files = Directory.EnumerateFiles(folder).Where(f => Extensions.Contains(Path.GetExtension(f))).Order(StringComparer.Ordinal).ToArray();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { throw new FrameSourceException($"cannot list image folder {folder}: {ex.Message}", ex); }
        if (_files.Length == 0) throw new FrameSourceException($"image folder has no images (.jpg/.jpeg/.png): {folder}");
        Name = $"folder:{folder} ({_files.Length} images{(loop ? ", loop" : "")})";
        return ValueTask.CompletedTask;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // no allocation per frame when it waits
    public async ValueTask<Frame?> NextAsync(CancellationToken cancellationToken)
    {
        if (_files.Length == 0) throw new FrameSourceException("folder source is not open");
        if (_next >= _files.Length)
        {
            if (!loop) return null;
            _next = 0;
        }
        await _pacer.WaitAsync(cancellationToken).ConfigureAwait(false);
        string path = _files[_next++];
        long t0 = Stopwatch.GetTimestamp();
        var frame = _pool.Rent();
        try
        {
            using var handle = File.OpenHandle(path);
            long size = RandomAccess.GetLength(handle);
            if (size > int.MaxValue) throw new FrameSourceException($"{path}: file too large for a frame");
            frame.EnsureCapacity((int)size);
            int read = 0, n;
            while (read < size && (n = RandomAccess.Read(handle, frame.Buffer.AsSpan(read, (int)size - read), read)) > 0) read += n;
            frame.Length = read;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _pool.Return(frame);
            throw new FrameSourceException($"cannot read {path}: {ex.Message}", ex);
        }
        frame.Format = FrameFormat.Encoded;
        frame.Width = frame.Height = frame.Stride = 0;
        frame.Sequence = ++_sequence;
        frame.Timestamp = DateTimeOffset.UtcNow;
        frame.CaptureTime = Stopwatch.GetElapsedTime(t0);
        frame.Origin = path;
        return frame;
    }

    public void Release(Frame frame) => _pool.Return(frame);

    public ValueTask DisposeAsync()
    {
        _pacer.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>INTERIM: a moving colour gradient as RGB24 frames (no camera needed).</summary>
public sealed class InterimSyntheticSource(int width, int height, double fps) : IFrameSource
{
    private readonly FramePool _pool = new(Math.Max(1, width) * Math.Max(1, height) * 3);
    private readonly Pacer _pacer = new(fps);
    private long _sequence;

    public string Name => $"synthetic:{width}x{height}@{fps:0.##}fps";

    public ValueTask OpenAsync(CancellationToken cancellationToken)
    {
        if (width < 16 || height < 16) throw new FrameSourceException($"synthetic source needs at least 16x16 pixels (got {width}x{height})");
        return ValueTask.CompletedTask;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // no allocation per frame when it waits
    public async ValueTask<Frame?> NextAsync(CancellationToken cancellationToken)
    {
        await _pacer.WaitAsync(cancellationToken).ConfigureAwait(false);
        long t0 = Stopwatch.GetTimestamp();
        var frame = _pool.Rent();
        int stride = width * 3;
        frame.EnsureCapacity(stride * height);
        long seq = ++_sequence;
        var buffer = frame.Buffer;
        int shift = (int)(seq * 4 % 256);
        for (int y = 0; y < height; y++)
        {
            int row = y * stride;
            for (int x = 0; x < width; x++)
            {
                int p = row + x * 3;
                buffer[p] = (byte)(x * 255 / width + shift);
                buffer[p + 1] = (byte)(y * 255 / height);
                buffer[p + 2] = (byte)((x + y + shift) & 0xFF);
            }
        }
        frame.Length = stride * height;
        frame.Format = FrameFormat.Rgb24;
        frame.Width = width;
        frame.Height = height;
        frame.Stride = stride;
        frame.Sequence = seq;
        frame.Timestamp = DateTimeOffset.UtcNow;
        frame.CaptureTime = Stopwatch.GetElapsedTime(t0);
        frame.Origin = "synthetic";
        return frame;
    }

    public void Release(Frame frame) => _pool.Return(frame);

    public ValueTask DisposeAsync()
    {
        _pacer.Dispose();
        return ValueTask.CompletedTask;
    }
}
