using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace EdgeViT.Tests.Integrations;

/// <summary>
/// Headless Debian chromium driven by Debian's chromedriver through the W3C WebDriver protocol (plain HTTP on
/// 127.0.0.1): a fresh profile in a temp folder, no network beyond loopback services, no background traffic.
/// </summary>
public sealed class WebDriver : IAsyncDisposable
{
    private readonly Process _driver;
    private readonly HttpClient _http;
    private readonly string _profile;
    private string? _session;

    public static string? Chromium => new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);
    public static string? Chromedriver => new[] { "/usr/bin/chromedriver" }.FirstOrDefault(File.Exists);

    private WebDriver(Process driver, int port, string profile)
    {
        _driver = driver;
        _profile = profile;
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(60) };
    }

    public static async Task<WebDriver> StartAsync(int width = 1200, int height = 800)
    {
        Assert.True(Chromium is not null && Chromedriver is not null, "chromium and chromium-driver are not installed (.ci/run installs them)");
        int port = MosquittoBroker.FreePort();
        var psi = new ProcessStartInfo(Chromedriver!) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add($"--port={port}");
        psi.ArgumentList.Add("--allowed-ips=127.0.0.1");
        var p = Process.Start(psi)!;
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        string profile = Directory.CreateTempSubdirectory("edgevit-chromium-").FullName;
        var driver = new WebDriver(p, port, profile);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            try
            {
                var status = await driver._http.GetFromJsonAsync<JsonElement>("status");
                if (status.GetProperty("value").GetProperty("ready").GetBoolean()) break;
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline) { }
            Assert.False(p.HasExited, "chromedriver exited on start");
            await Task.Delay(100);
        }
        string[] args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", $"--user-data-dir={profile}", $"--window-size={width},{height}"];
        var caps = new JsonObject
        {
            ["capabilities"] = new JsonObject
            {
                ["alwaysMatch"] = new JsonObject
                {
                    ["browserName"] = "chrome",
                    ["goog:chromeOptions"] = new JsonObject { ["binary"] = Chromium, ["args"] = new JsonArray(args.Select(a => (JsonNode)a!).ToArray()) },
                },
            },
        };
        var session = await driver.Send(HttpMethod.Post, "session", caps);
        driver._session = session.GetProperty("sessionId").GetString();
        return driver;
    }

    private async Task<JsonElement> Send(HttpMethod method, string path, JsonNode? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        // chromedriver does not take chunked bodies: send a sized one.
        if (body is not null) request.Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json");
        using var response = await _http.SendAsync(request);
        var json = await response.Content.ReadFromJsonAsync<JsonElement>();
        var value = json.GetProperty("value");
        if (!response.IsSuccessStatusCode)
            Assert.Fail($"WebDriver {method} {path}: {(value.TryGetProperty("message", out var m) ? m.GetString() : value.ToString())}");
        return value.Clone();
    }

    private string S(string path) => $"session/{_session}/{path}";

    public Task Navigate(string url) => Send(HttpMethod.Post, S("url"), new JsonObject { ["url"] = url });

    public async Task<string> Find(string css) =>
        (await Send(HttpMethod.Post, S("element"), new JsonObject { ["using"] = "css selector", ["value"] = css })).EnumerateObject().First().Value.GetString()!;

    public async Task<string> Text(string element) => (await Send(HttpMethod.Get, S($"element/{element}/text"))).GetString()!;

    public Task Click(string element) => Send(HttpMethod.Post, S($"element/{element}/click"), new JsonObject());

    public async Task<(double X, double Y, double Width, double Height)> Rect(string element)
    {
        var r = await Send(HttpMethod.Get, S($"element/{element}/rect"));
        return (r.GetProperty("x").GetDouble(), r.GetProperty("y").GetDouble(), r.GetProperty("width").GetDouble(), r.GetProperty("height").GetDouble());
    }

    public Task<JsonElement> Script(string script) =>
        Send(HttpMethod.Post, S("execute/sync"), new JsonObject { ["script"] = script, ["args"] = new JsonArray() });

    /// <summary>PNG of the viewport.</summary>
    public async Task<byte[]> Screenshot() => Convert.FromBase64String((await Send(HttpMethod.Get, S("screenshot"))).GetString()!);

    public async ValueTask DisposeAsync()
    {
        try { if (_session is not null) await _http.DeleteAsync($"session/{_session}"); } catch (Exception) { }
        try { if (!_driver.HasExited) { _driver.Kill(entireProcessTree: true); await _driver.WaitForExitAsync(); } } catch (Exception) { }
        _driver.Dispose();
        _http.Dispose();
        try { Directory.Delete(_profile, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
