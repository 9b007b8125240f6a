using System.Diagnostics;
using System.Text.Json;
using EdgeViT.Capture;
using EdgeViT.Imaging;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EdgeViT.Host.Service;

/// <summary>A frame taken from a session's queue; <see cref="Release"/> gives it back to its source's pool.</summary>
public readonly record struct CapturedFrame(Frame Frame, CaptureSession Session)
{
    public void Release() => Session.Queue.Release(Frame);
}

/// <summary>
/// The frame loop. Start-up (before Kestrel and before systemd hears READY=1) loads the model and opens the source;
/// a failure there stops start-up with one line. Then:
/// <list type="bullet">
/// <item>capture: EdgeViT.Capture's <see cref="CaptureLoop"/> on its own thread pumps the source into a
/// <see cref="LatestFrameQueue"/> (an unclaimed frame is replaced and counted as dropped) and reopens a failing
/// source with backoff (Source:ReopenDelayMs). A source settings reload replaces source, queue and loop.</item>
/// <item>classify: per Trigger:Mode (continuous, interval, gpio press, http = idle) takes the latest frame,
/// classifies it with the active threshold set, writes the verdict line, drives the GPIO output, pings the
/// watchdog. Each frame is one trace: a root span and a span per stage.</item>
/// </list>
/// Stopping (SIGTERM) cancels the waits only: a frame being classified is finished and its verdict written.
/// </summary>
public sealed class FramePipeline : BackgroundService, IHostedLifecycleService
{
    private readonly ServiceRuntime _rt;
    private readonly IOptionsMonitor<EdgeVitOptions> _monitor;
    private readonly ILogger<FramePipeline> _log;
    private readonly ILoggerFactory _loggers;
    private readonly ISystemdNotifier? _notifier;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly SemaphoreSlim _sessionChanged = new(0, 1);
    private readonly SemaphoreSlim _swap = new(1, 1);
    private readonly SemaphoreSlim _httpTake = new(1, 1);

    private SourceOptions _sourceOptions;
    private IFrameSource? _openedAtStart;
    private CancellationToken _stopping;
    private IGpioTrigger? _gpioTrigger;
    private IGpioOutput? _gpioOutput;
    private int? _outputClass;
    private PeriodicTimer? _interval;
    private IDisposable? _reloadSubscription;
    private BudgetSettings? _lastBudget;
    private string _lastSourceJson = "";
    private SystemdWatchdog? _watchdog;
    private volatile bool _sessionStarted;
    private readonly IVerdictListener[] _verdictListeners;
    private readonly IFrameListener[] _frameListeners;

    public FramePipeline(ServiceRuntime runtime, IOptionsMonitor<EdgeVitOptions> monitor, ILoggerFactory loggers, IServiceProvider services,
        IHostApplicationLifetime lifetime)
    {
        _rt = runtime;
        _monitor = monitor;
        _loggers = loggers;
        _log = loggers.CreateLogger<FramePipeline>();
        _lifetime = lifetime;
        _notifier = services.GetService(typeof(ISystemdNotifier)) as ISystemdNotifier;
        _sourceOptions = runtime.Options.Source;
        _verdictListeners = [.. services.GetServices<IVerdictListener>()];
        _frameListeners = [.. services.GetServices<IFrameListener>()];
        runtime.Pipeline = this;
    }

    public IFrameSource? Source => _rt.Status.Session?.Source;
    public SystemdWatchdog? Watchdog => _watchdog;
    public string Mode => _rt.Options.Trigger.Mode.ToLowerInvariant();

