using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MQTTnet;
using Xunit;

namespace EdgeViT.Tests.Integrations;

/// <summary>
/// A real Debian <c>mosquitto</c> on 127.0.0.1 at a free port, configured from a file in a temp folder (no
/// persistence, anonymous clients). <see cref="KillAsync"/> and <see cref="StartAsync"/> stop and restart it on
/// the same port (a broker outage).
/// </summary>
public sealed class MosquittoBroker : IAsyncDisposable
{
    private readonly string _dir;
    private readonly string _config;
    private Process? _process;
    public int Port { get; }

    public static string? Executable => new[] { "/usr/sbin/mosquitto", "/usr/bin/mosquitto" }.FirstOrDefault(File.Exists);

    private MosquittoBroker(string dir, int port)
    {
        _dir = dir;
        Port = port;
        _config = Path.Combine(dir, "mosquitto.conf");
        File.WriteAllText(_config, $"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n");
    }

    public static async Task<MosquittoBroker> StartNewAsync()
    {
        Assert.True(Executable is not null, "mosquitto is not installed (apt-get install mosquitto; .ci/run installs it)");
        var broker = new MosquittoBroker(Directory.CreateTempSubdirectory("edgevit-mosquitto-").FullName, FreePort());
        await broker.StartAsync();
        return broker;
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async Task StartAsync()
    {
        var psi = new ProcessStartInfo(Executable!) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(_config);
        var p = Process.Start(psi)!;
        p.ErrorDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        _process = p;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            Assert.False(p.HasExited, $"mosquitto exited with code {(p.HasExited ? p.ExitCode : 0)} on start");
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline) { await Task.Delay(50); }
        }
    }

    /// <summary>SIGKILL: the broker vanishes without saying goodbye to its clients.</summary>
    public async Task KillAsync()
    {
        if (_process is not { } p) return;
        _process = null;
        try { p.Kill(); } catch (InvalidOperationException) { }
        await p.WaitForExitAsync();
        p.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}

/// <summary>A test-side MQTT client (MQTTnet) that records every message on the filters it subscribed to.</summary>
public sealed class MqttProbe : IAsyncDisposable
{
    public sealed record Message(string Topic, string Payload, bool Retain, DateTime At);

    private readonly IMqttClient _client;
    private readonly MqttClientFactory _factory = new();
    public ConcurrentQueue<Message> Messages { get; } = new();

    private MqttProbe(IMqttClient client) => _client = client;

    public static async Task<MqttProbe> ConnectAsync(int port, params string[] filters)
    {
        var factory = new MqttClientFactory();
        var client = factory.CreateMqttClient();
        var probe = new MqttProbe(client);
        client.ApplicationMessageReceivedAsync += e =>
        {
            probe.Messages.Enqueue(new Message(e.ApplicationMessage.Topic, Encoding.UTF8.GetString(e.ApplicationMessage.Payload), e.ApplicationMessage.Retain, DateTime.UtcNow));
            return Task.CompletedTask;
        };
        await client.ConnectAsync(factory.CreateClientOptionsBuilder().WithTcpServer("127.0.0.1", port).WithClientId("probe-" + Guid.NewGuid().ToString("N")).Build());
        var sub = factory.CreateSubscribeOptionsBuilder();
        foreach (var f in filters) sub = sub.WithTopicFilter(f);
        await client.SubscribeAsync(sub.Build());
        return probe;
    }

    public Task PublishAsync(string topic, string payload) =>
        _client.PublishAsync(_factory.CreateApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).Build());

    public IEnumerable<Message> On(string topic) => Messages.Where(m => m.Topic == topic);

    public async Task<Message> WaitFor(Func<Message, bool> match, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var hit = Messages.FirstOrDefault(match);
            if (hit is not null) return hit;
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out after {timeout.TotalSeconds:0} s waiting for {what}; got topics: {string.Join(", ", Messages.Select(m => m.Topic).Distinct())}");
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try { if (_client.IsConnected) await _client.DisconnectAsync(); } catch (Exception) { }
        _client.Dispose();
    }
}
