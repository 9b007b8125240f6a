using System.Text.Json;
using EdgeViT.Host.Service;
using EdgeViT.Tests.Cli;
using Xunit;
using Xunit.Abstractions;

namespace EdgeViT.Tests.Service;

/// <summary>
/// The real host in-process: DeiT-Tiny, a folder of shared images as the source, verdicts to a file, and OTLP
/// (http/protobuf) to a receiver on loopback. After a graceful stop every verdict must be accounted for in the
/// exported metrics and traces.
/// </summary>
[Collection(ServiceHostCollection.Name)]
public class ServiceIntegrationTests(ITestOutputHelper output)
{
    private const int MinFrames = 6;

    [Fact(Timeout = 240_000)]
    public async Task ClassifiesFolderFramesAndExportsMatchingMetricsAndTracesOverOtlp()
    {
        using var tmp = new TempDir();
        string images = Directory.CreateDirectory(tmp.File("images")).FullName;
        var picked = SharedAssets.Images().Take(4).ToArray();
        foreach (var image in picked) File.Copy(image, Path.Combine(images, Path.GetFileName(image)));
        string verdicts = tmp.File("verdicts.jsonl");

        await using var otlp = OtlpReceiver.Start();
        var config = TestService.BaseConfig();
        config["Source:Kind"] = "folder";
        config["Source:Folder"] = images;
        config["Source:Fps"] = "5";
        config["Source:Loop"] = "true";
        config["Trigger:Mode"] = "continuous";
        config["Results:Sink"] = "file";
        config["Results:Path"] = verdicts;
        config["TopK"] = "3";
        config["Telemetry:Otlp"] = "auto"; // on because an endpoint is configured
        config["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.Endpoint.ToString().TrimEnd('/');
        config["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf";
        config["OTEL_METRIC_EXPORT_INTERVAL"] = "500";
        config["OTEL_BSP_SCHEDULE_DELAY"] = "200";
        config["OTEL_SERVICE_NAME"] = "edgevit-integration";
        config["Logging:LogLevel:EdgeViT.Host.Service.FrameLoop"] = "Information"; // a few log records for the OTel log exporter

        long classified;
        await using (var service = await TestService.StartAsync(config))
        {
            var status = service.Status;
            Assert.True(status.Ready);
            var ready = await service.Http.GetAsync("/readyz");
            Assert.Equal(200, (int)ready.StatusCode);
            await TestService.WaitUntil(() => status.Classified >= MinFrames, TimeSpan.FromSeconds(150), $"{MinFrames} classified frames");
            // A periodic export happened while running (not only the flush at shutdown).
            await TestService.WaitUntil(() => otlp.MetricBatches.Count > 0, TimeSpan.FromSeconds(30), "a periodic metrics export");
            await service.StopAsync(); // as on SIGTERM: the frame in flight finishes, then telemetry is flushed
            classified = status.Classified;
            output.WriteLine($"captured {status.Captured}, dropped {status.Dropped}, classified {classified}, errors {status.Errors}");
            Assert.Equal(0, status.Errors);
            // After a stop the books balance exactly: every captured frame was classified or counted as dropped
            // (a frame still queued at shutdown counts as dropped).
            Assert.Equal(status.Captured, classified + status.Dropped);
        }
        Assert.Empty(otlp.Errors);

        // Every classified frame wrote one verdict line, with the fields a consumer relies on.
        var lines = File.ReadAllLines(verdicts);
        Assert.Equal(classified, lines.Length);
        var names = picked.Select(Path.GetFileName).ToHashSet();
        foreach (var line in lines)
        {
            using var doc = JsonDocument.Parse(line);
            var v = doc.RootElement;
            Assert.StartsWith("folder:", v.GetProperty("source").GetString());
            Assert.Contains(Path.GetFileName(v.GetProperty("origin").GetString()), names);
            Assert.True(v.GetProperty("sequence").GetInt64() >= 1);
            var top = v.GetProperty("top");
            Assert.Equal(3, top.GetArrayLength());
            Assert.StartsWith("n", top[0].GetProperty("synset").GetString());
            Assert.Equal(12, v.GetProperty("tokens_kept").GetArrayLength());
            Assert.InRange(v.GetProperty("gflops").GetDouble(), 1.2, 1.3); // dense DeiT-Tiny
            var latency = v.GetProperty("latency_ms");
            foreach (var stage in EdgeVitMetrics.Stages.All) Assert.True(latency.GetProperty(stage).GetDouble() >= 0, stage);
            Assert.True(v.GetProperty("threshold_set").GetProperty("dense").GetBoolean());
        }
        // The model recognises the shared images: each file's top-1 synset is the one in its name.
        foreach (var line in lines)
        {
            using var doc = JsonDocument.Parse(line);
            string file = Path.GetFileName(doc.RootElement.GetProperty("origin").GetString()!);
            Assert.StartsWith(doc.RootElement.GetProperty("top")[0].GetProperty("synset").GetString()!, file);
        }

        // ---- metrics: names, units, and counts that match the frames classified
        var received = otlp.MetricBatches.SelectMany(b => b).Where(m => m.Scope == EdgeVitMetrics.MeterName).ToList();
        var required = new[]
        {
            EdgeVitMetrics.StageDuration, EdgeVitMetrics.FrameGFlops, EdgeVitMetrics.TokensKept, EdgeVitMetrics.FramesCaptured,
            EdgeVitMetrics.FramesClassified, EdgeVitMetrics.BudgetTarget, EdgeVitMetrics.ThresholdSetBudget,
        };
        foreach (var name in required) Assert.Contains(received, m => m.Name == name);
        foreach (var m in received)
        {
            Assert.True(EdgeVitMetrics.Units.TryGetValue(m.Name, out var unit), $"unexpected metric {m.Name}");
            Assert.Equal(unit, m.Unit);
        }
        Assert.DoesNotContain(received, m => m.Name == EdgeVitMetrics.Errors);

        var classifiedMetric = otlp.Latest(EdgeVitMetrics.FramesClassified)!;
        Assert.Equal("sum", classifiedMetric.Kind);
        Assert.Equal(classified, (long)classifiedMetric.Points.Single().Value);
        Assert.True((long)otlp.Latest(EdgeVitMetrics.FramesCaptured)!.Points.Single().Value >= classified);

        var stages = otlp.Latest(EdgeVitMetrics.StageDuration)!;
        Assert.Equal("histogram", stages.Kind);
        foreach (var stage in EdgeVitMetrics.Stages.All)
        {
            var point = stages.Points.Single(p => p.Attributes[EdgeVitMetrics.StageAttribute] == stage);
            Assert.Equal((ulong)classified, point.Count);
        }
        var inferMs = stages.Points.Single(p => p.Attributes[EdgeVitMetrics.StageAttribute] == "infer").Sum;
        var totalMs = stages.Points.Single(p => p.Attributes[EdgeVitMetrics.StageAttribute] == "total").Sum;
        Assert.True(inferMs > 0 && totalMs >= inferMs, $"infer {inferMs} ms, total {totalMs} ms");

        var gflops = otlp.Latest(EdgeVitMetrics.FrameGFlops)!.Points.Single();
        Assert.Equal((ulong)classified, gflops.Count);
        Assert.Equal(classified * 1.2537, gflops.Sum, 0.01 * classified);

        var tokens = otlp.Latest(EdgeVitMetrics.TokensKept)!;
        Assert.Equal(12, tokens.Points.Count);
        Assert.Equal(Enumerable.Range(0, 12).Select(b => b.ToString()).ToHashSet(), tokens.Points.Select(p => p.Attributes[EdgeVitMetrics.BlockAttribute]).ToHashSet());
        Assert.All(tokens.Points, p => Assert.Equal((ulong)classified, p.Count));
        Assert.All(tokens.Points, p => Assert.Equal(197.0 * classified, p.Sum)); // dense: nothing pruned

        Assert.Equal(1.0, otlp.Latest(EdgeVitMetrics.BudgetTarget)!.Points.Single().Value);
        Assert.Equal(1.0, otlp.Latest(EdgeVitMetrics.ThresholdSetBudget)!.Points.Single().Value);

        // ---- traces: one trace per frame, a span per stage under the frame's root span
        var spans = otlp.Spans.Where(s => s.Scope == EdgeVitMetrics.ActivitySourceName).ToList();
        var roots = spans.Where(s => s.Name == EdgeVitMetrics.FrameSpan).ToList();
        Assert.Equal(classified, roots.Count);
        Assert.All(roots, r => Assert.Equal("", r.ParentSpanId));
        Assert.Equal(classified, roots.Select(r => r.TraceId).Distinct().Count());
        var rootIds = roots.ToDictionary(r => r.SpanId, r => r.TraceId);
        foreach (var stage in new[] { "capture", "decode", "preprocess", "infer" })
        {
            var stageSpans = spans.Where(s => s.Name == stage).ToList();
            Assert.Equal(classified, stageSpans.Count);
            Assert.All(stageSpans, s =>
            {
                Assert.True(rootIds.TryGetValue(s.ParentSpanId, out var trace), $"{stage} span without a frame parent");
                Assert.Equal(trace, s.TraceId);
                Assert.Equal(stage, s.Attributes[EdgeVitMetrics.StageAttribute]);
            });
        }
        // One of each stage per trace.
        Assert.All(spans.GroupBy(s => s.TraceId), g => Assert.Equal(5, g.Count()));

        // ---- resource: the standard OTEL_SERVICE_NAME reached the exporter; logs went through the OTel provider.
        Assert.Contains(otlp.Resources, r => r.TryGetValue("service.name", out var n) && n == "edgevit-integration");
        Assert.True(otlp.LogRequests > 0, "no OTLP log export");
    }
}
