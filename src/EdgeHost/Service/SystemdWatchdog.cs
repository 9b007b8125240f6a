using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Hosting.Systemd;

namespace EdgeViT.Host.Service;

/// <summary>
/// systemd watchdog (WatchdogSec=): the frame loop calls <see cref="Progress"/> whenever a frame advanced, and a
/// ping (WATCHDOG=1) goes out at most every half period, only while no classification has been stuck for longer
/// than the period. A hung pipeline therefore stops pinging and systemd restarts the service. Inactive (no-op)
/// outside systemd or without WATCHDOG_USEC.
/// </summary>
public sealed class SystemdWatchdog
{
    private static readonly ServiceState Ping = new("WATCHDOG=1");
    private readonly ISystemdNotifier? _notifier;
    private readonly Func<long> _inFlightSince;
    private readonly long _periodTicks;
    private long _lastPing;

    public bool Enabled { get; }
    public long Pings { get; private set; }

    public SystemdWatchdog(ISystemdNotifier? notifier, Func<long> inFlightSince, string? watchdogUsec = null, string? watchdogPid = null)
    {
        _notifier = notifier;
        _inFlightSince = inFlightSince;
        watchdogUsec ??= Environment.GetEnvironmentVariable("WATCHDOG_USEC");
        watchdogPid ??= Environment.GetEnvironmentVariable("WATCHDOG_PID");
        bool forUs = string.IsNullOrEmpty(watchdogPid) || watchdogPid == Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        if (notifier is { IsEnabled: true } && forUs && long.TryParse(watchdogUsec, NumberStyles.None, CultureInfo.InvariantCulture, out long usec) && usec > 0)
        {
            _periodTicks = (long)(usec / 1e6 * Stopwatch.Frequency);
            Enabled = true;
        }
    }

    public TimeSpan Period => TimeSpan.FromSeconds((double)_periodTicks / Stopwatch.Frequency);

    /// <summary>A frame advanced (captured or classified).</summary>
    public void Progress()
    {
        if (!Enabled) return;
        long now = Stopwatch.GetTimestamp();
        if (now - Interlocked.Read(ref _lastPing) < _periodTicks / 2) return;
        long since = _inFlightSince();
        if (since != 0 && now - since > _periodTicks) return; // inference stuck: let systemd act
        Interlocked.Exchange(ref _lastPing, now);
        _notifier!.Notify(Ping);
        Pings++;
    }
}
