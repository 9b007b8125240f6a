using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using EdgeViT.Capture;
using EdgeViT.Host.Service;
using EdgeViT.Tests.Cli;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EdgeViT.Tests.Service;

/// <summary>The HTTP API against the real host (DeiT-Tiny, Kestrel on 127.0.0.1, Trigger:Mode http).</summary>
[Collection(ServiceHostCollection.Name)]
public class HttpApiTests
{
    private static Dictionary<string, string?> HttpOnly(long maxBody = 8 << 20)
    {
        var c = TestService.BaseConfig();
        c["Source:Kind"] = "none";
        c["Trigger:Mode"] = "http";
        c["Http:MaxBodyBytes"] = maxBody.ToString();
        return c;
    }

    private static ByteArrayContent Body(byte[] bytes, string type = "image/jpeg")
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue(type);
        return content;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Json)> Send(HttpClient http, HttpMethod method, string path, HttpContent? content = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        using var response = await http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>Precision=int8 with weights from 'edgevit quantize': the service classifies a photo right and says it runs int8.</summary>
    [Fact(Timeout = 180_000)]
    public async Task AnInt8ServiceClassifies()
    {
        using var tmp = new TempDir();
        string q = tmp.File("deit.int8");
        Assert.Equal(0, CliHarness.Run("quantize", "--model", SharedAssets.ModelSafetensors, "--out", q).ExitCode);
        var config = HttpOnly();
        config["Precision"] = "int8";
        config["Quantized"] = q;
        await using var service = await TestService.StartAsync(config);
        var image = SharedAssets.Images()[0];
        var (status, json) = await Send(service.Http, HttpMethod.Post, "/v1/classify", Body(File.ReadAllBytes(image)));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.StartsWith(json.GetProperty("top")[0].GetProperty("synset").GetString()!, Path.GetFileName(image));
        (status, json) = await Send(service.Http, HttpMethod.Get, "/v1/status");
        Assert.Equal("int8", json.GetProperty("model").GetProperty("precision").GetString());
    }

    [Fact(Timeout = 120_000)]
    public async Task HealthAndReadinessAnswer()
    {
        await using var service = await TestService.StartAsync(HttpOnly());
        var (status, json) = await Send(service.Http, HttpMethod.Get, "/healthz");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ok", json.GetProperty("status").GetString());
        (status, json) = await Send(service.Http, HttpMethod.Get, "/readyz");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(json.GetProperty("ready").GetBoolean());
        Assert.True(json.GetProperty("model_loaded").GetBoolean());
        (status, json) = await Send(service.Http, HttpMethod.Get, "/v1/status");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("running", json.GetProperty("status").GetString());
        Assert.Equal("http", json.GetProperty("trigger").GetProperty("mode").GetString());
        Assert.True(json.GetProperty("uptime_s").GetDouble() >= 0);
        Assert.False(json.GetProperty("budget").GetProperty("enabled").GetBoolean());
    }

    [Fact(Timeout = 180_000)]
    public async Task CorruptImagesAre400WithAClearErrorAndTheServiceStaysUp()
    {
        await using var service = await TestService.StartAsync(HttpOnly());
        var http = service.Http;
        var image = SharedAssets.Images()[0];
        byte[] jpeg = File.ReadAllBytes(image);

        var (status, json) = await Send(http, HttpMethod.Post, "/v1/classify", Body(new Random(1).GetItems<byte>(Enumerable.Range(0, 256).Select(i => (byte)i).ToArray(), 5000)));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("not a decodable image", json.GetProperty("error").GetString());

        (status, json) = await Send(http, HttpMethod.Post, "/v1/classify", Body(jpeg[..(jpeg.Length / 2)]));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("truncated or corrupt", json.GetProperty("error").GetString());

        (status, json) = await Send(http, HttpMethod.Post, "/v1/classify", Body(Encoding.UTF8.GetBytes("{\"hello\": 1}"), "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("request body", json.GetProperty("error").GetString());

        (status, json) = await Send(http, HttpMethod.Post, "/v1/classify", Body([]));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("empty", json.GetProperty("error").GetString());

        // Still up: the next valid image is classified, correctly.
        (status, json) = await Send(http, HttpMethod.Post, "/v1/classify", Body(jpeg));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.StartsWith(json.GetProperty("top")[0].GetProperty("synset").GetString()!, Path.GetFileName(image));
        Assert.Equal("http", json.GetProperty("source").GetString());
        Assert.Equal(12, json.GetProperty("tokens_kept").GetArrayLength());

        (status, json) = await Send(http, HttpMethod.Get, "/v1/status");
        var counters = json.GetProperty("counters");
        Assert.Equal(1, counters.GetProperty("classified").GetInt64());
        Assert.Equal(4, counters.GetProperty("errors").GetInt64());
        Assert.Equal(HttpStatusCode.OK, (await Send(http, HttpMethod.Get, "/healthz")).Status);
    }

    [Fact(Timeout = 180_000)]
    public async Task BodiesOverTheLimitAre413()
    {
        string small = ServiceFiles.SmallestImage();
        byte[] jpeg = File.ReadAllBytes(small);
        long limit = jpeg.Length + 1024;
        await using var service = await TestService.StartAsync(HttpOnly(limit));
        var big = new byte[limit * 3];
        new Random(2).NextBytes(big);

        // With Content-Length: refused before reading.
        var (status, json) = await Send(service.Http, HttpMethod.Post, "/v1/classify", Body(big));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("Http:MaxBodyBytes", json.GetProperty("error").GetString());

        // Chunked (no Content-Length): refused once the limit is crossed.
        var chunked = new StreamContent(new MemoryStream(big));
        chunked.Headers.ContentType = new MediaTypeHeaderValue("image/jpeg");
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/classify") { Content = chunked })
        {
            request.Headers.TransferEncodingChunked = true;
            using var response = await service.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        }

        // An image under the limit still works.
        using var fresh = new HttpClient { BaseAddress = service.BaseAddress };
        (status, json) = await Send(fresh, HttpMethod.Post, "/v1/classify", Body(jpeg));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(5, json.GetProperty("top").GetArrayLength());
    }

    [Fact(Timeout = 180_000)]
    public async Task BudgetCanBeReadAndChangedAndInvalidChangesAre400()
    {
        using var tmp = new TempDir();
        var config = HttpOnly();
        config["Thresholds"] = ServiceFiles.WriteThresholds(tmp.File("thresholds.json"));
        config["Budget:Mode"] = "fixed";
        config["Budget:Target"] = "1.0";
        await using var service = await TestService.StartAsync(config);
        var http = service.Http;

        var (status, json) = await Send(http, HttpMethod.Get, "/v1/budget");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(json.GetProperty("enabled").GetBoolean());
        Assert.Equal(new[] { 0.6, 0.8, 1.0 }, json.GetProperty("sets").EnumerateArray().Select(s => s.GetProperty("budget").GetDouble()));
        Assert.True(json.GetProperty("active_set").GetProperty("dense").GetBoolean());

        (status, json) = await Send(http, HttpMethod.Put, "/v1/budget", JsonContent.Create(new { mode = "fixed", target = 0.65 }));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(0.6, json.GetProperty("active_set").GetProperty("budget").GetDouble());

        // The next frame runs pruned with the new set.
        (status, json) = await Send(http, HttpMethod.Post, "/v1/classify", Body(File.ReadAllBytes(SharedAssets.Images()[0])));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(0.6, json.GetProperty("threshold_set").GetProperty("budget").GetDouble());
        Assert.True(json.GetProperty("gflops").GetDouble() < 1.2, $"pruned frame cost {json.GetProperty("gflops")} GFLOPs");
        Assert.Contains(json.GetProperty("tokens_kept").EnumerateArray(), t => t.GetInt32() < 197);

        async Task Rejected(HttpContent body, string mention)
        {
            var (s, j) = await Send(http, HttpMethod.Put, "/v1/budget", body);
            Assert.Equal(HttpStatusCode.BadRequest, s);
            Assert.Contains(mention, j.GetProperty("error").GetString());
        }
        await Rejected(JsonContent.Create(new { mode = "sometimes" }), "mode must be one of flops|latency|fixed");
        await Rejected(JsonContent.Create(new { target = -1 }), "target must be > 0 (got -1)");
        await Rejected(JsonContent.Create(new { flops_window = 100_000_000 }), "flops_window must be <= 10000 (got 100000000)"); // it sizes a buffer
        await Rejected(JsonContent.Create(new { target = 0.1 }), "below the lowest calibrated budget 0.6");
        await Rejected(JsonContent.Create(new { mode = "latency", target_p95_ms = 0 }), "target_p95_ms must be > 0 (got 0)");
        await Rejected(JsonContent.Create(new { target = "high" }), "target must be a number");
        await Rejected(JsonContent.Create(new { colour = "blue" }), "unknown budget field 'colour'");
        await Rejected(new StringContent("not json", Encoding.UTF8, "application/json"), "not valid JSON");
        await Rejected(JsonContent.Create(new[] { 1, 2 }), "must be a JSON object");

        // Rejections changed nothing.
        (status, json) = await Send(http, HttpMethod.Get, "/v1/budget");
        Assert.Equal("fixed", json.GetProperty("mode").GetString());
        Assert.Equal(0.6, json.GetProperty("active_set").GetProperty("budget").GetDouble());

        // A latency budget is accepted and reported.
        (status, json) = await Send(http, HttpMethod.Put, "/v1/budget", JsonContent.Create(new { mode = "latency", target_p95_ms = 5000 }));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("latency", json.GetProperty("mode").GetString());
        Assert.Equal(5000, json.GetProperty("target_p95_ms").GetDouble());
    }

    [Fact(Timeout = 120_000)]
    public async Task WithoutThresholdsBudgetChangesAre409()
    {
        await using var service = await TestService.StartAsync(HttpOnly());
        var (status, json) = await Send(service.Http, HttpMethod.Put, "/v1/budget", JsonContent.Create(new { mode = "fixed", target = 0.5 }));
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Contains("no Thresholds file", json.GetProperty("error").GetString());
    }

    /// <summary>A source that opens but then loses its device on the first frame.</summary>
    private sealed class LostSource : IFrameSource
    {
        public string Name => "test:lost-camera";
        public ValueTask OpenAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;
        public ValueTask<Frame?> NextAsync(CancellationToken cancellationToken) => throw new FrameSourceException("test camera unplugged");
        public void Release(Frame frame) { }
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private sealed class LostSourceFactory : FrameSourceFactory
    {
        public override IFrameSource? Create(SourceOptions o) => new LostSource();
    }

    [Fact(Timeout = 120_000)]
    public async Task ReadinessIs503WhileTheSourceIsLost()
    {
        var config = TestService.BaseConfig();
        config["Source:Kind"] = "synthetic";
        config["Source:ReopenDelayMs"] = "600000";
        long sourceErrors = 0;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == EdgeVitMetrics.MeterName && i.Name == EdgeVitMetrics.Errors) l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((_, v, tags, _) =>
        {
            foreach (var t in tags) if (t.Key == EdgeVitMetrics.KindAttribute && (string?)t.Value == EdgeVitMetrics.ErrorKinds.Source) Interlocked.Add(ref sourceErrors, v);
        });
        listener.Start();
        await using var service = await TestService.StartAsync(config, s => s.AddSingleton<FrameSourceFactory>(new LostSourceFactory()));
        await TestService.WaitUntil(() => !service.Status.SourceOpen, TimeSpan.FromSeconds(30), "the source failure");
        await TestService.WaitUntil(() => Interlocked.Read(ref sourceErrors) == 1, TimeSpan.FromSeconds(10), "edgevit.errors{kind=source}");
        var (status, json) = await Send(service.Http, HttpMethod.Get, "/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.False(json.GetProperty("ready").GetBoolean());
        Assert.Contains("test camera unplugged", json.GetProperty("source_error").GetString());
        Assert.Equal(HttpStatusCode.OK, (await Send(service.Http, HttpMethod.Get, "/healthz")).Status); // alive, not ready
        (status, json) = await Send(service.Http, HttpMethod.Get, "/v1/status");
        Assert.Equal(1, json.GetProperty("counters").GetProperty("errors").GetInt64());
        Assert.False(json.GetProperty("source").GetProperty("open").GetBoolean());
        Assert.Contains("test camera unplugged", json.GetProperty("source").GetProperty("last_error").GetString());
    }

    [Fact(Timeout = 120_000)]
    public async Task PrometheusScrapeEndpointServesTheMetrics()
    {
        var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var config = HttpOnly();
        config["Telemetry:Prometheus"] = "true";
        config["Telemetry:PrometheusPort"] = port.ToString();
        await using var service = await TestService.StartAsync(config);
        Assert.Equal(HttpStatusCode.OK, (await Send(service.Http, HttpMethod.Post, "/v1/classify", Body(File.ReadAllBytes(SharedAssets.Images()[0])))).Status);

        using var scraper = new HttpClient();
        string text = await scraper.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        // The names dashboards query (Prometheus renders dots as underscores and appends units and _total).
        Assert.Contains("edgevit_frames_classified_total{otel_scope_name=\"EdgeViT\"} 1", text);
        Assert.Contains("edgevit_stage_duration_milliseconds_count{otel_scope_name=\"EdgeViT\",stage=\"infer\"} 1", text);
        Assert.Contains("edgevit_frame_gflops_count{otel_scope_name=\"EdgeViT\"} 1", text);
        Assert.Contains("edgevit_tokens_kept_count{otel_scope_name=\"EdgeViT\",block=\"11\"} 1", text);
        Assert.Contains("edgevit_threshold_set_budget{otel_scope_name=\"EdgeViT\"} 1", text);
    }
}
