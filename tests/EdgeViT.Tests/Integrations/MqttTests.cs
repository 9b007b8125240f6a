using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using EdgeViT.Host.Service;
using EdgeViT.Tests.Model;
using EdgeViT.Tests.Service;
using Xunit;
using Xunit.Abstractions;

namespace EdgeViT.Tests.Integrations;

/// <summary>
/// The MQTT bridge against a real Mosquitto on loopback, with the real service (DeiT-Tiny, shared images from a
/// folder source): verdict topics and filters, Home Assistant discovery, budget/set, broker outage and recovery.
/// </summary>
[Collection(ServiceHostCollection.Name)]
public partial class MqttTests(ITestOutputHelper output)
{
    private static Dictionary<string, string?> Config(int port, string baseTopic, string folder, string? thresholds = null)
    {
        var c = TestService.BaseConfig();
        c["Source:Kind"] = "folder";
        c["Source:Folder"] = folder;
        c["Source:Fps"] = "8";
        c["Mqtt:Server"] = "127.0.0.1";
        c["Mqtt:Port"] = port.ToString(CultureInfo.InvariantCulture);
        c["Mqtt:BaseTopic"] = baseTopic;
        c["Mqtt:ClientId"] = "edgevit-test";
        c["Mqtt:ReconnectMinMs"] = "100";
        c["Mqtt:ReconnectMaxMs"] = "400";
        c["Mqtt:StatusIntervalMs"] = "300";
        if (thresholds is not null) c["Thresholds"] = thresholds;
        return c;
    }

    private static string Folder(TempDir tmp, params string[] images)
    {
        string dir = Directory.CreateDirectory(tmp.File("frames")).FullName;
        for (int i = 0; i < images.Length; i++) File.Copy(images[i], Path.Combine(dir, $"{i:D3}{Path.GetExtension(images[i])}"));
        return dir;
    }

    private static JsonElement Json(MqttProbe.Message m) => JsonDocument.Parse(m.Payload).RootElement.Clone();

