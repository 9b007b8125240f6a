using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EdgeViT.Host.Service;

/// <summary>
/// Registers what the service talks to beyond its own API: the MQTT bridge (a hosted service that listens to
/// verdicts). Each is one singleton seen under every role it plays (hosted service, verdict/frame listener,
/// status contributor).
/// </summary>
public static class Integrations
{
    public static void Add(IServiceCollection services)
    {
        services.AddSingleton<MqttBridge>();
        services.AddHostedService(sp => sp.GetRequiredService<MqttBridge>());
        services.AddSingleton<IVerdictListener>(sp => sp.GetRequiredService<MqttBridge>());
        services.AddSingleton<IStatusContributor>(sp => sp.GetRequiredService<MqttBridge>());
        services.AddSingleton<LiveView>();
        services.AddSingleton<IFrameListener>(sp => sp.GetRequiredService<LiveView>());
        services.AddSingleton<IVerdictListener>(sp => sp.GetRequiredService<LiveView>());
    }
}
