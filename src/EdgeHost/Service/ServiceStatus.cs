using System.Diagnostics;

namespace EdgeViT.Host.Service;

/// <summary>Counters and readiness shared by the pipeline and the HTTP API (/readyz, /v1/status).</summary>
public sealed class ServiceStatus
{
    private long _captured, _dropped, _classified, _errors, _httpClassified, _sourceReopens;
    private readonly long _started = Stopwatch.GetTimestamp();

    public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;
    public TimeSpan Uptime => Stopwatch.GetElapsedTime(_started);

    public volatile bool ModelLoaded;
    public volatile bool SourceOpen;
    /// <summary>True when the service needs no source (Source:Kind none).</summary>
    public volatile bool SourceNotNeeded;
    public volatile bool SourceEnded;
    public volatile string SourceName = "";
    public volatile string? SourceError;
    public volatile string? FatalError;

    public bool Ready => ModelLoaded && (SourceNotNeeded || SourceOpen || SourceEnded);

    public long Captured => Interlocked.Read(ref _captured);
    public long Dropped => Interlocked.Read(ref _dropped);
    public long Classified => Interlocked.Read(ref _classified);
    public long Errors => Interlocked.Read(ref _errors);
    public long HttpClassified => Interlocked.Read(ref _httpClassified);
    public long SourceReopens => Interlocked.Read(ref _sourceReopens);

    public void OnCaptured() => Interlocked.Increment(ref _captured);
    public void OnDropped() => Interlocked.Increment(ref _dropped);
    public void OnClassified() => Interlocked.Increment(ref _classified);
    public void OnError() => Interlocked.Increment(ref _errors);
    public long OnHttpClassified() => Interlocked.Increment(ref _httpClassified);
    public void OnSourceReopen() => Interlocked.Increment(ref _sourceReopens);
}