    [Fact(Timeout = 240_000)]
    public async Task VerdictsDiscoveryBudgetAndBrokerOutage()
    {
        using var tmp = new TempDir();
        await using var broker = await MosquittoBroker.StartNewAsync();
        const string b = "edgevit/test-node";
        await using var probe = await MqttProbe.ConnectAsync(broker.Port, b + "/#", "homeassistant/#");
        var images = SharedAssets.Images();
        var config = Config(broker.Port, b, Folder(tmp, images[0], images[1], images[2]), ServiceFiles.WriteThresholds(tmp.File("t.json")));
        config["Mqtt:OutboxCapacity"] = "4";
        // Every verdict also goes to a file, to report the engine's latency with the broker up and down.
        string verdicts = tmp.File("verdicts.jsonl");
        config["Results:Sink"] = "file";
        config["Results:Path"] = verdicts;
        await using var service = await TestService.StartAsync(config);
        var bridge = service.App.Services.GetService(typeof(MqttBridge)) as MqttBridge;
        Assert.NotNull(bridge);

        // availability online, verdicts, status
        await probe.WaitFor(m => m.Topic == b + "/availability" && m.Payload == "online", TimeSpan.FromSeconds(30), "availability online");
        var first = await probe.WaitFor(m => m.Topic == b + "/verdict", TimeSpan.FromSeconds(60), "a verdict");
        var verdict = Json(first);
        Assert.True(verdict.GetProperty("top").GetArrayLength() > 0);
        Assert.StartsWith("n", verdict.GetProperty("top")[0].GetProperty("synset").GetString());
        var status = Json(await probe.WaitFor(m => m.Topic == b + "/status", TimeSpan.FromSeconds(30), "status"));
        Assert.Equal("online", status.GetProperty("state").GetString());

        // Home Assistant discovery: topic layout, required keys, and every template resolves on the real messages.
        var configs = probe.Messages.Where(m => m.Topic.StartsWith("homeassistant/")).GroupBy(m => m.Topic).Select(g => g.Last()).ToList();
        Assert.Equal(5, configs.Count); // 4 sensors + the budget number
        // Retained: a client subscribing later (Home Assistant after its restart) still gets every config.
        await using (var late = await MqttProbe.ConnectAsync(broker.Port, "homeassistant/#"))
        {
            await TestService.WaitUntil(() => late.Messages.Count >= configs.Count, TimeSpan.FromSeconds(10), "retained discovery configs");
            Assert.All(late.Messages, m => Assert.True(m.Retain, $"{m.Topic} is not retained"));
        }
        foreach (var m in configs)
        {
            var match = DiscoveryTopic().Match(m.Topic);
            Assert.True(match.Success, $"discovery topic {m.Topic} is not <prefix>/<component>/<node_id>/<object_id>/config");
            var c = Json(m);
            foreach (var key in new[] { "name", "unique_id", "state_topic", "availability_topic", "value_template" })
                Assert.True(c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String && v.GetString()!.Length > 0, $"{m.Topic}: {key} missing");
            Assert.Equal(b + "/availability", c.GetProperty("availability_topic").GetString());
            Assert.True(c.GetProperty("device").GetProperty("identifiers").GetArrayLength() > 0);
            string stateTopic = c.GetProperty("state_topic").GetString()!;
            var state = Json(probe.On(stateTopic).Last());
            var value = Template(c.GetProperty("value_template").GetString()!, state);
            Assert.True(value.ValueKind is JsonValueKind.String or JsonValueKind.Number, $"{m.Topic}: template gives {value.ValueKind}");
        }
        var unique = configs.Select(m => Json(m).GetProperty("unique_id").GetString()).ToList();
        Assert.Equal(unique.Count, unique.Distinct().Count());
        var number = Json(configs.Single(m => m.Topic.StartsWith("homeassistant/number/")));
        Assert.Equal(b + "/budget/set", number.GetProperty("command_topic").GetString());
        Assert.True(number.GetProperty("min").GetDouble() < number.GetProperty("max").GetDouble());
        Assert.True(number.GetProperty("step").GetDouble() > 0);

        // budget/set: the number's command_template rendered with 0.6, as Home Assistant would send it.
        string command = number.GetProperty("command_template").GetString()!.Replace("{{ value }}", "0.6");
        await probe.PublishAsync(b + "/budget/set", command);
        await TestService.WaitUntil(() => service.Budget.Current.Budget == 0.6, TimeSpan.FromSeconds(20), "budget/set to change the active set");
        var budget = await service.GetJsonAsync("/v1/budget");
        Assert.Equal(0.6, budget.GetProperty("target").GetDouble());
        Assert.Equal(0.6, budget.GetProperty("active_set").GetProperty("budget").GetDouble());
        await probe.WaitFor(m => m.Topic == b + "/status" && Json(m).GetProperty("budget").GetProperty("active_set").GetProperty("budget").GetDouble() == 0.6,
            TimeSpan.FromSeconds(20), "status with the new budget");
        // A body PUT /v1/budget refuses is refused here too, with the same reason, and the budget stays.
        await probe.PublishAsync(b + "/budget/set", "{\"target\": 0.1}");
        await probe.WaitFor(m => m.Topic == b + "/status" && Json(m).TryGetProperty("last_budget_error", out var e) && e.GetString()!.Contains("below the lowest calibrated budget"),
            TimeSpan.FromSeconds(20), "status naming the refused budget");
        Assert.Equal(0.6, service.Budget.Current.Budget);

        // Broker outage: the bridge notices, verdicts overflow the 4-slot outbox (dropped, counted), classification goes on.
        // A dozen verdicts at the new budget with the broker up, for the latency report at the end.
        long atNewBudget = service.Status.Classified;
        var upSince = DateTimeOffset.UtcNow;
        await TestService.WaitUntil(() => service.Status.Classified >= atNewBudget + 12, TimeSpan.FromSeconds(60), "verdicts with the broker up");
        var killedAt = DateTimeOffset.UtcNow;
        await broker.KillAsync();
        await TestService.WaitUntil(() => !bridge!.Connected, TimeSpan.FromSeconds(30), "the bridge to see the broker gone");
        long classifiedAtOutage = service.Status.Classified, droppedAtOutage = bridge!.Outbox.Dropped;
        await TestService.WaitUntil(() => service.Status.Classified >= classifiedAtOutage + 12, TimeSpan.FromSeconds(60), "classification to continue with the broker down");
        Assert.True(bridge.Outbox.Dropped >= droppedAtOutage + 12 - bridge.Outbox.Capacity, $"dropped {bridge.Outbox.Dropped - droppedAtOutage} of 12+ verdicts with a 4-slot outbox");
        Assert.True(bridge.Outbox.Count <= bridge.Outbox.Capacity);
        var mqtt = (await service.GetJsonAsync("/v1/status")).GetProperty("mqtt");
        Assert.False(mqtt.GetProperty("connected").GetBoolean());
        Assert.True(mqtt.GetProperty("dropped").GetInt64() > 0);

        // Broker back on the same port: the bridge reconnects, availability is online again, verdicts flow.
        var restartedAt = DateTimeOffset.UtcNow;
        await broker.StartAsync();
        await using var probe2 = await MqttProbe.ConnectAsync(broker.Port, b + "/#");
        await probe2.WaitFor(m => m.Topic == b + "/availability" && m.Payload == "online", TimeSpan.FromSeconds(30), "availability online after the restart");
        await probe2.WaitFor(m => m.Topic == b + "/verdict" && !m.Retain, TimeSpan.FromSeconds(30), "a verdict after the restart");
        Assert.True(bridge.Connected);
        Assert.True(bridge.Connects >= 2);

        // Reported, not asserted (timings on a shared machine): median infer and decode+preprocess+infer ms of the
        // verdicts before the outage, during it and after the reconnect.
        await service.StopAsync();
        var rows = File.ReadAllLines(verdicts).Select(l => JsonDocument.Parse(l).RootElement)
            .Select(v => (Time: v.GetProperty("time").GetDateTimeOffset(), Infer: v.GetProperty("latency_ms").GetProperty("infer").GetDouble(),
                Processing: v.GetProperty("latency_ms").GetProperty("decode").GetDouble() + v.GetProperty("latency_ms").GetProperty("preprocess").GetDouble()
                            + v.GetProperty("latency_ms").GetProperty("infer").GetDouble())).ToList();
        static double Median(IEnumerable<double> xs) { var a = xs.Order().ToArray(); return a.Length == 0 ? double.NaN : a[a.Length / 2]; }
        foreach (var (name, part) in new[]
                 {
                     ("broker up", rows.Where(r => r.Time >= upSince && r.Time < killedAt).ToList()), // same budget (0.6) in all three
                     ("broker down", rows.Where(r => r.Time >= killedAt && r.Time < restartedAt).ToList()),
                     ("reconnected", rows.Where(r => r.Time >= restartedAt).ToList()),
                 })
            output.WriteLine($"{name}: {part.Count} verdicts, median infer {Median(part.Select(r => r.Infer)):0.00} ms, processing {Median(part.Select(r => r.Processing)):0.00} ms");
        output.WriteLine($"outbox: {bridge.Outbox.Enqueued} enqueued, {bridge.Outbox.Dropped} dropped, {bridge.Published} published, {bridge.Connects} connects");
    }

