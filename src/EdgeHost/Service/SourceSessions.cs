using EdgeViT.Capture;
using Microsoft.Extensions.Logging;

namespace EdgeViT.Host.Service;

/// <summary>A frame taken from a session's queue; <see cref="Release"/> gives it back to its source's pool.</summary>
public readonly record struct CapturedFrame(Frame Frame, CaptureSession Session)
{
    public void Release() => Session.Queue.Release(Frame);
}

/// <summary>
/// The frame source's life: open at start-up (a missing camera fails start-up), a capture loop per source on its own
/// thread (EdgeViT.Capture's <see cref="CaptureLoop"/>: latest-frame queue, reopen with backoff), and the hot swap
/// when Source:* is reloaded. In Trigger:Mode http the source is closed after Trigger:StandbyAfterMs without a
/// request (standby: no capture thread, camera off) and the next request opens it again. Counters live in
/// <see cref="ServiceStatus"/>.
/// </summary>
public sealed class SourceSessions : IAsyncDisposable
{
    private readonly FrameSourceFactory _devices;
    private readonly ServiceStatus _status;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;
    private readonly SemaphoreSlim _swap = new(1, 1); // session changes: start, swap, standby, wake, dispose
    private readonly SemaphoreSlim _take = new(1, 1); // a queue has one consumer: the frame loop or an on-demand request
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SourceOptions _options;
    private IFrameSource? _openedAtStart;
    private bool _started, _stopped;
    private readonly TimeProvider _time;
    private readonly TimeSpan _standbyAfter; // zero: never (not http mode, or Trigger:StandbyAfterMs 0)
    private readonly ITimer? _standbyTimer;  // one-shot, re-armed when the last request in progress took its frame
    private int _requests;                   // NextFrameAsync calls in progress
    private long _lastRequest;               // _time timestamp of the last one's end

