using System.Diagnostics;
using EdgeViT.Capture;

namespace EdgeViT.Host.Service;

/// <summary>
/// One source's run: the source, its latest-frame queue and the capture loop pumping it (EdgeViT.Capture).
/// A source settings reload replaces the whole session.
/// </summary>
public sealed class CaptureSession(IFrameSource source, LatestFrameQueue queue, CaptureLoop loop, bool openedBefore)
{
    /// <summary>Opened before the loop started (at start-up): open until the loop reports a failure.</summary>
    public bool OpenedBefore { get; } = openedBefore;
    public IFrameSource Source { get; } = source;
    public LatestFrameQueue Queue { get; } = queue;
    public CaptureLoop Loop { get; } = loop;
    private string? _name;
    /// <summary>The source's name as of its first frame (after open), kept so verdicts do not rebuild it per frame.</summary>
    public string Name => _name ??= Source.Name;
    /// <summary>The loop ended by itself: a finite source ran out (or the reopen policy gave up).</summary>
    public bool Ended => Loop.Completion.IsCompleted;
    private Action<Frame>? _release;
    /// <summary>Gives a taken frame back to the queue's source (one delegate per session, not per frame).</summary>
    public Action<Frame> Release => _release ??= Queue.Release;
}

/// <summary>Counters and readiness shared by the frame loop, the inference worker, the HTTP API (/readyz, /v1/status) and the metrics.</summary>
public sealed class ServiceStatus
{
    private long _classified, _errors, _requests, _rejected;
    private long _capturedBefore, _droppedBefore, _reopensBefore, _sourceErrorsBefore; // of sessions already replaced
    private readonly TimeProvider _time;
    private readonly long _started;
    private volatile CaptureSession? _session;

    public ServiceStatus(TimeProvider time)
    {
        _time = time;
        _started = time.GetTimestamp();
        StartedAt = time.GetUtcNow();
    }

    public DateTimeOffset StartedAt { get; }
    public TimeSpan Uptime => _time.GetElapsedTime(_started);

    public volatile bool ModelLoaded;
    /// <summary>True when the service needs no source (Source:Kind none).</summary>
    public volatile bool SourceNotNeeded;
    public volatile string? FatalError;
    private volatile string? _lastSourceError;

    public CaptureSession? Session => _session;
    /// <summary>Trigger:Mode http with no request for Trigger:StandbyAfterMs: the source is closed until the next request.</summary>
    public bool SourceStandby => _standbyName is not null;
    private volatile string? _standbyName;
    public string SourceName => _session?.Source.Name ?? _standbyName ?? "";
    public bool SourceOpen => _session is { } s && (s.Loop.IsStreaming || (s.OpenedBefore && s.Loop.Errors == 0 && !s.Ended));
    public bool SourceEnded => _session is { } s && s.Ended && s.Loop.Fault is null;
    public string? SourceError => _session?.Loop.LastError ?? _lastSourceError;

    public bool Ready => ModelLoaded && (SourceNotNeeded || SourceStandby || SourceOpen || SourceEnded);

    public long Captured => Interlocked.Read(ref _capturedBefore) + (_session?.Loop.Frames ?? 0);
    public long Dropped => Interlocked.Read(ref _droppedBefore) + (_session?.Queue.Dropped ?? 0);
    public long SourceReopens => Interlocked.Read(ref _reopensBefore) + (_session?.Loop.Reopens ?? 0);
    public long Classified => Interlocked.Read(ref _classified);
    /// <summary>Failed opens and failures while streaming, over all sessions.</summary>
    public long SourceErrors => Interlocked.Read(ref _sourceErrorsBefore) + (_session?.Loop.Errors ?? 0);
    public long Errors => Interlocked.Read(ref _errors) + SourceErrors;
    /// <summary>Requests accepted from request sources (HTTP...): the sequence numbers of their verdicts.</summary>
    public long Requests => Interlocked.Read(ref _requests);
    /// <summary>Requests refused because the inference queue was full (HTTP 503).</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    public void OnClassified() => Interlocked.Increment(ref _classified);
    public void OnError() => Interlocked.Increment(ref _errors);
    public long OnRequest() => Interlocked.Increment(ref _requests);
    public void OnRejected() => Interlocked.Increment(ref _rejected);

    public void StartSession(CaptureSession session)
    {
        _session = session;
        _standbyName = null;
    }

    /// <summary>A session closed for want of requests: counters folded in, its source named until the next one starts.</summary>
    /// <param name="healthy">The source was streaming when it was closed: its past errors are history, not news.</param>
    public void Standby(CaptureSession session, bool healthy)
    {
        if (!ReferenceEquals(_session, session)) return;
        _standbyName = session.Name;
        EndSession(session);
        if (healthy) _lastSourceError = null;
    }

    /// <summary>Folds a finished session's counters into the totals.</summary>
    public void EndSession(CaptureSession session)
    {
        if (!ReferenceEquals(_session, session)) return;
        Interlocked.Add(ref _capturedBefore, session.Loop.Frames);
        Interlocked.Add(ref _droppedBefore, session.Queue.Dropped);
        Interlocked.Add(ref _reopensBefore, session.Loop.Reopens);
        Interlocked.Add(ref _sourceErrorsBefore, session.Loop.Errors);
        _lastSourceError = session.Loop.LastError;
        _session = null;
    }

    /// <summary>After each watched-file reload: null when it applied, else why it was ignored (one line).</summary>
    public event Action<string?>? Reloaded;
    public void OnReload(string? problem) => Reloaded?.Invoke(problem);

    public void SourceFailed(string message)
    {
        _lastSourceError = message;
        Interlocked.Increment(ref _sourceErrorsBefore);
    }
}