    [Fact(Timeout = 240_000)]
    public async Task PublishFiltersChangeAndMatch()
    {
        using var tmp = new TempDir();
        await using var broker = await MosquittoBroker.StartNewAsync();
        var images = SharedAssets.Images();
        // Frames A, A, B (looping): top-1 changes on the first A and on B.
        string folder = Folder(tmp, images[0], images[0], images[5]);

        var change = Config(broker.Port, "edgevit/change", folder);
        change["Mqtt:Publish"] = "change";
        await using (var probe = await MqttProbe.ConnectAsync(broker.Port, "edgevit/change/verdict"))
        await using (var service = await TestService.StartAsync(change))
        {
            await TestService.WaitUntil(() => probe.Messages.Count >= 4, TimeSpan.FromSeconds(90), "4 verdicts in change mode");
            var tops = probe.Messages.Select(m => Json(m).GetProperty("top")[0].GetProperty("class").GetInt32()).ToList();
            for (int i = 1; i < tops.Count; i++) Assert.NotEqual(tops[i - 1], tops[i]);
            Assert.True(service.Status.Classified > tops.Count, "change mode published every verdict");
        }

        // match: only the class of image A, at any score.
        int classA;
        await using (var service = await TestService.StartAsync(HttpOnly()))
        {
            using var content = new ByteArrayContent(File.ReadAllBytes(images[0]));
            var r = await service.Http.PostAsync("/v1/classify", content);
            classA = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("top")[0].GetProperty("class").GetInt32();
        }
        var match = Config(broker.Port, "edgevit/match", folder);
        match["Mqtt:Publish"] = "match";
        match["Mqtt:MatchClasses"] = classA.ToString(CultureInfo.InvariantCulture);
        match["Mqtt:MinScore"] = "0";
        await using (var probe = await MqttProbe.ConnectAsync(broker.Port, "edgevit/match/verdict"))
        await using (var service = await TestService.StartAsync(match))
        {
            await TestService.WaitUntil(() => service.Status.Classified >= 7, TimeSpan.FromSeconds(90), "7 frames classified");
            await Task.Delay(300); // let the last verdicts leave the outbox
            Assert.NotEmpty(probe.Messages);
            Assert.All(probe.Messages, m => Assert.Equal(classA, Json(m).GetProperty("top")[0].GetProperty("class").GetInt32()));
            Assert.True(probe.Messages.Count < service.Status.Classified, "match mode let a B frame through");
        }
    }

