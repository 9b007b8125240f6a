using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeViT.Capture;

/// <summary>
/// Pumps a source into a <see cref="LatestFrameQueue"/> on a dedicated thread (sources such as V4L2 block in
/// poll()). Opens the source (retrying with the reopen policy's backoff), publishes every frame, and on a
/// <see cref="FrameSourceException"/> (camera lost, stream dropped) counts the error, waits and reopens. Ends when
/// stopped/cancelled, when a finite source ends (NextAsync returned null), or when the policy gives up; the
/// queue is completed then, so the consumer's TakeAsync returns null.
/// </summary>
public sealed class CaptureLoop : IAsyncDisposable
{
    private readonly IFrameSource _source;
    private readonly LatestFrameQueue _queue;
    private readonly ReopenPolicy _policy;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Thread? _thread;
    private long _frames, _errors, _reopens;

    public CaptureLoop(IFrameSource source, LatestFrameQueue queue, ReopenPolicy? reopen = null, ILogger? logger = null, TimeProvider? timeProvider = null)
    {
        _source = source ?? throw new ArgumentNullException(nameof(source));
        _queue = queue ?? throw new ArgumentNullException(nameof(queue));
        _policy = reopen ?? ReopenPolicy.Default;
        _log = logger ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Frames published to the queue.</summary>
    public long Frames => Interlocked.Read(ref _frames);
    /// <summary>Failed opens and failures while streaming.</summary>
    public long Errors => Interlocked.Read(ref _errors);
    /// <summary>Successful opens after a failure.</summary>
    public long Reopens => Interlocked.Read(ref _reopens);
    /// <summary>Whether the source is open and delivering.</summary>
    public bool IsStreaming { get; private set; }
    /// <summary>The last error's message, for status reporting.</summary>
    public string? LastError { get; private set; }
    /// <summary>Why the loop ended when it was not asked to: the policy gave up, or an unexpected exception.</summary>
    public Exception? Fault { get; private set; }
    /// <summary>Completes when the loop has ended (never faults; see <see cref="Fault"/>).</summary>
    public Task Completion => _completion.Task;

    /// <summary>Starts the loop thread; <paramref name="cancellationToken"/> stops it like <see cref="StopAsync"/>.</summary>
    public void Start(CancellationToken cancellationToken = default)
    {
        if (_thread is not null) throw new InvalidOperationException("capture loop already started");
        if (cancellationToken.CanBeCanceled) cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _stop);
        _thread = new Thread(Run) { IsBackground = true, Name = $"capture {_source.Name}" };
        _thread.Start();
    }

    /// <summary>Stops the loop and waits for it (the source is not disposed: its owner does that).</summary>
    public async Task StopAsync()
    {
        _stop.Cancel();
        if (_thread is null)
        {
            _queue.Complete();
            _completion.TrySetResult();
        }
        await _completion.Task.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    private void Run()
    {
        var ct = _stop.Token;
        bool open = false;
        int failures = 0;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    if (!open)
                    {
                        Wait(_source.OpenAsync(ct));
                        open = true;
                        IsStreaming = true;
                        if (failures > 0)
                        {
                            Interlocked.Increment(ref _reopens);
                            _log.LogInformation("{Source} reopened after {Failures} failure(s)", _source.Name, failures);
                        }
                        else _log.LogInformation("Capturing from {Source}", _source.Name);
                    }
                    var frame = Wait(_source.NextAsync(ct));
                    if (frame is null)
                    {
                        _log.LogInformation("{Source} ended after {Frames} frames", _source.Name, Frames);
                        break;
                    }
                    failures = 0;
                    Interlocked.Increment(ref _frames);
                    _queue.Publish(frame);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    break;
                }
                catch (FrameSourceException ex)
                {
                    open = false;
                    IsStreaming = false;
                    failures++;
                    Interlocked.Increment(ref _errors);
                    LastError = ex.Message;
                    if (_policy.GivesUpAfter(failures))
                    {
                        _log.LogError("{Source}: giving up after {Failures} consecutive failures: {Error}", _source.Name, failures, ex.Message);
                        Fault = ex;
                        break;
                    }
                    var delay = _policy.DelayAfter(failures);
                    _log.LogWarning("{Source}: {Error}; retrying in {Delay} ms", _source.Name, ex.Message, (int)delay.TotalMilliseconds);
                    try
                    {
                        Task.Delay(delay, _time, ct).GetAwaiter().GetResult();
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }
            }
        }
        catch (Exception ex)
        {
            Interlocked.Increment(ref _errors);
            LastError = ex.Message;
            Fault = ex;
            _log.LogError(ex, "{Source}: capture loop failed", _source.Name);
        }
        finally
        {
            IsStreaming = false;
            _queue.Complete();
            _completion.TrySetResult();
        }
    }

    // Sources complete synchronously (V4L2, synthetic) or asynchronously (ffmpeg pipe reads, pacing delays);
    // this thread is dedicated, so blocking on the latter is fine and the former cost nothing.
    private static T Wait<T>(ValueTask<T> task) => task.IsCompletedSuccessfully ? task.Result : task.AsTask().GetAwaiter().GetResult();

    private static void Wait(ValueTask task)
    {
        if (task.IsCompletedSuccessfully) return;
        task.AsTask().GetAwaiter().GetResult();
    }
}
