using System.Runtime.CompilerServices;
using EdgeViT.Capture;

namespace EdgeViT.Host.Service.Interim;

/// <summary>A frame with the source whose pool it must go back to.</summary>
public readonly record struct CapturedFrame(Frame Frame, IFrameSource Owner)
{
    public void Release() => Owner.Release(Frame);
}

/// <summary>
/// INTERIM (until feat/capture's LatestFrameQueue lands; swap it in FramePipeline): a single slot where the newest
/// frame replaces an unclaimed one (returned to its source and counted in <see cref="Dropped"/>), so a slow
/// classifier always gets the freshest frame and capture never blocks. One producer, one consumer.
/// </summary>
public sealed class InterimLatestFrameQueue
{
    private readonly object _lock = new();
    private readonly SemaphoreSlim _signal = new(0, 1);
    private CapturedFrame? _slot;
    private bool _completed;
    private long _dropped;

    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Puts a frame in the slot; returns true when it displaced (and released) an unclaimed one.</summary>
    public bool Offer(Frame frame, IFrameSource owner)
    {
        CapturedFrame? displaced;
        lock (_lock)
        {
            displaced = _slot;
            _slot = new CapturedFrame(frame, owner);
            _completed = false;
        }
        if (displaced is { } d)
        {
            Interlocked.Increment(ref _dropped);
            d.Release();
            return true;
        }
        Signal();
        return false;
    }

    /// <summary>Waits for a frame; null once <see cref="Complete"/> was called and the slot is empty.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<CapturedFrame?> TakeAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            lock (_lock)
            {
                if (_slot is { } f) { _slot = null; return f; }
                if (_completed) return null;
            }
            await _signal.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Releases the frame in the slot (a GPIO press or an HTTP request wants a frame captured after it).</summary>
    public void Clear()
    {
        CapturedFrame? old;
        lock (_lock) { old = _slot; _slot = null; }
        old?.Release();
    }

    /// <summary>The producer ended (finite source): waiters get null once the slot is empty.</summary>
    public void Complete()
    {
        lock (_lock) _completed = true;
        Signal();
    }

    private void Signal()
    {
        lock (_lock)
            if (_signal.CurrentCount == 0) _signal.Release();
    }
}
