using EdgeViT.Capture;
using EdgeViT.Host.Service.Inference;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EdgeViT.Host.Service;

/// <summary>
/// Feeds camera frames to the <see cref="InferenceWorker"/> as the <see cref="ITrigger"/> says (continuous, interval,
/// gpio press; http = idle), one frame at a time, so the source's latest-frame queue keeps only the newest while the
/// engine is busy. Start-up (before Kestrel and before systemd hears READY=1) opens the source; a failure there ends
/// start-up with one line. Also: watched-file reloads (budget, source, interval) and the systemd watchdog.
/// Stopping (SIGTERM) cancels the waits only: a frame handed to the worker is finished and its verdict written.
/// </summary>
public sealed class FrameLoop : BackgroundService, IHostedLifecycleService
{
    private readonly InferenceWorker _worker;
    private readonly SourceSessions _sessions;
    private readonly ITrigger _trigger;
    private readonly ServiceStatus _status;
    private readonly ServiceInstruments _metrics;
    private readonly BudgetController _budget;
    private readonly SystemdWatchdog _watchdog;
    private readonly IOptionsMonitor<EdgeVitOptions> _monitor;
    private readonly EdgeVitOptions _options;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _log;
    private readonly ReusableFrameJob _job = new();
    private readonly IConfigurationRoot _config;
    private readonly ConfigurationKeys.Scope _ownConfig;
    private IDisposable? _reloadSubscription;
    private BudgetSettings _lastBudget;
    private SourceOptions _lastSource;

    public FrameLoop(InferenceWorker worker, SourceSessions sessions, ITrigger trigger, ServiceStatus status, ServiceInstruments metrics,
        BudgetController budget, SystemdWatchdog watchdog, IOptionsMonitor<EdgeVitOptions> monitor, EdgeVitOptions options,
        IHostApplicationLifetime lifetime, IConfiguration config, ConfigurationKeys.Scope ownConfig, ILogger<FrameLoop> log)
    {
        _config = (IConfigurationRoot)config;
        _ownConfig = ownConfig;
        _worker = worker;
        _sessions = sessions;
        _trigger = trigger;
        _status = status;
        _metrics = metrics;
        _budget = budget;
        _watchdog = watchdog;
        _monitor = monitor;
        _options = options;
        _lifetime = lifetime;
        _log = log;
        _lastBudget = BudgetSettings.From(options.Budget);
        _lastSource = options.Source;
    }

    public async Task StartingAsync(CancellationToken cancellationToken)
    {
        if (_watchdog.Enabled) _log.LogInformation("systemd watchdog: pinging every {Period} while frames progress", _watchdog.Period / 2);
        await _sessions.StartAsync(cancellationToken);
        _reloadSubscription = _monitor.OnChange(OnOptionsChanged);
        var model = _worker.Classifier.Model;
        _log.LogInformation("model {Model} ({Description}), simd {Simd}, threads {Threads}; thresholds: {Sets}",
            model.ModelPath, model.Config.Describe(), _worker.Classifier.Simd, _worker.Classifier.Threads,
            model.Catalog.HasThresholds ? $"{model.Catalog.Sets.Count - 1} sets from {model.Catalog.Source}, {_budget.Settings.ModeName} mode, active {_budget.Current}" : "none (dense)");
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        try { await Task.WhenAll(FeedAsync(stoppingToken), WatchCaptureAsync(stoppingToken)); }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
        catch (Exception ex)
        {
            // A bug, not a bad frame (those are handled per frame): stop the service with a non-zero exit.
            _status.FatalError = $"{ex.GetType().Name}: {ex.Message}";
            _log.LogCritical(ex, "frame loop failed");
            _lifetime.StopApplication();
        }
    }

    private async Task FeedAsync(CancellationToken stop)
    {
        if (!_trigger.TakesFrames) return; // requests take frames themselves (SourceSessions.NextFrameAsync)
        bool pingPerFrame = _trigger is ContinuousTrigger;
        while (!stop.IsCancellationRequested)
        {
            if (_sessions.Current is not { } session)
            {
                await _sessions.ChangedAsync(stop);
                continue;
            }
            await _trigger.WaitAsync(stop);
            var changed = _sessions.ChangedAsync(stop);
            var frame = await _sessions.TakeAsync(session, _trigger.FreshFrame, stop);
            if (frame is null)
            {
                // The queue completed: a finite source ended, or a reload replaced the session.
                if (ReferenceEquals(_sessions.Current, session)) await changed;
                continue;
            }
            var outcome = await _worker.ClassifyFrameAsync(_job, frame, session.Queue.Release, session.Name, stop);
            if (outcome == InferenceOutcome.Classified && pingPerFrame) _watchdog.Progress();
        }
    }

