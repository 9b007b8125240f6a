using System.Net;
using System.Text.Json;
using EdgeViT.Host.Service;
using EdgeViT.Tests.Model;
using Microsoft.Extensions.DependencyInjection;
using EdgeViT.Tests.Service;
using SkiaSharp;
using Xunit;

namespace EdgeViT.Tests.Integrations;

/// <summary>The live page in headless chromium against the real service: frame, label, budget control.</summary>
[Collection(ServiceHostCollection.Name)]
public class LivePageTests
{
    [Fact(Timeout = 240_000)]
    public async Task PageShowsTheFrameAndLabelAndTheBudgetControlWorks()
    {
        using var tmp = new TempDir();
        string folder = Directory.CreateDirectory(tmp.File("frames")).FullName;
        string image = SharedAssets.Images()[0];
        File.Copy(image, Path.Combine(folder, "a" + Path.GetExtension(image)));
        var c = TestService.BaseConfig();
        c["Source:Kind"] = "folder";
        c["Source:Folder"] = folder;
        c["Source:Fps"] = "5";
        // EDGEVIT_LIVE_THRESHOLDS: a calibrated file with sets 0.6 and 0.8 for the README's screenshot (the test's own
        // file has uniform thresholds, which prune the right tokens only by chance).
        c["Thresholds"] = Environment.GetEnvironmentVariable("EDGEVIT_LIVE_THRESHOLDS") is { Length: > 0 } calibrated
            ? calibrated : ServiceFiles.WriteThresholds(tmp.File("t.json"));
        c["Http:ApiKey"] = "live-page-secret";
        await using var service = await TestService.StartAsync(c);
        // The page is served without the key; its data only with it.
        using (var page = await service.Http.GetAsync("/"))
        {
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        }
        foreach (var path in new[] { "/v1/live", "/v1/snapshot.jpg", "/v1/stream.mjpeg" })
        {
            using var r = await service.Http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        }
        service.Http.DefaultRequestHeaders.Add("X-Api-Key", "live-page-secret");

        // What the page should say: the service's own top-1 for that image.
        using var posted = await service.Http.PostAsync("/v1/classify", new ByteArrayContent(File.ReadAllBytes(image)));
        var top = JsonDocument.Parse(await posted.Content.ReadAsStringAsync()).RootElement.GetProperty("top")[0];
        string label = top.GetProperty("label").GetString()!.Split(',')[0].Trim();

        var view = service.App.Services.GetRequiredService<LiveView>();
        await TestService.WaitUntil(() => view.Version > 0, TimeSpan.FromSeconds(30), "a kept frame");

        await using var browser = await WebDriver.StartAsync(1200, 900);
        await browser.Navigate(service.BaseAddress + "#key=live-page-secret");
        string labelElement = await browser.Find("#label");
        await TestService.WaitUntil(() => browser.Text(labelElement).Result == label, TimeSpan.FromSeconds(30), $"the label '{label}' in the page");
        await TestService.WaitUntil(() => browser.Script("return document.getElementById('frame').naturalWidth").Result.GetInt32() > 0,
            TimeSpan.FromSeconds(30), "the streamed frame in the page");
        await TestService.WaitUntil(() => browser.Script("return document.querySelectorAll('#sets button').length").Result.GetInt32() == 3,
            TimeSpan.FromSeconds(10), "the budget buttons");
        // Clicking the 0.60 button changes /v1/budget.
        string button = await browser.Find("#sets button[data-budget='0.6']");
        await browser.Click(button);
        await TestService.WaitUntil(() => service.Budget.Current.Budget == 0.6, TimeSpan.FromSeconds(20), "the click to change the budget");
        var budget = await service.GetJsonAsync("/v1/budget");
        Assert.Equal(0.6, budget.GetProperty("active_set").GetProperty("budget").GetDouble());
        Assert.Equal("fixed", budget.GetProperty("mode").GetString());
        await TestService.WaitUntil(() => browser.Script("return document.querySelector('#sets button.active').dataset.budget").Result.GetString() == "0.6",
            TimeSpan.FromSeconds(10), "the page to show 0.6 as active");

        // The screenshot once a pruned frame is shown (the token overlay dims what was dropped).
        long shown = view.Version;
        await TestService.WaitUntil(() => view.Version >= shown + 3, TimeSpan.FromSeconds(20), "frames at the new budget");
        await Task.Delay(1000); // the stream shows the latest of them
        byte[] png = await browser.Screenshot();
        string dir = Environment.GetEnvironmentVariable("EDGEVIT_SCREENSHOT_DIR") is { Length: > 0 } d ? d : tmp.Path;
        await File.WriteAllBytesAsync(Path.Combine(dir, "live-page.png"), png);

        // The screenshot shows the frame: inside the <img> rectangle the pixels vary like a photo, and the label bar
        // drawn on the frame is dark across its top.
        var rect = await browser.Rect(await browser.Find("#frame"));
        using (var shot = SKBitmap.Decode(png))
        {
            Assert.NotNull(shot);
            var lum = new List<double>();
            for (int y = (int)(rect.Y + rect.Height * 0.3); y < rect.Y + rect.Height * 0.95 && y < shot.Height; y += 4)
                for (int x = (int)rect.X + 2; x < rect.X + rect.Width - 2 && x < shot.Width; x += 4)
                {
                    var p = shot.GetPixel(x, y);
                    lum.Add(0.299 * p.Red + 0.587 * p.Green + 0.114 * p.Blue);
                }
            Assert.True(lum.Count > 1000, $"frame rectangle {rect} is too small in a {shot.Width}x{shot.Height} screenshot");
            double mean = lum.Average(), sd = Math.Sqrt(lum.Average(v => (v - mean) * (v - mean)));
            Assert.True(sd > 20, $"the frame area is flat (sd {sd:0.0}): no photo shown");
            var bar = shot.GetPixel((int)(rect.X + rect.Width * 0.9), (int)(rect.Y + 3));
            Assert.True(bar.Red + bar.Green + bar.Blue < 3 * 120, $"no label bar on the frame (pixel {bar})");
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task SnapshotAndStreamServeJpegs()
    {
        var c = TestService.BaseConfig();
        c["Source:Kind"] = "synthetic";
        c["Source:Fps"] = "10";
        await using var service = await TestService.StartAsync(c);
        await TestService.WaitUntil(() => service.Status.Classified > 0, TimeSpan.FromSeconds(30), "a classified frame");
        await Task.Delay(300);
        using var snap = await service.Http.GetAsync("/v1/snapshot.jpg");
        Assert.Equal(HttpStatusCode.OK, snap.StatusCode);
        Assert.Equal("image/jpeg", snap.Content.Headers.ContentType?.MediaType);
        byte[] jpeg = await snap.Content.ReadAsByteArrayAsync();
        using (var bmp = SKBitmap.Decode(jpeg)) Assert.Equal(640, bmp.Width);

        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/stream.mjpeg");
        using var response = await service.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.StartsWith("multipart/x-mixed-replace", response.Content.Headers.ContentType!.ToString());
        using var stream = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[1 << 20];
        int read = 0, parts = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (parts < 2 && DateTime.UtcNow < deadline)
        {
            read += await stream.ReadAsync(buffer.AsMemory(read));
            parts = System.Text.Encoding.ASCII.GetString(buffer, 0, read).Split("Content-Type: image/jpeg").Length - 1;
        }
        Assert.True(parts >= 2, $"{parts} JPEG parts in 20 s");

        var live = await service.GetJsonAsync("/v1/live");
        Assert.True(live.GetProperty("history").GetArrayLength() > 0);
        Assert.True(live.GetProperty("top").GetProperty("score").GetDouble() > 0);
    }
}
