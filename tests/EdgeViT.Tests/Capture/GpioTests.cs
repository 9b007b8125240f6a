using System.Device.Gpio;
using EdgeViT.Capture;
using Xunit;

namespace EdgeViT.Tests.Capture;

public sealed class GpioTests
{
    private const int Button = 17, Led = 27;

    /// <summary>Presses a pull-up button (low when pressed) <paramref name="presses"/> times, each press and release
    /// bouncing 4 times 1 ms apart, presses 300 ms apart, holding 120 ms.</summary>
    private static void PressWithBounce(SimulatedGpioDriver driver, ManualTimeProvider clock, int presses)
    {
        for (int i = 0; i < presses; i++)
        {
            driver.Bounce(Button, PinValue.Low, bounces: 4, between: () => clock.Advance(TimeSpan.FromMilliseconds(1)));
            clock.Advance(TimeSpan.FromMilliseconds(120));
            driver.Bounce(Button, PinValue.High, bounces: 4, between: () => clock.Advance(TimeSpan.FromMilliseconds(1)));
            clock.Advance(TimeSpan.FromMilliseconds(180));
        }
    }

    [Theory]
    [InlineData(TriggerEdge.Falling, 5, 5)]
    [InlineData(TriggerEdge.Rising, 5, 5)]
    [InlineData(TriggerEdge.Both, 5, 10)]
    public void BouncyPressesGiveExactlyOneEventEach(TriggerEdge edge, int presses, int expected)
    {
        var driver = new SimulatedGpioDriver();
        using var controller = new GpioController(driver);
        var clock = new ManualTimeProvider();
        using var trigger = new GpioTrigger(controller, new GpioTriggerOptions { Pin = Button, Edge = edge, Pull = PinPull.Up, Debounce = TimeSpan.FromMilliseconds(30) }, timeProvider: clock);
        Assert.Equal(PinMode.InputPullUp, driver.ModeOf(Button));
        var raised = new List<TriggerEvent>();
        trigger.Triggered += raised.Add;

        PressWithBounce(driver, clock, presses);

        Assert.Equal(expected, trigger.Accepted);
        Assert.Equal(expected, raised.Count);
        Assert.True(trigger.Ignored > 0, "the bounce edges must have been seen and ignored");
        var events = new List<TriggerEvent>();
        while (trigger.Events.TryRead(out var e)) events.Add(e);
        Assert.Equal(raised, events);
        Assert.Equal(Enumerable.Range(1, expected).Select(i => (long)i), events.Select(e => e.Sequence));
        Assert.All(events, e => Assert.Equal(Button, e.Pin));
        if (edge != TriggerEdge.Both) Assert.All(events, e => Assert.Equal(edge, e.Edge));
        if (edge == TriggerEdge.Both)
            Assert.Equal(Enumerable.Range(0, expected).Select(i => i % 2 == 0 ? TriggerEdge.Falling : TriggerEdge.Rising), events.Select(e => e.Edge));
    }

    [Fact]
    public void WithoutDebounceEveryEdgeCounts()
    {
        // Shows the bounce is real: the same presses with debounce off give many more events.
        var driver = new SimulatedGpioDriver();
        using var controller = new GpioController(driver);
        var clock = new ManualTimeProvider();
        using var trigger = new GpioTrigger(controller, new GpioTriggerOptions { Pin = Button, Edge = TriggerEdge.Falling, Debounce = TimeSpan.Zero }, timeProvider: clock);
        PressWithBounce(driver, clock, 3);
        Assert.Equal(3 * (1 + 4 + 4), trigger.Accepted);   // press: 1 + 4 bounces; release: 4 bounces to low
    }