    /// <summary>
    /// Follows the capture loop: its failures become edgevit.errors{kind=source}; in the trigger modes that classify
    /// on demand (interval, gpio, http) the watchdog hears from here while captures progress and no inference is
    /// stuck. In continuous mode every classified frame pings instead.
    /// </summary>
    private async Task WatchCaptureAsync(CancellationToken stop)
    {
        var watchdog = _watchdog.Enabled && _trigger is not ContinuousTrigger ? _watchdog : null;
        var tick = watchdog is null ? TimeSpan.FromMilliseconds(500) : TimeSpan.FromTicks(Math.Min(watchdog.Period.Ticks / 4, TimeSpan.TicksPerSecond / 2));
        long seen = _status.Captured, errors = 0; // failures before this loop started count too
        while (!stop.IsCancellationRequested)
        {
            // Source standby without a watchdog to ping: nothing can fail or progress, so no timer wakes the process.
            var changed = _sessions.ChangedAsync(stop);
            if (watchdog is null && _status.SourceStandby)
            {
                await changed;
                continue;
            }
            using var timer = new PeriodicTimer(tick);
            while (await timer.WaitForNextTickAsync(stop))
            {
                long now = _status.Captured, failed = _status.SourceErrors;
                if (failed > errors) _metrics.Error(EdgeVitMetrics.ErrorKinds.Source, failed - errors);
                errors = failed;
                if (watchdog is not null && (now != seen || _status.SourceNotNeeded || _status.SourceStandby)) watchdog.Progress();
                seen = now;
                if (watchdog is null && _status.SourceStandby) break;
            }
        }
    }

    /// <summary>Reload of the watched configuration (the "live" options): budget, source and interval apply now.</summary>
    private void OnOptionsChanged(EdgeVitOptions o, string? name)
    {
        if (name != EdgeVitOptions.Live) return;
        try
        {
            var problems = EdgeVitOptionsValidator.Check(o);
            if (ConfigurationKeys.FirstProblem(_config, _ownConfig) is { } unknown) problems.Insert(0, unknown);
            if (problems.Count > 0)
            {
                string why = string.Join("; ", problems);
                _log.LogError("configuration reload ignored: {Problems}", why);
                _status.OnReload(why);
                return;
            }
            var budget = BudgetSettings.From(o.Budget);
            if (budget != _lastBudget)
            {
                _lastBudget = budget;
                if (_budget.Enabled)
                {
                    try
                    {
                        _budget.Apply(budget);
                        _log.LogInformation("budget reloaded: {Mode}, active set {Set}", budget.ModeName, _budget.Current);
                    }
                    catch (ArgumentException ex) { _log.LogError("budget reload ignored: Budget: {Error}", ex.Message); }
                }
            }
            if (!SourceOptions.Same(o.Source, _lastSource))
            {
                _lastSource = o.Source;
                if ((o.Source.Kind == SourceKind.None) != (_sessions.Options.Kind == SourceKind.None))
                    _log.LogError("source reload ignored: switching Source:Kind to or from 'none' needs a restart");
                else _ = _sessions.SwapAsync(o.Source);
            }
            _trigger.Reload(o.Trigger);
            _status.OnReload(null);
        }
        catch (Exception ex)
        {
            _log.LogError("configuration reload failed: {Error}", ex.Message);
            _status.OnReload(ex.Message);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _reloadSubscription?.Dispose();
        await base.StopAsync(cancellationToken); // cancels the waits; the frame handed to the worker completes
        await _sessions.DisposeAsync();
        _trigger.Dispose();
        _log.LogInformation("pipeline stopped: {Captured} captured, {Dropped} dropped, {Classified} classified, {Errors} errors",
            _status.Captured, _status.Dropped, _status.Classified, _status.Errors);
    }
}