    /// <summary>
    /// Before anything else starts (Kestrel included): load the model, open the source. A failure ends start-up with
    /// its one-line message; success means systemd hears READY=1 once the host has started.
    /// </summary>
    public async Task StartingAsync(CancellationToken cancellationToken)
    {
        var o = _rt.Options;
        _rt.Load();
        var classifier = _rt.Classifier!;
        _watchdog = new SystemdWatchdog(_notifier, () => classifier.InFlightSince);
        if (_watchdog.Enabled) _log.LogInformation("systemd watchdog: pinging every {Period} while frames progress", _watchdog.Period / 2);

        _outputClass = ResolveOutputClass(o);
        if (Mode == "gpio") _gpioTrigger = _rt.Sources.CreateGpioTrigger(o.Trigger.Gpio);
        _gpioOutput = _rt.Sources.CreateGpioOutput(o.Trigger.Gpio);
        if (Mode == "interval") _interval = new PeriodicTimer(TimeSpan.FromMilliseconds(o.Trigger.IntervalMs));

        _lastBudget = BudgetSettings.From(o.Budget);
        _lastSourceJson = JsonSerializer.Serialize(o.Source);
        var source = _rt.Sources.Create(_sourceOptions);
        if (source is null) _rt.Status.SourceNotNeeded = true;
        else
        {
            // Opened here so that a missing camera or folder fails start-up; the capture loop then reopens on failures.
            try { await source.OpenAsync(cancellationToken); }
            catch
            {
                await source.DisposeAsync();
                throw;
            }
            _openedAtStart = source;
            StartSession(source, alreadyOpen: true); // its loop is stopped by StopAsync (EndSessionAsync)
        }
        _reloadSubscription = _monitor.OnChange(OnOptionsChanged);
        _rt.LogLoaded();
        if (source is not null) _log.LogInformation("source {Source} open", source.Name);
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private int? ResolveOutputClass(EdgeVitOptions o)
    {
        string? text = o.Trigger.Gpio.OutputClass;
        if (string.IsNullOrWhiteSpace(text)) return null;
        if (int.TryParse(text, out int index) && index >= 0 && index < _rt.Model!.Config.Classes) return index;
        if (_rt.Model!.Synsets?.IndexOf(text.Trim()) is int i) return i;
        throw new Commands.UsageException($"Trigger:Gpio:OutputClass must be a class index 0..{_rt.Model.Config.Classes - 1} or a synset id of the Synsets file (got '{text}')");
    }

    /// <summary>Starts a capture loop on a source (already open at start-up, else opened by the loop with retries).</summary>
    private CaptureSession StartSession(IFrameSource source, bool alreadyOpen)
    {
        var queue = new LatestFrameQueue(source);
        var loop = new CaptureLoop(alreadyOpen ? new OpenedOnce(source) : source, queue, _rt.Sources.ReopenPolicy(_sourceOptions),
            _loggers.CreateLogger<CaptureLoop>());
        var session = new CaptureSession(source, queue, loop, alreadyOpen);
        _rt.Status.StartSession(session);
        _sessionStarted = true;
        loop.Start(); // stopped explicitly (EndSessionAsync), also when a reload replaces it
        Signal(_sessionChanged);
        return session;
    }

    private async Task EndSessionAsync(CaptureSession session)
    {
        await session.Loop.StopAsync();
        // Dispose first: it drops (and counts) a frame still waiting, which EndSession then folds into the totals,
        // so captured = classified + dropped holds at shutdown. A frame being classified is released by its taker.
        session.Queue.Dispose();
        _rt.Status.EndSession(session);
        try { await session.Source.DisposeAsync(); }
        catch (Exception ex) { _log.LogWarning("closing source {Source}: {Error}", session.Source.Name, ex.Message); }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        _stopping = stoppingToken;
        try { await Task.WhenAll(ClassifyLoopAsync(stoppingToken), WatchCaptureAsync(stoppingToken)); }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
        catch (Exception ex)
        {
            // A bug, not a bad frame (those are handled per frame): stop the service with a non-zero exit.
            _rt.Status.FatalError = $"{ex.GetType().Name}: {ex.Message}";
            _log.LogCritical(ex, "frame pipeline failed");
            _lifetime.StopApplication();
        }
    }

    /// <summary>
    /// Follows the capture loop: its failures become edgevit.errors{kind=source}; in the trigger modes that classify
    /// on demand (interval, gpio, http) the watchdog hears from here while captures progress and no inference is
    /// stuck. In continuous mode every classified frame pings instead.
    /// </summary>
    private async Task WatchCaptureAsync(CancellationToken stop)
    {
        var watchdog = _watchdog is { Enabled: true } w && Mode != "continuous" ? w : null;
        var tick = watchdog is null ? TimeSpan.FromMilliseconds(500) : TimeSpan.FromTicks(Math.Min(watchdog.Period.Ticks / 4, TimeSpan.TicksPerSecond / 2));
        using var timer = new PeriodicTimer(tick);
        long seen = _rt.Status.Captured, errors = 0; // failures before this loop started count too
        while (await timer.WaitForNextTickAsync(stop))
        {
            long now = _rt.Status.Captured, failed = _rt.Status.SourceErrors;
            if (failed > errors) _rt.Metrics.Error(EdgeVitMetrics.ErrorKinds.Source, failed - errors);
            errors = failed;
            if (watchdog is not null && (now != seen || _rt.Status.SourceNotNeeded)) watchdog.Progress();
            seen = now;
        }
    }

    private async Task ClassifyLoopAsync(CancellationToken stop)
    {
        var classifier = _rt.Classifier!;
        var verdict = classifier.NewVerdict();
        var writer = new VerdictWriter(_rt.Model!.Synsets);
        string mode = Mode;
        if (mode == "http")
        {
            await Task.Delay(Timeout.Infinite, stop); // frames are taken by POST /v1/classify
            return;
        }
        while (!stop.IsCancellationRequested)
        {
            if (_rt.Status.Session is not { } session)
            {
                await _sessionChanged.WaitAsync(stop);
                continue;
            }
            if (mode == "interval") await _interval!.WaitForNextTickAsync(stop);
            else if (mode == "gpio")
            {
                await _gpioTrigger!.WaitForPressAsync(stop);
                Drain(session); // classify a frame captured after the press
            }
            var frame = await session.Queue.TakeAsync(stop);
            if (frame is null)
            {
                // The queue completed: a finite source ended, or a reload replaced the session.
                if (ReferenceEquals(_rt.Status.Session, session)) await _sessionChanged.WaitAsync(stop);
                continue;
            }
            await ProcessAsync(new CapturedFrame(frame, session), verdict, writer);
        }
    }

    private static void Drain(CaptureSession session)
    {
        while (session.Queue.TryTake(out var stale) && stale is not null) session.Queue.Release(stale);
    }

    /// <summary>Classifies one captured frame and emits its verdict; never throws for a bad frame.</summary>
    internal async Task<bool> ProcessAsync(CapturedFrame captured, Verdict verdict, VerdictWriter writer)
    {
        var frame = captured.Frame;
        var classifier = _rt.Classifier!;
        string sourceName = captured.Session.Name;
        DateTimeOffset captureStart = frame.Timestamp - frame.CaptureTime;
        var previous = Activity.Current;
        Activity.Current = null; // each frame is its own trace
        using var root = ServiceInstruments.ActivitySource.StartActivity(EdgeVitMetrics.FrameSpan, ActivityKind.Internal, parentContext: default, startTime: captureStart);
        if (root is not null)
        {
            root.SetTag("edgevit.source", sourceName);
            root.SetTag("edgevit.sequence", frame.Sequence);
            using var capture = ServiceInstruments.ActivitySource.StartActivity(EdgeVitMetrics.Stages.Capture, ActivityKind.Internal, root.Context, startTime: captureStart);
            capture?.SetTag(EdgeVitMetrics.StageAttribute, EdgeVitMetrics.Stages.Capture);
            capture?.SetEndTime((captureStart + frame.CaptureTime).UtcDateTime);
        }
        bool ok = false;
        await classifier.Gate.WaitAsync(); // not cancellable: a frame that got here is finished
        try
        {
            classifier.Classify(frame, sourceName, verdict);
            ok = true;
            foreach (var l in _frameListeners) l.OnFrame(frame, verdict); // before the buffer goes back to the pool
        }
        catch (ImageDecodeException ex)
        {
            Failed(root, EdgeVitMetrics.ErrorKinds.Decode, ex.Message);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Failed(root, EdgeVitMetrics.ErrorKinds.Inference, $"{ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            classifier.Gate.Release();
            captured.Release();
        }
        if (ok)
        {
            _rt.Status.OnClassified();
            Emit(verdict, writer);
            if (_gpioOutput is not null && _outputClass is int c && verdict.Count > 0 && verdict.Classes[0] == c
                && verdict.Scores[0] >= _rt.Options.Trigger.Gpio.OutputMinScore)
                _gpioOutput.Pulse();
            _watchdog?.Progress();
        }
        root?.Stop();
        Activity.Current = previous;
        return ok;
    }

    /// <summary>Writes a verdict line (frame loop and HTTP); a failing sink is counted, not fatal.</summary>
    internal void Emit(Verdict verdict, VerdictWriter writer)
    {
        try
        {
            var json = writer.Write(verdict).Span;
            _rt.Sink!.WriteLine(json);
            foreach (var l in _verdictListeners) l.OnVerdict(verdict, json);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            _rt.Status.OnError();
            _rt.Metrics.Error(EdgeVitMetrics.ErrorKinds.Results);
            _log.LogError("results: {Error}", ex.Message);
        }
    }

    private void Failed(Activity? root, string kind, string message)
    {
        _rt.Status.OnError();
        _rt.Metrics.Error(kind);
        root?.SetStatus(ActivityStatusCode.Error, message);
        _log.LogWarning("frame skipped ({Kind}): {Error}", kind, message);
    }

    /// <summary>Trigger:Mode http with an empty POST body: a frame captured after the request (null on timeout).</summary>
    public async Task<CapturedFrame?> NextFrameAsync(TimeSpan timeout, CancellationToken ct)
    {
        if (_rt.Status.Session is not { } session) return null;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            await _httpTake.WaitAsync(cts.Token); // the queue has one consumer
            try
            {
                Drain(session);
                return await session.Queue.TakeAsync(cts.Token) is { } frame ? new CapturedFrame(frame, session) : null;
            }
            finally { _httpTake.Release(); }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { return null; }
    }

    private static void Signal(SemaphoreSlim s)
    {
        lock (s)
            if (s.CurrentCount == 0) s.Release();
    }

    /// <summary>Reload of the watched configuration (the "live" options): budget and source settings apply now.</summary>
    private void OnOptionsChanged(EdgeVitOptions o, string? name)
    {
        if (name != EdgeVitOptions.Live) return;
        try
        {
            var problems = EdgeVitOptionsValidator.Check(o);
            if (problems.Count > 0)
            {
                _log.LogError("configuration reload ignored: {Problems}", string.Join("; ", problems));
                return;
            }
            var budget = BudgetSettings.From(o.Budget);
            if (budget != _lastBudget)
            {
                _lastBudget = budget;
                if (_rt.Budget is { Enabled: true } controller)
                {
                    try
                    {
                        controller.Apply(budget);
                        _log.LogInformation("budget reloaded: {Mode}, active set {Set}", budget.ModeName, controller.Current);
                    }
                    catch (ArgumentException ex) { _log.LogError("budget reload ignored: Budget: {Error}", ex.Message); }
                }
            }
            string sourceJson = JsonSerializer.Serialize(o.Source);
            if (sourceJson != _lastSourceJson)
            {
                _lastSourceJson = sourceJson;
                if (o.Source.Kind.Equals("none", StringComparison.OrdinalIgnoreCase) != _sourceOptions.Kind.Equals("none", StringComparison.OrdinalIgnoreCase))
                    _log.LogError("source reload ignored: switching Source:Kind to or from 'none' needs a restart");
                else _ = SwapSourceAsync(o.Source);
            }
            if (_interval is not null && _interval.Period != TimeSpan.FromMilliseconds(o.Trigger.IntervalMs))
                _interval.Period = TimeSpan.FromMilliseconds(o.Trigger.IntervalMs);
        }
        catch (Exception ex)
        {
            _log.LogError("configuration reload failed: {Error}", ex.Message);
        }
    }

    /// <summary>Stops the current source (a camera must be closed before it can be reopened) and starts the new one.</summary>
    private async Task SwapSourceAsync(SourceOptions options)
    {
        await _swap.WaitAsync();
        try
        {
            if (_stopping.IsCancellationRequested) return;
            _sourceOptions = options;
            if (_rt.Status.Session is { } old) await EndSessionAsync(old);
            IFrameSource source;
            try { source = _rt.Sources.Create(options)!; }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                _rt.Status.SourceFailed(ex.Message);
                _log.LogError("source reload: {Error}", ex.Message);
                return;
            }
            StartSession(source, alreadyOpen: false); // the loop opens it, retrying while it fails
            _log.LogInformation("source settings reloaded: now {Source}", source.Name);
        }
        catch (Exception ex)
        {
            _log.LogError("source reload failed: {Error}", ex.Message);
        }
        finally { _swap.Release(); }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _reloadSubscription?.Dispose();
        await base.StopAsync(cancellationToken); // cancels the waits; the frame in flight completes
        await _swap.WaitAsync(cancellationToken);
        try
        {
            if (_rt.Status.Session is { } session) await EndSessionAsync(session);
            else if (_openedAtStart is { } unused && !_sessionStarted) await unused.DisposeAsync();
        }
        finally { _swap.Release(); }
        _gpioTrigger?.Dispose();
        _gpioOutput?.Dispose();
        _interval?.Dispose();
        _log.LogInformation("pipeline stopped: {Captured} captured, {Dropped} dropped, {Classified} classified, {Errors} errors",
            _rt.Status.Captured, _rt.Status.Dropped, _rt.Status.Classified, _rt.Status.Errors);
    }

    /// <summary>A source opened at start-up: the capture loop's first open is skipped, later (re)opens go through.</summary>
    private sealed class OpenedOnce(IFrameSource inner) : IFrameSource
    {
        private int _skip = 1;
        public string Name => inner.Name;
        public ValueTask OpenAsync(CancellationToken cancellationToken) =>
            Interlocked.Exchange(ref _skip, 0) == 1 ? ValueTask.CompletedTask : inner.OpenAsync(cancellationToken);
        public ValueTask<Frame?> NextAsync(CancellationToken cancellationToken) => inner.NextAsync(cancellationToken);
        public void Release(Frame frame) => inner.Release(frame);
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
