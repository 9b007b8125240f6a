using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;

namespace EdgeViT.Tests.Deploy;

/// <summary>
/// The example configuration the systemd install and the compose stack ship (deploy/systemd/etc/edgevit/edgevit.json)
/// binds to the service's EdgeVitOptions with no unknown key and passes EdgeVitOptionsValidator, alone and with the
/// EDGEVIT__* overrides compose.yaml and compose.devices.yaml set. Binding is done here by reflection, strictly
/// (case-insensitive keys like Microsoft.Extensions.Configuration, but an unknown key is an error rather than ignored),
/// because this test project cannot reference the service's packages while the service is on another branch.
/// </summary>
public class ExampleConfigTests
{
    private const string ExampleConfig = "deploy/systemd/etc/edgevit/edgevit.json";
    /// <summary>Top-level sections the host reads besides EdgeVitOptions.</summary>
    private static readonly string[] HostSections = ["Logging"];

    [Fact]
    public void ExampleConfig_BindsWithoutUnknownKeysAndValidates()
    {
        var (options, unknown) = Bind(ExampleConfigJson(), overrides: []);
        Assert.True(unknown.Count == 0, "keys the service does not have: " + string.Join(", ", unknown));
        var failures = Validate(options);
        Assert.True(failures.Count == 0, "validation failures: " + string.Join("; ", failures));
    }

    [Fact]
    public void ExampleConfig_WithTheComposeOverrides_Validates()
    {
        foreach (var file in new[] { "deploy/docker/compose.yaml", "deploy/docker/compose.devices.yaml", "deploy/docker/compose.fleet.yaml" })
        {
            var overrides = ComposeOverrides(file);
            Assert.True(overrides.Count > 0, $"no EDGEVIT__ variables found in {file}");
            var (options, unknown) = Bind(ExampleConfigJson(), overrides);
            Assert.True(unknown.Count == 0, $"{file}: keys the service does not have: " + string.Join(", ", unknown));
            var failures = Validate(options);
            Assert.True(failures.Count == 0, $"{file}: validation failures: " + string.Join("; ", failures));
        }
    }

    [Fact]
    public void StrictBinder_ReportsUnknownKeysAndTheValidatorRejectsBadValues()
    {
        // The checks above can fail: a misspelt key and an out-of-range value are caught.
        using var doc = JsonDocument.Parse("""{"Model": "m.safetensors", "Budget": {"Targett": 0.7}, "Threads": 0}""");
        var (options, unknown) = Bind(doc.RootElement, overrides: []);
        Assert.Equal(["Budget:Targett"], unknown);
        var failures = Validate(options);
        Assert.Contains(failures, f => f.StartsWith("Threads", StringComparison.Ordinal));
    }

    private static JsonElement ExampleConfigJson()
    {
        using var doc = DeployFiles.Json(ExampleConfig);
        return doc.RootElement.Clone();
    }

    private static List<string> Validate(object options)
    {
        var validator = DeployFiles.ServiceType("EdgeVitOptionsValidator");
        var check = validator.GetMethod("Check", BindingFlags.Public | BindingFlags.Static);
        Assert.True(check is not null, "EdgeVitOptionsValidator.Check(EdgeVitOptions) not found");
        return ((IEnumerable)check!.Invoke(null, [options])!).Cast<string>().ToList();
    }

    /// <summary>EDGEVIT__Section__Key: value lines of a compose file's environment, ${VAR:-default} resolved to the default.</summary>
    private static List<(string Key, string Value)> ComposeOverrides(string relative)
    {
        var list = new List<(string, string)>();
        foreach (var line in File.ReadAllLines(DeployFiles.PathOf(relative)))
        {
            var m = Regex.Match(line, @"^\s+EDGEVIT__(\S+):\s*(.+?)\s*$");
            if (!m.Success) continue;
            string value = Regex.Replace(m.Groups[2].Value.Trim('"', '\''), @"\$\{\w+:-([^}]*)\}", "$1");
            list.Add((m.Groups[1].Value.Replace("__", ":"), value));
        }
        return list;
    }

    /// <summary>Binds JSON, then "Section:Key" overrides, onto a new EdgeVitOptions; returns it and the unknown keys.</summary>
    private static (object Options, List<string> Unknown) Bind(JsonElement json, IEnumerable<(string Key, string Value)> overrides)
    {
        var type = DeployFiles.ServiceType("EdgeVitOptions");
        var options = Activator.CreateInstance(type)!;
        var unknown = new List<string>();
        foreach (var p in json.EnumerateObject())
        {
            if (HostSections.Contains(p.Name, StringComparer.OrdinalIgnoreCase)) continue;
            BindProperty(options, p.Name, p.Value, p.Name, unknown);
        }
        foreach (var (key, value) in overrides)
        {
            var path = key.Split(':');
            object target = options;
            for (int i = 0; i < path.Length - 1 && target is not null; i++)
                target = Property(target.GetType(), path[i]) is { } prop ? prop.GetValue(target)! : null!;
            if (target is null || Property(target.GetType(), path[^1]) is null) { unknown.Add(key); continue; }
            using var doc = JsonDocument.Parse(JsonSerializer.Serialize(value));
            BindProperty(target, path[^1], doc.RootElement, key, unknown);
        }
        return (options, unknown);
    }

    private static PropertyInfo? Property(Type type, string name) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase) && p.CanWrite && p.GetCustomAttribute<System.Text.Json.Serialization.JsonIgnoreAttribute>() is null);

    private static void BindProperty(object target, string name, JsonElement value, string path, List<string> unknown)
    {
        var prop = Property(target.GetType(), name);
        if (prop is null) { unknown.Add(path); return; }
        var t = Nullable.GetUnderlyingType(prop.PropertyType) ?? prop.PropertyType;
        if (value.ValueKind == JsonValueKind.Object)
        {
            Assert.True(t.IsClass && t != typeof(string), $"{path} is an object, but the option is a {t.Name}");
            var child = prop.GetValue(target) ?? Activator.CreateInstance(t)!;
            foreach (var p in value.EnumerateObject()) BindProperty(child, p.Name, p.Value, $"{path}:{p.Name}", unknown);
            prop.SetValue(target, child);
            return;
        }
        if (value.ValueKind == JsonValueKind.Null) { prop.SetValue(target, null); return; }
        // Configuration values are strings converted to the property's type, as the configuration binder does.
        string text = value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText();
        object converted;
        try
        {
            converted = t == typeof(string) ? text
                : t == typeof(bool) ? bool.Parse(text)
                : t.IsEnum ? Enum.Parse(t, text, ignoreCase: true)
                : Convert.ChangeType(text, t, CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is FormatException or InvalidCastException or OverflowException)
        {
            throw new Xunit.Sdk.XunitException($"{path}: '{text}' does not convert to {t.Name}");
        }
        prop.SetValue(target, converted);
    }
}
