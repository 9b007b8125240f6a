using System.Diagnostics;
using System.Threading.Channels;
using EdgeViT.Capture;
using EdgeViT.Imaging;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeViT.Host.Service.Inference;

/// <summary>
/// The one owner of the engine. A single thread ("edgevit-inference") takes jobs from a bounded queue
/// (Input:QueueLength) and runs each through the one processing path: decode -> preprocess -> infer -> verdict ->
/// every <see cref="IVerdictSink"/>, with one trace per job (root span <c>frame</c>, a span per stage) and one error
/// policy (a bad image is counted as edgevit.errors{kind=decode} and answered, a failure of the engine as
/// kind=inference; neither stops the service).
/// <para>Two ways in. Request sources that must not wait (HTTP, MQTT, KServe...) call
/// <see cref="TryClassify(ReadOnlyMemory{byte}, string, string, out Task{InferenceResult})"/>: false when the queue is
/// full, so they can answer 503 and tell the client to back off (<see cref="RetryAfterSeconds"/>). The frame loop
/// awaits room with <see cref="ClassifyFrameAsync"/>; it submits one frame at a time, so the source's latest-frame
/// queue keeps "latest wins" while the engine is busy.</para>
/// Stopping completes the queue: the job in flight and those already accepted are finished, later ones are refused.
/// </summary>
public sealed class InferenceWorker : IHostedService, IDisposable
{
    private readonly Classifier _classifier;
    private readonly IVerdictSink[] _sinks;
    private readonly IFrameListener[] _frameListeners;
    private readonly ServiceStatus _status;
    private readonly ServiceInstruments _metrics;
    private readonly ILogger _log;
    private readonly Channel<InferenceJob> _queue;
    private readonly Thread _thread;
    private readonly Verdict _verdict;
    private readonly VerdictWriter _writer;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private double _typicalMs = double.NaN;

