using System.Globalization;

namespace EdgeViT.Host.Service;

public enum BudgetMode { Flops, Latency, Fixed }

/// <summary>What the controller holds, validated against a catalog by <see cref="BudgetController.Apply"/>.</summary>
public sealed record BudgetSettings
{
    public BudgetMode Mode { get; init; } = BudgetMode.Fixed;
    /// <summary>Fraction of dense FLOPs (fixed, flops).</summary>
    public double Target { get; init; } = 1.0;
    /// <summary>Absolute GFLOPs per frame; replaces <see cref="Target"/> when set (fixed, flops).</summary>
    public double? TargetGFlops { get; init; }
    public double TargetP95Ms { get; init; } = 200;
    public double Hysteresis { get; init; } = 0.15;
    public int WindowMs { get; init; } = 2000;
    public int MinSamples { get; init; } = 5;
    public int MinDwellMs { get; init; } = 500;
    public int MinDwellUpMs { get; init; } = 3000;
    public int FlopsWindow { get; init; } = 64;

    /// <summary>The controller's settings from the one settings model (validated there: enums, ranges).</summary>
    public static BudgetSettings From(BudgetOptions o) => new()
    {
        Mode = o.Mode,
        Target = o.Target,
        TargetGFlops = o.TargetGFlops,
        TargetP95Ms = o.TargetP95Ms,
        Hysteresis = o.Hysteresis,
        WindowMs = o.WindowMs,
        MinSamples = o.MinSamples,
        MinDwellMs = o.MinDwellMs,
        MinDwellUpMs = o.MinDwellUpMs,
        FlopsWindow = o.FlopsWindow,
    };

    /// <summary>Back to the options model, so a change (PUT /v1/budget) is validated by the same rules as configuration.</summary>
    public BudgetOptions ToOptions() => new()
    {
        Mode = Mode,
        Target = Target,
        TargetGFlops = TargetGFlops,
        TargetP95Ms = TargetP95Ms,
        Hysteresis = Hysteresis,
        WindowMs = WindowMs,
        MinSamples = MinSamples,
        MinDwellMs = MinDwellMs,
        MinDwellUpMs = MinDwellUpMs,
        FlopsWindow = FlopsWindow,
    };

    public string ModeName => Mode.ToString().ToLowerInvariant();
}

/// <summary>
/// Chooses the threshold set for the next frame.
/// <list type="bullet">
/// <item>fixed: the set of the target budget (the largest calibrated budget not above it).</item>
/// <item>flops: over a running window of the last <c>FlopsWindow</c> frames, the richest set whose expected GFLOPs
/// (learned per set from the frames it ran, starting from the calibrated measurement) keep the window's mean at or
/// under the target, any deviation being corrected over the next 8 frames. Pruning is data dependent, so the
/// choice alternates between the sets around the target.</item>
/// <item>latency: the p95 of the per-frame processing latency over a sliding time window. Above the target (after
/// <c>MinDwellMs</c> on the set and <c>MinSamples</c> samples) it jumps to the set predicted (latency scaled by
/// GFLOPs) to land at target*(1-h/2), at least one step cheaper. It steps back to a richer set only when that set
/// is predicted under target*(1-h) after <c>MinDwellUpMs</c>: the hysteresis band and the slower recovery stop
/// flapping. Each switch starts a fresh window, so decisions use the current set's latencies only.</item>
/// </list>
/// The active set is a volatile reference to an immutable <see cref="ActiveSet"/>: the frame loop reads it once
/// per frame, so a swap (here, by HTTP or by a config reload) takes effect between frames. Time comes from the
/// injected <see cref="TimeProvider"/>. Thread-safe; <see cref="Observe"/> allocates nothing.
/// </summary>
public sealed class BudgetController
{
    private const int LatencyCapacity = 4096;
    /// <summary>flops mode: frames over which a deviation from the target is corrected.</summary>
    private const int FlopsSpread = 8;

