namespace EdgeViT.Host.Service;

/// <summary>Metric names of the integrations (MQTT, thermal guard), on the same "EdgeViT" meter as <see cref="EdgeVitMetrics"/>.</summary>
public static class IntegrationMetrics
{
    public const string MqttPublished = "edgevit.mqtt.published";
    public const string MqttDropped = "edgevit.mqtt.dropped";
    public const string MessagesUnit = "{message}";
    public const string MqttConnected = "edgevit.mqtt.connected";
    public const string MqttConnectedUnit = "{flag}";
    public const string ThermalCapped = "edgevit.thermal.capped";
    public const string ThermalCappedUnit = "{flag}";
    public const string ThermalCapBudget = "edgevit.thermal.cap_budget";
    public const string ThermalCapBudgetUnit = "1";

    public static readonly IReadOnlyDictionary<string, string> Units = new Dictionary<string, string>
    {
        [MqttPublished] = MessagesUnit,
        [MqttDropped] = MessagesUnit,
        [MqttConnected] = MqttConnectedUnit,
        [ThermalCapped] = ThermalCappedUnit,
        [ThermalCapBudget] = ThermalCapBudgetUnit,
    };
}
