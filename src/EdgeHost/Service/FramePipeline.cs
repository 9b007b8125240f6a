using System.Diagnostics;
using System.Text.Json;
using EdgeViT.Capture;
using EdgeViT.Host.Service.Interim;
using EdgeViT.Imaging;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EdgeViT.Host.Service;

/// <summary>
/// The frame loop. Start-up (before systemd hears READY=1) loads the model and opens the source; a failure there
/// stops start-up with one line. Then two loops run:
/// <list type="bullet">
/// <item>capture: source -> latest-frame-wins queue (an unclaimed frame is replaced and counted as dropped);
/// a failing source is reopened after Source:ReopenDelayMs; a source settings reload swaps the source.</item>
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
    private readonly ISystemdNotifier? _notifier;
    // WIRE: feat/capture's LatestFrameQueue (single-slot, Dropped counter) replaces the interim queue.
    private readonly InterimLatestFrameQueue _queue = new();
    private readonly SemaphoreSlim _sourceRestarted = new(0, 1);
    private readonly object _sourceLock = new();

    private SourceOptions _sourceOptions;
    private CancellationTokenSource? _sessionCts;
    private IFrameSource? _source;
    private IGpioTrigger? _gpioTrigger;
    private IGpioOutput? _gpioOutput;
    private int? _outputClass;
    private PeriodicTimer? _interval;
    private IDisposable? _reloadSubscription;
    private BudgetSettings? _lastBudget;
    private string _lastSourceJson = "";
    private SystemdWatchdog? _watchdog;

    private readonly IHostApplicationLifetime _lifetime;

    public FramePipeline(ServiceRuntime runtime, IOptionsMonitor<EdgeVitOptions> monitor, ILogger<FramePipeline> log, IServiceProvider services,
        IHostApplicationLifetime lifetime)
    {
        _lifetime = lifetime;
        _rt = runtime;
        _monitor = monitor;
        _log = log;
        _notifier = services.GetService(typeof(ISystemdNotifier)) as ISystemdNotifier;
        _sourceOptions = runtime.Options.Source;
        runtime.Pipeline = this;
    }

    public IFrameSource? Source => _source;
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
        if (_sourceOptions.Kind.Equals("none", StringComparison.OrdinalIgnoreCase)) _rt.Status.SourceNotNeeded = true;
        else await OpenSourceAsync(_sourceOptions, cancellationToken); // at start-up a source that cannot open is fatal
        _reloadSubscription = _monitor.OnChange(OnOptionsChanged);
        _rt.LogLoaded();
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

    private async Task OpenSourceAsync(SourceOptions options, CancellationToken ct)
    {
        var source = _rt.Sources.Create(options);
        if (source is null)
        {
            _rt.Status.SourceNotNeeded = true;
            return;
        }
        try { await source.OpenAsync(ct); }
        catch
        {
            await source.DisposeAsync();
            throw;
        }
        lock (_sourceLock)
        {
            _source = source;
            _sessionCts = new CancellationTokenSource();
        }
        _rt.Status.SourceName = source.Name;
        _rt.Status.SourceOpen = true;
        _rt.Status.SourceEnded = false;
        _rt.Status.SourceError = null;
        _log.LogInformation("source {Source} open", source.Name);
    }

    private async Task CloseSourceAsync()
    {
        IFrameSource? source;
        lock (_sourceLock)
        {
            source = _source;
            _source = null;
            _sessionCts?.Dispose();
            _sessionCts = null;
        }
        _rt.Status.SourceOpen = false;
        _queue.Clear();
        if (source is not null)
        {
            try { await source.DisposeAsync(); }
            catch (Exception ex) { _log.LogWarning("closing source {Source}: {Error}", source.Name, ex.Message); }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        var capture = _rt.Status.SourceNotNeeded && _source is null ? Task.CompletedTask : CaptureLoopAsync(stoppingToken);
        var classify = ClassifyLoopAsync(stoppingToken);
        try { await Task.WhenAll(capture, classify); }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
        catch (Exception ex)
        {
            // A bug, not a bad frame (those are handled per frame): stop the service with a non-zero exit.
            _rt.Status.FatalError = $"{ex.GetType().Name}: {ex.Message}";
            _log.LogCritical(ex, "frame pipeline failed");
            _lifetime.StopApplication();
        }
    }

    private async Task CaptureLoopAsync(CancellationToken stop)
    {
        int delayMs = _sourceOptions.ReopenDelayMs;
        CancellationTokenSource? linked = null; // stop + the source session, made once per session (not per frame)
        CancellationToken linkedFor = default;
        while (!stop.IsCancellationRequested)
        {
            IFrameSource? source;
            CancellationToken session;
            lock (_sourceLock)
            {
                source = _source;
                session = _sessionCts?.Token ?? default;
            }
            if (linked is null || linkedFor != session)
            {
                linked?.Dispose();
                linked = CancellationTokenSource.CreateLinkedTokenSource(stop, session);
                linkedFor = session;
            }
            if (source is null)
            {
                try
                {
                    await OpenSourceAsync(_sourceOptions, stop);
                    if (_source is null) return; // Kind=none after a reload
                    _rt.Status.OnSourceReopen();
                    Signal(_sourceRestarted);
                    delayMs = _sourceOptions.ReopenDelayMs;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // Whatever a source throws, the service keeps serving and retries (FrameSourceException is the contract).
                    SourceFailed(ex is FrameSourceException ? ex.Message : $"{ex.GetType().Name}: {ex.Message}");
                    await Task.Delay(delayMs, stop);
                    delayMs = Math.Min(delayMs * 2, Math.Max(_sourceOptions.ReopenDelayMs, 30_000));
                }
                continue;
            }

            Frame? frame;
            try
            {
                frame = await source.NextAsync(linked.Token);
            }
            catch (OperationCanceledException) when (!stop.IsCancellationRequested)
            {
                await CloseSourceAsync(); // settings reload: reopen with the new options
                continue;
            }
            catch (OperationCanceledException) { return; }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                SourceFailed(ex is FrameSourceException ? ex.Message : $"{ex.GetType().Name}: {ex.Message}");
                await CloseSourceAsync();
                await Task.Delay(delayMs, stop);
                continue;
            }

            if (frame is null)
            {
                _log.LogInformation("source {Source} ended", source.Name);
                _rt.Status.SourceEnded = true;
                _queue.Complete();
                // A finite source stays ended until a source settings reload.
                try { await Task.Delay(Timeout.Infinite, linked.Token); }
                catch (OperationCanceledException) when (!stop.IsCancellationRequested) { await CloseSourceAsync(); }
                continue;
            }

            _rt.Status.OnCaptured();
            _rt.Metrics.Captured();
            if (_queue.Offer(frame, source))
            {
                _rt.Status.OnDropped();
                _rt.Metrics.Dropped();
            }
            if (Mode != "continuous") _watchdog?.Progress(); // continuous mode pings per classified frame
        }
    }

    private void SourceFailed(string message)
    {
        _rt.Status.SourceError = message;
        _rt.Status.SourceOpen = false;
        _rt.Status.OnError();
        _rt.Metrics.Error(EdgeVitMetrics.ErrorKinds.Source);
        _log.LogError("source: {Error}", message);
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
            if (mode == "interval") await _interval!.WaitForNextTickAsync(stop);
            else if (mode == "gpio")
            {
                await _gpioTrigger!.WaitForPressAsync(stop);
                _queue.Clear(); // classify a frame captured after the press
            }
            var item = await _queue.TakeAsync(stop);
            if (item is not { } captured)
            {
                await _sourceRestarted.WaitAsync(stop); // finite source ended: wait for a new one
                continue;
            }
            await ProcessAsync(captured, verdict, writer);
        }
    }

    /// <summary>Classifies one captured frame and emits its verdict; never throws for a bad frame.</summary>
    internal async Task<bool> ProcessAsync(CapturedFrame captured, Verdict verdict, VerdictWriter writer)
    {
        var frame = captured.Frame;
        var classifier = _rt.Classifier!;
        DateTimeOffset captureStart = frame.Timestamp - frame.CaptureTime;
        var previous = Activity.Current;
        Activity.Current = null; // each frame is its own trace
        using var root = ServiceInstruments.ActivitySource.StartActivity(EdgeVitMetrics.FrameSpan, ActivityKind.Internal, parentContext: default, startTime: captureStart);
        if (root is not null)
        {
            root.SetTag("edgevit.source", captured.Owner.Name);
            root.SetTag("edgevit.sequence", frame.Sequence);
            using var capture = ServiceInstruments.ActivitySource.StartActivity(EdgeVitMetrics.Stages.Capture, ActivityKind.Internal, root.Context, startTime: captureStart);
            capture?.SetTag(EdgeVitMetrics.StageAttribute, EdgeVitMetrics.Stages.Capture);
            capture?.SetEndTime((captureStart + frame.CaptureTime).UtcDateTime);
        }
        bool ok = false;
        await classifier.Gate.WaitAsync(); // not cancellable: a frame that got here is finished
        try
        {
            classifier.Classify(frame, captured.Owner.Name, verdict);
            ok = true;
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
        try { _rt.Sink!.WriteLine(writer.Write(verdict).Span); }
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
        if (_source is null) return null;
        _queue.Clear();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try { return await _queue.TakeAsync(cts.Token); }
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
                {
                    _log.LogError("source reload ignored: switching Source:Kind to or from 'none' needs a restart");
                    return;
                }
                _sourceOptions = o.Source;
                _log.LogInformation("source settings reloaded: reopening as {Kind}", o.Source.Kind);
                lock (_sourceLock) _sessionCts?.Cancel();
            }
            if (_interval is not null && _interval.Period != TimeSpan.FromMilliseconds(o.Trigger.IntervalMs))
                _interval.Period = TimeSpan.FromMilliseconds(o.Trigger.IntervalMs);
        }
        catch (Exception ex)
        {
            _log.LogError("configuration reload failed: {Error}", ex.Message);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _reloadSubscription?.Dispose();
        await base.StopAsync(cancellationToken); // cancels the waits; the frame in flight completes
        await CloseSourceAsync();
        _gpioTrigger?.Dispose();
        _gpioOutput?.Dispose();
        _interval?.Dispose();
        _log.LogInformation("pipeline stopped: {Captured} captured, {Dropped} dropped, {Classified} classified, {Errors} errors",
            _rt.Status.Captured, _rt.Status.Dropped, _rt.Status.Classified, _rt.Status.Errors);
    }
}
