using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeViT.Capture;

/// <summary>Exponential backoff between attempts to (re)open a source.</summary>
public sealed record ReopenPolicy
{
    public TimeSpan InitialDelay { get; init; } = TimeSpan.FromMilliseconds(500);
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(10);
    public double Multiplier { get; init; } = 2;
    /// <summary>Consecutive failed attempts before giving up (the last error is thrown); null retries forever.</summary>
    public int? MaxAttempts { get; init; }

    public static ReopenPolicy Default { get; } = new();

    /// <summary>The wait after the <paramref name="failures"/>-th consecutive failure (1-based).</summary>
    public TimeSpan DelayAfter(int failures)
    {
        double ms = InitialDelay.TotalMilliseconds * Math.Pow(Multiplier, Math.Max(0, failures - 1));
        return TimeSpan.FromMilliseconds(Math.Min(ms, MaxDelay.TotalMilliseconds));
    }

    public bool GivesUpAfter(int failures) => MaxAttempts is { } max && failures >= max;
}

/// <summary>
/// Wraps a source so a missing or lost device is retried: <see cref="OpenAsync"/> retries with backoff, and a
/// <see cref="FrameSourceException"/> from <see cref="NextAsync"/> (camera unplugged, stream dropped) reopens the
/// inner source and carries on. Every failure is logged and counted. Gives up only when the policy's
/// MaxAttempts consecutive attempts failed (then the last error is thrown, with the count).
/// </summary>
public sealed class ResilientFrameSource : IFrameSource
{
    private readonly IFrameSource _inner;
    private readonly ReopenPolicy _policy;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private long _openAttempts, _failures, _reopens;

    public ResilientFrameSource(IFrameSource inner, ReopenPolicy? policy = null, ILogger? logger = null, TimeProvider? timeProvider = null)
    {
        _inner = inner ?? throw new ArgumentNullException(nameof(inner));
        _policy = policy ?? ReopenPolicy.Default;
        _log = logger ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
    }

    public IFrameSource Inner => _inner;
    public string Name => _inner.Name;

    /// <summary>Calls of the inner OpenAsync, successful or not.</summary>
    public long OpenAttempts => Interlocked.Read(ref _openAttempts);
    /// <summary>Failed opens plus failures while streaming.</summary>
    public long Failures => Interlocked.Read(ref _failures);
    /// <summary>Successful reopens after a failure while streaming.</summary>
    public long Reopens => Interlocked.Read(ref _reopens);
    /// <summary>The last failure's message (for a status endpoint), or null.</summary>
    public string? LastError { get; private set; }

    public ValueTask OpenAsync(CancellationToken cancellationToken) => OpenWithRetryAsync(reopening: false, cancellationToken);

    public async ValueTask<Frame?> NextAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                return await _inner.NextAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (FrameSourceException ex)
            {
                Interlocked.Increment(ref _failures);
                LastError = ex.Message;
                _log.LogWarning("{Source} failed while streaming: {Error}; reopening", _inner.Name, ex.Message);
                await OpenWithRetryAsync(reopening: true, cancellationToken).ConfigureAwait(false);
                Interlocked.Increment(ref _reopens);
            }
        }
    }

    public void Release(Frame frame) => _inner.Release(frame);

    public ValueTask DisposeAsync() => _inner.DisposeAsync();

    private async ValueTask OpenWithRetryAsync(bool reopening, CancellationToken cancellationToken)
    {
        int failures = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (reopening || failures > 0)
            {
                var delay = _policy.DelayAfter(failures + (reopening ? 1 : 0));
                if (delay > TimeSpan.Zero) await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
            }
            Interlocked.Increment(ref _openAttempts);
            try
            {
                await _inner.OpenAsync(cancellationToken).ConfigureAwait(false);
                if (failures > 0 || reopening) _log.LogInformation("{Source} open again after {Failures} failed attempt(s)", _inner.Name, failures);
                return;
            }
            catch (FrameSourceException ex)
            {
                failures++;
                Interlocked.Increment(ref _failures);
                LastError = ex.Message;
                if (_policy.GivesUpAfter(failures))
                {
                    _log.LogError("{Source}: giving up after {Attempts} attempts: {Error}", _inner.Name, failures, ex.Message);
                    throw new FrameSourceException($"{ex.Message} (gave up after {failures} attempts)", ex);
                }
                _log.LogWarning("{Source}: open attempt {Attempt} failed: {Error}; retrying in {Delay} ms",
                    _inner.Name, failures, ex.Message, (int)_policy.DelayAfter(failures + (reopening ? 1 : 0)).TotalMilliseconds);
            }
        }
    }
}