    private readonly object _lock = new();
    private readonly TimeProvider _time;
    private volatile ActiveSet _active;
    private volatile BudgetSettings _settings;

    // latency window (ring): timestamps and values, plus sort scratch for the percentile
    private readonly long[] _latencyAt = new long[LatencyCapacity];
    private readonly double[] _latency = new double[LatencyCapacity];
    private readonly double[] _scratch = new double[LatencyCapacity];
    private int _latencyHead, _latencyCount;

    // flops window (ring) and per-set learned GFLOPs
    private double[] _flops = new double[64];
    private int _flopsHead, _flopsCount;
    private double _flopsSum;
    private readonly double[] _expected;

    private long _lastSwitch;
    private int _samplesOnSet;

    public ThresholdCatalog Catalog { get; }
    /// <summary>False without a thresholds file: the model runs dense and the settings are only reported.</summary>
    public bool Enabled => Catalog.HasThresholds;
    /// <summary>The set frames run with: the controller's choice, held at or below <see cref="ThermalCap"/> while that is set.</summary>
    public ActiveSet Current => _active.Index > _thermalCap ? Catalog.Sets[_thermalCap] : _active;
    /// <summary>The controller's own choice, before the thermal cap.</summary>
    public ActiveSet Chosen => _active;
    /// <summary>Highest set index allowed while the SoC is hot (<see cref="ThermalGuard"/>); null = no cap.</summary>
    public int? ThermalCap => _thermalCap == int.MaxValue ? null : _thermalCap;
    private volatile int _thermalCap = int.MaxValue;

    /// <summary>Caps the set index (null lifts the cap); raises <see cref="Switched"/> when the set frames run with changes.</summary>
    public void SetThermalCap(int? maxIndex, string reason)
    {
        ActiveSet before, after;
        lock (_lock)
        {
            before = Current;
            _thermalCap = maxIndex is int m ? Math.Clamp(m, 0, Catalog.Sets.Count - 1) : int.MaxValue;
            after = Current;
            if (!ReferenceEquals(before, after)) LastReason = reason;
        }
        if (!ReferenceEquals(before, after)) Switched?.Invoke(before, after, reason);
    }
    public BudgetSettings Settings => _settings;
    public long Switches { get; private set; }
    /// <summary>Why the last switch happened (for /v1/status and logs).</summary>
    public string LastReason { get; private set; } = "start";
    /// <summary>The last p95 the latency mode computed (NaN before it had enough samples).</summary>
    public double LastP95Ms { get; private set; } = double.NaN;
    /// <summary>Mean GFLOPs over the flops window (NaN when empty).</summary>
    public double MeanGFlops { get { lock (_lock) return _flopsCount == 0 ? double.NaN : _flopsSum / _flopsCount; } }

    /// <summary>Raised after the active set changed (outside the lock): old, new, reason.</summary>
    public event Action<ActiveSet, ActiveSet, string>? Switched;

    public BudgetController(ThresholdCatalog catalog, BudgetSettings settings, TimeProvider? time = null)
    {
        Catalog = catalog;
        _time = time ?? TimeProvider.System;
        _expected = catalog.Sets.Select(s => s.GFlops).ToArray();
        _active = catalog.Dense;
        _settings = settings;
        _lastSwitch = _time.GetTimestamp();
        if (Enabled) Apply(settings);
    }

    /// <summary>The FLOPs target in GFLOPs for flops/fixed mode.</summary>
    public double TargetGFlops(BudgetSettings s) => s.TargetGFlops ?? s.Target * Catalog.DenseGFlops;

    /// <summary>Target as a fraction of dense (flops/fixed); NaN in latency mode.</summary>
    public double TargetFraction
    {
        get
        {
            var s = _settings;
            return s.Mode == BudgetMode.Latency ? double.NaN : TargetGFlops(s) / Catalog.DenseGFlops;
        }
    }

