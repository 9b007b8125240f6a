using System.Buffers;
using System.Diagnostics.Metrics;
using System.Text.Json;
using MQTTnet;
using MQTTnet.Protocol;
using EdgeViT.Host.Service.Inference;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeViT.Host.Service;

/// <summary>
/// The service's MQTT side (MQTTnet), on when Mqtt:Server is set. Topics under Mqtt:BaseTopic:
/// <list type="bullet">
/// <item><c>verdict</c>: the verdict JSON (as the results sink writes it) of each verdict Mqtt:Publish lets through.</item>
/// <item><c>availability</c>: <c>online</c> (retained) once connected; <c>offline</c> as the broker-held will and on stop.</item>
/// <item><c>status</c>: retained JSON (budget as GET /v1/budget, counters, MQTT counters) every Mqtt:StatusIntervalMs and after each budget change.</item>
/// <item><c>budget/set</c> (subscribed): the PUT /v1/budget body; a refused body is logged and named in the next status.</item>
/// </list>
/// Plus Home Assistant discovery configs (retained) under Mqtt:DiscoveryPrefix. The inference path only copies a
/// verdict into <see cref="MqttOutbox"/> (bounded, drops oldest); this service's own loop connects, reconnects with
/// doubling backoff (Mqtt:ReconnectMinMs .. ReconnectMaxMs) and drains the outbox.
/// </summary>
public sealed class MqttBridge : BackgroundService, IVerdictSink, IStatusContributor
{
    private readonly MqttOptions _o;
    private readonly LoadedModel _model;
    private readonly BudgetController _budget;
    private readonly ServiceStatus _status;
    private readonly ServiceInstruments _metrics;
    private readonly EdgeVitOptions _options;
    private readonly ILogger<MqttBridge> _log;
    private readonly MqttOutbox _outbox;
    private readonly MqttClientFactory _factory = new();
    private readonly string _base;
    private readonly ArrayBufferWriter<byte> _statusBuffer = new(2048);
    private IMqttClient? _client;
    private readonly VerdictFilter? _filter;
    private volatile bool _connected;
    private volatile string? _lastError, _lastBudgetError;
    private long _published, _publishFailures, _connects, _budgetCommands, _filtered;
    private int _statusWanted;

    public MqttBridge(EdgeVitOptions options, LoadedModel model, BudgetController budget, ServiceStatus status, ServiceInstruments metrics, ILogger<MqttBridge> log)
    {
        _options = options;
        _o = options.Mqtt;
        _model = model;
        _budget = budget;
        _status = status;
        _metrics = metrics;
        _log = log;
        _outbox = new MqttOutbox(_o.OutboxCapacity);
        _base = _o.EffectiveBaseTopic;
        // Built with the service's parts, before the host starts: an unknown MatchClasses entry ends start-up with one line.
        if (_o.Enabled)
        {
            _filter = VerdictFilter.From(_o, model.Config.Classes, model.Synsets);
            RegisterInstruments(metrics.Meter);
            budget.Switched += (_, _, _) => Interlocked.Exchange(ref _statusWanted, 1);
        }
    }

    public bool Enabled => _o.Enabled;
    public bool Connected => _connected;
    public MqttOutbox Outbox => _outbox;
    public long Published => Interlocked.Read(ref _published);
    public long Connects => Interlocked.Read(ref _connects);
    public string BaseTopic => _base;

    public void Write(Verdict verdict, ReadOnlySpan<byte> json)
    {
        if (_filter is not { } filter) return; // MQTT off
        if (filter.ShouldPublish(verdict)) _outbox.TryEnqueue(MqttTopicKind.Verdict, json);
        else Interlocked.Increment(ref _filtered);
    }