    public InferenceWorker(Classifier classifier, IEnumerable<IVerdictSink> sinks, ServiceStatus status, ServiceInstruments metrics,
        InputOptions input, ILogger<InferenceWorker> log, IEnumerable<IFrameListener>? frameListeners = null)
    {
        _classifier = classifier;
        _sinks = sinks.ToArray();
        _frameListeners = frameListeners?.ToArray() ?? [];
        _status = status;
        _metrics = metrics;
        _log = log;
        QueueLength = input.QueueLength;
        _queue = Channel.CreateBounded<InferenceJob>(new BoundedChannelOptions(QueueLength)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _verdict = classifier.NewVerdict();
        _writer = new VerdictWriter(classifier.Model.Synsets);
        _thread = new Thread(Run) { Name = "edgevit-inference", IsBackground = true };
        _status.ModelLoaded = true;
    }

    public Classifier Classifier => _classifier;
    /// <summary>Jobs that may wait for the engine besides the one running.</summary>
    public int QueueLength { get; }
    /// <summary>Jobs waiting now (not counting the one running).</summary>
    public int Queued => _queue.Reader.Count;
    /// <summary>Stopwatch timestamp at which the job in progress started; 0 when idle (systemd watchdog).</summary>
    public long InFlightSince => _classifier.InFlightSince;

    /// <summary>What a client should wait before retrying a refused request: a full queue's worth of typical jobs, at least 1 s.</summary>
    public int RetryAfterSeconds
    {
        get
        {
            double ms = Volatile.Read(ref _typicalMs);
            return double.IsFinite(ms) ? Math.Clamp((int)Math.Ceiling((QueueLength + 1) * ms / 1000), 1, 60) : 1;
        }
    }

    /// <summary>
    /// Queues an encoded image (JPEG/PNG...) unless the queue is full. <paramref name="encoded"/> must stay valid
    /// until <paramref name="result"/> completes. <paramref name="source"/> and <paramref name="origin"/> become the
    /// verdict's "source" and "origin" (e.g. "http", "request body").
    /// </summary>
    public bool TryClassify(ReadOnlyMemory<byte> encoded, string source, string origin, out Task<InferenceResult> result)
    {
        var job = new RequestJob { Encoded = encoded, Source = source, Origin = origin, Sequence = _status.OnRequest() };
        return TrySubmit(job, out result);
    }

    /// <summary>Queues a frame (RGB24 or encoded) unless the queue is full; <paramref name="release"/> gives it back once read.</summary>
    public bool TryClassify(Frame frame, Action<Frame>? release, string source, out Task<InferenceResult> result)
    {
        var job = new RequestJob { Frame = frame, Release = release, Source = source, Origin = frame.Origin, Sequence = frame.Sequence };
        return TrySubmit(job, out result);
    }

    /// <summary>
    /// Queues a preprocessed CHW tensor (length <see cref="Classifier.TensorLength"/>) unless the queue is full; the
    /// result carries the logits. <paramref name="tensor"/> must stay valid until <paramref name="result"/> completes.
    /// </summary>
    public bool TryClassifyTensor(ReadOnlyMemory<float> tensor, string source, string origin, out Task<InferenceResult> result)
    {
        var job = new RequestJob { Tensor = tensor, WantLogits = true, Source = source, Origin = origin, Sequence = _status.OnRequest() };
        return TrySubmit(job, out result);
    }

    /// <summary>Queues an encoded image and asks for the logits too (Open Inference Protocol BYTES input).</summary>
    public bool TryClassifyWithLogits(ReadOnlyMemory<byte> encoded, string source, string origin, out Task<InferenceResult> result)
    {
        var job = new RequestJob { Encoded = encoded, WantLogits = true, Source = source, Origin = origin, Sequence = _status.OnRequest() };
        return TrySubmit(job, out result);
    }

    private bool TrySubmit(RequestJob job, out Task<InferenceResult> result)
    {
        result = job.Task;
        if (_queue.Writer.TryWrite(job)) return true;
        job.ReleaseInput();
        _status.OnRejected();
        return false;
    }

    /// <summary>The frame loop's way in: waits for room, then for the verdict. One call at a time per <paramref name="job"/>.</summary>
    internal async ValueTask<InferenceOutcome> ClassifyFrameAsync(ReusableFrameJob job, Frame frame, Action<Frame> release, string source, CancellationToken ct)
    {
        var done = job.Prepare(frame, release, source);
        try { await _queue.Writer.WriteAsync(job, ct); }
        catch (Exception ex) when (ex is OperationCanceledException or ChannelClosedException)
        {
            job.ReleaseInput();
            job.Complete(InferenceOutcome.Stopped, "stopping", default, _verdict);
        }
        return await done; // not cancellable: a frame that got in is finished
    }

    private void Run()
    {
        var reader = _queue.Reader;
        try
        {
            while (true)
            {
                while (reader.TryRead(out var job)) Process(job);
                var more = reader.WaitToReadAsync();
                if (!(more.IsCompletedSuccessfully ? more.Result : more.AsTask().GetAwaiter().GetResult())) break;
            }
        }
        finally { _stopped.TrySetResult(); }
    }

    private void Process(InferenceJob job)
    {
        var previous = Activity.Current;
        Activity.Current = null; // each job is its own trace
        var frame = job.Frame;
        DateTimeOffset? captureStart = frame is null ? null : frame.Timestamp - frame.CaptureTime;
        using var root = captureStart is { } start
            ? ServiceInstruments.ActivitySource.StartActivity(EdgeVitMetrics.FrameSpan, ActivityKind.Internal, parentContext: default, startTime: start)
            : ServiceInstruments.ActivitySource.StartActivity(EdgeVitMetrics.FrameSpan, ActivityKind.Internal, parentContext: default);
        if (root is not null)
        {
            root.SetTag("edgevit.source", job.Source);
            root.SetTag("edgevit.sequence", job.Sequence);
            if (frame is not null)
            {
                using var capture = ServiceInstruments.ActivitySource.StartActivity(EdgeVitMetrics.Stages.Capture, ActivityKind.Internal, root.Context, startTime: captureStart!.Value);
                capture?.SetTag(EdgeVitMetrics.StageAttribute, EdgeVitMetrics.Stages.Capture);
                capture?.SetEndTime((captureStart.Value + frame.CaptureTime).UtcDateTime);
            }
        }

        var outcome = InferenceOutcome.Failed;
        string? error = null;
        var v = _verdict;
        try
        {
            if (frame is not null) _classifier.Classify(frame, job.Source, v);
            else if (!job.Tensor.IsEmpty) _classifier.ClassifyTensor(job.Tensor.Span, job.Origin, job.Source, job.Sequence, v);
            else _classifier.Classify(job.Encoded.Span, job.Origin, job.Source, job.Sequence, v);
            outcome = InferenceOutcome.Classified;
            if (job.WantLogits) job.Logits = _classifier.LastLogits.ToArray();
            // Before the frame goes back to its pool: the live page copies the pixels it shows.
            if (frame is not null) foreach (var l in _frameListeners) l.OnFrame(frame, v);
        }
        catch (ImageTooLargeException ex) { (outcome, error) = (InferenceOutcome.TooLarge, Failed(root, EdgeVitMetrics.ErrorKinds.Decode, ex.Message)); }
        catch (ImageDecodeException ex) { (outcome, error) = (InferenceOutcome.BadImage, Failed(root, EdgeVitMetrics.ErrorKinds.Decode, ex.Message)); }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            error = Failed(root, EdgeVitMetrics.ErrorKinds.Inference, $"{ex.GetType().Name}: {ex.Message}");
        }
        finally { job.ReleaseInput(); }

        ReadOnlySpan<byte> json = default;
        if (outcome == InferenceOutcome.Classified)
        {
            _status.OnClassified();
            double ms = v.ProcessingMs, typical = _typicalMs;
            _typicalMs = double.IsFinite(typical) ? 0.9 * typical + 0.1 * ms : ms;
            json = _writer.Write(v).Span;
            foreach (var sink in _sinks)
            {
                try { sink.Write(v, json); }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    _status.OnError();
                    _metrics.Error(EdgeVitMetrics.ErrorKinds.Results);
                    _log.LogError("verdict sink {Sink}: {Error}", sink.GetType().Name, ex.Message);
                }
            }
        }
        root?.Stop();
        Activity.Current = previous;
        job.Complete(outcome, error, json, v);
    }

    private string Failed(Activity? root, string kind, string message)
    {
        _status.OnError();
        _metrics.Error(kind);
        root?.SetStatus(ActivityStatusCode.Error, message);
        _log.LogWarning("frame skipped ({Kind}): {Error}", kind, message);
        return message;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _thread.Start();
        return Task.CompletedTask;
    }

    /// <summary>Refuses new jobs, finishes those accepted (the frame loop has stopped submitting by now).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete();
        if (_thread.IsAlive) await _stopped.Task.WaitAsync(cancellationToken);
        // A job still queued after a cancelled stop is answered rather than left hanging.
        while (_queue.Reader.TryRead(out var job))
        {
            job.ReleaseInput();
            job.Complete(InferenceOutcome.Stopped, "the service is stopping", default, _verdict);
        }
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        if (_thread.IsAlive) _stopped.Task.Wait(TimeSpan.FromSeconds(30));
        _classifier.Dispose();
    }
}
