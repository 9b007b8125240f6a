using EdgeViT.Host.Service.Inference;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EdgeViT.Host.Service;

/// <summary>
/// Registers what the service talks to beyond its own API: the MQTT bridge (a verdict sink with its own connection
/// loop) the live page's view (a frame listener and verdict sink) and the thermal guard (caps the budget while the SoC is hot). Each is one singleton seen under every role
/// it plays; all are fed by the <see cref="InferenceWorker"/>, the one inference owner.
/// </summary>
public static class Integrations
{
    public static void Add(IServiceCollection services)
    {
        services.AddSingleton<MqttBridge>();
        services.AddHostedService(sp => sp.GetRequiredService<MqttBridge>());
        services.AddSingleton<IVerdictSink>(sp => sp.GetRequiredService<MqttBridge>());
        services.AddSingleton<IStatusContributor>(sp => sp.GetRequiredService<MqttBridge>());
        services.AddSingleton<LiveView>();
        services.AddSingleton<IFrameListener>(sp => sp.GetRequiredService<LiveView>());
        services.AddSingleton<IVerdictSink>(sp => sp.GetRequiredService<LiveView>());
        services.AddSingleton<ThermalGuard>();
        services.AddHostedService(sp => sp.GetRequiredService<ThermalGuard>());
        services.AddSingleton<IStatusContributor>(sp => sp.GetRequiredService<ThermalGuard>());
    }
}
