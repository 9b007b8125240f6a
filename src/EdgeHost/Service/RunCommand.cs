using System.CommandLine;
using EdgeViT.Capture;
using EdgeViT.Host.Commands;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace EdgeViT.Host.Service;

/// <summary>
/// <c>edgevit run [--config FILE] [--system-config DIR] [Key=value | --Section:Key value ...]</c>: the long-running service. Tokens after
/// the options are configuration overrides (the highest layer). Start-up failures (invalid configuration, model,
/// thresholds, source, port) end as one "edgevit: error: ..." line and a non-zero exit; a clean stop exits 0.
/// </summary>
public static class RunCommand
{
    /// <param name="defaults">Where configuration comes from besides the arguments (tests: a hermetic environment and /etc).</param>
    public static Command Create(TextWriter stdout, ServiceHostSettings? defaults = null)
    {
        var config = new Option<string?>("--config", "-c")
        {
            Description = "Configuration file (JSON, watched for changes) layered over appsettings.json and /etc/edgevit/*.json.",
            HelpName = "FILE",
        };
        var systemConfig = new Option<string?>("--system-config")
        {
            Description = "Folder whose *.json files are read (name order) before --config; default /etc/edgevit.",
            HelpName = "DIR",
        };
        var command = new Command("run", "Run the inference service: frame source -> ViT with RCTP budget control -> verdict lines; HTTP API, OpenTelemetry, systemd.")
        {
            config,
            systemConfig,
        };
        command.TreatUnmatchedTokensAsErrors = false; // configuration overrides: Budget:Target=0.7, --Trigger:Mode interval
        command.SetAction(parse => Run(parse.InvocationConfiguration.Error, (defaults ?? new ServiceHostSettings()) with
        {
            ConfigFile = parse.GetValue(config),
            SystemConfigDirectory = parse.GetValue(systemConfig) ?? (defaults ?? new ServiceHostSettings()).SystemConfigDirectory,
            CommandLine = parse.UnmatchedTokens.ToArray(),
        }));
        return command;
    }

    public static int Run(TextWriter stderr, ServiceHostSettings settings) => RunAsync(stderr, settings).GetAwaiter().GetResult();

    public static async Task<int> RunAsync(TextWriter stderr, ServiceHostSettings settings, CancellationToken stop = default)
    {
        WebApplication app;
        try { app = ServiceHost.Build(settings); }
        catch (Exception ex) { return Report(stderr, ex); }

        await using (app)
        {
            try { await app.StartAsync(stop); }
            catch (Exception ex)
            {
                // No StopAsync: it would log the shutdown after the error line; disposal releases what started.
                return Report(stderr, ex);
            }
            await app.WaitForShutdownAsync(stop);
            var status = app.Services.GetRequiredService<ServiceStatus>();
            if (status.FatalError is { } fatal)
            {
                ErrorReporter.WriteLine(stderr, $"service stopped: {fatal}");
                return ExitCodes.InputError;
            }
            return ExitCodes.Ok;
        }
    }

    /// <summary>One line for a start-up failure: the validation failures joined, or the error's own message.</summary>
    public static int Report(TextWriter stderr, Exception ex)
    {
        ex = Unwrap(ex);
        switch (ex)
        {
            case ServiceConfigException:
                ErrorReporter.WriteLine(stderr, ex.Message);
                return ExitCodes.UsageError;
            case OptionsValidationException v:
                ErrorReporter.WriteLine(stderr, string.Join("; ", v.Failures.Select(f => f.TrimEnd('.'))));
                return ExitCodes.UsageError;
            case FrameSourceException or TriggerException:
                ErrorReporter.WriteLine(stderr, ex.Message);
                return ExitCodes.InputError;
            case IOException io when io.Message.Contains("bind", StringComparison.OrdinalIgnoreCase):
                ErrorReporter.WriteLine(stderr, $"HTTP: {io.Message} (set Http:Urls)");
                return ExitCodes.InputError;
            default:
                return ErrorReporter.Report(stderr, ex);
        }
    }

    private static Exception Unwrap(Exception ex)
    {
        while (true)
        {
            if (ex is AggregateException { InnerExceptions.Count: >= 1 } agg) ex = agg.InnerExceptions[0];
            else if (ex is System.Reflection.TargetInvocationException { InnerException: { } inner }) ex = inner;
            else return ex;
        }
    }
}
