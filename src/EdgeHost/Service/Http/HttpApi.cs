using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using EdgeViT.Host.Service.Inference;

namespace EdgeViT.Host.Service;

/// <summary>
/// The HTTP API on Kestrel (loopback by default; anything else needs Http:ApiKey, see <see cref="ApiKeyAuth"/>).
/// Every response is JSON; every failure is <c>{"error": "...one line..."}</c>, never an unhandled exception.
/// <list type="bullet">
/// <item>GET /healthz — 200 while the process serves requests (no key needed).</item>
/// <item>GET /readyz — 200 when the model is loaded and the source open (or in standby, or not needed), else 503 with reasons.</item>
/// <item>GET /v1/status — counters, source, trigger, active budget and set, process memory, uptime.</item>
/// <item>POST /v1/classify — <see cref="ClassifyEndpoint"/>.</item>
/// <item>GET|PUT /v1/budget — <see cref="BudgetEndpoints"/>.</item>
/// </list>
/// </summary>
public static class HttpApi
{
    public static void Map(WebApplication app)
    {
        if (ApiKeyAuth.For(app.Services.GetRequiredService<EdgeVitOptions>().Http) is { } auth) app.Use(auth.InvokeAsync);
        app.MapGet("/healthz", (HttpContext ctx) => HttpJson.Write(ctx, 200, w => w.WriteString("status", "ok")));
        app.MapGet("/readyz", Ready);
        app.MapGet("/v1/status", Status);
        app.MapPost("/v1/classify", ClassifyEndpoint.Handle);
        app.MapGet("/v1/budget", BudgetEndpoints.Get);
        app.MapPut("/v1/budget", BudgetEndpoints.Put);
    }

    private static Task Ready(HttpContext ctx)
    {
        var s = ctx.RequestServices.GetRequiredService<ServiceStatus>();
        return HttpJson.Write(ctx, s.Ready ? 200 : 503, w =>
        {
            w.WriteBoolean("ready", s.Ready);
            w.WriteBoolean("model_loaded", s.ModelLoaded);
            w.WriteBoolean("source_open", s.SourceOpen || s.SourceNotNeeded);
            if (s.SourceEnded) w.WriteBoolean("source_ended", true);
            if (s.SourceStandby) w.WriteBoolean("source_standby", true);
            if (s.SourceError is { } e && !s.SourceOpen) w.WriteString("source_error", e);
            foreach (var part in ctx.RequestServices.GetServices<IStatusContributor>()) part.WriteReadiness(w);
        });
    }

    private static Task Status(HttpContext ctx)
    {
        var sp = ctx.RequestServices;
        var s = sp.GetRequiredService<ServiceStatus>();
        var o = sp.GetRequiredService<EdgeVitOptions>();
        var worker = sp.GetRequiredService<InferenceWorker>();
        var budget = sp.GetRequiredService<BudgetController>();
        var watchdog = sp.GetRequiredService<SystemdWatchdog>();
        return HttpJson.Write(ctx, 200, w =>
        {
            w.WriteString("status", s.Ready ? "running" : "starting");
            w.WriteBoolean("ready", s.Ready);
            w.WriteString("started_at", s.StartedAt);
            w.WriteNumber("uptime_s", Math.Round(s.Uptime.TotalSeconds, 3));
            w.WriteStartObject("model");
            w.WriteString("path", o.Model);
            w.WriteBoolean("loaded", s.ModelLoaded);
            w.WriteString("description", worker.Classifier.Model.Config.Describe());
            w.WriteString("simd", worker.Classifier.Simd);
            w.WriteNumber("threads", worker.Classifier.Threads);
            w.WriteNumber("parallel_stalls", worker.Classifier.ParallelStalls);
            w.WriteString("precision", worker.Classifier.Model.Precision);
            w.WriteEndObject();
            w.WriteStartObject("source");
            w.WriteString("kind", EdgeVitOptionsValidator.Name(o.Source.Kind));
            w.WriteString("name", s.SourceName);
            w.WriteBoolean("open", s.SourceOpen);
            w.WriteBoolean("ended", s.SourceEnded);
            w.WriteBoolean("standby", s.SourceStandby);
            if (s.SourceError is { } e) w.WriteString("last_error", e);
            w.WriteEndObject();
            w.WriteStartObject("trigger");
            w.WriteString("mode", EdgeVitOptionsValidator.Name(o.Trigger.Mode));
            if (sp.GetRequiredService<ITrigger>() is IntervalTrigger interval) w.WriteNumber("interval_ms", interval.Period.TotalMilliseconds);
            w.WriteEndObject();
            w.WriteStartObject("counters");
            w.WriteNumber("captured", s.Captured);
            w.WriteNumber("dropped", s.Dropped);
            w.WriteNumber("classified", s.Classified);
            w.WriteNumber("requests", s.Requests);
            w.WriteNumber("rejected", s.Rejected);
            w.WriteNumber("errors", s.Errors);
            w.WriteNumber("source_reopens", s.SourceReopens);
            w.WriteEndObject();
            w.WriteStartObject("queue");
            w.WriteNumber("length", worker.QueueLength);
            w.WriteNumber("retry_after_s", worker.RetryAfterSeconds);
            w.WriteEndObject();
            w.WriteStartObject("budget");
            BudgetEndpoints.WriteBudget(w, budget);
            w.WriteEndObject();
            if (watchdog.Enabled) w.WriteNumber("watchdog_pings", watchdog.Pings);
            foreach (var part in sp.GetServices<IStatusContributor>()) part.WriteStatus(w);
            // Memory, for soak checks (bench/service-soak.sh, bench/http-load.sh) and for spotting a leak on a board.
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
}
