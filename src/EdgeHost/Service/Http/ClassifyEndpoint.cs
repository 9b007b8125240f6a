using System.Buffers;
using System.Globalization;
using EdgeViT.Host.Service.Inference;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EdgeViT.Host.Service;

/// <summary>
/// POST /v1/classify: the body (JPEG/PNG...) goes through the <see cref="InferenceWorker"/> like every other input,
/// and the answer is the verdict line the sinks saw. An empty body in Trigger:Mode http classifies a fresh source frame.
/// <list type="bullet">
/// <item>400 not an image, truncated, or empty outside http mode; 413 over Http:MaxBodyBytes;
/// 422 more pixels than Input:MaxPixels (refused from the header, nothing decoded);</item>
/// <item>503 with Retry-After when Input:QueueLength requests already wait (or the service is stopping).</item>
/// </list>
/// </summary>
public static class ClassifyEndpoint
{
    public static async Task Handle(HttpContext ctx)
    {
        var sp = ctx.RequestServices;
        var worker = sp.GetRequiredService<InferenceWorker>();
        var status = sp.GetRequiredService<ServiceStatus>();
        var metrics = sp.GetRequiredService<ServiceInstruments>();
        long limit = sp.GetRequiredService<EdgeVitOptions>().Http.MaxBodyBytes;

        Task Fail(int code, string message)
        {
            status.OnError();
            metrics.Error(EdgeVitMetrics.ErrorKinds.Http);
            return HttpJson.Error(ctx, code, message);
        }

        if (ctx.Request.ContentLength is long declared && declared > limit)
        {
            await Fail(413, $"request body of {declared} bytes exceeds Http:MaxBodyBytes ({limit})");
            return;
        }
        var body = new RefBox(ArrayPool<byte>.Shared.Rent((int)Math.Min(limit + 1, ctx.Request.ContentLength is long cl ? cl + 1 : 64 * 1024)));
        try
        {
            int length;
            try { length = await ReadBody(ctx, limit, body); }
            catch (BadHttpRequestException ex)
            {
                await Fail(ex.StatusCode, ex.StatusCode == 413 ? $"request body exceeds Http:MaxBodyBytes ({limit})" : ex.Message);
                return;
            }
            if (length > limit)
            {
                await Fail(413, $"request body exceeds Http:MaxBodyBytes ({limit})");
                return;
            }

            Task<InferenceResult> pending;
            if (length == 0)
            {
                var sessions = sp.GetRequiredService<SourceSessions>();
                var trigger = sp.GetRequiredService<ITrigger>();
                if (trigger is not OnRequestTrigger || !sessions.HasSource)
                {
                    await Fail(400, "request body is empty: POST an image (JPEG/PNG)" +
                        (!sessions.HasSource ? "" : "; frames from the source are classified by the " + EdgeVitOptionsValidator.Name(sp.GetRequiredService<EdgeVitOptions>().Trigger.Mode) + " trigger"));
                    return;
                }
                CapturedFrame? next;
                try { next = await sessions.NextFrameAsync(TimeSpan.FromSeconds(10), ctx.RequestAborted); }
                catch (EdgeViT.Capture.FrameSourceException ex) // opening the source after standby failed
                {
                    await Fail(503, $"source {status.SourceName} could not be opened: {ex.Message}");
                    return;
                }
                if (next is not { } captured)
                {
                    await Fail(503, $"no frame from source {status.SourceName} within 10 s");
                    return;
                }
                if (!worker.TryClassify(captured.Frame, captured.Session.Release, captured.Session.Name, out pending))
                {
                    await Busy(ctx, worker);
                    return;
                }
            }
            else if (!worker.TryClassify(body.Value.AsMemory(0, length), "http", "request body", out pending))
            {
                await Busy(ctx, worker);
                return;
            }

            var result = await pending; // not cancellable: the worker reads the body until it answers
            switch (result.Outcome)
            {
                case InferenceOutcome.Classified:
                    ctx.Response.StatusCode = 200;
                    ctx.Response.ContentType = "application/json";
                    await ctx.Response.Body.WriteAsync(result.Json, ctx.RequestAborted);
                    break;
                case InferenceOutcome.TooLarge: await HttpJson.Error(ctx, 422, result.Error!); break;
                case InferenceOutcome.BadImage: await HttpJson.Error(ctx, 400, result.Error!); break;
                case InferenceOutcome.Stopped:
                    ctx.Response.Headers.RetryAfter = "5";
                    await HttpJson.Error(ctx, 503, "the service is stopping");
                    break;
                default: await HttpJson.Error(ctx, 500, result.Error ?? "inference failed"); break;
            }
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { /* client went away */ }
        catch (Exception ex)
        {
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("EdgeViT.Http").LogError(ex, "POST /v1/classify failed");
            if (!ctx.Response.HasStarted) await Fail(500, $"{ex.GetType().Name}: {ex.Message}");
        }
        finally { ArrayPool<byte>.Shared.Return(body.Value); }
    }

    private static Task Busy(HttpContext ctx, InferenceWorker worker)
    {
        ctx.Response.Headers.RetryAfter = worker.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        return HttpJson.Error(ctx, 503, $"busy: {worker.QueueLength} requests already wait for the engine (Input:QueueLength); retry later");
    }

    /// <summary>Reads up to limit+1 bytes into a pooled buffer that grows by doubling; returns the length read.</summary>
    private static async Task<int> ReadBody(HttpContext ctx, long limit, RefBox body)
    {
        int length = 0;
        while (true)
        {
            if (length == body.Value.Length)
            {
                if (length > limit) break;
                var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(limit + 1, (long)body.Value.Length * 2));
                body.Value.AsSpan(0, length).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(body.Value);
                body.Value = bigger;
            }
            int n = await ctx.Request.Body.ReadAsync(body.Value.AsMemory(length, (int)Math.Min(body.Value.Length - length, limit + 1 - length)), ctx.RequestAborted);
            if (n == 0) break;
            length += n;
            if (length > limit) break;
        }
        return length;
    }

    private sealed class RefBox(byte[] value) { public byte[] Value = value; }
}
