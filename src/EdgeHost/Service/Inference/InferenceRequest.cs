using System.Threading.Tasks.Sources;
using EdgeViT.Capture;

namespace EdgeViT.Host.Service.Inference;

/// <summary>How a request ended. Everything but <see cref="Classified"/> carries a one-line reason.</summary>
public enum InferenceOutcome
{
    Classified,
    /// <summary>The image declares more pixels than Input:MaxPixels; nothing was decoded (HTTP 422).</summary>
    TooLarge,
    /// <summary>Not a decodable image, truncated, or a frame that does not fit its buffer (HTTP 400).</summary>
    BadImage,
    /// <summary>The engine failed on a valid input: a bug (HTTP 500).</summary>
    Failed,
    /// <summary>The service is stopping; the request was not run (HTTP 503).</summary>
    Stopped,
}

/// <summary>
/// The answer to a request submitted with <see cref="InferenceWorker.TryClassify(ReadOnlyMemory{byte}, string, string, out Task{InferenceResult})"/>:
/// the outcome, the verdict JSON line exactly as the sinks saw it, and a private copy of the verdict.
/// </summary>
public sealed record InferenceResult(InferenceOutcome Outcome, string? Error, byte[]? Json, Verdict? Verdict)
{
    public bool Ok => Outcome == InferenceOutcome.Classified;
    /// <summary>The model's logits, when the submitter asked for them (Open Inference Protocol).</summary>
    public float[]? Logits { get; init; }
}

/// <summary>
/// One unit of work for the inference thread: an encoded image (HTTP body, MQTT payload...) or a captured frame.
/// The submitter keeps the input alive until the job completes; the worker calls <see cref="ReleaseInput"/> once
/// it no longer reads it (a camera frame goes back to its pool before the sinks run).
/// </summary>
internal abstract class InferenceJob
{
    public ReadOnlyMemory<byte> Encoded;
    /// <summary>An already preprocessed CHW tensor (Open Inference Protocol FP32 input) instead of an image.</summary>
    public ReadOnlyMemory<float> Tensor;
    /// <summary>Copy the logits into <see cref="Logits"/> (the worker does it on its thread).</summary>
    public bool WantLogits;
    public float[]? Logits;
    public Frame? Frame;
    public Action<Frame>? Release;
    public string Source = "";
    public string Origin = "";
    public long Sequence;

    public void ReleaseInput()
    {
        if (Frame is { } f && Release is { } release)
        {
            Frame = null;
            release(f);
        }
    }

    /// <summary>Called once on the inference thread; json and verdict are only valid during the call.</summary>
    public abstract void Complete(InferenceOutcome outcome, string? error, ReadOnlySpan<byte> json, Verdict verdict);
}

/// <summary>A one-off job (HTTP and other request sources): completes a task with a copy of the result.</summary>
internal sealed class RequestJob : InferenceJob
{
    private readonly TaskCompletionSource<InferenceResult> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public Task<InferenceResult> Task => _done.Task;

    public override void Complete(InferenceOutcome outcome, string? error, ReadOnlySpan<byte> json, Verdict verdict) =>
        _done.TrySetResult(outcome == InferenceOutcome.Classified
            ? new InferenceResult(outcome, null, json.ToArray(), verdict.Clone()) { Logits = Logits }
            : new InferenceResult(outcome, error, null, null));
}

/// <summary>
/// The frame loop's reusable job: one instance for the loop's lifetime, awaited as a ValueTask, so a camera frame
/// costs no allocation on its way through the queue.
/// </summary>
internal sealed class ReusableFrameJob : InferenceJob, IValueTaskSource<InferenceOutcome>
{
    private ManualResetValueTaskSourceCore<InferenceOutcome> _core = new() { RunContinuationsAsynchronously = true };
    public string? Error { get; private set; }

    public ValueTask<InferenceOutcome> Prepare(Frame frame, Action<Frame> release, string source)
    {
        _core.Reset();
        Frame = frame;
        Release = release;
        Source = source;
        Origin = frame.Origin;
        Sequence = frame.Sequence;
        Encoded = default;
        Error = null;
        return new ValueTask<InferenceOutcome>(this, _core.Version);
    }

    public override void Complete(InferenceOutcome outcome, string? error, ReadOnlySpan<byte> json, Verdict verdict)
    {
        Error = error;
        _core.SetResult(outcome);
    }

    public InferenceOutcome GetResult(short token) => _core.GetResult(token);
    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);
    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
