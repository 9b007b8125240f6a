using System.Device.Gpio;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeViT.Capture;

/// <summary>Which level changes of an input pin count as a trigger.</summary>
public enum TriggerEdge
{
    Rising,
    Falling,
    Both,
}

/// <summary>The input pin's internal bias resistor.</summary>
public enum PinPull
{
    None,
    /// <summary>Pull-up: a button to ground reads low when pressed (trigger on Falling).</summary>
    Up,
    /// <summary>Pull-down: a button to 3V3 reads high when pressed (trigger on Rising).</summary>
    Down,
}

/// <summary>A GPIO input used as a classification trigger (button, PIR sensor, light barrier).</summary>
public sealed record GpioTriggerOptions
{
    /// <summary>Pin number in the controller's (logical, BCM on a Raspberry Pi) numbering.</summary>
    public required int Pin { get; init; }
    public TriggerEdge Edge { get; init; } = TriggerEdge.Falling;
    public PinPull Pull { get; init; } = PinPull.Up;
    /// <summary>Edges within this time after an accepted edge are contact bounce and ignored; zero accepts every edge.</summary>
    public TimeSpan Debounce { get; init; } = TimeSpan.FromMilliseconds(50);
    /// <summary>Undelivered events kept; beyond that the oldest are dropped (a consumer that fell behind wants the newest).</summary>
    public int EventCapacity { get; init; } = 16;
}

/// <summary>One accepted trigger.</summary>
/// <param name="Edge">The edge that fired: Rising or Falling.</param>
/// <param name="Sequence">1, 2, ... per trigger.</param>
public readonly record struct TriggerEvent(int Pin, TriggerEdge Edge, DateTimeOffset Timestamp, long Sequence);

/// <summary>A trigger or output pin that cannot be set up (unsupported pin mode, no access to the GPIO chip...).</summary>
public sealed class TriggerException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Turns edges on a GPIO input into debounced trigger events. Debouncing is done here and is time-based: after an
/// accepted edge (a level change in either direction), every edge within <see cref="GpioTriggerOptions.Debounce"/>
/// is ignored as bounce; accepted edges of the configured direction become events (driver debounce is not relied
/// on; many GPIO drivers have none). Events arrive on <see cref="Events"/> (a channel) and the
/// <see cref="Triggered"/> event (raised on the driver's callback thread: keep handlers short).
/// </summary>
/// <remarks>
/// Give it the service's <see cref="GpioController"/> (on a Raspberry Pi: <c>new GpioController()</c>); tests pass a
/// controller over a simulated <see cref="GpioDriver"/>. Interval and continuous triggering need no pin and are
/// left to the service's scheduler, which consumes these events beside its timers and HTTP requests.
/// </remarks>
public sealed class GpioTrigger : IDisposable
{
    private readonly GpioController _controller;
    private readonly GpioTriggerOptions _options;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly Channel<TriggerEvent> _events;
    private readonly PinChangeEventHandler _handler;
    private readonly long _debounceTicks;
    private readonly PinEventTypes _wanted;
    private readonly bool _openedPin;
    private readonly object _lock = new();
    private long _lastAccepted = long.MinValue;
    private long _accepted, _ignored;
    private bool _disposed;

    public GpioTrigger(GpioController controller, GpioTriggerOptions options, ILogger? logger = null, TimeProvider? timeProvider = null)
    {
        _controller = controller ?? throw new ArgumentNullException(nameof(controller));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if (options.Debounce < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(options), $"GPIO debounce must not be negative (got {options.Debounce})");
        _log = logger ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
        _debounceTicks = (long)(options.Debounce.TotalSeconds * _time.TimestampFrequency);
        _events = Channel.CreateBounded<TriggerEvent>(new BoundedChannelOptions(Math.Max(1, options.EventCapacity))
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleWriter = true,
        });
        _handler = OnPinChanged;
        _wanted = ToPinEvents(options.Edge);