    /// <summary>Why these settings cannot run on this catalog (one line), or null.</summary>
    public string? Check(BudgetSettings s)
    {
        static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
        // Ranges have one home, the attributes of BudgetOptions (configuration and PUT /v1/budget are checked by
        // them too); this adds only what depends on the catalog.
        if (EdgeVitOptionsValidator.CheckSection(s.ToOptions(), "") is [var range, ..]) return range;
        if (s.Mode == BudgetMode.Latency) return null;
        if (s.TargetGFlops is double g)
        {
            if (s.Mode == BudgetMode.Fixed ? Catalog.ForGFlops(g) is null : g < Catalog.Cheapest.GFlops)
                return $"targetGflops {F(g)} is below the cheapest threshold set ({F(Catalog.Cheapest.GFlops)} GFLOPs)";
            return null;
        }
        if (s.Mode == BudgetMode.Fixed && Catalog.ForBudget(s.Target) is null)
            return $"target {F(s.Target)} is below the lowest calibrated budget {F(Catalog.MinBudget)}";
        if (s.Mode == BudgetMode.Flops && TargetGFlops(s) < Catalog.Cheapest.GFlops)
            return $"target {F(s.Target)} ({F(TargetGFlops(s))} GFLOPs) is below the cheapest threshold set ({F(Catalog.Cheapest.GFlops)} GFLOPs)";
        return null;
    }

    /// <summary>Installs new settings (HTTP PUT, config reload). Throws <see cref="ArgumentException"/> with a one-line reason.</summary>
    public void Apply(BudgetSettings settings)
    {
        if (Check(settings) is { } problem) throw new ArgumentException(problem);
        ActiveSet before, after;
        lock (_lock)
        {
            before = _active;
            _settings = settings;
            if (_flops.Length != settings.FlopsWindow) _flops = new double[settings.FlopsWindow];
            _flopsHead = _flopsCount = 0;
            _flopsSum = 0;
            ClearLatency();
            LastP95Ms = double.NaN;
            if (!Enabled) return;
            var next = settings.Mode switch
            {
                BudgetMode.Fixed => Catalog.Select(settings.Target, settings.TargetGFlops)!,
                BudgetMode.Flops => Catalog.ForGFlops(TargetGFlops(settings)) ?? Catalog.Cheapest,
                // Latency: start from the cheapest set and climb once latencies show headroom.
                _ => before == Catalog.Dense && Switches == 0 ? Catalog.Cheapest : before,
            };
            SwitchLocked(next, $"settings: {settings.ModeName}");
            after = _active;
        }
        if (!ReferenceEquals(before, after)) Switched?.Invoke(before, after, LastReason);
    }

    /// <summary>After each frame: its GFLOPs and processing latency (decode + preprocess + infer).</summary>
    public void Observe(double gflops, double latencyMs)
    {
        if (!Enabled) return;
        ActiveSet before, after;
        lock (_lock)
        {
            before = _active;
            var s = _settings;
            if (s.Mode == BudgetMode.Flops) ObserveFlops(s, gflops);
            else if (s.Mode == BudgetMode.Latency) ObserveLatency(s, latencyMs);
            after = _active;
        }
        if (!ReferenceEquals(before, after)) Switched?.Invoke(before, after, LastReason);
    }

    private void ObserveFlops(BudgetSettings s, double gflops)
    {
        var current = _active;
        int ran = Current.Index; // the set the frame ran with (the thermal cap may hold it below the choice)
        if (double.IsFinite(gflops) && gflops > 0)
            _expected[ran] = 0.8 * _expected[ran] + 0.2 * gflops;
        _samplesOnSet++;
        int w = _flops.Length;
        if (_flopsCount == w) _flopsSum -= _flops[_flopsHead];
        else _flopsCount++;
        _flops[_flopsHead] = gflops;
        _flopsSum += gflops;
        _flopsHead = (_flopsHead + 1) % w;

        // The next frame joins the window and pushes out the oldest (once full). The slack (target x frames - spent)
        // is paid back or used up over the next few frames rather than at once, so the choice stays between the
        // sets around the target instead of swinging from dense to the cheapest.
        double target = TargetGFlops(s);
        double kept = _flopsCount == w ? _flopsSum - _flops[_flopsHead] : _flopsSum;
        int n = Math.Min(_flopsCount + 1, w);
        double slack = target * (n - 1) - kept;
        double allowed = target + slack / Math.Min(FlopsSpread, n);
        ActiveSet? best = null;
        foreach (var set in Catalog.Sets)
            if (_expected[set.Index] <= allowed + 1e-12 && (best is null || _expected[set.Index] > _expected[best.Index])) best = set;
        best ??= Catalog.Cheapest;
        if (!ReferenceEquals(best, current)) SwitchLocked(best, "flops: running mean vs target", keepWindows: true);
    }

