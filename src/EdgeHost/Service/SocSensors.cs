using System.Diagnostics.Metrics;
using System.Globalization;

namespace EdgeViT.Host.Service;

/// <summary>
/// SoC temperature (/sys/class/thermal/thermal_zone*/temp, millidegrees) and Raspberry Pi throttling flags
/// (/sys/devices/platform/soc/soc:firmware/get_throttled, hex: bit 0 under-voltage, 1 frequency capped,
/// 2 throttled, 3 soft temperature limit; bits 16-19 the same "has occurred"). An instrument exists only where
/// its file does.
/// </summary>
public static class SocSensors
{
    public static string ThrottledPath(string sysRoot) => Path.Combine(sysRoot, "devices", "platform", "soc", "soc:firmware", "get_throttled");

    /// <summary>(zone name, temp file) of every readable thermal zone.</summary>
    public static IReadOnlyList<(string Zone, string File)> ThermalZones(string sysRoot)
    {
        string dir = Path.Combine(sysRoot, "class", "thermal");
        if (!Directory.Exists(dir)) return [];
        var zones = new List<(string, string)>();
        try
        {
            foreach (var zone in Directory.EnumerateDirectories(dir, "thermal_zone*").Order(StringComparer.Ordinal))
            {
                string temp = Path.Combine(zone, "temp");
                if (!File.Exists(temp) || ReadLong(temp, 10) is null) continue;
                string type = Path.Combine(zone, "type");
                string name = File.Exists(type) ? SafeRead(type)?.Trim() ?? Path.GetFileName(zone) : Path.GetFileName(zone);
                zones.Add(($"{Path.GetFileName(zone)}:{name}", temp));
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        return zones;
    }

    /// <summary>Creates the gauges that have a source on this machine; returns their names.</summary>
    public static List<string> Register(Meter meter, string sysRoot)
    {
        var created = new List<string>();
        var zones = ThermalZones(sysRoot);
        if (zones.Count > 0)
        {
            var tags = zones.Select(z => new KeyValuePair<string, object?>(EdgeVitMetrics.ZoneAttribute, z.Zone)).ToArray();
            meter.CreateObservableGauge(EdgeVitMetrics.SocTemperature, () => Temperatures(zones, tags), EdgeVitMetrics.SocTemperatureUnit,
                "SoC temperature per thermal zone.");
            created.Add(EdgeVitMetrics.SocTemperature);
        }
        string throttled = ThrottledPath(sysRoot);
        if (File.Exists(throttled) && ReadLong(throttled, 16) is not null)
        {
            meter.CreateObservableGauge(EdgeVitMetrics.SocThrottled, () => Throttled(throttled), EdgeVitMetrics.SocThrottledUnit,
                "Raspberry Pi firmware throttling flags (get_throttled bitmask; 0 = none).");
            created.Add(EdgeVitMetrics.SocThrottled);
        }
        return created;
    }

    private static IEnumerable<Measurement<double>> Temperatures(IReadOnlyList<(string Zone, string File)> zones, KeyValuePair<string, object?>[] tags)
    {
        for (int i = 0; i < zones.Count; i++)
            if (ReadLong(zones[i].File, 10) is long milli)
                yield return new Measurement<double>(milli / 1000.0, tags[i]);
    }

    private static IEnumerable<Measurement<long>> Throttled(string file)
    {
        if (ReadLong(file, 16) is long flags) yield return new Measurement<long>(flags);
    }

    /// <summary>Reads an integer file ("45123", "0x50005" or "50005" for hex); null when unreadable.</summary>
    public static long? ReadLong(string file, int radix)
    {
        string? text = SafeRead(file)?.Trim();
        if (string.IsNullOrEmpty(text)) return null;
        if (text.StartsWith("throttled=", StringComparison.Ordinal)) text = text["throttled=".Length..];
        if (radix == 16)
        {
            if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) text = text[2..];
            return long.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out long h) ? h : null;
        }
        return long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v) ? v : null;
    }

    private static string? SafeRead(string file)
    {
        try { return File.ReadAllText(file); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }
}
