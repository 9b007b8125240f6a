using System.Numerics;

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
/// (so consecutive frames always differ and a frame is never uniform). The gradient is computed once; a frame is
/// that pattern plus a per-frame colour shift, added a vector at a time, then the square (see <see cref="Draw"/>).
/// </summary>
public sealed class SyntheticFrameSource : IFrameSource
{
    private readonly SyntheticOptions _options;
    private readonly FramePool _pool;
    private readonly FramePacer _pacer;
    private readonly TimeProvider _time;
    private long _sequence;
    private bool _open;
    private readonly byte[] _gradient;  // frame 0 without the square: R = gx, G = gy, B = (gx + gy) / 2
    private readonly byte[] _shiftRow;  // one row of the current frame's shift (s, -s, 2s) per pixel

    public SyntheticFrameSource(SyntheticOptions? options = null, TimeProvider? timeProvider = null)
    {
        _options = options ?? new SyntheticOptions();
        if (_options.Width <= 0 || _options.Height <= 0) throw new ArgumentException($"synthetic frame size must be positive (got {_options.Width}x{_options.Height})");
        _time = timeProvider ?? TimeProvider.System;
        _pool = new FramePool(Math.Max(1, _options.PoolSize));
        _pacer = new FramePacer(_options.Fps, _time);
        int w = _options.Width, h = _options.Height;
        _gradient = new byte[w * h * 3];
        Draw(_gradient, w, h, 0, square: false);
        _shiftRow = new byte[w * 3];
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
        Render(frame.Buffer.AsSpan(0, w * h * 3), n);
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

    /// <summary>
    /// Frame <paramref name="n"/> as <see cref="Draw"/> makes it, from the precomputed gradient: bytes wrap like the
    /// (byte) casts there, so the sum is exact.
    /// </summary>
    private void Render(Span<byte> rgb, long n)
    {
        int w = _options.Width, h = _options.Height, rowBytes = w * 3;
        byte shift = (byte)(n * 4 % 256);
        var add = _shiftRow.AsSpan();
        for (int o = 0; o < rowBytes; o += 3)
        {
            add[o] = shift;
            add[o + 1] = (byte)-shift;
            add[o + 2] = (byte)(2 * shift);
        }
        for (int y = 0; y < h; y++)
        {
            var src = _gradient.AsSpan(y * rowBytes, rowBytes);
            var dst = rgb.Slice(y * rowBytes, rowBytes);
            int i = 0;
            for (; i <= rowBytes - Vector<byte>.Count; i += Vector<byte>.Count)
                (new Vector<byte>(src[i..]) + new Vector<byte>(add[i..])).CopyTo(dst[i..]);
            for (; i < rowBytes; i++) dst[i] = (byte)(src[i] + add[i]);
        }
        var (sx, sy, side) = Square(w, h, n);
        for (int y = sy; y < sy + side && y < h; y++)
        {
            int from = sx, to = Math.Min(w, sx + side);
            rgb.Slice((y * w + from) * 3, (to - from) * 3).Fill(255);
        }
    }

    /// <summary>The bouncing white square of frame <paramref name="n"/>: top-left corner and side.</summary>
    private static (int X, int Y, int Side) Square(int width, int height, long n)
    {
        int side = Math.Max(2, Math.Min(width, height) / 5);
        int spanX = Math.Max(1, width - side), spanY = Math.Max(1, height - side);
        return (Bounce(n * 3, spanX), Bounce(n * 2, spanY), side);
    }

    /// <summary>Draws frame <paramref name="n"/> of the pattern into <paramref name="rgb"/> (width*height*3 bytes), pixel by pixel: the definition.</summary>
    public static void Draw(Span<byte> rgb, int width, int height, long n, bool square = true)
    {
        int shift = (int)(n * 4 % 256);
        var (sx, sy, side) = Square(width, height, n);
        for (int y = 0; y < height; y++)
        {
            var row = rgb.Slice(y * width * 3, width * 3);
            int gy = y * 255 / Math.Max(1, height - 1);
            bool squareRow = square && y >= sy && y < sy + side;
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
