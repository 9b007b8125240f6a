using System.Collections;
using System.Text.RegularExpressions;
using EdgeViT.Host.Commands;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EdgeViT.Host.Service;

/// <summary>How to build the host: where configuration comes from (tests point every location somewhere safe).</summary>
public sealed class ServiceHostSettings
{
    /// <summary>--config FILE: required to exist when given.</summary>
    public string? ConfigFile { get; init; }
    /// <summary>Command-line overrides (Key=value, --Key value, --Section:Key=value).</summary>
    public IReadOnlyList<string> CommandLine { get; init; } = [];
    /// <summary>Folder of the shipped appsettings.json (default: next to the binary).</summary>
    public string BaseDirectory { get; init; } = AppContext.BaseDirectory;
    /// <summary>System configuration folder whose *.json files are read in name order.</summary>
    public string SystemConfigDirectory { get; init; } = "/etc/edgevit";
    /// <summary>Read EDGEVIT__* and OTEL_* environment variables.</summary>
    public bool UseEnvironment { get; init; } = true;
    /// <summary>Highest-priority values (tests).</summary>
    public IReadOnlyDictionary<string, string?>? Overrides { get; init; }
    /// <summary>Last word on services (tests substitute a FrameSourceFactory, a TimeProvider...).</summary>
    public Action<IServiceCollection>? ConfigureServices { get; init; }
}

/// <summary>
/// Builds the <c>edgevit run</c> host: a generic host (via WebApplication's empty builder, so nothing is added
/// implicitly) with Kestrel for the HTTP API, the frame pipeline as a BackgroundService, systemd integration,
/// OpenTelemetry, and configuration layered lowest to highest:
/// appsettings.json next to the binary, /etc/edgevit/*.json, --config FILE (all watched: reloadOnChange),
/// EDGEVIT__* environment variables (EDGEVIT__Budget__Target=0.7), command-line overrides.
/// </summary>
public static class ServiceHost
{
    public const string EnvironmentPrefix = "EDGEVIT__";

    public static WebApplication Build(ServiceHostSettings settings)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions
        {
            ContentRootPath = settings.BaseDirectory,
            EnvironmentName = Environments.Production,
        });
        var config = builder.Configuration;
        AddConfiguration(config, settings);

        // Options: the default name is the validated start-up snapshot (ValidateOnStart); the "live" name follows
        // file reloads and is checked by the pipeline's reload handler (a bad edit is logged, never thrown).
        var services = builder.Services;
        services.AddSingleton<IValidateOptions<EdgeVitOptions>, EdgeVitOptionsValidator>();
        services.AddOptions<EdgeVitOptions>().Configure(o => BindSafely(config, o)).ValidateOnStart();
        services.AddOptions<EdgeVitOptions>(EdgeVitOptions.Live).Configure(o => BindSafely(config, o));
        services.AddSingleton<IOptionsChangeTokenSource<EdgeVitOptions>>(new ConfigurationChangeTokenSource<EdgeVitOptions>(EdgeVitOptions.Live, config));

        // What Build needs now (URLs, body limit, telemetry) is read without validation; bad values fail at start.
        var early = new EdgeVitOptions();
        BindSafely(config, early);

        builder.Logging.AddConfiguration(config.GetSection("Logging"));
        // stdout carries verdict lines (Results:Sink stdout), so logs go to stderr.
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        // systemd: Type=notify (READY=1 once the host started, i.e. after the pipeline loaded the model and opened the
        // source), STOPPING=1 and clean stop on SIGTERM, journald log format. AddSystemd only recognises a unit whose
        // parent is systemd; like newer runtimes, a NOTIFY_SOCKET alone (containers, systemd-run, tests) also counts.
        builder.Services.AddSystemd();
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NOTIFY_SOCKET")) && !services.Any(d => d.ServiceType == typeof(ISystemdNotifier)))
        {
            services.AddSingleton<ISystemdNotifier, SystemdNotifier>();
            services.AddSingleton<IHostLifetime, SystemdLifetime>();
        }
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(15));

        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = early.Http.MaxBodyBytes is > 0 and var max ? max : 8 << 20;
        });
        builder.WebHost.UseUrls(early.Http.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        services.AddRoutingCore();

        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<FrameSourceFactory>();
        services.AddSingleton(sp => new ServiceInstruments(sp.GetService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.AddSingleton<ServiceRuntime>();
        Telemetry.Add(services, config, early.Telemetry); // before the pipeline: its flush runs after the pipeline stopped
        services.AddHostedService<FramePipeline>();
        Integrations.Add(services); // MQTT, live view: verdict and frame listeners
        settings.ConfigureServices?.Invoke(services);

        var app = builder.Build();
        HttpApi.Map(app);
        OpenInferenceApi.Map(app);
        LiveApi.Map(app);
        return app;
    }

    private static void AddConfiguration(ConfigurationManager config, ServiceHostSettings s)
    {
        if (s.UseEnvironment)
        {
            // OTEL_* as-is (lowest priority) so the OpenTelemetry SDK reads the standard variables from the host's configuration.
            var otel = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            foreach (DictionaryEntry e in Environment.GetEnvironmentVariables())
                if (e.Key is string k && k.StartsWith("OTEL_", StringComparison.OrdinalIgnoreCase)) otel[k] = e.Value as string;
            config.AddInMemoryCollection(otel);
        }
        config.AddJsonFile(Path.Combine(s.BaseDirectory, "appsettings.json"), optional: true, reloadOnChange: true);
        if (Directory.Exists(s.SystemConfigDirectory))
            foreach (var file in Directory.GetFiles(s.SystemConfigDirectory, "*.json").Order(StringComparer.Ordinal))
                config.AddJsonFile(file, optional: true, reloadOnChange: true);
        if (s.ConfigFile is { } configFile)
        {
            string full = Path.GetFullPath(configFile);
            if (Directory.Exists(full)) throw new UsageException($"--config is a directory, not a file: {configFile}");
            if (!File.Exists(full)) throw new UsageException($"--config file not found: {configFile}");
            try { config.AddJsonFile(full, optional: false, reloadOnChange: true); }
            catch (InvalidDataException ex) { throw new UsageException($"--config {configFile}: not valid JSON ({ex.InnerException?.Message.Split('\n')[0] ?? ex.Message})"); }
        }
        if (s.UseEnvironment) config.AddEnvironmentVariables(EnvironmentPrefix);
        if (s.CommandLine.Count > 0) config.AddCommandLine(s.CommandLine.ToArray());
        if (s.Overrides is not null) config.AddInMemoryCollection(s.Overrides);
    }

    private static readonly Regex ConvertFailure = new(@"Failed to convert configuration value '(?<value>.*)' at '(?<key>[^']*)' to type '(?<type>[^']*)'", RegexOptions.CultureInvariant);

    /// <summary>Binds the root configuration; a value that does not convert becomes <see cref="EdgeVitOptions.BindingError"/>.</summary>
    public static void BindSafely(IConfiguration config, EdgeVitOptions o)
    {
        try { config.Bind(o); }
        catch (InvalidOperationException ex)
        {
            var m = ConvertFailure.Match(ex.Message);
            o.BindingError = m.Success
                ? $"{m.Groups["key"].Value} must be {Friendly(m.Groups["type"].Value)} (got '{m.Groups["value"].Value}')"
                : ErrorReporter.OneLine(ex.Message);
        }
    }

    private static string Friendly(string type) => type switch
    {
        "System.Int32" or "System.Int64" => "an integer",
        "System.Double" or "System.Nullable`1[System.Double]" => "a number",
        "System.Boolean" => "true or false",
        _ => $"a {type}",
    };
}
