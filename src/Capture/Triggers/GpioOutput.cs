using System.Device.Gpio;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeViT.Capture;

/// <summary>
/// A GPIO output the service drives: an LED, buzzer or relay switched on when a chosen class is seen.
/// <see cref="Set"/> switches it; <see cref="Pulse"/> switches it on and back off after a hold time, and a
/// further pulse while on extends the hold (so a class seen in every frame keeps the LED lit without flicker).
/// Active-low wiring (LED from 3V3 to the pin) is handled by <c>activeHigh: false</c>.
/// </summary>
public sealed class GpioOutput : IDisposable
{
    private readonly GpioController _controller;
    private readonly bool _activeHigh;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly ITimer _timer;
    private readonly bool _openedPin;
    private readonly object _lock = new();
    private long _offAt;     // timestamp when a pulse ends; 0 when no pulse is pending
    private bool _on;
    private bool _disposed;

    public GpioOutput(GpioController controller, int pin, bool activeHigh = true, ILogger? logger = null, TimeProvider? timeProvider = null)
    {
        _controller = controller ?? throw new ArgumentNullException(nameof(controller));
        Pin = pin;
        _activeHigh = activeHigh;
        _log = logger ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
        try
        {
            if (!controller.IsPinModeSupported(pin, PinMode.Output))
                throw new TriggerException($"GPIO pin {pin} cannot be an output on this board");
            var off = activeHigh ? PinValue.Low : PinValue.High;
            if (!controller.IsPinOpen(pin))
            {
                controller.OpenPin(pin, PinMode.Output, off);
                _openedPin = true;
            }
            else
            {
                controller.SetPinMode(pin, PinMode.Output);
                controller.Write(pin, off);
            }
        }
        catch (Exception ex) when (ex is not TriggerException)
        {
            throw new TriggerException($"GPIO pin {pin}: cannot set up as an output ({ex.Message}); is the pin number right and the user in the 'gpio' group?", ex);
        }
        _timer = _time.CreateTimer(static s => ((GpioOutput)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    public int Pin { get; }
    public bool IsOn { get { lock (_lock) return _on; } }

    /// <summary>Switches the output on or off now, cancelling a pending pulse end.</summary>
    public void Set(bool on)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _offAt = 0;
            _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            WriteLocked(on);
        }
    }

    /// <summary>On now, off <paramref name="hold"/> after the latest pulse.</summary>
    public void Pulse(TimeSpan hold)
    {
        if (hold <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(hold), hold, "pulse hold time must be positive");
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _offAt = _time.GetTimestamp() + (long)(hold.TotalSeconds * _time.TimestampFrequency);
            WriteLocked(true);
            _timer.Change(hold, Timeout.InfiniteTimeSpan);
        }
    }

    private void OnTimer()
    {
        lock (_lock)
        {
            if (_disposed || _offAt == 0) return;
            long remaining = _offAt - _time.GetTimestamp();
            if (remaining > 0)
            {
                // A newer pulse moved the end while this callback was on its way.
                _timer.Change(_time.GetElapsedTime(0, remaining), Timeout.InfiniteTimeSpan);
                return;
            }
            _offAt = 0;
            try
            {
                WriteLocked(false);
            }
            catch (Exception ex)
            {
                _log.LogError(ex, "GPIO output pin {Pin}: cannot switch off", Pin);
            }
        }
    }

    private void WriteLocked(bool on)
    {
        _controller.Write(Pin, on == _activeHigh ? PinValue.High : PinValue.Low);
        _on = on;
    }

    /// <summary>Switches the output off and releases the pin.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            _offAt = 0;
            _timer.Dispose();
            try
            {
                WriteLocked(false);
                if (_openedPin && _controller.IsPinOpen(Pin)) _controller.ClosePin(Pin);
            }
            catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException) { }
        }
    }
}
