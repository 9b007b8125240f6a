namespace EdgeViT.Host.Service;

public enum MqttPublish { All, Change, Match }

/// <summary>
/// Mqtt:* — verdicts, status and availability to an MQTT broker, budget commands from it, Home Assistant
/// discovery. Off while <see cref="Server"/> is empty.
/// </summary>
public sealed class MqttOptions
{
    /// <summary>Broker host name or address; empty = MQTT off.</summary>
    public string? Server { get; set; }

    /// <summary>Broker port; 0 = 1883, or 8883 with Tls.</summary>
    [IntRange(0, 65535)] public int Port { get; set; }

    public bool Tls { get; set; }

    /// <summary>Accept a broker certificate that does not validate (self-signed test brokers only).</summary>
    public bool TlsAllowUntrusted { get; set; }

    public string? Username { get; set; }
    public string? Password { get; set; }

    /// <summary>Client id; empty = edgevit-&lt;hostname&gt;.</summary>
    public string? ClientId { get; set; }

    /// <summary>Topic prefix; empty = edgevit/&lt;hostname&gt;.</summary>
    public string? BaseTopic { get; set; }

    /// <summary>all (every verdict), change (top-1 class changed), match (top-1 in MatchClasses with score >= MinScore).</summary>
    [DefinedEnum] public MqttPublish Publish { get; set; } = MqttPublish.All;

    /// <summary>Publish=match: comma-separated class indices or synset ids (n01440764).</summary>
    public string? MatchClasses { get; set; }

    /// <summary>Publish=match: minimum top-1 probability.</summary>
    [DoubleRange(0, 1)] public double MinScore { get; set; } = 0.5;

    /// <summary>Messages waiting for the broker; when full the oldest is dropped (and counted).</summary>
    [IntRange(1, 100_000)] public int OutboxCapacity { get; set; } = 256;

    /// <summary>Reconnect backoff: first delay, doubling up to ReconnectMaxMs.</summary>
    [IntRange(10, 600_000)] public int ReconnectMinMs { get; set; } = 1000;
    [IntRange(10, 3_600_000)] public int ReconnectMaxMs { get; set; } = 30_000;

    /// <summary>How often &lt;base&gt;/status is published (also after every budget change).</summary>
    [IntRange(100, 86_400_000)] public int StatusIntervalMs { get; set; } = 10_000;

    /// <summary>Publish Home Assistant MQTT discovery configs (retained) under DiscoveryPrefix.</summary>
    public bool Discovery { get; set; } = true;

    public string DiscoveryPrefix { get; set; } = "homeassistant";

    public bool Enabled => !string.IsNullOrWhiteSpace(Server);

    public int EffectivePort => Port > 0 ? Port : Tls ? 8883 : 1883;

    public static string HostName => System.Net.Dns.GetHostName() is { Length: > 0 } h ? h : "edgevit";

    public string EffectiveClientId => string.IsNullOrWhiteSpace(ClientId) ? $"edgevit-{HostName}" : ClientId.Trim();

    public string EffectiveBaseTopic => (string.IsNullOrWhiteSpace(BaseTopic) ? $"edgevit/{HostName}" : BaseTopic.Trim()).TrimEnd('/');

    /// <summary>Problems that span keys (one line each), for the options validator.</summary>
    public IEnumerable<string> Check()
    {
        if (!Enabled) yield break;
        string b = EffectiveBaseTopic;
        if (b.Length == 0 || b.Contains('+') || b.Contains('#') || b.StartsWith('$'))
            yield return $"Mqtt:BaseTopic must be a topic without wildcards (+, #) or a leading $ (got '{BaseTopic}')";
        if (Publish == MqttPublish.Match && string.IsNullOrWhiteSpace(MatchClasses))
            yield return "Mqtt:MatchClasses is required when Mqtt:Publish is match (class indices or synset ids, comma-separated)";
        if (ReconnectMaxMs < ReconnectMinMs)
            yield return $"Mqtt:ReconnectMaxMs must be >= Mqtt:ReconnectMinMs (got {ReconnectMaxMs} < {ReconnectMinMs})";
        if (string.IsNullOrWhiteSpace(Username) && !string.IsNullOrEmpty(Password))
            yield return "Mqtt:Username is required when Mqtt:Password is set";
        if (string.IsNullOrWhiteSpace(DiscoveryPrefix) || DiscoveryPrefix.Contains('+') || DiscoveryPrefix.Contains('#'))
            yield return $"Mqtt:DiscoveryPrefix must be a topic without wildcards (got '{DiscoveryPrefix}')";
    }
}
