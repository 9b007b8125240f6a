using System.Globalization;
using System.Reflection;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EdgeViT.Host.Service;

/// <summary>
/// The live page and its feeds (LiveView:Enabled):
/// <list type="bullet">
/// <item>GET / — the page (self-contained HTML, no external resources: the board may be offline).</item>
/// <item>GET /v1/stream.mjpeg — multipart/x-mixed-replace JPEG stream of the kept frames, at most LiveView:Fps.</item>
/// <item>GET /v1/snapshot.jpg — the latest kept frame with its label (503 before the first frame).</item>
/// <item>GET /v1/live — the latest top-1, budget and the p95/budget history the page charts.</item>
/// </list>
/// </summary>
public static class LiveApi
{
    private const string Boundary = "edgevitframe";
    private static readonly Lazy<byte[]> Page = new(() =>
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("EdgeViT.Host.Service.Live.live.html")
                      ?? throw new InvalidOperationException("live.html is not embedded");
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    });

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/", async (HttpContext ctx) =>
        {
            if (!View(ctx).Options.Enabled) { await HttpJson.Error(ctx, 404, "the live page is off (LiveView:Enabled=false)"); return; }
            ctx.Response.ContentType = "text/html; charset=utf-8";
            ctx.Response.Headers.CacheControl = "no-cache";
            await ctx.Response.Body.WriteAsync(Page.Value, ctx.RequestAborted);
        });
        app.MapGet("/v1/snapshot.jpg", async (HttpContext ctx) =>
        {
            var view = View(ctx);
            if (!view.Options.Enabled) { await HttpJson.Error(ctx, 404, "the live page is off (LiveView:Enabled=false)"); return; }
            if (view.Snapshot() is not { } jpeg) { await HttpJson.Error(ctx, 503, "no camera frame yet (Source:Kind none has none)"); return; }
            ctx.Response.ContentType = "image/jpeg";
            ctx.Response.Headers.CacheControl = "no-store";
            await ctx.Response.Body.WriteAsync(jpeg, ctx.RequestAborted);
        });
        app.MapGet("/v1/stream.mjpeg", Stream);
        app.MapGet("/v1/live", Live);
    }

    private static LiveView View(HttpContext ctx) => ctx.RequestServices.GetRequiredService<LiveView>();

    private static async Task Stream(HttpContext ctx)
    {
        var view = View(ctx);
        if (!view.Options.Enabled) { await HttpJson.Error(ctx, 404, "the live page is off (LiveView:Enabled=false)"); return; }
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted,
            ctx.RequestServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping);
        var ct = cts.Token;
        ctx.Response.ContentType = $"multipart/x-mixed-replace; boundary={Boundary}";
        ctx.Response.Headers.CacheControl = "no-store";
        var period = TimeSpan.FromSeconds(1 / view.Options.Fps);
        long sent = -1;
        try
        {
            if (view.Version == 0) await Part(ctx, Imaging.LiveFrameRenderer.Placeholder("waiting for the first camera frame..."), ct);
            using var timer = new PeriodicTimer(period);
            do
            {
                long version = view.Version;
                if (version == sent) continue;
                if (view.Snapshot() is { } jpeg)
                {
                    await Part(ctx, jpeg, ct);
                    sent = version;
                }
            } while (await timer.WaitForNextTickAsync(ct));
        }
        catch (OperationCanceledException) { }
        catch (IOException) { } // viewer went away
    }

    private static async Task Part(HttpContext ctx, byte[] jpeg, CancellationToken ct)
    {
        var head = Encoding.ASCII.GetBytes($"--{Boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {jpeg.Length}\r\n\r\n");
        await ctx.Response.Body.WriteAsync(head, ct);
        await ctx.Response.Body.WriteAsync(jpeg, ct);
        await ctx.Response.Body.WriteAsync("\r\n"u8.ToArray(), ct);
        await ctx.Response.Body.FlushAsync(ct);
    }

    private static Task Live(HttpContext ctx)
    {
        var view = View(ctx);
        var sp = ctx.RequestServices;
        var model = sp.GetRequiredService<LoadedModel>();
        var budget = sp.GetRequiredService<BudgetController>();
        var status = sp.GetRequiredService<ServiceStatus>();
        var (cls, score, verdicts) = view.Latest();
        return HttpJson.Write(ctx, 200, w =>
        {
            w.WriteNumber("verdicts", verdicts);
            w.WriteNumber("frame_version", view.Version);
            if (cls >= 0)
            {
                w.WriteStartObject("top");
                w.WriteNumber("class", cls);
                w.WriteString("label", view.Label(cls));
                if (model.Synsets is { } s && cls < s.Count) w.WriteString("synset", s[cls].Id);
                w.WriteNumber("score", Math.Round(score, 4));
                w.WriteEndObject();
            }
            {
                w.WriteStartObject("budget");
                w.WriteBoolean("enabled", budget.Enabled);
                w.WriteString("mode", budget.Settings.ModeName);
                w.WriteNumber("target", budget.Settings.Target);
                w.WriteNumber("active", Math.Round(budget.Current.Budget, 6));
                w.WriteStartArray("sets");
                foreach (var set in budget.Catalog.Sets) w.WriteNumberValue(Math.Round(set.Budget, 6));
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteNumber("history_seconds", view.Options.HistorySeconds);
            w.WriteStartArray("history");
            foreach (var (ago, p95, b, n) in view.History())
            {
                w.WriteStartObject();
                w.WriteNumber("seconds_ago", ago);
                w.WriteNumber("p95_ms", p95);
                w.WriteNumber("budget", Math.Round(b, 6));
                w.WriteNumber("n", n);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("source", status.SourceName);
            w.WriteString("time", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
        });
    }
}
