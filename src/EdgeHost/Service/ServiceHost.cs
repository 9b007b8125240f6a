using System.Collections;
using System.Reflection;
using System.Text.RegularExpressions;
using EdgeViT.Host.Commands;
using EdgeViT.Host.Service.Inference;
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
public sealed record ServiceHostSettings
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
    /// <summary>The environment to read them from (null: the process's); tests pass their own, never the machine's.</summary>
    public IReadOnlyDictionary<string, string?>? Environment { get; init; }
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
        if (ConfigurationKeys.ArgumentProblem(settings.CommandLine) is { } badArgument) throw new ServiceConfigException(badArgument);
        int firstOwn = ((IConfigurationBuilder)config).Sources.Count;
        AddConfiguration(config, settings);
        var ownProviders = new ConfigurationKeys.Scope(firstOwn, ((IConfigurationBuilder)config).Sources.Count - firstOwn);
        if (ConfigurationKeys.FirstProblem(config, ownProviders) is { } unknown) throw new ServiceConfigException(unknown);

        // Options: the default name is the validated start-up snapshot (ValidateOnStart); the "live" name follows
        // file reloads and is checked by the frame loop's reload handler (a bad edit is logged, never thrown).
        var services = builder.Services;
        services.AddSingleton(ownProviders);
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
        // systemd: Type=notify (READY=1 once the host started, i.e. after the model loaded and the source opened),
        // STOPPING=1 and clean stop on SIGTERM, journald log format. AddSystemd only recognises a unit whose parent is
        // systemd; like newer runtimes, a NOTIFY_SOCKET alone (containers, systemd-run, tests) also counts.
        builder.Services.AddSystemd();
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NOTIFY_SOCKET")) && !services.Any(d => d.ServiceType == typeof(ISystemdNotifier)))
        {
            services.AddSingleton<ISystemdNotifier, SystemdNotifier>();
            services.AddSingleton<IHostLifetime, SystemdLifetime>();
        }
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(15));

        builder.WebHost.UseKestrelCore();
        builder.WebHost.UseKestrelHttpsConfiguration(); // Kestrel:Certificates:Default:Path/Password for https:// URLs
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Configure(config.GetSection("Kestrel"), reloadOnChange: false);
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = early.Http.MaxBodyBytes is > 0 and var max ? max : 8 << 20;
        });
        builder.WebHost.UseUrls(HttpExposure.Urls(early.Http));
        services.AddRoutingCore();

        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<FrameSourceFactory>();
        AddServiceCore(services);
        Telemetry.Add(services, config, early.Telemetry); // before the workers: its flush runs after they stopped
        services.AddSingleton<InferenceWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<InferenceWorker>()); // stops after the frame loop
        services.AddHostedService<FrameLoop>();
        Integrations.Add(services); // MQTT, live page, thermal guard
        settings.ConfigureServices?.Invoke(services);

        var app = builder.Build();
        ConfigurationKeys.NoteHostKeys(config, ownProviders);
        HttpApi.Map(app);
        OpenInferenceApi.Map(app);
        LiveApi.Map(app);
        return app;
    }

    /// <summary>
    /// The service's parts, each built once from the validated options when the host starts (before Kestrel listens,
    /// so a bad model or thresholds file ends start-up with one line): model, budget controller, classifier, verdict
    /// sinks, source sessions, trigger, watchdog. Nothing is nullable, nothing is filled in later.
    /// </summary>
    private static void AddServiceCore(IServiceCollection services)
    {
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<EdgeVitOptions>>().Value);
        services.AddSingleton(sp => sp.GetRequiredService<EdgeVitOptions>().Input);
        services.AddSingleton(sp => new ServiceInstruments(sp.GetService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.AddSingleton<ServiceStatus>();
        services.AddSingleton(sp => LoadedModel.Load(sp.GetRequiredService<EdgeVitOptions>()));
        services.AddSingleton(sp => CreateBudget(sp.GetRequiredService<LoadedModel>(), sp.GetRequiredService<EdgeVitOptions>().Budget,
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ServiceInstruments>(), sp.GetRequiredService<ILogger<BudgetController>>()));
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<EdgeVitOptions>();
            var metrics = sp.GetRequiredService<ServiceInstruments>();
            var status = sp.GetRequiredService<ServiceStatus>();
            var classifier = new Classifier(sp.GetRequiredService<LoadedModel>(), sp.GetRequiredService<BudgetController>(), metrics, o.Threads, o.TopK,
                o.Input.MaxPixels, sp.GetRequiredService<TimeProvider>());
            metrics.ObserveCapture(() => status.Captured, () => status.Dropped);
            SocSensors.Register(metrics.Meter, o.Telemetry.SysfsRoot);
            return classifier;
        });
        services.AddSingleton<IVerdictSink>(sp => ResultSink.Create(sp.GetRequiredService<EdgeVitOptions>().Results));
        services.AddSingleton<IVerdictSink>(sp =>
        {
            var o = sp.GetRequiredService<EdgeVitOptions>().Trigger.Gpio;
            return (IVerdictSink?)GpioOutputSink.Create(o, sp.GetRequiredService<LoadedModel>(), sp.GetRequiredService<FrameSourceFactory>()) ?? NoSink.Instance;
        });
        services.AddSingleton<SourceSessions>();
        services.AddSingleton(sp => ITrigger.Create(sp.GetRequiredService<EdgeVitOptions>().Trigger, sp.GetRequiredService<FrameSourceFactory>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp =>
        {
            var worker = sp.GetRequiredService<InferenceWorker>();
            return new SystemdWatchdog(sp.GetService<ISystemdNotifier>(), () => worker.InFlightSince);
        });
    }

    private static BudgetController CreateBudget(LoadedModel model, BudgetOptions options, TimeProvider time, ServiceInstruments metrics, ILogger log)
    {
        var settings = BudgetSettings.From(options);
        var budget = new BudgetController(model.Catalog, new BudgetSettings(), time);
        if (model.Catalog.HasThresholds)
        {
            try { budget.Apply(settings); }
            catch (ArgumentException ex) { throw new ServiceConfigException($"Budget: {ex.Message} ({Path.GetFileName(model.Catalog.Source)} covers budgets {model.Catalog.MinBudget:0.###}..1)"); }
        }
        else if (settings.Mode != BudgetMode.Fixed || settings.Target < 1 || settings.TargetGFlops is not null)
            log.LogWarning("no Thresholds file configured: the model runs dense and Budget:{Mode} is inactive", settings.ModeName);
        // flops mode alternates between neighbouring sets frame by frame: those switches are debug noise.
        budget.Switched += (from, to, why) =>
        {
            var level = budget.Settings.Mode == BudgetMode.Flops ? LogLevel.Debug : LogLevel.Information;
            if (log.IsEnabled(level)) log.Log(level, "threshold set {From} -> {To}: {Reason}", from, to, why);
        };
        ServiceGauges.Register(metrics.Meter, budget);
        return budget;
    }

    private sealed class NoSink : IVerdictSink
    {
        public static readonly NoSink Instance = new();
        public void Write(Verdict verdict, ReadOnlySpan<byte> json) { }
    }

    private static void AddConfiguration(ConfigurationManager config, ServiceHostSettings s)
    {
        var environment = !s.UseEnvironment ? new Dictionary<string, string?>()
            : s.Environment ?? System.Environment.GetEnvironmentVariables().Cast<DictionaryEntry>()
                .ToDictionary(e => (string)e.Key, e => e.Value as string, StringComparer.Ordinal);
        // OTEL_* as-is (lowest priority) so the OpenTelemetry SDK reads the standard variables from the host's configuration.
        config.AddInMemoryCollection(environment.Where(e => e.Key.StartsWith("OTEL_", StringComparison.OrdinalIgnoreCase)));
        config.AddJsonFile(Path.Combine(s.BaseDirectory, "appsettings.json"), optional: true, reloadOnChange: true);
        if (Directory.Exists(s.SystemConfigDirectory))
            foreach (var file in Directory.GetFiles(s.SystemConfigDirectory, "*.json").Order(StringComparer.Ordinal))
                config.AddJsonFile(file, optional: true, reloadOnChange: true);
        if (s.ConfigFile is { } configFile)
        {
            string full = Path.GetFullPath(configFile);
            if (Directory.Exists(full)) throw new ServiceConfigException($"--config is a directory, not a file: {configFile}");
            if (!File.Exists(full)) throw new ServiceConfigException($"--config file not found: {configFile}");
            try { config.AddJsonFile(full, optional: false, reloadOnChange: true); }
            catch (InvalidDataException ex) { throw new ServiceConfigException($"--config {configFile}: not valid JSON ({ex.InnerException?.Message.Split('\n')[0] ?? ex.Message})"); }
        }
        ((IConfigurationBuilder)config).Add(new PrefixedEnvironmentSource(environment, EnvironmentPrefix));
        if (s.CommandLine.Count > 0) config.AddCommandLine(s.CommandLine.ToArray());
        if (s.Overrides is not null) config.AddInMemoryCollection(s.Overrides);
    }

    /// <summary>EDGEVIT__Section__Key variables as Section:Key, from a given environment (the process's or a test's).</summary>
    public sealed class PrefixedEnvironmentSource(IReadOnlyDictionary<string, string?> environment, string prefix) : IConfigurationSource
    {
        public IConfigurationProvider Build(IConfigurationBuilder builder) => new Provider(environment, prefix);

        public sealed class Provider(IReadOnlyDictionary<string, string?> environment, string prefix) : ConfigurationProvider
        {
            public override void Load()
            {
                Data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
                foreach (var (key, value) in environment)
                    if (key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
                        Data[key[prefix.Length..].Replace("__", ConfigurationPath.KeyDelimiter)] = value;
            }
        }
    }

    private static readonly Regex ConvertFailure = new(@"Failed to convert configuration value '(?<value>.*)' at '(?<key>[^']*)' to type '(?<type>[^']*)'", RegexOptions.CultureInvariant);

    /// <summary>
    /// Binds the root configuration key by key, so every value that does not convert is reported (as
    /// <see cref="EdgeVitOptions.BindingErrors"/>, "Budget:Target must be a number (got 'abc')"), not only the first.
    /// </summary>
    public static void BindSafely(IConfiguration config, EdgeVitOptions o)
    {
        o.BindingErrors.Clear();
        Bind(config, o, o.BindingErrors);
        o.ModelName = config[ConfigurationKeys.ModelName];
    }

    private static void Bind(IConfiguration section, object target, List<string> errors)
    {
        foreach (var p in target.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (!p.CanWrite || p.GetCustomAttribute<System.Text.Json.Serialization.JsonIgnoreAttribute>() is not null) continue;
            var child = section.GetSection(p.Name);
            if (p.PropertyType.IsClass && p.PropertyType != typeof(string) && p.PropertyType.Namespace == typeof(EdgeVitOptions).Namespace)
            {
                if (p.GetValue(target) is { } nested) Bind(child, nested, errors);
                continue;
            }
            if (child.Value is null) continue;
            try { p.SetValue(target, child.Get(p.PropertyType)); }
            catch (InvalidOperationException ex)
            {
                var m = ConvertFailure.Match(ex.Message);
                errors.Add(m.Success
                    ? $"{child.Path} must be {Friendly(m.Groups["type"].Value)} (got '{child.Value}')"
                    : ErrorReporter.OneLine(ex.Message));
            }
        }
    }

    private static string Friendly(string type) => typeof(EdgeVitOptions).Assembly.GetType(type) is { IsEnum: true } e
        ? $"one of {DefinedEnumAttribute.EnumChoices(e)}"
        : type switch
    {
        "System.Int32" or "System.Int64" => "an integer",
        "System.Double" or "System.Nullable`1[System.Double]" => "a number",
        "System.Boolean" => "true or false",
        _ => $"a {type}",
    };
}