    protected override async Task ExecuteAsync(CancellationToken stop)
    {
        if (!_o.Enabled) return;
        await Task.Yield();

        var client = _factory.CreateMqttClient(); // disposed after the offline message in StopAsync
        _client = client;
        client.ApplicationMessageReceivedAsync += OnMessageAsync;
        client.DisconnectedAsync += e =>
        {
            if (_connected) _log.LogWarning("MQTT: disconnected from {Server}:{Port} ({Reason}); reconnecting", _o.Server, _o.EffectivePort, e.Exception?.Message ?? e.Reason.ToString());
            _connected = false;
            return Task.CompletedTask;
        };
        var options = ClientOptions();
        var delay = TimeSpan.FromMilliseconds(_o.ReconnectMinMs);
        int failures = 0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop))
                {
                    timeout.CancelAfter(TimeSpan.FromSeconds(10));
                    await client.ConnectAsync(options, timeout.Token);
                }
                await OnConnectedAsync(client, stop);
                failures = 0;
                delay = TimeSpan.FromMilliseconds(_o.ReconnectMinMs);
                await PumpAsync(client, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { break; }
            catch (Exception ex)
            {
                _connected = false;
                _lastError = ex.Message.ReplaceLineEndings(" ");
                if (failures++ == 0) _log.LogWarning("MQTT: cannot reach {Server}:{Port}: {Error}; retrying with backoff", _o.Server, _o.EffectivePort, _lastError);
                else _log.LogDebug("MQTT: reconnect attempt {N} failed: {Error}", failures, _lastError);
            }
            if (stop.IsCancellationRequested) break;
            try { await Task.Delay(delay, stop); } catch (OperationCanceledException) { break; }
            delay = TimeSpan.FromMilliseconds(Math.Min(_o.ReconnectMaxMs, delay.TotalMilliseconds * 2));
        }
    }

    private MqttClientOptions ClientOptions()
    {
        var b = _factory.CreateClientOptionsBuilder()
            .WithTcpServer(_o.Server!.Trim(), _o.EffectivePort)
            .WithClientId(_o.EffectiveClientId)
            .WithCleanSession(true)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(15))
            .WithTimeout(TimeSpan.FromSeconds(10))
            .WithWillTopic($"{_base}/availability")
            .WithWillPayload("offline"u8.ToArray())
            .WithWillRetain(true)
            .WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce);
        if (!string.IsNullOrWhiteSpace(_o.Username)) b = b.WithCredentials(_o.Username, _o.Password ?? "");
        if (_o.Tls)
            b = b.WithTlsOptions(t =>
            {
                t.UseTls().WithTargetHost(_o.Server!.Trim());
                if (_o.TlsAllowUntrusted) t.WithAllowUntrustedCertificates().WithCertificateValidationHandler(_ => true);
            });
        return b.Build();
    }

    private async Task OnConnectedAsync(IMqttClient client, CancellationToken ct)
    {
        await Publish(client, $"{_base}/availability", "online"u8.ToArray(), retain: true, MqttQualityOfServiceLevel.AtLeastOnce, ct);
        if (_o.Discovery)
            foreach (var entity in HomeAssistantDiscovery.Build(_o, _model, _budget))
                await Publish(client, entity.Topic, entity.Payload, retain: true, MqttQualityOfServiceLevel.AtLeastOnce, ct);
        await client.SubscribeAsync(_factory.CreateSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic($"{_base}/budget/set").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)).Build(), ct);
        _connected = true;
        _lastError = null;
        long n = Interlocked.Increment(ref _connects);
        _log.LogInformation("MQTT: connected to {Server}:{Port} as {ClientId}, topics under {Base}{Again}", _o.Server, _o.EffectivePort, _o.EffectiveClientId, _base, n > 1 ? " (reconnected)" : "");
        await PublishStatus(client, ct);
    }

    /// <summary>Drains the outbox while connected; status on its interval and after budget changes.</summary>
    private async Task PumpAsync(IMqttClient client, CancellationToken stop)
    {
        var interval = TimeSpan.FromMilliseconds(_o.StatusIntervalMs);
        var nextStatus = DateTime.UtcNow + interval;
        while (!stop.IsCancellationRequested && client.IsConnected)
        {
            while (_outbox.TryDequeue(out var kind, out var payload))
            {
                string topic = kind == MqttTopicKind.Verdict ? $"{_base}/verdict" : $"{_base}/status";
                await Publish(client, topic, payload, retain: kind == MqttTopicKind.Status, MqttQualityOfServiceLevel.AtMostOnce, stop);
            }
            if (Interlocked.Exchange(ref _statusWanted, 0) == 1 || DateTime.UtcNow >= nextStatus)
            {
                await PublishStatus(client, stop);
                nextStatus = DateTime.UtcNow + interval;
            }
            var wait = nextStatus - DateTime.UtcNow;
            // Wake at least every 250 ms to see a lost connection and a budget switch.
            await _outbox.WaitAsync(wait < TimeSpan.Zero ? TimeSpan.Zero : wait > TimeSpan.FromMilliseconds(250) ? TimeSpan.FromMilliseconds(250) : wait, stop);
        }
    }

    private async Task Publish(IMqttClient client, string topic, byte[] payload, bool retain, MqttQualityOfServiceLevel qos, CancellationToken ct)
    {
        var message = _factory.CreateApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithRetainFlag(retain).WithQualityOfServiceLevel(qos).Build();
        try
        {
            await client.PublishAsync(message, ct);
            Interlocked.Increment(ref _published);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            Interlocked.Increment(ref _publishFailures);
            throw;
        }
    }

    private Task PublishStatus(IMqttClient client, CancellationToken ct) =>
        Publish(client, $"{_base}/status", StatusJson(), retain: true, MqttQualityOfServiceLevel.AtMostOnce, ct);

    /// <summary>The &lt;base&gt;/status body.</summary>
    public byte[] StatusJson()
    {
        lock (_statusBuffer)
        {
            _statusBuffer.ResetWrittenCount();
            using (var w = new Utf8JsonWriter(_statusBuffer))
            {
                var s = _status;
                w.WriteStartObject();
                w.WriteString("state", "online");
                w.WriteString("time", DateTimeOffset.UtcNow);
                w.WriteNumber("uptime_s", Math.Round(s.Uptime.TotalSeconds, 3));
                w.WriteStartObject("budget");
                BudgetEndpoints.WriteBudget(w, _budget);
                w.WriteEndObject();
                w.WriteStartObject("counters");
                w.WriteNumber("captured", s.Captured);
                w.WriteNumber("dropped", s.Dropped);
                w.WriteNumber("classified", s.Classified);
                w.WriteNumber("errors", s.Errors);
                w.WriteEndObject();
                WriteCounters(w);
                if (_lastBudgetError is { } e) w.WriteString("last_budget_error", e);
                w.WriteEndObject();
            }
            return _statusBuffer.WrittenSpan.ToArray();
        }
    }

    private void WriteCounters(Utf8JsonWriter w)
    {
        w.WriteStartObject("mqtt");
        w.WriteBoolean("enabled", _o.Enabled);
        if (_o.Enabled)
        {
            w.WriteBoolean("connected", _connected);
            w.WriteString("server", $"{_o.Server}:{_o.EffectivePort}");
            w.WriteString("base_topic", _base);
            w.WriteString("publish", EdgeVitOptionsValidator.Name(_o.Publish));
            w.WriteNumber("connects", Connects);
            w.WriteNumber("published", Published);
            w.WriteNumber("publish_failures", Interlocked.Read(ref _publishFailures));
            w.WriteNumber("queued", _outbox.Count);
            w.WriteNumber("enqueued", _outbox.Enqueued);
            w.WriteNumber("dropped", _outbox.Dropped);
            w.WriteNumber("filtered", Interlocked.Read(ref _filtered));
            w.WriteNumber("budget_commands", Interlocked.Read(ref _budgetCommands));
            if (_lastError is { } e) w.WriteString("last_error", e);
        }
        w.WriteEndObject();
    }

    public void WriteStatus(Utf8JsonWriter w) => WriteCounters(w);

    private Task OnMessageAsync(MqttApplicationMessageReceivedEventArgs e)
    {
        if (e.ApplicationMessage.Topic != $"{_base}/budget/set") return Task.CompletedTask;
        Interlocked.Increment(ref _budgetCommands);
        var payload = e.ApplicationMessage.Payload;
        byte[] body = payload.IsSingleSegment ? payload.FirstSpan.ToArray() : payload.ToArray();
        string? error = BudgetCommand.Apply(_budget, body);
        _lastBudgetError = error;
        if (error is null) _log.LogInformation("MQTT: budget set from {Topic}: {Set}", e.ApplicationMessage.Topic, _budget.Current);
        else _log.LogWarning("MQTT: budget/set refused: {Error}", error);
        Interlocked.Exchange(ref _statusWanted, 1);
        return Task.CompletedTask;
    }

    private void RegisterInstruments(Meter meter)
    {
        meter.CreateObservableCounter(IntegrationMetrics.MqttPublished, () => Published, IntegrationMetrics.MessagesUnit, "MQTT messages published.");
        meter.CreateObservableCounter(IntegrationMetrics.MqttDropped, () => _outbox.Dropped, IntegrationMetrics.MessagesUnit,
            "MQTT messages dropped from the full outbox (broker down or slow) before they were sent.");
        meter.CreateObservableGauge(IntegrationMetrics.MqttConnected, () => _connected ? 1 : 0, IntegrationMetrics.MqttConnectedUnit, "1 while connected to the MQTT broker.");
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_client is { IsConnected: true } client)
        {
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                cts.CancelAfter(TimeSpan.FromSeconds(2));
                await Publish(client, $"{_base}/availability", "offline"u8.ToArray(), retain: true, MqttQualityOfServiceLevel.AtLeastOnce, cts.Token);
                await client.DisconnectAsync(_factory.CreateClientDisconnectOptionsBuilder().Build(), cts.Token);
            }
            catch (Exception ex) { _log.LogDebug("MQTT: clean disconnect failed: {Error}", ex.Message); }
        }
        _client?.Dispose();
        _client = null;
    }
}
