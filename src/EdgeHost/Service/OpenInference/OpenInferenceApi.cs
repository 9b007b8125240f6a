using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using EdgeViT.Host.Service.Inference;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EdgeViT.Host.Service;

/// <summary>
/// The Open Inference Protocol (KServe v2) REST endpoints, so clients written for Triton, KServe or OpenVINO
/// Model Server can call the service. One model, named by <c>Model:Name</c> (default: the weights file name
/// without extension), version "1".
/// <list type="bullet">
/// <item>GET /v2, /v2/health/live, /v2/health/ready, /v2/models/NAME[/versions/V], /v2/models/NAME[/versions/V]/ready</item>
/// <item>POST /v2/models/NAME[/versions/V]/infer with one input: FP32 [1,3,S,S] (preprocessed and normalised, CHW,
/// row-major) or BYTES [1] holding an encoded image (base64 string in JSON, or raw through the binary tensor data
/// extension: <c>Inference-Header-Content-Length</c>, the input's <c>binary_data_size</c>, 4-byte little-endian
/// length before the element). Output <c>logits</c> FP32 [1, classes] always; with parameter
/// <c>classification: K</c> (on the request or on an output) also <c>classification</c>, BYTES [1, K] of
/// "score:index:label" (Triton's classification extension format). <c>binary_data_output: true</c> (request) or
/// <c>binary_data: true</c> (output) returns the tensors binary.</item>
/// </list>
/// Errors are <c>{"error": "..."}</c>: 400 for a malformed request (naming what is wrong), 404 for an unknown model
/// or version, 413 over Http:MaxBodyBytes, 503 while the model is not loaded.
/// </summary>
public static class OpenInferenceApi
{
    public const string Version = "1";
    public const string HeaderLength = "Inference-Header-Content-Length";
    public const string FloatInput = "input", ImageInput = "image", LogitsOutput = "logits", ClassificationOutput = "classification";

