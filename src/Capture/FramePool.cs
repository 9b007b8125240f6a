namespace EdgeViT.Capture;

/// <summary>
/// Thread-safe pool of <see cref="Frame"/> buffers for a source: Rent on the capture thread, Return from whoever
/// releases (consumer, queue). Steady state allocates nothing; frames beyond <see cref="MaxPooled"/> are dropped.
/// </summary>
public sealed class FramePool(int maxPooled = 8)
{
    private readonly Stack<Frame> _free = new(maxPooled);
    private long _created;

    public int MaxPooled { get; } = maxPooled > 0 ? maxPooled : throw new ArgumentOutOfRangeException(nameof(maxPooled));

    /// <summary>Frames created so far (constant in steady state).</summary>
    public long Created => Interlocked.Read(ref _created);

    /// <summary>Frames waiting in the pool.</summary>
    public int Available { get { lock (_free) return _free.Count; } }

    /// <summary>A frame whose buffer holds at least <paramref name="capacity"/> bytes, its fields to be set by the source.</summary>
    public Frame Rent(int capacity)
    {
        Frame? frame = null;
        lock (_free)
            if (_free.Count > 0) frame = _free.Pop();
        if (frame is null)
        {
            Interlocked.Increment(ref _created);
            return new Frame(capacity);
        }
        frame.EnsureCapacity(capacity);
        return frame;
    }

    public void Return(Frame frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        lock (_free)
            if (_free.Count < MaxPooled && !_free.Contains(frame)) _free.Push(frame);
    }
}

/// <summary>Paces a source to a frame rate: waits until the next frame is due (never bursts to catch up).</summary>
internal sealed class FramePacer(double? fps, TimeProvider time)
{
    private readonly long _period = fps is > 0 ? (long)(time.TimestampFrequency / fps.Value) : 0;
    private long _due;

    public void Reset() => _due = 0;

    public async ValueTask WaitAsync(CancellationToken cancellationToken)
    {
        if (_period == 0) return;
        long now = time.GetTimestamp();
        if (_due == 0 || now - _due > _period) _due = now;   // first frame, or fell behind: restart the schedule
        long wait = _due - now;
        _due += _period;
        if (wait > 0) await Task.Delay(time.GetElapsedTime(0, wait), time, cancellationToken).ConfigureAwait(false);
    }
}
