using System.Device.Gpio;
using EdgeViT.Capture;

namespace EdgeViT.Tests.Capture;

/// <summary>A clock the test moves by hand; timers fire during <see cref="Advance"/>.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private static readonly DateTimeOffset Epoch = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly List<ManualTimer> _timers = [];
    private long _ticks = TimeSpan.TicksPerSecond;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;
    public override long GetTimestamp() => Interlocked.Read(ref _ticks);
    public override DateTimeOffset GetUtcNow() => Epoch.AddTicks(GetTimestamp());

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        lock (_timers) _timers.Add(timer);
        timer.Change(dueTime, period);
        return timer;
    }

    public void Advance(TimeSpan by)
    {
        long target = GetTimestamp() + by.Ticks;
        while (true)
        {
            ManualTimer? next = null;
            lock (_timers)
                foreach (var t in _timers)
                    if (t.Due >= 0 && t.Due <= target && (next is null || t.Due < next.Due)) next = t;
            if (next is null) break;
            Interlocked.Exchange(ref _ticks, Math.Max(GetTimestamp(), next.Due));
            next.Fire();
        }
        Interlocked.Exchange(ref _ticks, target);
    }

    private sealed class ManualTimer(ManualTimeProvider clock, TimerCallback callback, object? state) : ITimer
    {
        public long Due { get; private set; } = -1;
        private long _period = -1;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            Due = dueTime == Timeout.InfiniteTimeSpan ? -1 : clock.GetTimestamp() + dueTime.Ticks;
            _period = period == Timeout.InfiniteTimeSpan || period == TimeSpan.Zero ? -1 : period.Ticks;
            return true;
        }

        public void Fire()
        {
            Due = _period > 0 ? Due + _period : -1;
            callback(state);
        }

        public void Dispose()
        {
            Due = -1;
            lock (clock._timers) clock._timers.Remove(this);
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>
/// A GPIO chip in memory: pins keep their mode and level, writes are recorded, and the test fires edges
/// (with contact bounce) that reach the callbacks registered through GpioController, as a real driver's would.
/// </summary>
internal sealed class SimulatedGpioDriver : GpioDriver
{
    private sealed class PinState
    {
        public PinMode Mode = PinMode.Input;
        public PinValue Value = PinValue.Low;
        public readonly List<(PinEventTypes Types, PinChangeEventHandler Handler)> Callbacks = [];
    }

    private readonly Dictionary<int, PinState> _pins = [];
    private readonly object _lock = new();

    public HashSet<(int Pin, PinMode Mode)> Unsupported { get; } = [];
    public List<(int Pin, PinValue Value)> Writes { get; } = [];

    public PinValue Level(int pin) { lock (_lock) return _pins[pin].Value; }
    public PinMode ModeOf(int pin) { lock (_lock) return _pins[pin].Mode; }
    public bool IsOpen(int pin) { lock (_lock) return _pins.ContainsKey(pin); }
    public int CallbackCount(int pin) { lock (_lock) return _pins.TryGetValue(pin, out var p) ? p.Callbacks.Count : 0; }

    /// <summary>Drives an input to a level; a change fires the matching edge's callbacks.</summary>
    public void Drive(int pin, PinValue value)
    {
        List<PinChangeEventHandler> targets = [];
        PinEventTypes edge;
        lock (_lock)
        {
            var state = _pins[pin];
            if (state.Value == value) return;
            state.Value = value;
            edge = value == PinValue.High ? PinEventTypes.Rising : PinEventTypes.Falling;
            foreach (var (types, handler) in state.Callbacks)
                if ((types & edge) != 0) targets.Add(handler);
        }
        foreach (var handler in targets) handler(this, new PinValueChangedEventArgs(edge, pin));
    }

    /// <summary>Moves the pin to <paramref name="final"/> through <paramref name="bounces"/> extra flips (2 per bounce).</summary>
    public void Bounce(int pin, PinValue final, int bounces, Action? between = null)
    {
        PinValue other = final == PinValue.High ? PinValue.Low : PinValue.High;
        Drive(pin, final);
        for (int i = 0; i < bounces; i++)
        {
            between?.Invoke();
            Drive(pin, other);
            between?.Invoke();
            Drive(pin, final);
        }
    }

    protected override int PinCount => 28;

    protected override void OpenPin(int pinNumber)
    {
        lock (_lock) _pins[pinNumber] = new PinState();
    }

    protected override void ClosePin(int pinNumber)
    {
        lock (_lock) _pins.Remove(pinNumber);
    }

    protected override void SetPinMode(int pinNumber, PinMode mode)
    {
        lock (_lock)
        {
            var state = _pins[pinNumber];
            state.Mode = mode;
            if (mode == PinMode.InputPullUp) state.Value = PinValue.High;
            if (mode == PinMode.InputPullDown) state.Value = PinValue.Low;
        }
    }

    protected override PinMode GetPinMode(int pinNumber) => ModeOf(pinNumber);

    protected override bool IsPinModeSupported(int pinNumber, PinMode mode) => !Unsupported.Contains((pinNumber, mode));

    protected override PinValue Read(int pinNumber) => Level(pinNumber);

    protected override void Write(int pinNumber, PinValue value)
    {
        lock (_lock)
        {
            var state = _pins[pinNumber];
            if (state.Mode != PinMode.Output) throw new InvalidOperationException($"pin {pinNumber} is not an output");
            state.Value = value;
            Writes.Add((pinNumber, value));
        }
    }

    protected override WaitForEventResult WaitForEvent(int pinNumber, PinEventTypes eventTypes, CancellationToken cancellationToken)
    {
        cancellationToken.WaitHandle.WaitOne();
        return new WaitForEventResult { TimedOut = true };
    }

    protected override void AddCallbackForPinValueChangedEvent(int pinNumber, PinEventTypes eventTypes, PinChangeEventHandler callback)
    {
        lock (_lock) _pins[pinNumber].Callbacks.Add((eventTypes, callback));
    }

    protected override void RemoveCallbackForPinValueChangedEvent(int pinNumber, PinChangeEventHandler callback)
    {
        lock (_lock)
            if (_pins.TryGetValue(pinNumber, out var state)) state.Callbacks.RemoveAll(c => c.Handler == callback);
    }
}

/// <summary>A source that serves scripted results: frames, failures, an end.</summary>
internal sealed class ScriptedSource(string name = "scripted") : IFrameSource
{
    public Queue<Func<Frame?>> Script { get; } = new();
    public int OpenFailuresLeft { get; set; }
    public int Opens { get; private set; }
    public int OpenCalls { get; private set; }
    public List<Frame> Released { get; } = [];
    public string Name => name;

    public ValueTask OpenAsync(CancellationToken cancellationToken)
    {
        OpenCalls++;
        if (OpenFailuresLeft > 0)
        {
            OpenFailuresLeft--;
            throw new FrameSourceException($"{name} not there yet");
        }
        Opens++;
        return ValueTask.CompletedTask;
    }

    public ValueTask<Frame?> NextAsync(CancellationToken cancellationToken) =>
        new(Script.Count > 0 ? Script.Dequeue()() : null);

    public void Release(Frame frame)
    {
        lock (Released) Released.Add(frame);
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    public static Frame MakeFrame(long sequence) => new(16) { Length = 16, Sequence = sequence, Format = FrameFormat.Encoded };
}
