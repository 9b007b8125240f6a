using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using EdgeViT.Host.Service;
using EdgeViT.Tests.Cli;
using Microsoft.Extensions.Hosting.Systemd;
using Xunit;
using Xunit.Abstractions;

namespace EdgeViT.Tests.Service;

/// <summary>systemd integration: the real binary against a notify socket the test binds, and the watchdog's rule.</summary>
[Collection(ServiceHostCollection.Name)]
public partial class SystemdTests(ITestOutputHelper output)
{
    private const int SigTerm = 15;

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [Fact(Timeout = 180_000)]
    public async Task NotifiesReadyPingsTheWatchdogAndStopsCleanlyOnSigterm()
    {
        using var tmp = new TempDir();
        string images = Directory.CreateDirectory(tmp.File("images")).FullName;
        foreach (var image in SharedAssets.Images().Take(3)) File.Copy(image, Path.Combine(images, Path.GetFileName(image)));
        string socketPath = tmp.File("notify.sock");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(socketPath));
        var messages = new List<(double At, string Text)>();
        var clock = Stopwatch.StartNew();
        using var stopReceiving = new CancellationTokenSource();
        var receiver = Task.Run(async () =>
        {
            var buffer = new byte[4096];
            try
            {
                while (true)
                {
                    int n = await notify.ReceiveAsync(buffer, SocketFlags.None, stopReceiving.Token);
                    lock (messages) messages.Add((clock.Elapsed.TotalSeconds, Encoding.UTF8.GetString(buffer, 0, n).Trim()));
                }
            }
            catch (OperationCanceledException) { }
        });
        int Count(string text) { lock (messages) return messages.Count(m => m.Text == text); }

        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { CliProcessTests.EdgevitDll, "run", "--system-config", tmp.File("no-etc"), "Model=" + SharedAssets.ModelSafetensors, "Source:Kind=folder", "Source:Folder=" + images,
                     "Source:Fps=5", "Http:Urls=http://127.0.0.1:0", "Results:Sink=stdout" })
            psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("EDGEVIT", StringComparison.Ordinal) || k.StartsWith("OTEL_", StringComparison.Ordinal)).ToList())
            psi.Environment.Remove(key);
        // Telemetry configured the standard way, through the process environment.
        await using var otlp = OtlpReceiver.Start();
        psi.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.Endpoint.ToString().TrimEnd('/');
        psi.Environment["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf";
        psi.Environment["OTEL_SERVICE_NAME"] = "edgevit-systemd-test";
        psi.Environment["OTEL_METRIC_EXPORT_INTERVAL"] = "60000"; // only the flush at SIGTERM will deliver them
        psi.Environment["NOTIFY_SOCKET"] = socketPath;
        psi.Environment["WATCHDOG_USEC"] = "1000000";
        psi.Environment.Remove("WATCHDOG_PID");

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await TestService.WaitUntil(() => Count("READY=1") == 1 || process.HasExited, TimeSpan.FromSeconds(90), "READY=1");
            if (process.HasExited) Assert.Fail($"edgevit exited: {await stderr}");
            // Pings while frames progress: the period is 1 s, so one at least every half second or so.
            await TestService.WaitUntil(() => Count("WATCHDOG=1") >= 3, TimeSpan.FromSeconds(30), "3 watchdog pings");
            Assert.Equal(0, Kill(process.Id, SigTerm));
            Assert.True(process.WaitForExit(TimeSpan.FromSeconds(30)), "no exit within 30 s of SIGTERM");
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        string err = await stderr, outText = await stdout;
        stopReceiving.Cancel();
        await receiver;
        lock (messages) output.WriteLine(string.Join("\n", messages.Select(m => $"{m.At:0.00} {m.Text}")));
        Assert.Equal(0, process.ExitCode);
        Assert.Equal(1, Count("STOPPING=1"));
        lock (messages)
        {
            var ready = messages.First(m => m.Text == "READY=1").At;
            Assert.DoesNotContain(messages, m => m.Text == "WATCHDOG=1" && m.At < ready - 0.5);
        }

        // SIGTERM finished the frame in flight: every classified frame has its complete verdict line.
        var match = Regex.Match(err, @"pipeline stopped: (\d+) captured, (\d+) dropped, (\d+) classified, (\d+) errors");
        Assert.True(match.Success, err);
        var lines = outText.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(int.Parse(match.Groups[3].Value), lines.Length);
        Assert.True(lines.Length >= 2);
        foreach (var line in lines) Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(line).RootElement.ValueKind);
        Assert.DoesNotContain("fail:", err);

        // ...and flushed telemetry before exiting: the exported count is every verdict written.
        var classified = otlp.Latest(EdgeVitMetrics.FramesClassified);
        Assert.NotNull(classified);
        Assert.Equal(lines.Length, (long)classified!.Points.Single().Value);
        Assert.Equal(lines.Length, otlp.Spans.Count(x => x.Name == EdgeVitMetrics.FrameSpan));
        Assert.Contains(otlp.Resources, r => r.TryGetValue("service.name", out var n) && n == "edgevit-systemd-test");
    }

    private sealed class FakeNotifier : ISystemdNotifier
    {
        public int Pings;
        public bool IsEnabled => true;
        public void Notify(ServiceState state)
        {
            Assert.Equal("WATCHDOG=1", state.ToString());
            Pings++;
        }
    }

    [Fact]
    public void TheWatchdogPingsOnlyWhileFramesProgressAndNoInferenceIsStuck()
    {
        var notifier = new FakeNotifier();
        long now = 0, inFlightSince = 0;
        long Ms(double ms) => (long)(ms * Stopwatch.Frequency / 1000);
        var watchdog = new SystemdWatchdog(notifier, () => inFlightSince, watchdogUsec: "200000", watchdogPid: "", now: () => now);
        Assert.True(watchdog.Enabled);
        Assert.Equal(TimeSpan.FromMilliseconds(200), watchdog.Period);

        // Frames progressing every 25 ms for 500 ms: a ping at once, then one per half period.
        for (int i = 0; i < 20; i++) { watchdog.Progress(); now += Ms(25); }
        Assert.Equal(5, notifier.Pings);

        // A hung frame loop calls nothing, so nothing goes out however long it hangs.
        now += Ms(10_000);
        Assert.Equal(5, notifier.Pings);

        // The capture loop still progresses but an inference has been running for longer than the period.
        inFlightSince = now;
        now += Ms(250);
        for (int i = 0; i < 10; i++) { watchdog.Progress(); now += Ms(25); }
        Assert.Equal(5, notifier.Pings);

        // A long but not stuck inference (under the period) does not stop the pings.
        inFlightSince = now - Ms(150);
        watchdog.Progress();
        Assert.Equal(6, notifier.Pings);

        // Inference finished: pings go on at the same pace.
        inFlightSince = 0;
        now += Ms(100);
        watchdog.Progress();
        Assert.Equal(7, notifier.Pings);

        // Outside systemd (no WATCHDOG_USEC, or another process's watchdog) it stays silent.
        Assert.False(new SystemdWatchdog(notifier, () => 0, watchdogUsec: "", watchdogPid: "").Enabled);
        Assert.False(new SystemdWatchdog(notifier, () => 0, watchdogUsec: "1000000", watchdogPid: "1").Enabled);
        Assert.False(new SystemdWatchdog(null, () => 0, watchdogUsec: "1000000", watchdogPid: "").Enabled);
    }
}
