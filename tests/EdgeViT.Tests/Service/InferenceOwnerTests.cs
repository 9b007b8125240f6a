using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using EdgeViT.Host.Service;
using EdgeViT.Host.Service.Inference;
using EdgeViT.Imaging;
using EdgeViT.Tests.Cli;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EdgeViT.Tests.Service;

/// <summary>
/// The one inference owner: hostile images refused before decoding, a bounded queue that answers 503, the same
/// path and format for every input, the API key.
/// </summary>
[Collection(ServiceHostCollection.Name)]
public class InferenceOwnerTests
{
    private static Dictionary<string, string?> HttpOnly()
    {
        var c = TestService.BaseConfig();
        c["Source:Kind"] = "none";
        c["Trigger:Mode"] = "http";
        return c;
    }

    private static ByteArrayContent Body(byte[] bytes)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return content;
    }

    private static string Tench() => SharedAssets.Images().First(f => Path.GetFileName(f).StartsWith("n01440764", StringComparison.Ordinal));

    [Fact]
    public void ABombIsRefusedFromItsHeaderWithoutAllocatingItsPixels()
    {
        byte[] png = HostileImages.PngBomb();
        Assert.True(png.Length < 2 << 20, $"{png.Length} bytes");
        var decoder = new ReusableImageDecoder(DecodeLimits.Default);
        ImageTooLargeException? refused = null;
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        try { decoder.Decode(png, "bomb.png"); }
        catch (ImageTooLargeException ex) { refused = ex; }
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Assert.NotNull(refused);
        Assert.Contains("20000x20000", refused.Message);
        Assert.Contains("above the limit of 40 MP", refused.Message);
        // 400 MP would be 1.6 GB of RGBA: the decoder never asked for pixel memory (a few KB of exception and text).
        Assert.True(allocated < 64 * 1024, $"{allocated} bytes allocated while refusing the bomb");

        var jpeg = HostileImages.JpegBomb(File.ReadAllBytes(Tench()));
        Assert.Throws<ImageTooLargeException>(() => decoder.Decode(jpeg, "bomb.jpg"));
    }

    [Fact]
    public void PredictRefusesABombWithOneLine()
    {
        using var tmp = new TempDir();
        File.WriteAllBytes(tmp.File("bomb.png"), HostileImages.PngBomb());
        var r = CliHarness.Run("predict", "--model", SharedAssets.ModelSafetensors, tmp.File("bomb.png"));
        CliHarness.AssertOneErrorLine(r, "bomb.png", "20000x20000", "above the limit of 40 MP");
        Assert.Equal(1, r.ExitCode);
    }

    [Fact]
    public void LargeJpegsDecodeAtAReducedScaleThatKeepsTheShortSideAboveTheTarget()
    {
        // A 4x upscale of a shared photo stands in for a camera still: decoded at 1/2 or less, never below the floor.
        using var src = SkiaSharp.SKBitmap.Decode(Tench());
        using var big = src.Resize(new SkiaSharp.SKImageInfo(src.Width * 4, src.Height * 4), new SkiaSharp.SKSamplingOptions(SkiaSharp.SKFilterMode.Linear));
        using var data = big.Encode(SkiaSharp.SKEncodedImageFormat.Jpeg, 90);
        var frame = new ReusableImageDecoder(new DecodeLimits(DecodeLimits.DefaultMaxPixels, MinShortSide: 496)).Decode(data.AsSpan(), "big.jpg");
        Assert.True(frame.Width < big.Width / 1.5, $"decoded {frame.Width}x{frame.Height} of {big.Width}x{big.Height}");
        Assert.True(Math.Min(frame.Width, frame.Height) >= 496, $"decoded {frame.Width}x{frame.Height}");
        var full = new ReusableImageDecoder().Decode(data.AsSpan(), "big.jpg");
        Assert.Equal((big.Width, big.Height), (full.Width, full.Height)); // without the floor: full size
    }

    [Fact(Timeout = 120_000)]
    public async Task ABombIs422InUnderASecondAndTheServiceStillClassifies()
    {
        await using var service = await TestService.StartAsync(HttpOnly());
        var watch = Stopwatch.StartNew();
        using var response = await service.Http.PostAsync("/v1/classify", Body(HostileImages.PngBomb()));
        watch.Stop();
        string body = await response.Content.ReadAsStringAsync();
        Assert.Equal(422, (int)response.StatusCode);
        Assert.Contains("20000x20000", body);
        // Generous on a shared 2-core machine: decoding it would take ~10 s and 2.8 GB; refusing takes milliseconds.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"{watch.Elapsed.TotalMilliseconds:0} ms");

        using var ok = await service.Http.PostAsync("/v1/classify", Body(File.ReadAllBytes(Tench())));
        Assert.Equal(200, (int)ok.StatusCode);
        Assert.Contains("\"synset\":\"n01440764\"", await ok.Content.ReadAsStringAsync());
    }

    /// <summary>Holds the inference thread inside its first verdict until released.</summary>
    private sealed class GateSink : IVerdictSink
    {
        public readonly ManualResetEventSlim Entered = new(), Release = new();
        private int _calls;
        public void Write(Verdict verdict, ReadOnlySpan<byte> json)
        {
            if (Interlocked.Increment(ref _calls) != 1) return;
            Entered.Set();
            Release.Wait(TimeSpan.FromSeconds(60));
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task WithTheQueueFullRequestsGet503AndRetryAfterAndEveryAcceptedOneIsAnswered()
    {
        var gate = new GateSink();
        var config = HttpOnly();
        config["Input:QueueLength"] = "1";
        await using var service = await TestService.StartAsync(config, s => s.AddSingleton<IVerdictSink>(gate));
        var worker = service.App.Services.GetRequiredService<InferenceWorker>();
        byte[] tench = File.ReadAllBytes(Tench());

        var first = service.Http.PostAsync("/v1/classify", Body(tench)); // runs, then waits in the sink
        Assert.True(gate.Entered.Wait(TimeSpan.FromSeconds(60)), "the first request never reached the sinks");
        var second = service.Http.PostAsync("/v1/classify", Body(tench)); // waits in the queue
        await TestService.WaitUntil(() => worker.Queued == 1, TimeSpan.FromSeconds(30), "the second request in the queue");
        using (var third = await service.Http.PostAsync("/v1/classify", Body(tench)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, third.StatusCode);
            Assert.True(third.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), $"Retry-After: {third.Headers.RetryAfter}");
            Assert.Contains("Input:QueueLength", await third.Content.ReadAsStringAsync());
        }
        gate.Release.Set();
        using (var a = await first) Assert.Equal(HttpStatusCode.OK, a.StatusCode);
        using (var b = await second) Assert.Equal(HttpStatusCode.OK, b.StatusCode);
        Assert.Equal(2, service.Status.Classified);
        Assert.Equal(1, service.Status.Rejected);
    }

    /// <summary>Keeps a copy of every verdict line the worker hands to the sinks.</summary>
    private sealed class RecordingSink : IVerdictSink
    {
        public readonly List<string> Lines = [];
        public void Write(Verdict verdict, ReadOnlySpan<byte> json)
        {
            lock (Lines) Lines.Add(System.Text.Encoding.UTF8.GetString(json));
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task CameraFramesAndHttpRequestsGoThroughTheSamePathAndComeOutInTheSameFormat()
    {
        using var tmp = new TempDir();
        string dir = Directory.CreateDirectory(tmp.File("images")).FullName;
        File.Copy(Tench(), Path.Combine(dir, Path.GetFileName(Tench())));
        var sink = new RecordingSink();
        var config = TestService.BaseConfig();
        config["Source:Kind"] = "folder";
        config["Source:Folder"] = dir;
        config["Source:Fps"] = "20";
        config["Trigger:Mode"] = "gpio"; // frames only when pressed
        config["Trigger:Gpio:Pin"] = "5";
        var button = new PressButton();
        await using var service = await TestService.StartAsync(config, s =>
        {
            s.AddSingleton<IVerdictSink>(sink);
            s.AddSingleton<FrameSourceFactory>(new ButtonFactory(button));
        });
        await TestService.WaitUntil(() => service.Status.Captured >= 2, TimeSpan.FromSeconds(30), "captured frames");
        button.Press();
        await TestService.WaitUntil(() => service.Status.Classified == 1, TimeSpan.FromSeconds(60), "the camera verdict");
        using var response = await service.Http.PostAsync("/v1/classify", Body(File.ReadAllBytes(Tench())));
        string http = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        string[] lines;
        lock (sink.Lines) lines = sink.Lines.ToArray();
        Assert.Equal(2, lines.Length);
        Assert.Equal(http, lines[1]); // the answer is the line the sinks saw
        using var camera = JsonDocument.Parse(lines[0]);
        using var request = JsonDocument.Parse(lines[1]);
        Assert.StartsWith("folder:", camera.RootElement.GetProperty("source").GetString());
        Assert.Equal("http", request.RootElement.GetProperty("source").GetString());
        // Same fields (the camera adds its capture time), same decoder, preprocessing and engine: the same scores.
        var cameraKeys = camera.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Equal(cameraKeys, request.RootElement.EnumerateObject().Select(p => p.Name).ToArray());
        Assert.Equal(camera.RootElement.GetProperty("top").GetRawText(), request.RootElement.GetProperty("top").GetRawText());
        Assert.Equal(camera.RootElement.GetProperty("tokens_kept").GetRawText(), request.RootElement.GetProperty("tokens_kept").GetRawText());
        Assert.True(camera.RootElement.GetProperty("latency_ms").TryGetProperty("capture", out _));
    }

    private sealed class PressButton : IGpioTrigger
    {
        private readonly SemaphoreSlim _presses = new(0);
        public void Press() => _presses.Release();
        public Task WaitForPressAsync(CancellationToken ct) => _presses.WaitAsync(ct);
        public void Dispose() { }
    }

    private sealed class ButtonFactory(PressButton button) : FrameSourceFactory
    {
        public override IGpioTrigger CreateGpioTrigger(GpioOptions o) => button;
    }

    [Fact(Timeout = 120_000)]
    public async Task WithAnApiKeyEveryEndpointButHealthzNeedsIt()
    {
        var config = HttpOnly();
        config["Http:ApiKey"] = "s3cret-key";
        await using var service = await TestService.StartAsync(config);
        var http = service.Http;
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        foreach (var path in new[] { "/readyz", "/v1/status", "/v1/budget" })
        {
            using var none = await http.GetAsync(path);
            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
            Assert.Contains("API key", await none.Content.ReadAsStringAsync());
        }
        using (var post = await http.PostAsync("/v1/classify", Body(File.ReadAllBytes(Tench()))))
            Assert.Equal(HttpStatusCode.Unauthorized, post.StatusCode);
        using (var wrong = new HttpRequestMessage(HttpMethod.Get, "/v1/status"))
        {
            wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret-kex");
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(wrong)).StatusCode);
        }
        using (var right = new HttpRequestMessage(HttpMethod.Get, "/v1/status"))
        {
            right.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret-key");
            Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(right)).StatusCode);
        }
        using (var header = new HttpRequestMessage(HttpMethod.Post, "/v1/classify") { Content = Body(File.ReadAllBytes(Tench())) })
        {
            header.Headers.Add("X-Api-Key", "s3cret-key");
            Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(header)).StatusCode);
        }
    }
}

