using System.Diagnostics.Metrics;
using System.Reflection;
using Xunit;

namespace EdgeViT.Tests.Deploy;

/// <summary>
/// The Grafana dashboard (deploy/docker/grafana/dashboards/edgevit.json) queries only metrics the service emits:
/// PromQL metric names are mapped back to OpenTelemetry names through deploy/docker/grafana/metrics.json, whose
/// Prometheus names are recomputed here from the service's EdgeVitMetrics (name + unit, found by reflection) and the
/// instrument kinds the service really creates.
/// </summary>
public class DashboardMetricsTests
{
    private static readonly string[] HistogramSuffixes = ["_bucket", "_sum", "_count"];

    [Theory]
    [InlineData("http.server.request.duration", "s", "histogram", "http_server_request_duration_seconds")]
    [InlineData("edgevit.stage.duration", "ms", "histogram", "edgevit_stage_duration_milliseconds")]
    [InlineData("edgevit.frames.captured", "{frame}", "counter", "edgevit_frames_captured_total")]
    [InlineData("requests.total", "1", "counter", "requests_total")]
    [InlineData("edgevit.budget.target", "1", "gauge", "edgevit_budget_target_ratio")]
    [InlineData("edgevit.soc.temperature", "Cel", "gauge", "edgevit_soc_temperature_celsius")]
    [InlineData("edgevit.frame.gflops", "GFLOP", "histogram", "edgevit_frame_gflops_GFLOP")]
    [InlineData("edgevit.frame.gflops", "{GFLOP}", "histogram", "edgevit_frame_gflops")]
    [InlineData("memory.usage", "By", "gauge", "memory_usage_bytes")]
    [InlineData("net.io", "By/s", "counter", "net_io_bytes_per_second_total")]
    [InlineData("latency.milliseconds", "ms", "gauge", "latency_milliseconds")]
    public void PrometheusName_FollowsTheCollectorTranslation(string otel, string unit, string kind, string expected) =>
        Assert.Equal(expected, DeployFiles.PrometheusName(otel, unit, kind));

    [Fact]
    public void MetricsIn_ExtractsMetricNamesOnly()
    {
        var names = DeployFiles.MetricsIn(
            "histogram_quantile(0.95, sum by (le, stage) (rate(a_bucket{job=\"edgevit\", instance=~\"$instance\"}[$__rate_interval]))) " +
            "/ on (instance) group_left b_total or vector(0) + max(c{zone=\"x\"} % 16) > bool 0");
        Assert.Equal(["a_bucket", "b_total", "c"], names.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Catalog_MatchesTheServiceNamesUnitsAndTranslation()
    {
        var service = DeployFiles.ServiceMetrics();
        var catalog = DeployFiles.Catalog();
        foreach (var e in catalog)
        {
            Assert.True(service.TryGetValue(e.Otel, out var unit),
                $"metrics.json lists {e.Otel}, which EdgeVitMetrics does not define (service metrics: {string.Join(", ", service.Keys)})");
            Assert.True(unit == e.Unit, $"{e.Otel}: unit in metrics.json is '{e.Unit}', the service's is '{unit}'");
            Assert.Contains(e.Kind, new[] { "counter", "gauge", "histogram" });
            Assert.Equal(DeployFiles.PrometheusName(e.Otel, unit!, e.Kind), e.Prometheus);
        }
        var missing = service.Keys.Except(catalog.Select(e => e.Otel)).ToList();
        Assert.True(missing.Count == 0, $"service metrics without a Prometheus name in metrics.json: {string.Join(", ", missing)}");
    }

    [Fact]
    public void Catalog_KindsAreTheInstrumentsTheServiceCreates()
    {
        // Instruments published on the "EdgeViT" meter while the service's instrument holder and SoC gauges are created
        // (the SoC gauges over a fake /sys tree). The budget gauges are registered by the running service only; their
        // kind is the catalog's (ObservableGauge in ServiceGauges).
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name != "EdgeViT") return;
                var generic = instrument.GetType().IsGenericType ? instrument.GetType().GetGenericTypeDefinition() : instrument.GetType();
                seen[instrument.Name] = generic == typeof(Counter<>) || generic == typeof(ObservableCounter<>) ? "counter"
                    : generic == typeof(Histogram<>) ? "histogram"
                    : generic == typeof(ObservableGauge<>) || generic.Name.StartsWith("Gauge", StringComparison.Ordinal) ? "gauge"
                    : generic.Name;
            },
        };
        listener.Start();

        var instrumentsType = DeployFiles.ServiceType("ServiceInstruments");
        using var instruments = (IDisposable)Activator.CreateInstance(instrumentsType, [null])!;
        var meter = (Meter)instrumentsType.GetProperty("Meter")!.GetValue(instruments)!;
        // Captured/dropped frames: observable counters over the capture loop's totals, registered by ObserveCapture
        // when the service has it (earlier versions created plain counters in the constructor).
        instrumentsType.GetMethod("ObserveCapture", [typeof(Func<long>), typeof(Func<long>)])
            ?.Invoke(instruments, [new Func<long>(() => 0), new Func<long>(() => 0)]);