    /// <summary>The model's protocol name: Model:Name, else the weights file name without extension.</summary>
    public static string ModelName(EdgeVitOptions o) =>
        o.ModelName is { Length: > 0 } n ? n.Trim() : Path.GetFileNameWithoutExtension(o.Model ?? "model");

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/v2", (HttpContext ctx) => Json(ctx, 200, w =>
        {
            w.WriteString("name", "edgevit");
            w.WriteString("version", typeof(OpenInferenceApi).Assembly.GetName().Version?.ToString(3) ?? "0");
            w.WriteStartArray("extensions");
            w.WriteStringValue("binary_tensor_data");
            w.WriteStringValue("classification");
            w.WriteEndArray();
        }));
        app.MapGet("/v2/health/live", (HttpContext ctx) => Json(ctx, 200, w => w.WriteBoolean("live", true)));
        app.MapGet("/v2/health/ready", (HttpContext ctx) =>
        {
            bool ready = ctx.RequestServices.GetRequiredService<ServiceStatus>().ModelLoaded;
            return Json(ctx, ready ? 200 : 503, w => w.WriteBoolean("ready", ready));
        });
        app.MapGet("/v2/models/{name}", (HttpContext ctx, string name) => Metadata(ctx, name, null));
        app.MapGet("/v2/models/{name}/versions/{version}", (HttpContext ctx, string name, string version) => Metadata(ctx, name, version));
        app.MapGet("/v2/models/{name}/ready", (HttpContext ctx, string name) => ModelReady(ctx, name, null));
        app.MapGet("/v2/models/{name}/versions/{version}/ready", (HttpContext ctx, string name, string version) => ModelReady(ctx, name, version));
        app.MapPost("/v2/models/{name}/infer", (HttpContext ctx, string name) => Infer(ctx, name, null));
        app.MapPost("/v2/models/{name}/versions/{version}/infer", (HttpContext ctx, string name, string version) => Infer(ctx, name, version));
    }

    private static string Name(HttpContext ctx) => ModelName(ctx.RequestServices.GetRequiredService<EdgeVitOptions>());

    /// <summary>Null when the model and version are served, else the 404 message.</summary>
    private static string? Unknown(HttpContext ctx, string name, string? version)
    {
        string served = Name(ctx);
        if (!string.Equals(name, served, StringComparison.Ordinal)) return $"unknown model '{name}' (this server serves '{served}')";
        if (version is not null && version != Version) return $"unknown version '{version}' of model '{name}' (versions: {Version})";
        return null;
    }

    private static Task Metadata(HttpContext ctx, string name, string? version)
    {
        if (Unknown(ctx, name, version) is { } problem) return Error(ctx, 404, problem);
        var c = ctx.RequestServices.GetRequiredService<LoadedModel>().Config;
        return Json(ctx, 200, w =>
        {
            w.WriteString("name", name);
            w.WriteStartArray("versions");
            w.WriteStringValue(Version);
            w.WriteEndArray();
            w.WriteString("platform", "edgevit");
            w.WriteStartArray("inputs");
            Tensor(w, FloatInput, "FP32", [1, c.InChannels, c.ImageSize, c.ImageSize]);
            Tensor(w, ImageInput, "BYTES", [1]);
            w.WriteEndArray();
            w.WriteStartArray("outputs");
            Tensor(w, LogitsOutput, "FP32", [1, c.Classes]);
            Tensor(w, ClassificationOutput, "BYTES", [1, -1]);
            w.WriteEndArray();
            w.WriteStartObject("parameters");
            w.WriteString("description", c.Describe());
            w.WriteString("inputs", $"send one: '{FloatInput}' (normalised CHW float tensor) or '{ImageInput}' (an encoded JPEG/PNG)");
            w.WriteEndObject();
        });

        static void Tensor(Utf8JsonWriter w, string name, string type, long[] shape)
        {
            w.WriteStartObject();
            w.WriteString("name", name);
            w.WriteString("datatype", type);
            w.WriteStartArray("shape");
            foreach (var d in shape) w.WriteNumberValue(d);
            w.WriteEndArray();
            w.WriteEndObject();
        }
    }

    private static Task ModelReady(HttpContext ctx, string name, string? version)
    {
        if (Unknown(ctx, name, version) is { } problem) return Error(ctx, 404, problem);
        bool ready = ctx.RequestServices.GetRequiredService<ServiceStatus>().ModelLoaded;
        return Json(ctx, ready ? 200 : 503, w =>
        {
            w.WriteString("name", name);
            w.WriteBoolean("ready", ready);
        });
    }

    /// <summary>A request problem the client can fix: 400 with this message.</summary>
    public sealed class BadRequest(string message, int status = 400) : Exception(message)
    {
        public int Status { get; } = status;
    }

    private static async Task Infer(HttpContext ctx, string name, string? version)
    {
        var sp = ctx.RequestServices;
        if (Unknown(ctx, name, version) is { } unknown) { await Error(ctx, 404, unknown); return; }
        var worker = sp.GetRequiredService<InferenceWorker>();
        var model = sp.GetRequiredService<LoadedModel>();
        var status = sp.GetRequiredService<ServiceStatus>();
        var metrics = sp.GetRequiredService<ServiceInstruments>();
        long limit = sp.GetRequiredService<EdgeVitOptions>().Http.MaxBodyBytes;
        byte[]? rented = null;
        try
        {
            if (ctx.Request.ContentLength > limit) throw new BadRequest($"request body of {ctx.Request.ContentLength} bytes exceeds Http:MaxBodyBytes ({limit})", 413);
            (rented, int length) = await ReadBody(ctx, limit);
            var body = rented.AsMemory(0, length);
            var request = V2InferRequest.Parse(body, ctx.Request.Headers[HeaderLength].ToString(), worker.Classifier.TensorLength, model.Config);

            // Through the one inference owner, like every other request: refused at once when its queue is full.
            string origin = $"v2 infer input '{request.InputName}'";
            bool queued = request.Tensor is { } tensor
                ? worker.TryClassifyTensor(tensor, "v2", origin, out var pending)
                : worker.TryClassifyWithLogits(request.Image, "v2", origin, out pending);
            if (!queued)
            {
                ctx.Response.Headers.RetryAfter = worker.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
                await Error(ctx, 503, $"inference queue full ({worker.QueueLength} waiting): retry after {worker.RetryAfterSeconds} s");
                return;
            }
            var result = await pending; // the body buffer stays rented until here
            switch (result.Outcome)
            {
                case InferenceOutcome.Classified:
                    await V2InferResponse.Write(ctx, name, request, result.Logits!, model.Synsets);
                    break;
                case InferenceOutcome.BadImage: await Error(ctx, 400, $"input '{request.InputName}': {result.Error}"); break;
                case InferenceOutcome.TooLarge: await Error(ctx, 422, $"input '{request.InputName}': {result.Error}"); break;
                case InferenceOutcome.Stopped: await Error(ctx, 503, result.Error ?? "the service is stopping"); break;
                default: await Error(ctx, 500, result.Error ?? "inference failed"); break;
            }
        }
        catch (BadRequest ex)
        {
            status.OnError();
            metrics.Error(EdgeVitMetrics.ErrorKinds.Http);
            await Error(ctx, ex.Status, ex.Message);
        }
        catch (BadHttpRequestException ex)
        {
            await Error(ctx, ex.StatusCode, ex.StatusCode == 413 ? $"request body exceeds Http:MaxBodyBytes ({limit})" : ex.Message);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { }
        catch (Exception ex)
        {
            ctx.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("EdgeViT.OpenInference").LogError(ex, "v2 infer failed");
            if (!ctx.Response.HasStarted) await Error(ctx, 500, $"{ex.GetType().Name}: {ex.Message}");
        }
        finally { if (rented is not null) ArrayPool<byte>.Shared.Return(rented); }
    }

    private static async Task<(byte[] Buffer, int Length)> ReadBody(HttpContext ctx, long limit)
    {
        int initial = (int)Math.Min(limit + 1, ctx.Request.ContentLength is long cl ? cl + 1 : 64 * 1024);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(initial, 1024));
        int length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(limit + 1, (long)buffer.Length * 2));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                int n = await ctx.Request.Body.ReadAsync(buffer.AsMemory(length, (int)Math.Min(buffer.Length - length, limit + 1 - length)), ctx.RequestAborted);
                if (n == 0) break;
                length += n;
                if (length > limit) throw new BadRequest($"request body exceeds Http:MaxBodyBytes ({limit})", 413);
            }
            return (buffer, length);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    internal static Task Error(HttpContext ctx, int status, string message) =>
        Json(ctx, status, w => w.WriteString("error", message.ReplaceLineEndings(" ")));

    internal static async Task Json(HttpContext ctx, int status, Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        if (status == 413) ctx.Response.Headers.Connection = "close";
        await ctx.Response.Body.WriteAsync(buffer.WrittenMemory, ctx.RequestAborted);
    }
}