/// <summary>The real binary in its own process, so its RSS is the service's alone (bar 1: memory after hostile requests).</summary>
[Collection(ServiceHostCollection.Name)]
public class HostileMemoryTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact(Timeout = 300_000)]
    public async Task RssAfter200HostileRequestsStaysWithin1Point3TimesRssAtRest()
    {
        using var tmp = new TempDir();
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { CliProcessTests.EdgevitDll, "run", "--system-config", tmp.File("no-etc"), "Model=" + SharedAssets.ModelSafetensors,
                     "Synsets=" + SharedAssets.Synsets, "Source:Kind=none", "Trigger:Mode=http", "Results:Sink=none", "Http:Urls=http://127.0.0.1:0",
                     "Telemetry:Otlp=off", "Logging:LogLevel:Default=Warning", "Logging:LogLevel:Microsoft.Hosting.Lifetime=Information" })
            psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("EDGEVIT", StringComparison.Ordinal) || k.StartsWith("OTEL_", StringComparison.Ordinal)).ToList())
            psi.Environment.Remove(key);
        psi.Environment["MALLOC_MMAP_THRESHOLD_"] = "131072"; // as deploy/systemd/edgevit.service runs it

        using var process = Process.Start(psi)!;
        var listening = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) { listening.TrySetException(new InvalidOperationException("edgevit exited: " + log)); return; }
            lock (log) log.AppendLine(e.Data);
            var m = System.Text.RegularExpressions.Regex.Match(e.Data, @"Now listening on: (http://\S+)");
            if (m.Success) listening.TrySetResult(m.Groups[1].Value);
        };
        process.BeginErrorReadLine();
        _ = process.StandardOutput.ReadToEndAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(await listening.Task.WaitAsync(TimeSpan.FromSeconds(120))), Timeout = TimeSpan.FromSeconds(60) };
            async Task<long> Rss()
            {
                using var doc = JsonDocument.Parse(await http.GetStringAsync("/v1/status"));
                return doc.RootElement.GetProperty("process").GetProperty("rss_bytes").GetInt64();
            }
            byte[] tench = File.ReadAllBytes(SharedAssets.Images().First(f => Path.GetFileName(f).StartsWith("n01440764", StringComparison.Ordinal)));
            for (int i = 0; i < 3; i++) // at rest = warmed up: engine, decoder buffers and JIT in place
                using (var warm = await http.PostAsync("/v1/classify", new ByteArrayContent(tench))) Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
            long rest = await Rss();

            var rng = new Random(10);
            byte[] png = HostileImages.PngBomb(), jpegBomb = HostileImages.JpegBomb(tench);
            for (int i = 0; i < 200; i++)
            {
                byte[] body = (i % 4) switch
                {
                    0 => i % 8 == 0 ? png : HostileImages.PngBomb(rng.Next(7000, 60000), rng.Next(7000, 60000), rows: 2),
                    1 => jpegBomb,
                    2 => tench[..rng.Next(16, tench.Length - 1)],
                    _ => rng.GetItems<byte>(Enumerable.Range(0, 256).Select(b => (byte)b).ToArray(), rng.Next(1, 8192)),
                };
                using var response = await http.PostAsync("/v1/classify", new ByteArrayContent(body));
                Assert.InRange((int)response.StatusCode, 400, 499);
            }
            long after = await Rss();
            output.WriteLine($"RSS {rest / 1048576.0:0.0} MiB at rest -> {after / 1048576.0:0.0} MiB after 200 hostile requests ({(double)after / rest:0.00}x)");
            Assert.True(after <= 1.3 * rest, $"RSS {rest / 1048576.0:0.0} MiB at rest, {after / 1048576.0:0.0} MiB after 200 hostile requests");
            using (var ok = await http.PostAsync("/v1/classify", new ByteArrayContent(tench)))
                Assert.Contains("\"synset\":\"n01440764\"", await ok.Content.ReadAsStringAsync());
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }
}
