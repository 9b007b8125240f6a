using System.Device.Gpio;
using System.Device.Gpio.Drivers;
using System.Diagnostics;
using EdgeViT.Capture;

namespace EdgeViT.Host.Service.Interim;

// ============================================================================================================
// INTERIM (until feat/capture's GpioTrigger / GpioOutput land): wired in FrameSourceFactory.CreateGpioTrigger
// and CreateGpioOutput; replace there and delete this file.
// ============================================================================================================

/// <summary>Opens the GPIO controller of a chip (0 = the platform default driver).</summary>
internal static class GpioControllers
{
    public static GpioController Open(int chip)
    {
        try { return chip == 0 ? new GpioController() : new GpioController(new LibGpiodDriver(chip)); }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new FrameSourceException($"GPIO: cannot open gpiochip{chip}: {ex.Message.ReplaceLineEndings(" ")}", ex);
        }
    }
}

/// <summary>INTERIM: one press per debounced edge on an input pin.</summary>
public sealed class InterimGpioTrigger : IGpioTrigger
{
    private readonly GpioController _gpio;
    private readonly int _pin;
    private readonly long _debounceTicks;
    private readonly SemaphoreSlim _presses = new(0, 1);
    private long _lastEdge;

    public InterimGpioTrigger(GpioOptions o, GpioController? controller = null)
    {
        _pin = o.Pin;
        _debounceTicks = o.DebounceMs * Stopwatch.Frequency / 1000;
        _gpio = controller ?? GpioControllers.Open(o.Chip);
        var mode = o.Pull.ToLowerInvariant() switch { "up" => PinMode.InputPullUp, "down" => PinMode.InputPullDown, _ => PinMode.Input };
        var edge = o.Edge.ToLowerInvariant() switch { "falling" => PinEventTypes.Falling, "both" => PinEventTypes.Rising | PinEventTypes.Falling, _ => PinEventTypes.Rising };
        try
        {
            _gpio.OpenPin(_pin, mode);
            _gpio.RegisterCallbackForPinValueChangedEvent(_pin, edge, OnEdge);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new FrameSourceException($"GPIO: cannot watch input pin {_pin} ({o.Edge}, pull {o.Pull}): {ex.Message.ReplaceLineEndings(" ")}", ex);
        }
    }

    private void OnEdge(object sender, PinValueChangedEventArgs e)
    {
        long now = Stopwatch.GetTimestamp();
        if (now - Interlocked.Read(ref _lastEdge) < _debounceTicks) return;
        Interlocked.Exchange(ref _lastEdge, now);
        lock (_presses)
            if (_presses.CurrentCount == 0) _presses.Release();
    }

    public Task WaitForPressAsync(CancellationToken ct) => _presses.WaitAsync(ct);

    public void Dispose()
    {
        try { _gpio.UnregisterCallbackForPinValueChangedEvent(_pin, OnEdge); } catch (Exception) { /* closing anyway */ }
        _gpio.Dispose();
    }
}

/// <summary>INTERIM: drives an output pin high for a hold time after a matching verdict.</summary>
public sealed class InterimGpioOutput : IGpioOutput
{
    private readonly GpioController _gpio;
    private readonly int _pin;
    private readonly TimeSpan _hold;
    private readonly Timer _off;

    public InterimGpioOutput(GpioOptions o, GpioController? controller = null)
    {
        _pin = o.OutputPin;
        _hold = TimeSpan.FromMilliseconds(o.OutputHoldMs);
        _gpio = controller ?? GpioControllers.Open(o.Chip);
        try { _gpio.OpenPin(_pin, PinMode.Output, PinValue.Low); }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new FrameSourceException($"GPIO: cannot open output pin {_pin}: {ex.Message.ReplaceLineEndings(" ")}", ex);
        }
        _off = new Timer(_ => { try { _gpio.Write(_pin, PinValue.Low); } catch (Exception) { /* pin gone */ } });
    }

    public void Pulse()
    {
        _gpio.Write(_pin, PinValue.High);
        _off.Change(_hold, Timeout.InfiniteTimeSpan);
    }

    public void Dispose()
    {
        _off.Dispose();
        try { _gpio.Write(_pin, PinValue.Low); } catch (Exception) { /* closing anyway */ }
        _gpio.Dispose();
    }
}
