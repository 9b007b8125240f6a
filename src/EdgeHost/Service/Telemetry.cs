using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace EdgeViT.Host.Service;

/// <summary>
/// OpenTelemetry wiring: the EdgeViT meter and activity source, logs through the OTel logging provider.
/// OTLP export is configured by the standard variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL
/// grpc|http/protobuf, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_METRIC_EXPORT_INTERVAL, OTEL_BSP_*...),
/// read from the host configuration (which carries the process's OTEL_* variables). Telemetry:Otlp auto turns it
/// on when an OTLP endpoint is configured. Telemetry:Prometheus adds a scrape endpoint on its own listener.
/// Without either nothing listens, and instruments cost nothing.
/// </summary>
public static class Telemetry
{
    public const string DefaultServiceName = "edgevit";

    public static bool OtlpEnabled(TelemetryOptions o, IConfiguration config) => o.Otlp switch
    {
        OtlpMode.On => true,
        OtlpMode.Off => false,
        _ => new[] { "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT" }
            .Any(k => !string.IsNullOrWhiteSpace(config[k])),
    };

    public static void Add(IServiceCollection services, IConfiguration config, TelemetryOptions o)
    {
        bool otlp = OtlpEnabled(o, config);
        if (!otlp && !o.Prometheus) return;

        var otel = services.AddOpenTelemetry().ConfigureResource(r =>
        {
            if (string.IsNullOrWhiteSpace(config["OTEL_SERVICE_NAME"]))
                r.AddService(DefaultServiceName, serviceVersion: typeof(Telemetry).Assembly.GetName().Version?.ToString());
        });
        otel.WithMetrics(m =>
        {
            m.AddMeter(EdgeVitMetrics.MeterName);
            if (otlp) m.AddOtlpExporter();
            if (o.Prometheus) m.AddPrometheusHttpListener(p => { p.Host = o.PrometheusHost; p.Port = o.PrometheusPort; });
        });
        if (otlp)
        {
            otel.WithTracing(t => t.AddSource(EdgeVitMetrics.ActivitySourceName).AddOtlpExporter());
            otel.WithLogging(l => l.AddOtlpExporter(), opt => { opt.IncludeFormattedMessage = true; });
        }
        // Registered after AddOpenTelemetry (whose hosted service starts the providers) and before the pipeline,
        // so it stops after the pipeline finished its last frame: then everything recorded is exported.
        services.AddHostedService<TelemetryFlush>();
    }
}

/// <summary>At shutdown, after the frame loop stopped: ForceFlush of the meter, tracer and logger providers.</summary>
public sealed class TelemetryFlush(IServiceProvider services, ILogger<TelemetryFlush> log) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken)
    {
        const int timeoutMs = 5000;
        bool ok = true;
        ok &= services.GetService<TracerProvider>()?.ForceFlush(timeoutMs) ?? true;
        ok &= services.GetService<MeterProvider>()?.ForceFlush(timeoutMs) ?? true;
        ok &= services.GetService<LoggerProvider>()?.ForceFlush(timeoutMs) ?? true;
        if (!ok) log.LogWarning("telemetry flush did not complete within {Timeout} ms", timeoutMs);
        return Task.CompletedTask;
    }
}
