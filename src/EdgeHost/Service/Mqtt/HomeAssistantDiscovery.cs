using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace EdgeViT.Host.Service;

/// <summary>
/// Home Assistant MQTT discovery: one retained config per entity at
/// <c>&lt;prefix&gt;/&lt;component&gt;/&lt;node_id&gt;/&lt;object_id&gt;/config</c>, all tied to one device and to
/// &lt;base&gt;/availability. Sensors read &lt;base&gt;/verdict (top-1 class, its score, total latency) and
/// &lt;base&gt;/status (active budget); with a thresholds file a <c>number</c> entity sets the FLOPs budget through
/// &lt;base&gt;/budget/set with the PUT /v1/budget body <c>{"mode":"fixed","target":x}</c>.
/// </summary>
public static class HomeAssistantDiscovery
{
    public sealed record Entity(string Component, string ObjectId, string Topic, byte[] Payload);

    /// <summary>The node id: the client id reduced to the characters discovery topics allow.</summary>
    public static string NodeId(string clientId)
    {
        var sb = new StringBuilder(clientId.Length);
        foreach (char c in clientId) sb.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '_');
        return sb.Length > 0 ? sb.ToString() : "edgevit";
    }

    public static IReadOnlyList<Entity> Build(MqttOptions o, LoadedModel model, BudgetController budget)
    {
        string node = NodeId(o.EffectiveClientId);
        string b = o.EffectiveBaseTopic;
        bool labels = model.Synsets is not null;
        var list = new List<Entity>
        {
            Make(o, node, "sensor", "top1", w =>
            {
                Common(w, o, model, node, "top1", "Top-1 class", $"{b}/verdict", "mdi:eye");
                // With a synsets file the label, else the class index.
                w.WriteString("value_template", labels ? "{{ value_json.top[0].label }}" : "{{ value_json.top[0].class }}");
                w.WriteString("json_attributes_topic", $"{b}/verdict");
                w.WriteString("json_attributes_template", "{{ {'class': value_json.top[0].class, 'score': value_json.top[0].score, 'source': value_json.source} | tojson }}");
            }),
            Make(o, node, "sensor", "score", w =>
            {
                Common(w, o, model, node, "score", "Top-1 score", $"{b}/verdict", "mdi:percent");
                w.WriteString("value_template", "{{ value_json.top[0].score }}");
                w.WriteString("state_class", "measurement");
            }),
            Make(o, node, "sensor", "latency", w =>
            {
                Common(w, o, model, node, "latency", "Latency", $"{b}/verdict", "mdi:timer-outline");
                w.WriteString("value_template", "{{ value_json.latency_ms.total }}");
                w.WriteString("unit_of_measurement", "ms");
                w.WriteString("device_class", "duration");
                w.WriteString("state_class", "measurement");
            }),
            Make(o, node, "sensor", "budget", w =>
            {
                Common(w, o, model, node, "budget", "Active budget", $"{b}/status", "mdi:speedometer");
                w.WriteString("value_template", "{{ value_json.budget.active_set.budget }}");
                w.WriteString("state_class", "measurement");
            }),
        };
        if (budget.Enabled)
            list.Add(Make(o, node, "number", "budget_target", w =>
            {
                Common(w, o, model, node, "budget_target", "FLOPs budget", $"{b}/status", "mdi:tune-vertical");
                w.WriteString("value_template", "{{ value_json.budget.target }}");
                w.WriteString("command_topic", $"{b}/budget/set");
                w.WriteString("command_template", "{\"mode\":\"fixed\",\"target\":{{ value }}}");
                w.WriteNumber("min", Math.Round(budget.Catalog.MinBudget, 3));
                w.WriteNumber("max", 1);
                w.WriteNumber("step", 0.01);
                w.WriteString("mode", "slider");
            }));
        return list;
    }

    private static void Common(Utf8JsonWriter w, MqttOptions o, LoadedModel model, string node, string objectId, string name, string stateTopic, string icon)
    {
        w.WriteString("name", name);
        w.WriteString("unique_id", $"{node}_{objectId}");
        w.WriteString("state_topic", stateTopic);
        w.WriteString("availability_topic", $"{o.EffectiveBaseTopic}/availability");
        w.WriteString("payload_available", "online");
        w.WriteString("payload_not_available", "offline");
        w.WriteString("icon", icon);
        w.WriteStartObject("device");
        w.WriteStartArray("identifiers");
        w.WriteStringValue(node);
        w.WriteEndArray();
        w.WriteString("name", $"EdgeViT {MqttOptions.HostName}");
        w.WriteString("manufacturer", "EdgeViT");
        w.WriteString("model", model.Config.Describe());
        w.WriteString("sw_version", typeof(HomeAssistantDiscovery).Assembly.GetName().Version?.ToString(3) ?? "0");
        w.WriteEndObject();
        w.WriteStartObject("origin");
        w.WriteString("name", "edgevit");
        w.WriteEndObject();
    }

    private static Entity Make(MqttOptions o, string node, string component, string objectId, Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        string prefix = o.DiscoveryPrefix.Trim().TrimEnd('/');
        return new Entity(component, objectId, $"{prefix}/{component}/{node}/{objectId}/config", buffer.WrittenSpan.ToArray());
    }

    internal static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
}
