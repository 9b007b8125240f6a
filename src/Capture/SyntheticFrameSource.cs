namespace EdgeViT.Capture;

/// <summary>A moving colour pattern, for demos and tests without a camera.</summary>
public sealed record SyntheticOptions
{
    public int Width { get; init; } = 320;
    public int Height { get; init; } = 240;
    /// <summary>Frames per second; null or 0 delivers as fast as the consumer pulls.</summary>
    public double? Fps { get; init; } = 30;
    /// <summary>Frames to deliver before ending (NextAsync returns null); null runs forever.</summary>
    public long? FrameCount { get; init; }
    public int PoolSize { get; init; } = 4;
}

/// <summary>
/// RGB24 frames of a diagonal colour gradient that scrolls every frame, with a white square bouncing across it
/// (so consecutive frames always differ and a frame is never uniform).
/// </summary>
public sealed class SyntheticFrameSource : IFrameSource
{
    private readonly SyntheticOptions _options;
    private readonly FramePool _pool;
    private readonly FramePacer _pacer;
    private readonly TimeProvider _time;
    private long _sequence;
    private bool _open;

    public SyntheticFrameSource(SyntheticOptions? options = null, TimeProvider? timeProvider = null)
    {
        _options = options ?? new SyntheticOptions();
        if (_options.Width <= 0 || _options.Height <= 0) throw new ArgumentException($"synthetic frame size must be positive (got {_options.Width}x{_options.Height})");
        _time = timeProvider ?? TimeProvider.System;
        _pool = new FramePool(Math.Max(1, _options.PoolSize));
        _pacer = new FramePacer(_options.Fps, _time);
    }

    public string Name => $"synthetic {_options.Width}x{_options.Height}{(_options.Fps is > 0 and var f ? $" @{f:0.##}fps" : "")}";
    public FramePool Pool => _pool;

    public ValueTask OpenAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _open = true;
        _pacer.Reset();
        return ValueTask.CompletedTask;
    }

    public async ValueTask<Frame?> NextAsync(CancellationToken cancellationToken)
    {
        if (!_open) throw new InvalidOperationException($"{Name}: not open (call OpenAsync first)");
        if (_options.FrameCount is { } max && _sequence >= max) return null;
        await _pacer.WaitAsync(cancellationToken).ConfigureAwait(false);
        long start = _time.GetTimestamp();
        int w = _options.Width, h = _options.Height;
        var frame = _pool.Rent(w * h * 3);
        long n = ++_sequence;
        Draw(frame.Buffer, w, h, n);
        frame.Format = FrameFormat.Rgb24;
        frame.Width = w;
        frame.Height = h;
        frame.Stride = w * 3;
        frame.Length = w * h * 3;
        frame.Sequence = n;
        frame.Timestamp = _time.GetUtcNow();
        frame.CaptureTime = _time.GetElapsedTime(start);
        frame.Origin = "synthetic";
        return frame;
    }

    public void Release(Frame frame) => _pool.Return(frame);

    public ValueTask DisposeAsync()
    {
        _open = false;
        return ValueTask.CompletedTask;
    }

    /// <summary>Draws frame <paramref name="n"/> of the pattern into <paramref name="rgb"/> (width*height*3 bytes).</summary>
    public static void Draw(Span<byte> rgb, int width, int height, long n)
    {
        int shift = (int)(n * 4 % 256);
        int side = Math.Max(2, Math.Min(width, height) / 5);
        int spanX = Math.Max(1, width - side), spanY = Math.Max(1, height - side);
        int sx = Bounce(n * 3, spanX), sy = Bounce(n * 2, spanY);
        for (int y = 0; y < height; y++)
        {
            var row = rgb.Slice(y * width * 3, width * 3);
            int gy = y * 255 / Math.Max(1, height - 1);
            bool squareRow = y >= sy && y < sy + side;
            for (int x = 0; x < width; x++)
            {
                int gx = x * 255 / Math.Max(1, width - 1);
                int o = x * 3;
                if (squareRow && x >= sx && x < sx + side)
                {
                    row[o] = row[o + 1] = row[o + 2] = 255;
                    continue;
                }
                row[o] = (byte)(gx + shift);
                row[o + 1] = (byte)(gy - shift);
                row[o + 2] = (byte)((gx + gy) / 2 + 2 * shift);
            }
        }
    }

    private static int Bounce(long t, int span)
    {
        long p = t % (2L * span);
        return (int)(p < span ? p : 2L * span - p);
    }
}
