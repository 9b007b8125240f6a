using System.Net.Http.Json;
using System.Text.Json;
using EdgeViT.Host.Service;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace EdgeViT.Tests.Service;

/// <summary>
/// Tests that start a host run one at a time: the "EdgeViT" meter and activity source are process-wide, so two
/// hosts at once would see each other's frames.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ServiceHostCollection
{
    public const string Name = "EdgeViT service host";
}

/// <summary>
/// The real service host in-process: configuration only from the given values (no appsettings.json, /etc/edgevit
/// or environment), Kestrel on 127.0.0.1 at a free port, logs at Warning.
/// </summary>
public sealed class TestService : IAsyncDisposable
{
    public WebApplication App { get; }
    public HttpClient Http { get; }
    public Uri BaseAddress { get; }
    public ServiceStatus Status => App.Services.GetRequiredService<ServiceStatus>();
    public BudgetController Budget => App.Services.GetRequiredService<BudgetController>();
    private readonly string _dir;
    private bool _stopped;

    private TestService(WebApplication app, Uri baseAddress, string dir)
    {
        App = app;
        BaseAddress = baseAddress;
        _dir = dir;
        Http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public static Dictionary<string, string?> BaseConfig() => new()
    {
        ["Model"] = SharedAssets.ModelSafetensors,
        ["Synsets"] = SharedAssets.Synsets,
        ["Http:Urls"] = "http://127.0.0.1:0",
        ["Results:Sink"] = "none",
        ["Telemetry:Otlp"] = "off",
        ["Logging:LogLevel:Default"] = "Warning",
        ["Logging:LogLevel:Microsoft.Extensions.Hosting.Internal.Host"] = "None",
    };

    public static async Task<TestService> StartAsync(Dictionary<string, string?> config, Action<IServiceCollection>? services = null)
    {
        string dir = Directory.CreateTempSubdirectory("edgevit-service-host-").FullName;
        var app = ServiceHost.Build(new ServiceHostSettings
        {
            BaseDirectory = dir,
            SystemConfigDirectory = Path.Combine(dir, "etc-edgevit"),
            UseEnvironment = false,
            Overrides = config,
            ConfigureServices = services,
        });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try { await app.StartAsync(cts.Token); }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestService(app, new Uri(address), dir);
    }

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        using var response = await Http.GetAsync(path);
        return (await response.Content.ReadFromJsonAsync<JsonElement>());
    }

    /// <summary>Polls until <paramref name="condition"/> holds; fails after <paramref name="timeout"/>.</summary>
    public static async Task WaitUntil(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out after {timeout.TotalSeconds:0} s waiting for {what}");
            await Task.Delay(50);
        }
    }

    /// <summary>Graceful stop, as on SIGTERM: the frame in flight finishes, telemetry is flushed.</summary>
    public async Task StopAsync()
    {
        if (_stopped) return;
        _stopped = true;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await App.StopAsync(cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        try { await StopAsync(); }
        finally
        {
            await App.DisposeAsync();
            try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
