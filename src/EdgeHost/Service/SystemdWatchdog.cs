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

    private readonly Func<long> _now;

    /// <param name="inFlightSince">Stopwatch timestamp at which the running classification started, 0 when idle.</param>
    /// <param name="now">Stopwatch clock (tests drive it).</param>
    public SystemdWatchdog(ISystemdNotifier? notifier, Func<long> inFlightSince, string? watchdogUsec = null, string? watchdogPid = null, Func<long>? now = null)
    {
        _notifier = notifier;
        _inFlightSince = inFlightSince;
        _now = now ?? Stopwatch.GetTimestamp;
        _lastPing = long.MinValue / 2; // the first progress pings at once
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
        long now = _now();
        if (now - Interlocked.Read(ref _lastPing) < _periodTicks / 2) return;
        long since = _inFlightSince();
        if (since != 0 && now - since > _periodTicks) return; // inference stuck: let systemd act
        Interlocked.Exchange(ref _lastPing, now);
        try
        {
            _notifier!.Notify(Ping);
            Pings++;
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or IOException or ObjectDisposedException)
        {
            // The manager's socket went away: systemd will act on the missing pings; the frame loop goes on.
            if (Interlocked.Increment(ref _failures) == 1) LastError = ex.Message;
        }
    }

    private int _failures;
    /// <summary>The first failure to reach the notify socket (null when all pings went out).</summary>
    public string? LastError { get; private set; }
}
