namespace EdgeViT.Host.Service;

/// <summary>
/// When the frame loop takes the next frame from the source (Trigger:Mode). A strategy only decides "when"; the
/// frame itself always goes through the one inference path.
/// </summary>
public interface ITrigger : IDisposable
{
    /// <summary>The frame loop takes frames at all (false: only requests classify, e.g. Trigger:Mode http).</summary>
    bool TakesFrames { get; }
    /// <summary>Discard frames already waiting, so the one classified was captured after the trigger fired.</summary>
    bool FreshFrame { get; }
    /// <summary>Completes when the next frame should be classified.</summary>
    ValueTask WaitAsync(CancellationToken ct);
    /// <summary>A watched-file reload of the trigger settings (only what applies without a restart).</summary>
    void Reload(TriggerOptions o) { }

    /// <summary>The strategy for the configured mode.</summary>
    static ITrigger Create(TriggerOptions o, FrameSourceFactory devices, TimeProvider time) => o.Mode switch
    {
        TriggerMode.Interval => new IntervalTrigger(TimeSpan.FromMilliseconds(o.IntervalMs), time),
        TriggerMode.Gpio => new GpioPressTrigger(devices.CreateGpioTrigger(o.Gpio)),
        TriggerMode.Http => new OnRequestTrigger(),
        _ => new ContinuousTrigger(),
    };
}

/// <summary>Every frame, as fast as the engine goes; frames captured meanwhile are replaced (latest wins).</summary>
public sealed class ContinuousTrigger : ITrigger
{
    public bool TakesFrames => true;
    public bool FreshFrame => false;
    public ValueTask WaitAsync(CancellationToken ct) => ValueTask.CompletedTask;
    public void Dispose() { }
}

/// <summary>One frame every Trigger:IntervalMs, on the injected clock (tests advance a fake one).</summary>
public sealed class IntervalTrigger(TimeSpan period, TimeProvider time) : ITrigger
{
    private readonly PeriodicTimer _timer = new(period, time);
    public bool TakesFrames => true;
    public bool FreshFrame => false;
    public TimeSpan Period => _timer.Period;

    public async ValueTask WaitAsync(CancellationToken ct)
    {
        if (!await _timer.WaitForNextTickAsync(ct)) throw new OperationCanceledException(ct);
    }

    public void Reload(TriggerOptions o)
    {
        var next = TimeSpan.FromMilliseconds(o.IntervalMs);
        if (_timer.Period != next) _timer.Period = next;
    }

    public void Dispose() => _timer.Dispose();
}

/// <summary>One frame per debounced button press, captured after the press.</summary>
public sealed class GpioPressTrigger(IGpioTrigger button) : ITrigger
{
    public bool TakesFrames => true;
    public bool FreshFrame => true;
    public ValueTask WaitAsync(CancellationToken ct) => new(button.WaitForPressAsync(ct));
    public void Dispose() => button.Dispose();
}

/// <summary>Trigger:Mode http: the loop idles; POST /v1/classify with an empty body takes a fresh frame.</summary>
public sealed class OnRequestTrigger : ITrigger
{
    public bool TakesFrames => false;
    public bool FreshFrame => true;
    public ValueTask WaitAsync(CancellationToken ct) => new(Task.Delay(Timeout.Infinite, ct));
    public void Dispose() { }
}
