using System.Diagnostics.Metrics;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeViT.Host.Service;

/// <summary>
/// Thermal awareness. Every Budget:ThermalPollMs (on the injected <see cref="TimeProvider"/>) it reads the hottest
/// thermal zone and the Raspberry Pi firmware's throttling flags under Telemetry:SysfsRoot (<see cref="SocSensors"/>).
/// While the SoC is at or above Budget:ThrottleCelsius, or the firmware reports frequency capping, throttling or the
/// soft temperature limit (get_throttled bits 1-3), it caps the budget controller one calibrated set lower per poll.
/// Once the SoC is Budget:ThermalHysteresis below the limit and not throttled, it raises the cap one set per poll
/// until the controller's own choice runs again. Off without a thresholds file, with ThrottleCelsius 0, or when sysfs
/// has neither file. /v1/status, /readyz's body and the metrics edgevit.thermal.capped / edgevit.thermal.cap_budget
/// say what it does.
/// </summary>
public sealed class ThermalGuard : IHostedService, IStatusContributor, IDisposable
{
    /// <summary>get_throttled bits that mean "slowed down now": frequency capped, throttled, soft temperature limit.</summary>
    public const long ThrottlingNow = 0x2 | 0x4 | 0x8;

    private readonly BudgetController _budget;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly double _limit, _hysteresis;
    private readonly TimeSpan _period;
    private readonly IReadOnlyList<(string Zone, string File)> _zones;
    private readonly string _throttledFile;
    private readonly object _lock = new();
    private ITimer? _timer;

    public bool Enabled { get; }
    /// <summary>The last poll found the SoC hot or throttled.</summary>
    public bool Hot { get; private set; }
    public double? TemperatureCelsius { get; private set; }
    public long? ThrottleFlags { get; private set; }
    /// <summary>Polls that stepped the cap down.</summary>
    public long StepsDown { get; private set; }
    public long Polls { get; private set; }

    public ThermalGuard(EdgeVitOptions options, BudgetController budget, ServiceInstruments metrics, TimeProvider time, ILogger<ThermalGuard> log)
    {
        _budget = budget;
        _time = time;
        _log = log;
        _limit = options.Budget.ThrottleCelsius;
        _hysteresis = options.Budget.ThermalHysteresis;
        _period = TimeSpan.FromMilliseconds(options.Budget.ThermalPollMs);
        string root = options.Telemetry.SysfsRoot;
        _zones = SocSensors.ThermalZones(root);
        _throttledFile = SocSensors.ThrottledPath(root);
        Enabled = _limit > 0 && budget.Enabled && (_zones.Count > 0 || File.Exists(_throttledFile));
        if (Enabled) Register(metrics.Meter);
    }

    /// <summary>One poll: read sysfs, step the cap down (hot), up (cool) or hold (inside the hysteresis band).</summary>
    public void Check()
    {
        lock (_lock)
        {
            Polls++;
            double? temp = null;
            foreach (var (_, file) in _zones)
                if (SocSensors.ReadLong(file, 10) is long milli && (temp is null || milli / 1000.0 > temp)) temp = milli / 1000.0;
            long? flags = File.Exists(_throttledFile) ? SocSensors.ReadLong(_throttledFile, 16) : null;
            TemperatureCelsius = temp;
            ThrottleFlags = flags;
            bool throttling = flags is long f && (f & ThrottlingNow) != 0;
            bool over = temp >= _limit;
            bool cool = !throttling && (temp is null || temp < _limit - _hysteresis);
            if (over || throttling)
            {
                Hot = true;
                int current = _budget.Current.Index;
                if (current > 0)
                {
                    string why = throttling ? $"thermal: firmware throttling (get_throttled 0x{flags:x})" : $"thermal: SoC {temp:0.0} °C >= {_limit:0.#} °C";
                    _budget.SetThermalCap(current - 1, why);
                    StepsDown++;
                    _log.LogWarning("{Why}: stepping down to {Set}", why, _budget.Current);
                }
                else if (_budget.ThermalCap is null) _budget.SetThermalCap(0, "thermal: hot at the cheapest set");
            }
            else if (cool && _budget.ThermalCap is int cap)
            {
                Hot = false;
                int next = cap + 1;
                if (next >= _budget.Chosen.Index)
                {
                    _budget.SetThermalCap(null, $"thermal: SoC {temp:0.0} °C, cool again");
                    _log.LogInformation("thermal: cool again ({Temp:0.0} °C), cap lifted: {Set}", temp, _budget.Current);
                }
                else _budget.SetThermalCap(next, $"thermal: SoC {temp:0.0} °C, stepping back up");
            }
            else if (cool) Hot = false;
        }
    }

    private void Register(Meter meter)
    {
        meter.CreateObservableGauge(IntegrationMetrics.ThermalCapped, () => _budget.ThermalCap is null ? 0 : 1, IntegrationMetrics.ThermalCappedUnit,
            "1 while the thermal guard holds the budget below the controller's choice.");
        meter.CreateObservableGauge(IntegrationMetrics.ThermalCapBudget, () =>
            _budget.ThermalCap is int cap ? [new Measurement<double>(_budget.Catalog.Sets[cap].Budget)] : Array.Empty<Measurement<double>>(),
            IntegrationMetrics.ThermalCapBudgetUnit, "Calibrated budget of the highest set the thermal guard allows (only while capped).");
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (Enabled) _timer = _time.CreateTimer(_ => Check(), null, _period, _period);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _timer?.Dispose();
        _timer = null;
        return Task.CompletedTask;
    }

    public void WriteStatus(Utf8JsonWriter w)
    {
        w.WriteStartObject("thermal");
        w.WriteBoolean("enabled", Enabled);
        if (Enabled)
        {
            w.WriteBoolean("hot", Hot);
            w.WriteBoolean("capped", _budget.ThermalCap is not null);
            if (_budget.ThermalCap is int cap) w.WriteNumber("cap_budget", Math.Round(_budget.Catalog.Sets[cap].Budget, 6));
            if (TemperatureCelsius is double t) w.WriteNumber("temperature_c", Math.Round(t, 2));
            if (ThrottleFlags is long f) w.WriteString("throttled", $"0x{f:x}");
            w.WriteNumber("limit_c", _limit);
            w.WriteNumber("steps_down", StepsDown);
        }
        w.WriteEndObject();
    }

    public void WriteReadiness(Utf8JsonWriter w) => WriteStatus(w);

    public void Dispose() => _timer?.Dispose();
}