    public SourceSessions(FrameSourceFactory devices, ServiceStatus status, EdgeVitOptions options, TimeProvider time, ILoggerFactory loggers)
    {
        _devices = devices;
        _status = status;
        _loggers = loggers;
        _log = loggers.CreateLogger<SourceSessions>();
        _options = options.Source;
        _time = time;
        if (options.Trigger.Mode == TriggerMode.Http && options.Trigger.StandbyAfterMs > 0)
        {
            _standbyAfter = TimeSpan.FromMilliseconds(options.Trigger.StandbyAfterMs);
            _standbyTimer = time.CreateTimer(static s => _ = ((SourceSessions)s!).StandbyAsync(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
    }

    public SourceOptions Options => _options;
    public CaptureSession? Current => _status.Session;
    /// <summary>A source to take frames from: a running session, or one in standby that a request opens.</summary>
    public bool HasSource => Current is not null || _status.SourceStandby;

    /// <summary>Opens the configured source (a failure ends start-up) and starts its capture loop.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        var source = _devices.Create(_options);
        if (source is null)
        {
            _status.SourceNotNeeded = true;
            return;
        }
        try { await source.OpenAsync(ct); }
        catch
        {
            await source.DisposeAsync();
            throw;
        }
        _openedAtStart = source;
        StartSession(source, alreadyOpen: true);
        _log.LogInformation("source {Source} open", source.Name);
        Volatile.Write(ref _lastRequest, _time.GetTimestamp()); // start-up counts as a request: standby after the idle period
        ArmStandby(_standbyAfter);
    }

    /// <summary>Completes when a session starts, is replaced or goes to standby.</summary>
    public Task ChangedAsync(CancellationToken ct) => Volatile.Read(ref _changed).Task.WaitAsync(ct);

    /// <summary>Takes the next frame for the frame loop (null: the session ended or was replaced).</summary>
    public async ValueTask<Frame?> TakeAsync(CaptureSession session, bool fresh, CancellationToken ct)
    {
        await _take.WaitAsync(ct);
        try
        {
            if (fresh) Drain(session);
            return await session.Queue.TakeAsync(ct);
        }
        finally { _take.Release(); }
    }

    /// <summary>
    /// A frame captured after this call (Trigger:Mode http, empty POST); null on timeout or without a source. In
    /// standby the source is opened first: a <see cref="FrameSourceException"/> says why it could not be.
    /// </summary>
    public async Task<CapturedFrame?> NextFrameAsync(TimeSpan timeout, CancellationToken ct)
    {
        Interlocked.Increment(ref _requests);
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(timeout);
            try
            {
                if ((Current ?? await WakeAsync(cts.Token)) is not { } session) return null;
                return await TakeAsync(session, fresh: true, cts.Token) is { } frame ? new CapturedFrame(frame, session) : null;
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested) { return null; }
        }
        finally
        {
            Volatile.Write(ref _lastRequest, _time.GetTimestamp());
            if (Interlocked.Decrement(ref _requests) == 0) ArmStandby(_standbyAfter);
        }
    }

    /// <summary>A request in standby: opens a new source of the current settings (the camera may have changed meanwhile).</summary>
    private async Task<CaptureSession?> WakeAsync(CancellationToken ct)
    {
        await _swap.WaitAsync(ct);
        try
        {
            if (_stopped || !_status.SourceStandby) return Current; // another request woke it (or there is no source)
            var source = _devices.Create(_options)!;
            try { await source.OpenAsync(ct); }
            catch (Exception ex)
            {
                await source.DisposeAsync();
                if (ex is FrameSourceException) _status.SourceFailed(ex.Message);
                throw;
            }
            StartSession(source, alreadyOpen: true);
            _log.LogInformation("source {Source} open again for a request", source.Name);
            return Current;
        }
        finally { _swap.Release(); }
    }

    private void ArmStandby(TimeSpan due)
    {
        try { _standbyTimer?.Change(due, Timeout.InfiniteTimeSpan); }
        catch (ObjectDisposedException) { } // shutting down: a request ended after DisposeAsync
    }

    /// <summary>The standby timer: closes the source when no request came for Trigger:StandbyAfterMs.</summary>
    private async Task StandbyAsync()
    {
        await _swap.WaitAsync();
        try
        {
            if (_stopped || Volatile.Read(ref _requests) > 0) return; // a request in progress re-arms the timer when it ends
            // Early: a request came since the timer was armed, or the timer fired before the clock says (system timers
            // count whole milliseconds). Wait for the rest.
            var idle = _time.GetElapsedTime(Volatile.Read(ref _lastRequest));
            if (idle < _standbyAfter)
            {
                ArmStandby(_standbyAfter - idle);
                return;
            }
            if (_status.Session is not { } session || session.Ended) return;
            bool healthy = session.Loop.IsStreaming;
            await StopSessionAsync(session, ended => _status.Standby(ended, healthy));
            _log.LogInformation("source {Source} closed after {Seconds:0.#} s without requests (standby); the next request opens it",
                session.Name, _standbyAfter.TotalSeconds);
            Changed();
        }
        catch (Exception ex) { _log.LogError("source standby failed: {Error}", ex.Message); }
        finally { _swap.Release(); }
    }

    private static void Drain(CaptureSession session)
    {
        while (session.Queue.TryTake(out var stale) && stale is not null) session.Queue.Release(stale);
    }

    private void StartSession(IFrameSource source, bool alreadyOpen)
    {
        var queue = new LatestFrameQueue(source);
        var loop = new CaptureLoop(alreadyOpen ? new OpenedOnce(source) : source, queue, _devices.ReopenPolicy(_options), _loggers.CreateLogger<CaptureLoop>());
        var session = new CaptureSession(source, queue, loop, alreadyOpen);
        _status.StartSession(session);
        _started = true;
        loop.Start(); // stopped explicitly (EndSessionAsync), also when a reload replaces it
        Changed();
    }

    private void Changed() =>
        Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    private Task EndSessionAsync(CaptureSession session) => StopSessionAsync(session, _status.EndSession);

    private async Task StopSessionAsync(CaptureSession session, Action<CaptureSession> fold)
    {
        await session.Loop.StopAsync();
        // Dispose first: it drops (and counts) a frame still waiting, which the fold then adds to the totals,
        // so captured = classified + dropped holds at shutdown. A frame being classified is released by its taker.
        session.Queue.Dispose();
        fold(session);
        try { await session.Source.DisposeAsync(); }
        catch (Exception ex) { _log.LogWarning("closing source {Source}: {Error}", session.Source.Name, ex.Message); }
    }

    /// <summary>Source:* reloaded: stops the current source (a camera must close before it reopens) and starts the new one.</summary>
    public async Task SwapAsync(SourceOptions options)
    {
        await _swap.WaitAsync();
        try
        {
            if (_stopped) return;
            _options = options;
            if (_status.SourceStandby)
            {
                _log.LogInformation("source settings reloaded: the next request opens the new source");
                return;
            }
            if (_status.Session is { } old) await EndSessionAsync(old);
            IFrameSource source;
            try { source = _devices.Create(options)!; }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                _status.SourceFailed(ex.Message);
                _log.LogError("source reload: {Error}", ex.Message);
                return;
            }
            StartSession(source, alreadyOpen: false); // the loop opens it, retrying while it fails
            _log.LogInformation("source settings reloaded: now {Source}", source.Name);
        }
        catch (Exception ex) { _log.LogError("source reload failed: {Error}", ex.Message); }
        finally { _swap.Release(); }
    }

    public async ValueTask DisposeAsync()
    {
        await _swap.WaitAsync();
        try
        {
            if (_stopped) return;
            _stopped = true;
            _standbyTimer?.Dispose();
            if (_status.Session is { } session) await EndSessionAsync(session);
            else if (_openedAtStart is { } unused && !_started) await unused.DisposeAsync();
        }
        finally { _swap.Release(); }
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
