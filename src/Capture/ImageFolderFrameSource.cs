using System.Diagnostics;

namespace EdgeViT.Capture;

/// <summary>Replays the images of a folder.</summary>
public sealed record ImageFolderOptions
{
    public required string Folder { get; init; }
    /// <summary>Start again after the last image (true), or end (NextAsync returns null).</summary>
    public bool Loop { get; init; } = true;
    /// <summary>At most this many frames per second; null delivers as fast as the consumer pulls.</summary>
    public double? MaxFps { get; init; }
    /// <summary>File extensions taken (case-insensitive).</summary>
    public IReadOnlyList<string> Extensions { get; init; } = [".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif"];
    public int PoolSize { get; init; } = 4;
}

/// <summary>
/// The images of a folder, sorted by file name (ordinal), read as they are into pooled frames
/// (<see cref="FrameFormat.Encoded"/>, Width/Height 0: the service decodes them), optionally rate-limited,
/// once or in a loop. A missing or empty folder is a <see cref="FrameSourceException"/> at open.
/// </summary>
public sealed class ImageFolderFrameSource : IFrameSource
{
    private readonly ImageFolderOptions _options;
    private readonly FramePool _pool;
    private readonly FramePacer _pacer;
    private string[] _files = [];
    private int _next;
    private long _sequence;
    private long _cycles;

    public ImageFolderFrameSource(ImageFolderOptions options, TimeProvider? timeProvider = null)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _pool = new FramePool(Math.Max(1, options.PoolSize));
        _pacer = new FramePacer(options.MaxFps, timeProvider ?? TimeProvider.System);
    }

    public string Name => $"folder:{_options.Folder}{(_files.Length > 0 ? $" ({_files.Length} images{(_options.Loop ? ", looping" : "")})" : "")}";
    /// <summary>The images in replay order (after open).</summary>
    public IReadOnlyList<string> Files => _files;
    /// <summary>Completed passes over the folder.</summary>
    public long Cycles => Interlocked.Read(ref _cycles);
    public FramePool Pool => _pool;

    public ValueTask OpenAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        string folder = _options.Folder;
        if (!Directory.Exists(folder))
            throw new FrameSourceException(File.Exists(folder) ? $"image folder {folder} is a file, not a folder" : $"image folder {folder} not found");
        string[] files;
        try
        {
            var extensions = new HashSet<string>(_options.Extensions, StringComparer.OrdinalIgnoreCase);
            files = Directory.EnumerateFiles(folder)
                .Where(f => extensions.Contains(Path.GetExtension(f)))
                .Order(StringComparer.Ordinal)
                .ToArray();
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw new FrameSourceException($"image folder {folder} cannot be read: {ex.Message}", ex);
        }
        if (files.Length == 0)
            throw new FrameSourceException($"image folder {folder} contains no images ({string.Join(", ", _options.Extensions)})");
        _files = files;
        _next = 0;
        _pacer.Reset();
        return ValueTask.CompletedTask;
    }

    public async ValueTask<Frame?> NextAsync(CancellationToken cancellationToken)
    {
        if (_files.Length == 0) throw new InvalidOperationException($"{Name}: not open (call OpenAsync first)");
        if (_next >= _files.Length)
        {
            if (!_options.Loop) return null;
            _next = 0;
        }
        await _pacer.WaitAsync(cancellationToken).ConfigureAwait(false);
        string path = _files[_next];
        long start = Stopwatch.GetTimestamp();
        var frame = ReadFile(path);
        if (++_next == _files.Length) Interlocked.Increment(ref _cycles);
        frame.Format = FrameFormat.Encoded;
        frame.Width = frame.Height = frame.Stride = 0;
        frame.Sequence = ++_sequence;
        frame.Timestamp = DateTimeOffset.UtcNow;
        frame.CaptureTime = Stopwatch.GetElapsedTime(start);
        frame.Origin = path;
        return frame;
    }

    private Frame ReadFile(string path)
    {
        try
        {
            using var handle = File.OpenHandle(path);
            long size = RandomAccess.GetLength(handle);
            if (size > Array.MaxLength) throw new FrameSourceException($"image {path} is too large ({size} bytes)");
            var frame = _pool.Rent((int)size);
            int read = 0, n;
            while (read < size && (n = RandomAccess.Read(handle, frame.Buffer.AsSpan(read, (int)size - read), read)) > 0) read += n;
            frame.Length = read;
            return frame;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new FrameSourceException($"image {path} cannot be read: {ex.Message}", ex);
        }
    }

    public void Release(Frame frame) => _pool.Return(frame);

    public ValueTask DisposeAsync()
    {
        _files = [];
        return ValueTask.CompletedTask;
    }
}
