using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;

namespace EdgeViT.Tests.Deploy;

/// <summary>
/// Shared by the deploy tests: the repository's deploy/ files, the service types found by reflection (so this test
/// project compiles whether or not the service is on the branch, and fails clearly when it is not), and the
/// OpenTelemetry -> Prometheus metric name translation of the OpenTelemetry Collector's prometheus exporter.
/// </summary>
public static class DeployFiles
{
    public const string ServiceNamespace = "EdgeViT.Host.Service";

    public static string RepoRoot { get; } = FindRoot();

    public static string PathOf(string relative) => Path.Combine(RepoRoot, relative.Replace('/', Path.DirectorySeparatorChar));

    public static JsonDocument Json(string relative) =>
        JsonDocument.Parse(File.ReadAllText(PathOf(relative)), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip });

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "deploy", "docker", "grafana", "metrics.json"))) return dir.FullName;
        throw new DirectoryNotFoundException("repository root with deploy/docker/grafana/metrics.json not found above " + AppContext.BaseDirectory);
    }

    /// <summary>The edgevit assembly (src/EdgeHost), referenced by this test project.</summary>
    public static Assembly HostAssembly => typeof(EdgeViT.Host.Cli).Assembly;

    /// <summary>A service type by name in EdgeViT.Host.Service; fails with a message naming what is missing.</summary>
    public static Type ServiceType(string name)
    {
        var type = HostAssembly.GetType($"{ServiceNamespace}.{name}");
        Assert.True(type is not null,
            $"type {ServiceNamespace}.{name} not found in {HostAssembly.GetName().Name}.dll: the service (feat/service: " +
            $"src/EdgeHost/Service/{name}.cs) is not on this branch yet. The deploy files are checked against it once merged.");
        return type!;
    }

    /// <summary>Metric name -> unit, from EdgeVitMetrics: its public const strings named like "edgevit.*" are the metric names;
    /// the unit is EdgeVitMetrics.Units[name] when that dictionary exists, else the const named NAME + "Unit".</summary>
    /// <summary>The service's metric names and units: EdgeVitMetrics and IntegrationMetrics (MQTT, thermal guard).</summary>
    public static IReadOnlyDictionary<string, string> ServiceMetrics()
    {
        var all = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var holder in new[] { "EdgeVitMetrics", "IntegrationMetrics" })
            foreach (var (name, unit) in MetricsOf(holder)) all[name] = unit;
        return all;
    }

    private static IReadOnlyDictionary<string, string> MetricsOf(string holder)
    {
        var type = ServiceType(holder);
        var consts = type.GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral && f.FieldType == typeof(string))
            .ToDictionary(f => f.Name, f => (string)f.GetRawConstantValue()!);
        var names = consts.Where(kv => kv.Value.StartsWith("edgevit.", StringComparison.Ordinal)).ToList();
        Assert.True(names.Count > 0, $"{type.FullName} has no public const string metric names starting with 'edgevit.'");

        var units = type.GetField("Units", BindingFlags.Public | BindingFlags.Static)?.GetValue(null) as IReadOnlyDictionary<string, string>;
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (field, metric) in names)
        {
            string? unit = units is not null && units.TryGetValue(metric, out var u) ? u
                : consts.TryGetValue(field + "Unit", out var cu) ? cu : null;
            Assert.True(unit is not null, $"{type.Name}.{field} ({metric}) has no unit (neither in Units nor a {field}Unit const)");
            result[metric] = unit!;
        }
        return result;
    }

    /// <summary>One row of deploy/docker/grafana/metrics.json.</summary>
    public sealed record CatalogEntry(string Otel, string Unit, string Kind, string Prometheus, string[] Labels);

    public static IReadOnlyList<CatalogEntry> Catalog()
    {
        using var doc = Json("deploy/docker/grafana/metrics.json");
        return doc.RootElement.GetProperty("metrics").EnumerateArray().Select(e => new CatalogEntry(
            e.GetProperty("otel").GetString()!, e.GetProperty("unit").GetString()!, e.GetProperty("kind").GetString()!,
            e.GetProperty("prometheus").GetString()!,
            e.GetProperty("labels").EnumerateArray().Select(l => l.GetString()!).ToArray())).ToList();
    }

    // ---- OpenTelemetry -> Prometheus names (collector prometheus exporter, UnderscoreEscapingWithSuffixes) ----

    private static readonly Dictionary<string, string> UnitMap = new(StringComparer.Ordinal)
    {
        ["d"] = "days", ["h"] = "hours", ["min"] = "minutes", ["s"] = "seconds", ["ms"] = "milliseconds",
        ["us"] = "microseconds", ["ns"] = "nanoseconds",
        ["By"] = "bytes", ["KiBy"] = "kibibytes", ["MiBy"] = "mebibytes", ["GiBy"] = "gibibytes", ["TiBy"] = "tibibytes",
        ["KBy"] = "kilobytes", ["MBy"] = "megabytes", ["GBy"] = "gigabytes", ["TBy"] = "terabytes",
        ["m"] = "meters", ["V"] = "volts", ["A"] = "amperes", ["J"] = "joules", ["W"] = "watts", ["g"] = "grams",
        ["Cel"] = "celsius", ["Hz"] = "hertz", ["1"] = "", ["%"] = "percent",
    };

    private static readonly Dictionary<string, string> PerUnitMap = new(StringComparer.Ordinal)
    {
        ["s"] = "second", ["m"] = "minute", ["h"] = "hour", ["d"] = "day", ["w"] = "week", ["mo"] = "month", ["y"] = "year",
    };

    private static bool Compliant(char c) => c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or ':';

    private static string CleanUpUnit(string unit)
    {
        var s = Regex.Replace(new string(unit.Select(c => Compliant(c) ? c : '_').ToArray()), "__+", "_");
        return s.StartsWith('_') ? s[1..] : s;
    }

    /// <summary>
    /// The Prometheus name of an OpenTelemetry metric: name split on characters outside [a-zA-Z0-9:], the unit
    /// appended (UCUM -> Prometheus words, unknown units as written, none for "{...}" annotations or "1"), "ratio"
    /// for gauges of unit "1", "total" for monotonic counters; kind is counter, gauge or histogram.
    /// </summary>
    public static string PrometheusName(string otelName, string unit, string kind)
    {
        var tokens = Regex.Split(otelName, "[^a-zA-Z0-9:]+").Where(t => t.Length > 0).ToList();
        string main = "", per = "";
        var parts = unit.Split('/', 2);
        string mainOtel = parts[0].Trim();
        if (mainOtel.Length > 0 && !mainOtel.Contains('{') && !mainOtel.Contains('}'))
            main = UnitMap.TryGetValue(mainOtel, out var m) ? m : mainOtel;
        if (parts.Length > 1 && parts[1].Trim() is { Length: > 0 } perOtel && !perOtel.Contains('{') && !perOtel.Contains('}'))
            per = "per_" + (PerUnitMap.TryGetValue(perOtel, out var p) ? p : perOtel);
        main = CleanUpUnit(main);
        per = CleanUpUnit(per);
        if (tokens.Contains(main)) main = "";
        if (per == "per_") per = "";
        else
        {
            per = per.TrimEnd('_');
            if (tokens.Contains(per)) per = "";
        }
        if (per.Length > 0) main = main.TrimEnd('_');
        if (main.Length > 0) tokens.Add(main);
        if (per.Length > 0) tokens.Add(per);
        if (kind == "counter") { tokens.RemoveAll(t => t == "total"); tokens.Add("total"); }
        if (unit == "1" && kind == "gauge") { tokens.RemoveAll(t => t == "ratio"); tokens.Add("ratio"); }
        var name = string.Join("_", tokens);
        return name.Length > 0 && char.IsDigit(name[0]) ? "_" + name : name;
    }

    // ---- PromQL: the metric names an expression uses ----

    private static readonly HashSet<string> PromQlKeywords = new(StringComparer.OrdinalIgnoreCase)
    {
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan",
    };

    /// <summary>Metric names in a PromQL expression (Grafana variables allowed): identifiers that are not functions,
    /// keywords, label names (in {...}, by(...), without(...)...), strings or durations.</summary>
    public static IReadOnlySet<string> MetricsIn(string expr)
    {
        var s = Regex.Replace(expr, @"\{[^}]*\}", " ");                 // label matchers
        s = Regex.Replace(s, @"\[[^\]]*\]", " ");                        // range selectors
        s = Regex.Replace(s, @"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ");
        s = Regex.Replace(s, @"""(?:[^""\\]|\\.)*""", " ");             // strings
        s = Regex.Replace(s, @"\$\{?\w+\}?", " ");                       // Grafana variables outside selectors
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match m in Regex.Matches(s, @"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?"))
        {
            if (m.Groups[2].Success || PromQlKeywords.Contains(m.Groups[1].Value)) continue;
            names.Add(m.Groups[1].Value);
        }
        return names;
    }

    /// <summary>(where, PromQL) of every panel target and query variable of a Grafana dashboard.</summary>
    public static List<(string Where, string Expr)> DashboardQueries(JsonElement dashboard)
    {
        var list = new List<(string, string)>();
        void Panels(JsonElement panels)
        {
            foreach (var p in panels.EnumerateArray())
            {
                string title = p.TryGetProperty("title", out var t) ? t.GetString() ?? "" : "";
                if (p.TryGetProperty("targets", out var targets))
                    foreach (var target in targets.EnumerateArray())
                        if (target.TryGetProperty("expr", out var e))
                            list.Add(($"panel '{title}' {(target.TryGetProperty("refId", out var r) ? r.GetString() : "")}", e.GetString()!));
                if (p.TryGetProperty("panels", out var nested)) Panels(nested);
            }
        }
        Panels(dashboard.GetProperty("panels"));
        if (dashboard.TryGetProperty("templating", out var templating))
            foreach (var v in templating.GetProperty("list").EnumerateArray())
            {
                if (!v.TryGetProperty("query", out var q)) continue;
                string? query = q.ValueKind == JsonValueKind.Object ? q.GetProperty("query").GetString() : q.GetString();
                if (query is null) continue;
                var lv = Regex.Match(query, @"^\s*label_values\((.*),\s*\w+\s*\)\s*$");
                list.Add(($"variable '{v.GetProperty("name").GetString()}'", lv.Success ? lv.Groups[1].Value : query));
            }
        return list;
    }
}