    [Fact]
    public void MatchNeedsClassesAndBaseTopicHasNoWildcards()
    {
        var o = new EdgeVitOptions { Model = "m.safetensors" };
        o.Mqtt.Server = "broker";
        o.Mqtt.Publish = MqttPublish.Match;
        o.Mqtt.BaseTopic = "edgevit/+";
        var problems = EdgeVitOptionsValidator.Check(o);
        Assert.Contains(problems, p => p.StartsWith("Mqtt:MatchClasses is required"));
        Assert.Contains(problems, p => p.StartsWith("Mqtt:BaseTopic must be a topic without wildcards"));
    }

    [Fact]
    public void OutboxDropsOldestAndCounts()
    {
        var box = new MqttOutbox(3);
        for (int i = 0; i < 5; i++) box.TryEnqueue(MqttTopicKind.Verdict, [(byte)i]);
        Assert.Equal(2, box.Dropped);
        Assert.Equal(3, box.Count);
        var got = new List<byte>();
        while (box.TryDequeue(out _, out var p)) got.Add(p[0]);
        Assert.Equal(new byte[] { 2, 3, 4 }, got);
        // Steady state copies into the ring's own buffers: no allocation per message.
        byte[] payload = new byte[600];
        long allocated = SteadyAllocationOf(() => { box.TryEnqueue(MqttTopicKind.Verdict, payload); });
        Assert.Equal(0, allocated);
    }

    private static long SteadyAllocationOf(Action a)
    {
        for (int i = 0; i < 10; i++) a();
        long best = long.MaxValue;
        for (int round = 0; round < 5; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 100; i++) a();
            best = Math.Min(best, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return best;
    }

    private static Dictionary<string, string?> HttpOnly()
    {
        var c = TestService.BaseConfig();
        c["Source:Kind"] = "none";
        c["Trigger:Mode"] = "http";
        return c;
    }

    /// <summary>Evaluates the templates discovery uses, <c>{{ value_json.a.b[0].c }}</c>, on a message.</summary>
    private static JsonElement Template(string template, JsonElement json)
    {
        var m = TemplatePath().Match(template);
        Assert.True(m.Success, $"unexpected template {template}");
        var cur = json;
        foreach (Match part in PathPart().Matches(m.Groups[1].Value))
        {
            Assert.True(cur.ValueKind == JsonValueKind.Object && cur.TryGetProperty(part.Groups[1].Value, out cur), $"{template}: no '{part.Groups[1].Value}' in {json}");
            if (part.Groups[2].Success) cur = cur[int.Parse(part.Groups[2].Value)];
        }
        return cur;
    }

    [GeneratedRegex(@"^homeassistant/(sensor|number|select)/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/config$")]
    private static partial Regex DiscoveryTopic();

    [GeneratedRegex(@"^\{\{ value_json\.([a-z0-9_.\[\]]+) \}\}$")]
    private static partial Regex TemplatePath();

    [GeneratedRegex(@"([a-z0-9_]+)(?:\[(\d+)\])?")]
    private static partial Regex PathPart();
}
