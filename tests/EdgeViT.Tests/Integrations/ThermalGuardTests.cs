using System.Diagnostics.Metrics;
using System.Text.Json;
using EdgeViT.Host.Service;
using EdgeViT.Tests.Model;
using EdgeViT.Tests.Service;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Xunit;

namespace EdgeViT.Tests.Integrations;

/// <summary>The thermal guard against a fake sysfs tree and a fake clock: no sleeps, no hardware.</summary>
[Collection(ServiceHostCollection.Name)]
public class ThermalGuardTests
{
    /// <summary>A sysfs root with one thermal zone and the Pi firmware's get_throttled file.</summary>
    private sealed class FakeSysfs : IDisposable
    {
        public TempDir Dir { get; } = new();
        public string Root => Dir.Path;

        public FakeSysfs()
        {
            string zone = Directory.CreateDirectory(Path.Combine(Root, "class", "thermal", "thermal_zone0")).FullName;
            File.WriteAllText(Path.Combine(zone, "type"), "cpu-thermal\n");
            Directory.CreateDirectory(Path.GetDirectoryName(SocSensors.ThrottledPath(Root))!);
            Set(50.0, 0);
        }

        public void Set(double celsius, long throttled)
        {
            File.WriteAllText(Path.Combine(Root, "class", "thermal", "thermal_zone0", "temp"), $"{(long)(celsius * 1000)}\n");
            File.WriteAllText(SocSensors.ThrottledPath(Root), $"throttled=0x{throttled:x}\n");
        }

        public void Dispose() => Dir.Dispose();
    }

    /// <summary>Sets at budgets 0.5, 0.6, 0.8 and dense (index 3).</summary>
    private static ThresholdCatalog Catalog()
    {
        var sets = new[] { 0.5, 0.6, 0.8 }.Select((b, i) => new ActiveSet(i, b, b * 1.25, new float[12])).Append(new ActiveSet(3, 1, 1.25, [])).ToList();
        return new ThresholdCatalog(sets, 1.25, hasThresholds: true, "test");
    }

    private static EdgeVitOptions Options(string root)
    {
        var o = new EdgeVitOptions { Model = "m" };
        o.Telemetry.SysfsRoot = root;
        o.Budget.ThrottleCelsius = 75;
        o.Budget.ThermalHysteresis = 5;
        o.Budget.ThermalPollMs = 1000;
        return o;
    }

    [Fact]
    public async Task HotStepsDownOneSetPerPollAndCoolStepsBack()
    {
        using var sys = new FakeSysfs();
        var time = new FakeTimeProvider();
        var budget = new BudgetController(Catalog(), new BudgetSettings() with { Mode = BudgetMode.Fixed, Target = 1 }, time);
        using var metrics = new ServiceInstruments();
        using var guard = new ThermalGuard(Options(sys.Root), budget, metrics, time, NullLogger<ThermalGuard>.Instance);
        var switches = new List<string>();
        budget.Switched += (_, to, why) => switches.Add($"{to.Budget}:{why}");
        Assert.True(guard.Enabled);
        await guard.StartAsync(default);

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, guard.Polls);
        Assert.Equal(1.0, budget.Current.Budget); // 50 °C: nothing to do

        sys.Set(82.5, 0);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(guard.Hot);
        Assert.Equal(0.8, budget.Current.Budget); // one set down
        Assert.Equal(1.0, budget.Chosen.Budget);  // the controller's own choice is kept
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0.6, budget.Current.Budget); // still hot: one more
        Assert.Contains("thermal: SoC 82.5 °C >= 75 °C", switches[^1]);

        // Inside the hysteresis band (70 < t < 75): hold.
        sys.Set(72, 0);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0.6, budget.Current.Budget);

        // Firmware throttling at a cool temperature also counts (bit 2: throttled now).
        sys.Set(60, 0x4);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0.5, budget.Current.Budget);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0.5, budget.Current.Budget); // the cheapest set: nowhere lower
        // Only "has occurred" bits (16-19) left: not throttling now. Cool: back up one set per poll.
        sys.Set(60, 0x40000);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(guard.Hot);
        Assert.Equal(0.6, budget.Current.Budget);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0.8, budget.Current.Budget);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1.0, budget.Current.Budget);
        Assert.Null(budget.ThermalCap);
        Assert.Contains("cool again", switches[^1]);

        // The gauges say so while capped.
        sys.Set(90, 0);
        time.Advance(TimeSpan.FromSeconds(1));
        var seen = new Dictionary<string, double>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter == metrics.Meter && i.Name.StartsWith("edgevit.thermal.")) l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<int>((i, v, _, _) => seen[i.Name] = v);
        listener.SetMeasurementEventCallback<double>((i, v, _, _) => seen[i.Name] = v);
        listener.Start();
        listener.RecordObservableInstruments();
        Assert.Equal(1, seen[IntegrationMetrics.ThermalCapped]);
        Assert.Equal(0.8, seen[IntegrationMetrics.ThermalCapBudget]);
        await guard.StopAsync(default);
    }

    [Fact]
    public void OffWithoutSysfsFilesOrWithLimitZero()
    {
        using var empty = new TempDir();
        var budget = new BudgetController(Catalog(), new BudgetSettings(), new FakeTimeProvider());
        using var metrics = new ServiceInstruments();
        using var none = new ThermalGuard(Options(empty.Path), budget, metrics, TimeProvider.System, NullLogger<ThermalGuard>.Instance);
        Assert.False(none.Enabled);
        using var sys = new FakeSysfs();
        var o = Options(sys.Root);
        o.Budget.ThrottleCelsius = 0;
        using var off = new ThermalGuard(o, budget, metrics, TimeProvider.System, NullLogger<ThermalGuard>.Instance);
        Assert.False(off.Enabled);
    }

    [Fact(Timeout = 120_000)]
    public async Task TheServiceStepsDownAndReadyzAndStatusSaySo()
    {
        using var sys = new FakeSysfs();
        using var tmp = new TempDir();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var c = TestService.BaseConfig();
        c["Source:Kind"] = "none";
        c["Trigger:Mode"] = "http";
        c["Thresholds"] = ServiceFiles.WriteThresholds(tmp.File("t.json"));
        c["Telemetry:SysfsRoot"] = sys.Root;
        c["Budget:ThrottleCelsius"] = "70";
        c["Budget:ThermalPollMs"] = "1000";
        await using var service = await TestService.StartAsync(c, s => s.AddSingleton<TimeProvider>(time));
        Assert.Equal(1.0, service.Budget.Current.Budget);

        sys.Set(85, 0);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0.8, service.Budget.Current.Budget);
        var ready = await service.GetJsonAsync("/readyz");
        Assert.True(ready.GetProperty("ready").GetBoolean()); // degraded, still serving
        var thermal = ready.GetProperty("thermal");
        Assert.True(thermal.GetProperty("hot").GetBoolean());
        Assert.True(thermal.GetProperty("capped").GetBoolean());
        Assert.Equal(0.8, thermal.GetProperty("cap_budget").GetDouble());
        Assert.Equal(85, thermal.GetProperty("temperature_c").GetDouble());
        // A classification runs with the capped set.
        using var r = await service.Http.PostAsync("/v1/classify", new ByteArrayContent(File.ReadAllBytes(SharedAssets.Images()[0])));
        var verdict = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(0.8, verdict.GetProperty("threshold_set").GetProperty("budget").GetDouble());

        sys.Set(40, 0);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1.0, service.Budget.Current.Budget);
        var status = await service.GetJsonAsync("/v1/status");
        Assert.False(status.GetProperty("thermal").GetProperty("capped").GetBoolean());
    }
}
