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
/// when Source:* is reloaded. Counters live in <see cref="ServiceStatus"/>.
/// </summary>
public sealed class SourceSessions : IAsyncDisposable
{
    private readonly FrameSourceFactory _devices;
    private readonly ServiceStatus _status;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;
    private readonly SemaphoreSlim _swap = new(1, 1);
    private readonly SemaphoreSlim _take = new(1, 1); // a queue has one consumer: the frame loop or an on-demand request
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SourceOptions _options;
    private IFrameSource? _openedAtStart;
    private bool _started, _stopped;

    public SourceSessions(FrameSourceFactory devices, ServiceStatus status, EdgeVitOptions options, ILoggerFactory loggers)
    {
        _devices = devices;
        _status = status;
        _loggers = loggers;
        _log = loggers.CreateLogger<SourceSessions>();
        _options = options.Source;
    }

    public SourceOptions Options => _options;
    public CaptureSession? Current => _status.Session;

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
    }

    /// <summary>Completes when a session starts or is replaced.</summary>
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

    /// <summary>A frame captured after this call (Trigger:Mode http, empty POST); null on timeout or without a source.</summary>
    public async Task<CapturedFrame?> NextFrameAsync(TimeSpan timeout, CancellationToken ct)
    {
        if (Current is not { } session) return null;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try { return await TakeAsync(session, fresh: true, cts.Token) is { } frame ? new CapturedFrame(frame, session) : null; }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { return null; }
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
        Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    private async Task EndSessionAsync(CaptureSession session)
    {
        await session.Loop.StopAsync();
        // Dispose first: it drops (and counts) a frame still waiting, which EndSession then folds into the totals,
        // so captured = classified + dropped holds at shutdown. A frame being classified is released by its taker.
        session.Queue.Dispose();
        _status.EndSession(session);
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