    private void ObserveLatency(BudgetSettings s, double ms)
    {
        long now = _time.GetTimestamp();
        long windowTicks = (long)(s.WindowMs / 1000.0 * _time.TimestampFrequency);
        if (_latencyCount == LatencyCapacity) { _latencyHead = (_latencyHead + 1) % LatencyCapacity; _latencyCount--; } // full: drop the oldest
        int slot = (_latencyHead + _latencyCount) % LatencyCapacity;
        _latencyAt[slot] = now;
        _latency[slot] = ms;
        _latencyCount++;
        while (_latencyCount > 0 && now - _latencyAt[_latencyHead] > windowTicks)
        {
            _latencyHead = (_latencyHead + 1) % LatencyCapacity;
            _latencyCount--;
        }
        _samplesOnSet++;
        if (_samplesOnSet < s.MinSamples || _latencyCount == 0) return;

        double p95 = Percentile95();
        LastP95Ms = p95;
        double dwellMs = (now - _lastSwitch) * 1000.0 / _time.TimestampFrequency;
        var current = _active;
        double target = s.TargetP95Ms;

        if (p95 > target && dwellMs >= s.MinDwellMs && current.Index > 0)
        {
            // Latency roughly scales with GFLOPs: jump to the set predicted at target*(1-h/2), at least one step down.
            double goal = target * (1 - s.Hysteresis / 2);
            ActiveSet next = Catalog.Sets[current.Index - 1];
            for (int i = current.Index - 1; i >= 0; i--)
            {
                next = Catalog.Sets[i];
                if (p95 * next.GFlops / current.GFlops <= goal) break;
            }
            SwitchLocked(next, $"latency: p95 {p95:0.0} ms > target {target:0.0} ms");
        }
        else if (p95 < target * (1 - s.Hysteresis) && dwellMs >= s.MinDwellUpMs && current.Index < Catalog.Sets.Count - 1)
        {
            double ceiling = target * (1 - s.Hysteresis);
            ActiveSet? next = null;
            for (int i = current.Index + 1; i < Catalog.Sets.Count; i++)
                if (p95 * Catalog.Sets[i].GFlops / current.GFlops <= ceiling) next = Catalog.Sets[i];
            if (next is not null) SwitchLocked(next, $"latency: p95 {p95:0.0} ms leaves headroom under {target:0.0} ms");
        }
    }

    private double Percentile95()
    {
        int n = _latencyCount;
        for (int i = 0; i < n; i++) _scratch[i] = _latency[(_latencyHead + i) % LatencyCapacity];
        var span = _scratch.AsSpan(0, n);
        span.Sort();
        // nearest-rank p95
        int rank = (int)Math.Ceiling(0.95 * n) - 1;
        return span[Math.Clamp(rank, 0, n - 1)];
    }

    private void ClearLatency() { _latencyHead = 0; _latencyCount = 0; }

    private void SwitchLocked(ActiveSet next, string reason, bool keepWindows = false)
    {
        if (ReferenceEquals(next, _active)) return;
        _active = next;
        Switches++;
        LastReason = reason;
        _lastSwitch = _time.GetTimestamp();
        _samplesOnSet = 0;
        if (!keepWindows) ClearLatency();
    }
}