        int pin = options.Pin;
        var mode = options.Pull switch { PinPull.Up => PinMode.InputPullUp, PinPull.Down => PinMode.InputPullDown, _ => PinMode.Input };
        try
        {
            if (!controller.IsPinModeSupported(pin, mode))
                throw new TriggerException($"GPIO pin {pin} does not support {Describe(mode)} on this board");
            if (!controller.IsPinOpen(pin))
            {
                controller.OpenPin(pin, mode);
                _openedPin = true;
            }
            else controller.SetPinMode(pin, mode);
            // Both edges are always watched: debouncing works on every level change, so the bounce of a press does
            // not sneak a rising edge past a rising-edge trigger; only the configured edges become events.
            controller.RegisterCallbackForPinValueChangedEvent(pin, PinEventTypes.Rising | PinEventTypes.Falling, _handler);
        }
        catch (Exception ex) when (ex is not TriggerException)
        {
            if (_openedPin) TryClose(pin);
            throw new TriggerException($"GPIO pin {pin}: cannot set up as a trigger input ({ex.Message}); is the pin number right and the user in the 'gpio' group?", ex);
        }
        _log.LogInformation("GPIO trigger on pin {Pin}: {Edge} edge, pull {Pull}, debounce {Debounce} ms", pin, options.Edge, options.Pull, options.Debounce.TotalMilliseconds);
    }

    public int Pin => _options.Pin;
    /// <summary>Accepted triggers (those delivered as events).</summary>
    public long Accepted => Interlocked.Read(ref _accepted);
    /// <summary>Edges ignored as bounce.</summary>
    public long Ignored => Interlocked.Read(ref _ignored);

    /// <summary>Accepted triggers in order; completed on dispose.</summary>
    public ChannelReader<TriggerEvent> Events => _events.Reader;

    /// <summary>Raised for every accepted trigger, on the GPIO driver's event thread.</summary>
    public event Action<TriggerEvent>? Triggered;

    /// <summary>The next trigger (from <see cref="Events"/>).</summary>
    public ValueTask<TriggerEvent> WaitAsync(CancellationToken cancellationToken = default) => _events.Reader.ReadAsync(cancellationToken);

    private void OnPinChanged(object sender, PinValueChangedEventArgs e)
    {
        long now = _time.GetTimestamp();
        TriggerEvent evt;
        lock (_lock)
        {
            if (_disposed) return;
            if (_lastAccepted != long.MinValue && now - _lastAccepted < _debounceTicks)
            {
                _ignored++;
                return;
            }
            _lastAccepted = now;   // a real level change: edges in the next Debounce are its bounce
            if ((e.ChangeType & _wanted) == 0) return;
            long sequence = ++_accepted;
            var edge = (e.ChangeType & PinEventTypes.Rising) != 0 ? TriggerEdge.Rising : TriggerEdge.Falling;
            evt = new TriggerEvent(e.PinNumber, edge, _time.GetUtcNow(), sequence);
            _events.Writer.TryWrite(evt);
        }
        try
        {
            Triggered?.Invoke(evt);
        }
        catch (Exception ex)
        {
            _log.LogError(ex, "GPIO trigger handler failed for pin {Pin}", e.PinNumber);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
        }
        try
        {
            _controller.UnregisterCallbackForPinValueChangedEvent(_options.Pin, _handler);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException) { }
        if (_openedPin) TryClose(_options.Pin);
        _events.Writer.TryComplete();
    }

    private void TryClose(int pin)
    {
        try
        {
            if (_controller.IsPinOpen(pin)) _controller.ClosePin(pin);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException) { }
    }

    internal static PinEventTypes ToPinEvents(TriggerEdge edge) => edge switch
    {
        TriggerEdge.Rising => PinEventTypes.Rising,
        TriggerEdge.Falling => PinEventTypes.Falling,
        _ => PinEventTypes.Rising | PinEventTypes.Falling,
    };

    private static string Describe(PinMode mode) => mode switch
    {
        PinMode.InputPullUp => "input with pull-up",
        PinMode.InputPullDown => "input with pull-down",
        _ => "input",
    };
}