    [Fact]
    public async Task RealClockDebounceAndChannelDelivery()
    {
        var driver = new SimulatedGpioDriver();
        using var controller = new GpioController(driver);
        using var trigger = new GpioTrigger(controller, new GpioTriggerOptions { Pin = Button, Edge = TriggerEdge.Falling, Debounce = TimeSpan.FromMilliseconds(100) });
        for (int i = 0; i < 3; i++)
        {
            driver.Bounce(Button, PinValue.Low, bounces: 3);   // all within microseconds
            await Task.Delay(250);
            driver.Bounce(Button, PinValue.High, bounces: 3);
            await Task.Delay(250);
        }
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        for (int i = 1; i <= 3; i++) Assert.Equal(i, (await trigger.WaitAsync(cts.Token)).Sequence);
        Assert.False(trigger.Events.TryRead(out _));
    }

    [Fact]
    public void PullDownAndDisposeReleaseThePin()
    {
        var driver = new SimulatedGpioDriver();
        using var controller = new GpioController(driver);
        var trigger = new GpioTrigger(controller, new GpioTriggerOptions { Pin = 5, Edge = TriggerEdge.Rising, Pull = PinPull.Down });
        Assert.Equal(PinMode.InputPullDown, driver.ModeOf(5));
        Assert.Equal(1, driver.CallbackCount(5));
        trigger.Dispose();
        Assert.False(driver.IsOpen(5));
        Assert.True(trigger.Events.Completion.IsCompleted);
    }

    [Fact]
    public void UnsupportedPullIsAClearError()
    {
        var driver = new SimulatedGpioDriver();
        driver.Unsupported.Add((4, PinMode.InputPullDown));
        using var controller = new GpioController(driver);
        var ex = Assert.Throws<TriggerException>(() => new GpioTrigger(controller, new GpioTriggerOptions { Pin = 4, Pull = PinPull.Down }));
        Assert.Equal("GPIO pin 4 does not support input with pull-down on this board", ex.Message);
    }

    [Fact]
    public void OutputIsWrittenAsCommandedAndPulsesHold()
    {
        var driver = new SimulatedGpioDriver();
        using var controller = new GpioController(driver);
        var clock = new ManualTimeProvider();
        var led = new GpioOutput(controller, Led, activeHigh: true, timeProvider: clock);
        Assert.Equal(PinMode.Output, driver.ModeOf(Led));
        Assert.Equal(PinValue.Low, driver.Level(Led));

        led.Set(true);
        Assert.Equal(PinValue.High, driver.Level(Led));
        led.Set(false);
        Assert.Equal(PinValue.Low, driver.Level(Led));

        led.Pulse(TimeSpan.FromMilliseconds(500));
        Assert.True(led.IsOn);
        clock.Advance(TimeSpan.FromMilliseconds(300));
        led.Pulse(TimeSpan.FromMilliseconds(500));        // seen again: hold extends to 800 ms
        clock.Advance(TimeSpan.FromMilliseconds(400));
        Assert.Equal(PinValue.High, driver.Level(Led));
        clock.Advance(TimeSpan.FromMilliseconds(150));
        Assert.Equal(PinValue.Low, driver.Level(Led));
        Assert.False(led.IsOn);

        led.Pulse(TimeSpan.FromMilliseconds(100));
        led.Set(false);                                   // explicit off cancels the pending end
        led.Set(true);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(PinValue.High, driver.Level(Led));

        led.Dispose();
        Assert.False(driver.IsOpen(Led));
        Assert.Equal(PinValue.Low, driver.Writes[^1].Value);
        Assert.All(driver.Writes, w => Assert.Equal(Led, w.Pin));
    }

    [Fact]
    public void ActiveLowOutputIsInverted()
    {
        var driver = new SimulatedGpioDriver();
        using var controller = new GpioController(driver);
        using var led = new GpioOutput(controller, Led, activeHigh: false, timeProvider: new ManualTimeProvider());
        Assert.Equal(PinValue.High, driver.Level(Led));   // off
        led.Set(true);
        Assert.Equal(PinValue.Low, driver.Level(Led));
    }
}
