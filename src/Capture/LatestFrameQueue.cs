using System.Threading.Tasks.Sources;

namespace EdgeViT.Capture;

/// <summary>
/// Single-slot, latest-frame-wins handoff from a capture loop to one consumer (the classifier). Capture runs at
/// the camera's rate; inference takes what is newest when it is ready, so latency never builds up:
/// <see cref="Publish"/> replaces a frame still waiting (that one goes back to its source and counts as dropped),
/// <see cref="TakeAsync"/> waits for the next frame. Steady state allocates nothing: no per-publish objects, and a
/// waiting take is a reusable IValueTaskSource rather than a Task.
/// </summary>
/// <remarks>
/// One consumer at a time (a second concurrent TakeAsync throws). The consumer owns a taken frame and gives it
/// back with <see cref="Release"/> (or the source's Release). After <see cref="Complete"/> (the capture loop
/// ended) takes return null once the waiting frame, if any, was taken.
/// </remarks>
public sealed class LatestFrameQueue : IValueTaskSource<Frame?>, IDisposable
{
    private readonly Action<Frame> _release;
    private readonly object _lock = new();
    private Frame? _slot;
    private bool _completed;
    private bool _waiting;
    private ManualResetValueTaskSourceCore<Frame?> _waiter = new() { RunContinuationsAsynchronously = true };
    private CancellationTokenRegistration _registration;
    private CancellationToken _waitToken;
    private long _published, _dropped, _taken;

    /// <param name="release">Gives a dropped frame back to its pool (normally the source's Release).</param>
    public LatestFrameQueue(Action<Frame> release) => _release = release ?? throw new ArgumentNullException(nameof(release));

    /// <summary>A queue whose dropped frames go back to <paramref name="source"/>.</summary>
    public LatestFrameQueue(IFrameSource source) : this((source ?? throw new ArgumentNullException(nameof(source))).Release) { }

    /// <summary>Frames handed to <see cref="Publish"/> (including any published after completion).</summary>
    public long Published => Interlocked.Read(ref _published);
    /// <summary>Frames replaced before anyone took them, or published after completion, and released.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);
    /// <summary>Frames handed to the consumer.</summary>
    public long Taken => Interlocked.Read(ref _taken);
    /// <summary>Whether a frame is waiting to be taken.</summary>
    public bool HasFrame { get { lock (_lock) return _slot is not null; } }
    public bool IsCompleted { get { lock (_lock) return _completed; } }

    /// <summary>Offers the newest frame: wakes a waiting consumer, or replaces (and releases) the frame waiting.</summary>
    public void Publish(Frame frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        Frame? drop = null;
        bool wake = false;
        CancellationTokenRegistration registration = default;
        lock (_lock)
        {
            _published++;
            if (_completed) drop = frame;
            else if (_waiting)
            {
                _waiting = false;
                wake = true;
                _taken++;
                registration = _registration;
                _registration = default;
            }
            else
            {
                drop = _slot;
                _slot = frame;
            }
            if (drop is not null) _dropped++;
        }
        if (wake)
        {
            registration.Dispose();
            _waiter.SetResult(frame);
        }
        if (drop is not null) _release(drop);
    }

    /// <summary>Takes the waiting frame, if any, without waiting.</summary>
    public bool TryTake(out Frame? frame)
    {
        lock (_lock)
        {
            frame = _slot;
            if (frame is null) return false;
            _slot = null;
            _taken++;
            return true;
        }
    }

    /// <summary>
    /// The waiting frame, or the next one published. Null once the queue is completed and empty.
    /// Throws OperationCanceledException when <paramref name="cancellationToken"/> fires first.
    /// </summary>
    public ValueTask<Frame?> TakeAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (_slot is { } ready)
            {
                _slot = null;
                _taken++;
                return new ValueTask<Frame?>(ready);
            }
            if (_completed) return new ValueTask<Frame?>((Frame?)null);
            if (_waiting) throw new InvalidOperationException("LatestFrameQueue has one consumer: a TakeAsync is already waiting");
            if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<Frame?>(cancellationToken);
            _waiting = true;
            _waitToken = cancellationToken;
            short version = _waiter.Version;
            // Registered under the lock: if the token fires right now, the callback runs inline on this thread
            // (the lock is re-entrant), sees _waiting and completes the waiter before it is returned, which is fine.
            if (cancellationToken.CanBeCanceled)
                _registration = cancellationToken.UnsafeRegister(static s => ((LatestFrameQueue)s!).CancelWait(), this);
            return new ValueTask<Frame?>(this, version);
        }
    }

    /// <summary>Gives a taken frame back to its source.</summary>
    public void Release(Frame frame) => _release(frame);

    /// <summary>No more frames will come: a waiting take returns null, later publishes are released at once.</summary>
    public void Complete()
    {
        bool wake;
        CancellationTokenRegistration registration;
        lock (_lock)
        {
            if (_completed) return;
            _completed = true;
            wake = _waiting;
            _waiting = false;
            registration = _registration;
            _registration = default;
        }
        if (wake)
        {
            registration.Dispose();
            _waiter.SetResult(null);
        }
    }

    /// <summary>Completes the queue and releases a frame still waiting.</summary>
    public void Dispose()
    {
        Complete();
        Frame? left;
        lock (_lock)
        {
            left = _slot;
            _slot = null;
        }
        if (left is not null)
        {
            Interlocked.Increment(ref _dropped);
            _release(left);
        }
    }

    private void CancelWait()
    {
        CancellationToken token;
        lock (_lock)
        {
            if (!_waiting) return;
            _waiting = false;
            token = _waitToken;
            _registration = default;   // we are its callback: disposing it here would wait for ourselves
        }
        _waiter.SetException(new OperationCanceledException(token));
    }

    Frame? IValueTaskSource<Frame?>.GetResult(short token)
    {
        try
        {
            return _waiter.GetResult(token);
        }
        finally
        {
            lock (_lock)
            {
                _waiter.Reset();
                _waitToken = default;
            }
        }
    }

    ValueTaskSourceStatus IValueTaskSource<Frame?>.GetStatus(short token) => _waiter.GetStatus(token);

    void IValueTaskSource<Frame?>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waiter.OnCompleted(continuation, state, token, flags);
}
