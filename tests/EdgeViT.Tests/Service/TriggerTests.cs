using System.Net.Http.Headers;
using EdgeViT.Host.Service;
using EdgeViT.Tests.Cli;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Xunit;

namespace EdgeViT.Tests.Service;

/// <summary>Trigger modes through the real pipeline, with test doubles where hardware would be.</summary>
[Collection(ServiceHostCollection.Name)]
public class TriggerTests
{
    private sealed class TestButton : IGpioTrigger
    {
        private readonly SemaphoreSlim _presses = new(0);
        public void Press() => _presses.Release();
        public Task WaitForPressAsync(CancellationToken ct) => _presses.WaitAsync(ct);
        public void Dispose() { }
    }

    private sealed class TestLamp : IGpioOutput
    {
        public int Pulses;
        public void Pulse() => Interlocked.Increment(ref Pulses);
        public void Dispose() { }
    }

    private sealed class GpioDoubles(TestButton button, TestLamp lamp) : FrameSourceFactory
    {
        public GpioOptions? Seen;
        public override IGpioTrigger CreateGpioTrigger(GpioOptions o) { Seen = o; return button; }
        public override IGpioOutput? CreateGpioOutput(GpioOptions o) => o.OutputPin >= 0 ? lamp : null;
    }

    private static string TenchFolder(TempDir tmp)
    {
        string dir = Directory.CreateDirectory(tmp.File("images")).FullName;
        var tench = SharedAssets.Images().First(f => Path.GetFileName(f).StartsWith("n01440764", StringComparison.Ordinal));
        File.Copy(tench, Path.Combine(dir, Path.GetFileName(tench)));
        return dir;
    }

    [Fact(Timeout = 120_000)]
    public async Task GpioModeClassifiesOneFramePerPressAndDrivesTheOutputOnAMatch()
    {
        using var tmp = new TempDir();
        var button = new TestButton();
        var lamp = new TestLamp();
        var factory = new GpioDoubles(button, lamp);
        var config = TestService.BaseConfig();
        config["Source:Kind"] = "folder";
        config["Source:Folder"] = TenchFolder(tmp);
        config["Source:Fps"] = "20";
        config["Trigger:Mode"] = "gpio";
        config["Trigger:Gpio:Pin"] = "17";
        config["Trigger:Gpio:Edge"] = "falling";
        config["Trigger:Gpio:OutputPin"] = "27";
        config["Trigger:Gpio:OutputClass"] = "n01440764"; // tench, by synset id
        config["Trigger:Gpio:OutputMinScore"] = "0.5";
        await using var service = await TestService.StartAsync(config, s => s.AddSingleton<FrameSourceFactory>(factory));
        var status = service.Status;
        Assert.Equal(17, factory.Seen!.Pin);
        Assert.Equal(GpioEdge.Falling, factory.Seen.Edge);

        // Frames are captured all along, but nothing is classified without a press.
        await TestService.WaitUntil(() => status.Captured >= 10, TimeSpan.FromSeconds(30), "captured frames");
        Assert.Equal(0, status.Classified);

        for (int press = 1; press <= 3; press++)
        {
            button.Press();
            await TestService.WaitUntil(() => status.Classified == press, TimeSpan.FromSeconds(60), $"classification {press}");
        }
        long captured = status.Captured;
        await TestService.WaitUntil(() => status.Captured >= captured + 10, TimeSpan.FromSeconds(30), "frames after the last press");
        Assert.Equal(3, status.Classified); // one frame per press, not more
        Assert.Equal(3, lamp.Pulses);       // the tench matched each time
    }

    [Fact(Timeout = 120_000)]
    public async Task IntervalModeClassifiesAtTheIntervalAndHttpModeTakesAFrameOnRequest()
    {
        using var tmp = new TempDir();
        var config = TestService.BaseConfig();
        config["Source:Kind"] = "folder";
        config["Source:Folder"] = TenchFolder(tmp);
        config["Source:Fps"] = "20";
        config["Trigger:Mode"] = "interval";
        config["Trigger:IntervalMs"] = "1000";
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using (var service = await TestService.StartAsync(config, s => s.AddSingleton<TimeProvider>(clock)))
        {
            var status = service.Status;
            await TestService.WaitUntil(() => status.Captured >= 5, TimeSpan.FromSeconds(30), "captured frames");
            Assert.Equal(0, status.Classified); // the clock has not moved: no tick yet
            for (int tick = 1; tick <= 3; tick++)
            {
                clock.Advance(TimeSpan.FromMilliseconds(999));
                long captured = status.Captured;
                await TestService.WaitUntil(() => status.Captured >= captured + 3, TimeSpan.FromSeconds(30), "frames between ticks");
                Assert.Equal(tick - 1, status.Classified); // 999 ms is not yet the interval
                clock.Advance(TimeSpan.FromMilliseconds(1));
                await TestService.WaitUntil(() => status.Classified == tick, TimeSpan.FromSeconds(60), $"the classification of tick {tick}");
            }
            Assert.True(status.Captured > 3 * status.Classified, $"captured {status.Captured}, classified {status.Classified}");
        }

        config["Trigger:Mode"] = "http";
        await using (var service = await TestService.StartAsync(config))
        {
            await TestService.WaitUntil(() => service.Status.Captured >= 3, TimeSpan.FromSeconds(30), "captured frames");
            Assert.Equal(0, service.Status.Classified);
            var empty = new ByteArrayContent([]);
            empty.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            using var response = await service.Http.PostAsync("/v1/classify", empty);
            string body = await response.Content.ReadAsStringAsync();
            Assert.Equal(200, (int)response.StatusCode);
            Assert.Contains("\"synset\":\"n01440764\"", body);
            Assert.Contains("\"source\":\"folder:", body);
            Assert.Equal(1, service.Status.Classified);
        }
    }
}