        string sys = Path.Combine(Path.GetTempPath(), "edgevit-sys-" + Guid.NewGuid().ToString("N"));
        try
        {
            Directory.CreateDirectory(Path.Combine(sys, "class", "thermal", "thermal_zone0"));
            File.WriteAllText(Path.Combine(sys, "class", "thermal", "thermal_zone0", "temp"), "45123\n");
            File.WriteAllText(Path.Combine(sys, "class", "thermal", "thermal_zone0", "type"), "cpu-thermal\n");
            Directory.CreateDirectory(Path.Combine(sys, "devices", "platform", "soc", "soc:firmware"));
            File.WriteAllText(Path.Combine(sys, "devices", "platform", "soc", "soc:firmware", "get_throttled"), "0x50005\n");
            var register = DeployFiles.ServiceType("SocSensors").GetMethod("Register", BindingFlags.Public | BindingFlags.Static, [typeof(Meter), typeof(string)]);
            Assert.True(register is not null, "SocSensors.Register(Meter, string) not found");
            register!.Invoke(null, [meter, sys]);
        }
        finally { Directory.Delete(sys, recursive: true); }

        var catalog = DeployFiles.Catalog().ToDictionary(e => e.Otel);
        Assert.True(seen.Count >= 8, $"expected the histograms, counters and SoC gauges to be published, saw: {string.Join(", ", seen.Keys)}");
        foreach (var (name, kind) in seen)
        {
            Assert.True(catalog.TryGetValue(name, out var entry), $"the service creates {name}, which metrics.json does not list");
            Assert.True(entry!.Kind == kind, $"{name}: metrics.json says {entry.Kind}, the service creates a {kind}");
        }
    }

    [Fact]
    public void FleetDashboard_QueriesOnlyMetricsTheServiceEmits_OnePerDevice()
    {
        var service = DeployFiles.ServiceMetrics();
        var series = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in DeployFiles.Catalog().Where(e => service.ContainsKey(e.Otel)))
        {
            string prom = DeployFiles.PrometheusName(e.Otel, service[e.Otel], e.Kind);
            if (e.Kind == "histogram") foreach (var s in HistogramSuffixes) series[prom + s] = e.Otel;
            else series[prom] = e.Otel;
        }
        using var dashboard = DeployFiles.Json("deploy/docker/grafana/dashboards/fleet.json");
        var queries = DeployFiles.DashboardQueries(dashboard.RootElement);
        Assert.True(queries.Count >= 8, $"expected the fleet dashboard's queries, found {queries.Count}");
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (where, expr) in queries)
        {
            foreach (var name in DeployFiles.MetricsIn(expr))
            {
                Assert.True(series.TryGetValue(name, out var otel), $"{where}: {name} is not a series of any service metric");
                used.Add(otel!);
            }
            if (where.StartsWith("panel ", StringComparison.Ordinal)) Assert.Contains("by (instance", expr); // a line per device
        }
        foreach (var required in new[] { "edgevit.stage.duration", "edgevit.threshold_set.budget", "edgevit.mqtt.dropped", "edgevit.thermal.capped" })
            Assert.Contains(required, used);
    }

    [Fact]
    public void Dashboard_QueriesOnlyMetricsTheServiceEmits()
    {
        var service = DeployFiles.ServiceMetrics();
        var catalog = DeployFiles.Catalog();
        // every series name the service's metrics produce in Prometheus -> its OpenTelemetry name
        var series = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in catalog.Where(e => service.ContainsKey(e.Otel)))
        {
            string prom = DeployFiles.PrometheusName(e.Otel, service[e.Otel], e.Kind);
            if (e.Kind == "histogram") foreach (var s in HistogramSuffixes) series[prom + s] = e.Otel;
            else series[prom] = e.Otel;
        }

        using var dashboard = DeployFiles.Json("deploy/docker/grafana/dashboards/edgevit.json");
        var queries = DeployFiles.DashboardQueries(dashboard.RootElement);
        Assert.True(queries.Count >= 10, $"expected the dashboard's queries, found {queries.Count}");
        var used = new HashSet<string>(StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var (where, expr) in queries)
        {
            var names = DeployFiles.MetricsIn(expr);
            if (names.Count == 0) problems.Add($"{where}: no metric in {expr}");
            foreach (var name in names)
                if (series.TryGetValue(name, out var otel)) used.Add(otel);
                else problems.Add($"{where}: {name} is not a series of any service metric");
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));

        // the panels the deployment promises
        foreach (var required in new[] { "edgevit.stage.duration", "edgevit.frame.gflops", "edgevit.budget.target", "edgevit.tokens.kept",
                     "edgevit.frames.captured", "edgevit.frames.classified", "edgevit.frames.dropped", "edgevit.errors",
                     "edgevit.soc.temperature", "edgevit.soc.throttled" })
            Assert.True(used.Contains(required), $"the dashboard does not query {required}");
    }
}
