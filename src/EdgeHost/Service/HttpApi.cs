using System.Buffers;
using System.Globalization;
using System.Text.Json;
using EdgeViT.Imaging;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EdgeViT.Host.Service;

/// <summary>
/// The HTTP API on Kestrel (loopback by default). Every response is JSON; every failure is
/// <c>{"error": "...one line..."}</c> with a 4xx/5xx status, never an unhandled exception.
/// <list type="bullet">
/// <item>GET /healthz — 200 while the process serves requests.</item>
/// <item>GET /readyz — 200 when the model is loaded and the source open (or not needed), else 503 with reasons.</item>
/// <item>GET /v1/status — counters, source, trigger, active budget and set, uptime.</item>
/// <item>POST /v1/classify — body: a JPEG/PNG image -> verdict. Empty body with Trigger:Mode http: a frame from the
/// source. 400 for a body that is not an image, 413 over Http:MaxBodyBytes, 503 before the model is loaded.</item>
/// <item>GET /v1/budget — the budget settings, active set and the sets to choose from.</item>
/// <item>PUT /v1/budget — JSON {"mode":"flops|latency|fixed","target":0.7,"target_gflops":..,"target_p95_ms":..,
/// "hysteresis":..,"min_dwell_ms":..,"min_dwell_up_ms":..,"window_ms":..}; omitted fields keep their value.
/// 400 for an invalid body, 409 without a thresholds file.</item>
/// </list>
/// </summary>
public static class HttpApi
{
    private static readonly JsonWriterOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", (HttpContext ctx) => WriteJson(ctx, 200, w => { w.WriteString("status", "ok"); }));
        app.MapGet("/readyz", Ready);
        app.MapGet("/v1/status", Status);
        app.MapPost("/v1/classify", Classify);
        app.MapGet("/v1/budget", (HttpContext ctx) =>
        {
            var rt = ctx.RequestServices.GetRequiredService<ServiceRuntime>();
            if (rt.Budget is not { } budget) return Error(ctx, 503, "model not loaded yet");
            return WriteJson(ctx, 200, w => WriteBudget(w, budget));
        });
        app.MapPut("/v1/budget", PutBudget);
    }

    private static Task Ready(HttpContext ctx)
    {
        var s = ctx.RequestServices.GetRequiredService<ServiceRuntime>().Status;
        return WriteJson(ctx, s.Ready ? 200 : 503, w =>
        {
            w.WriteBoolean("ready", s.Ready);
            w.WriteBoolean("model_loaded", s.ModelLoaded);
            w.WriteBoolean("source_open", s.SourceOpen || s.SourceNotNeeded);
            if (s.SourceEnded) w.WriteBoolean("source_ended", true);
            if (s.SourceError is { } e && !s.SourceOpen) w.WriteString("source_error", e);
        });
    }

    private static Task Status(HttpContext ctx)
    {
        var rt = ctx.RequestServices.GetRequiredService<ServiceRuntime>();
        var s = rt.Status;
        var o = rt.Options;
        return WriteJson(ctx, 200, w =>
        {
            w.WriteString("status", s.Ready ? "running" : "starting");
            w.WriteBoolean("ready", s.Ready);
            w.WriteString("started_at", s.StartedAt);
            w.WriteNumber("uptime_s", Math.Round(s.Uptime.TotalSeconds, 3));
            w.WriteStartObject("model");
            w.WriteString("path", o.Model);
            w.WriteBoolean("loaded", s.ModelLoaded);
            if (rt.Model is { } m) w.WriteString("description", m.Config.Describe());
            if (rt.Classifier is { } c) { w.WriteString("simd", c.Simd); w.WriteNumber("threads", c.Threads); w.WriteString("precision", c.Model.Precision); }
            w.WriteEndObject();
            w.WriteStartObject("source");
            w.WriteString("kind", o.Source.Kind);
            w.WriteString("name", s.SourceName);
            w.WriteBoolean("open", s.SourceOpen);
            w.WriteBoolean("ended", s.SourceEnded);
            if (s.SourceError is { } e) w.WriteString("last_error", e);
            w.WriteEndObject();
            w.WriteStartObject("trigger");
            w.WriteString("mode", o.Trigger.Mode);
            if (o.Trigger.Mode.Equals("interval", StringComparison.OrdinalIgnoreCase)) w.WriteNumber("interval_ms", o.Trigger.IntervalMs);
            w.WriteEndObject();
            w.WriteStartObject("counters");
            w.WriteNumber("captured", s.Captured);
            w.WriteNumber("dropped", s.Dropped);
            w.WriteNumber("classified", s.Classified);
            w.WriteNumber("http_classified", s.HttpClassified);
            w.WriteNumber("errors", s.Errors);
            w.WriteNumber("source_reopens", s.SourceReopens);
            w.WriteEndObject();
            if (rt.Budget is { } budget)
            {
                w.WriteStartObject("budget");
                WriteBudget(w, budget);
                w.WriteEndObject();
            }
            if (rt.Pipeline?.Watchdog is { Enabled: true } wd) w.WriteNumber("watchdog_pings", wd.Pings);
            // Memory, for soak checks (bench/service-soak.sh) and for spotting a leak on a board.
            using var self = System.Diagnostics.Process.GetCurrentProcess();
            var gc = GC.GetGCMemoryInfo();
            w.WriteStartObject("process");
            w.WriteNumber("rss_bytes", self.WorkingSet64);
            w.WriteNumber("managed_heap_bytes", gc.HeapSizeBytes);
            w.WriteNumber("managed_live_bytes", GC.GetTotalMemory(false));
            w.WriteNumber("allocated_bytes_total", GC.GetTotalAllocatedBytes(false));
            w.WriteNumber("gc_gen0", GC.CollectionCount(0));
            w.WriteNumber("gc_gen1", GC.CollectionCount(1));
            w.WriteNumber("gc_gen2", GC.CollectionCount(2));
            w.WriteEndObject();
        });
    }

    private static async Task Classify(HttpContext ctx)
    {
        var rt = ctx.RequestServices.GetRequiredService<ServiceRuntime>();
        var log = ctx.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("EdgeViT.Http");
        if (rt.Classifier is not { } classifier || rt.Pipeline is not { } pipeline)
        {
            await Error(ctx, 503, "model not loaded yet");
            return;
        }
        long limit = rt.Options.Http.MaxBodyBytes;
        if (ctx.Request.ContentLength is long declared && declared > limit)
        {
            await HttpFailure(ctx, rt, 413, $"request body of {declared} bytes exceeds Http:MaxBodyBytes ({limit})");
            return;
        }

        byte[] body = ArrayPool<byte>.Shared.Rent((int)Math.Min(limit + 1, ctx.Request.ContentLength is long cl ? cl + 1 : 64 * 1024));
        int length = 0;
        try
        {
            try
            {
                while (true)
                {
                    if (length == body.Length)
                    {
                        if (length > limit) break;
                        var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(limit + 1, (long)body.Length * 2));
                        body.AsSpan(0, length).CopyTo(bigger);
                        ArrayPool<byte>.Shared.Return(body);
                        body = bigger;
                    }
                    int n = await ctx.Request.Body.ReadAsync(body.AsMemory(length, (int)Math.Min(body.Length - length, limit + 1 - length)), ctx.RequestAborted);
                    if (n == 0) break;
                    length += n;
                    if (length > limit) break;
                }
            }
            catch (BadHttpRequestException ex)
            {
                await HttpFailure(ctx, rt, ex.StatusCode, ex.StatusCode == 413 ? $"request body exceeds Http:MaxBodyBytes ({limit})" : ex.Message);
                return;
            }
            if (length > limit)
            {
                await HttpFailure(ctx, rt, 413, $"request body exceeds Http:MaxBodyBytes ({limit})");
                return;
            }

            var verdict = classifier.NewVerdict();
            var writer = new VerdictWriter(rt.Model!.Synsets);
            if (length == 0)
            {
                if (pipeline.Mode != "http" || pipeline.Source is null)
                {
                    await HttpFailure(ctx, rt, 400, "request body is empty: POST an image (JPEG/PNG)" +
                        (pipeline.Source is null ? "" : "; frames from the source are classified by the " + pipeline.Mode + " trigger"));
                    return;
                }
                var frame = await pipeline.NextFrameAsync(TimeSpan.FromSeconds(10), ctx.RequestAborted);
                if (frame is not { } captured)
                {
                    await HttpFailure(ctx, rt, 503, $"no frame from source {rt.Status.SourceName} within 10 s");
                    return;
                }
                if (!await pipeline.ProcessAsync(captured, verdict, writer))
                {
                    await HttpFailure(ctx, rt, 422, "the captured frame could not be classified (see the service log)");
                    return;
                }
            }
            else
            {
                long sequence = rt.Status.OnHttpClassified();
                var previous = System.Diagnostics.Activity.Current;
                System.Diagnostics.Activity.Current = null;
                using (var root = ServiceInstruments.ActivitySource.StartActivity(EdgeVitMetrics.ClassifySpan))
                {
                    await classifier.Gate.WaitAsync(ctx.RequestAborted);
                    try { classifier.Classify(body.AsSpan(0, length), "request body", "http", sequence, verdict); }
                    catch (ImageDecodeException ex)
                    {
                        root?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, ex.Message);
                        rt.Status.OnError();
                        rt.Metrics.Error(EdgeVitMetrics.ErrorKinds.Decode);
                        await Error(ctx, 400, ex.Message);
                        return;
                    }
                    finally { classifier.Gate.Release(); }
                }
                System.Diagnostics.Activity.Current = previous;
                rt.Status.OnClassified();
                pipeline.Emit(verdict, writer);
            }
            var json = writer.Write(verdict);
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "application/json";
            await ctx.Response.Body.WriteAsync(json, ctx.RequestAborted);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { /* client went away */ }
        catch (Exception ex)
        {
            log.LogError(ex, "POST /v1/classify failed");
            if (!ctx.Response.HasStarted) await HttpFailure(ctx, rt, 500, $"{ex.GetType().Name}: {ex.Message}");
        }
        finally { ArrayPool<byte>.Shared.Return(body); }
    }

    private static async Task PutBudget(HttpContext ctx)
    {
        var rt = ctx.RequestServices.GetRequiredService<ServiceRuntime>();
        if (rt.Budget is not { } budget) { await Error(ctx, 503, "model not loaded yet"); return; }
        if (!budget.Enabled)
        {
            await Error(ctx, 409, "no Thresholds file configured: the model runs dense and the budget cannot change");
            return;
        }
        BudgetSettings next;
        try
        {
            long limit = Math.Min(rt.Options.Http.MaxBodyBytes, 64 * 1024);
            if (ctx.Request.ContentLength > limit) { await Error(ctx, 413, $"budget body exceeds {limit} bytes"); return; }
            using var doc = await JsonDocument.ParseAsync(ctx.Request.Body, default, ctx.RequestAborted);
            next = ParseBudget(doc.RootElement, budget.Settings);
        }
        catch (JsonException ex) { await Error(ctx, 400, $"budget body is not valid JSON: {ex.Message.Split('\n')[0]}"); return; }
        catch (BadHttpRequestException ex) { await Error(ctx, ex.StatusCode, ex.Message); return; }
        catch (ArgumentException ex) { await Error(ctx, 400, ex.Message); return; }
        try { budget.Apply(next); }
        catch (ArgumentException ex) { await Error(ctx, 400, ex.Message); return; }
        await WriteJson(ctx, 200, w => WriteBudget(w, budget));
    }

    /// <summary>Applies a PUT body to the current settings; ArgumentException names the bad field.</summary>
    public static BudgetSettings ParseBudget(JsonElement body, BudgetSettings current)
    {
        if (body.ValueKind != JsonValueKind.Object) throw new ArgumentException($"budget body must be a JSON object (got {body.ValueKind.ToString().ToLowerInvariant()})");
        var s = current;
        bool targetGiven = false, gflopsGiven = false;
        foreach (var p in body.EnumerateObject())
        {
            string key = p.Name.Replace("_", "").ToLowerInvariant();
            switch (key)
            {
                case "mode":
                    if (p.Value.ValueKind != JsonValueKind.String) throw new ArgumentException("mode must be a string: flops|latency|fixed");
                    s = s with { Mode = BudgetSettings.ParseMode(p.Value.GetString()!) };
                    break;
                case "target": s = s with { Target = Number(p) }; targetGiven = true; break;
                case "targetgflops":
                    s = s with { TargetGFlops = p.Value.ValueKind == JsonValueKind.Null ? null : Number(p) };
                    gflopsGiven = true;
                    break;
                case "targetp95ms": s = s with { TargetP95Ms = Number(p) }; break;
                case "hysteresis":
                    double h = Number(p);
                    if (!(h >= 0 && h <= 0.9)) throw new ArgumentException($"hysteresis must be in [0, 0.9] (got {F(h)})");
                    s = s with { Hysteresis = h };
                    break;
                case "mindwellms": s = s with { MinDwellMs = Int(p, 0) }; break;
                case "mindwellupms": s = s with { MinDwellUpMs = Int(p, 0) }; break;
                case "windowms": s = s with { WindowMs = Int(p, 100) }; break;
                case "minsamples": s = s with { MinSamples = Int(p, 1) }; break;
                case "flopswindow": s = s with { FlopsWindow = Int(p, 1) }; break;
                default: throw new ArgumentException($"unknown budget field '{p.Name}' (mode, target, target_gflops, target_p95_ms, hysteresis, min_dwell_ms, min_dwell_up_ms, window_ms, min_samples, flops_window)");
            }
        }
        if (targetGiven && !gflopsGiven) s = s with { TargetGFlops = null }; // a new fraction replaces an old absolute target
        return s;

        static double Number(JsonProperty p)
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetDouble(out double v) || !double.IsFinite(v))
                throw new ArgumentException($"{p.Name} must be a number (got {p.Value.GetRawText()})");
            return v;
        }
        static int Int(JsonProperty p, int min)
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int v) || v < min)
                throw new ArgumentException($"{p.Name} must be an integer >= {min} (got {p.Value.GetRawText()})");
            return v;
        }
    }

    private static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);

    public static void WriteBudget(Utf8JsonWriter w, BudgetController b)
    {
        var s = b.Settings;
        w.WriteBoolean("enabled", b.Enabled);
        w.WriteString("mode", s.ModeName);
        w.WriteNumber("target", s.Target);
        if (s.TargetGFlops is double g) w.WriteNumber("target_gflops", g); else w.WriteNull("target_gflops");
        w.WriteNumber("target_p95_ms", s.TargetP95Ms);
        w.WriteNumber("hysteresis", s.Hysteresis);
        w.WriteNumber("window_ms", s.WindowMs);
        w.WriteNumber("min_samples", s.MinSamples);
        w.WriteNumber("min_dwell_ms", s.MinDwellMs);
        w.WriteNumber("min_dwell_up_ms", s.MinDwellUpMs);
        w.WriteNumber("flops_window", s.FlopsWindow);
        w.WriteStartObject("active_set");
        WriteSet(w, b.Current);
        w.WriteEndObject();
        w.WriteNumber("switches", b.Switches);
        w.WriteString("last_reason", b.LastReason);
        if (double.IsFinite(b.LastP95Ms)) w.WriteNumber("p95_ms", Math.Round(b.LastP95Ms, 3));
        if (double.IsFinite(b.MeanGFlops)) w.WriteNumber("mean_gflops", Math.Round(b.MeanGFlops, 6));
        w.WriteNumber("dense_gflops", Math.Round(b.Catalog.DenseGFlops, 6));
        w.WriteStartArray("sets");
        foreach (var set in b.Catalog.Sets)
        {
            w.WriteStartObject();
            WriteSet(w, set);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    private static void WriteSet(Utf8JsonWriter w, ActiveSet set)
    {
        w.WriteNumber("index", set.Index);
        w.WriteNumber("budget", Math.Round(set.Budget, 6));
        w.WriteNumber("gflops", Math.Round(set.GFlops, 6));
        w.WriteBoolean("dense", set.IsDense);
    }

    private static Task HttpFailure(HttpContext ctx, ServiceRuntime rt, int status, string message)
    {
        rt.Status.OnError();
        rt.Metrics.Error(EdgeVitMetrics.ErrorKinds.Http);
        return Error(ctx, status, message);
    }

    public static Task Error(HttpContext ctx, int status, string message) =>
        WriteJson(ctx, status, w => w.WriteString("error", message.ReplaceLineEndings(" ")));

    private static async Task WriteJson(HttpContext ctx, int status, Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer, Compact))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        if (status == 413) ctx.Response.Headers.Connection = "close"; // the rest of an oversized body is not read
        await ctx.Response.Body.WriteAsync(buffer.WrittenMemory, ctx.RequestAborted);
    }
}
