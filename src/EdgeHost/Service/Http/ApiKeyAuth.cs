using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace EdgeViT.Host.Service;

/// <summary>
/// The rule for exposing the API: binding Http:Urls to anything but loopback needs Http:ApiKey, unless
/// Http:AllowAnonymous=true says the exposure is intended (an authenticating proxy in front, say).
/// </summary>
public static class HttpExposure
{
    /// <summary>Why these settings must not start (one line), or null.</summary>
    public static string? Problem(HttpOptions o)
    {
        if (!string.IsNullOrEmpty(o.ApiKey) || o.AllowAnonymous) return null;
        foreach (var url in Urls(o))
            if (!IsLoopback(url))
                return $"Http:Urls binds {url}, which is reachable from other machines: set Http:ApiKey (clients send 'Authorization: Bearer KEY'), or Http:AllowAnonymous=true to serve it without a key";
        return null;
    }

    public static string[] Urls(HttpOptions o) => o.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>localhost, 127.0.0.0/8 or ::1; wildcards (*, +, 0.0.0.0, [::]) and any other host are not.</summary>
    public static bool IsLoopback(string url)
    {
        if (!Uri.TryCreate(url.Replace("://*", "://0.0.0.0").Replace("://+", "://0.0.0.0"), UriKind.Absolute, out var uri)) return false;
        if (string.Equals(uri.Host, "localhost", StringComparison.OrdinalIgnoreCase)) return true;
        return IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip);
    }
}

/// <summary>
/// Checks Http:ApiKey on every request but GET /healthz and GET / (the live page: static HTML with no data; it sends
/// the key on every request it makes, taken from the /#key=KEY fragment, which browsers never send): "Authorization: Bearer KEY" or "X-Api-Key: KEY", compared in
/// constant time (no timing hint about how much of a guess was right). Missing or wrong: 401 with a JSON error.
/// </summary>
public sealed class ApiKeyAuth(byte[] key)
{
    public static ApiKeyAuth? For(HttpOptions o) => string.IsNullOrEmpty(o.ApiKey) ? null : new ApiKeyAuth(Encoding.UTF8.GetBytes(o.ApiKey));

    public async Task InvokeAsync(HttpContext ctx, RequestDelegate next)
    {
        var path = ctx.Request.Path;
        if (path.Equals("/healthz", StringComparison.Ordinal) || (HttpMethods.IsGet(ctx.Request.Method) && path.Equals("/", StringComparison.Ordinal))
            || Authorized(ctx.Request))
        {
            await next(ctx);
            return;
        }
        ctx.Response.Headers.WWWAuthenticate = "Bearer";
        await HttpJson.Error(ctx, 401, "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-Api-Key: KEY'");
    }

    private bool Authorized(HttpRequest request)
    {
        string? given = null;
        if (request.Headers.Authorization.ToString() is { Length: > 7 } auth && auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            given = auth[7..].Trim();
        else if (request.Headers["X-Api-Key"].ToString() is { Length: > 0 } header)
            given = header.Trim();
        if (given is null) return false;
        Span<byte> buffer = stackalloc byte[256];
        int max = Encoding.UTF8.GetMaxByteCount(given.Length);
        var bytes = max <= buffer.Length ? buffer[..Encoding.UTF8.GetBytes(given, buffer)] : Encoding.UTF8.GetBytes(given);
        return CryptographicOperations.FixedTimeEquals(bytes, key); // a length mismatch returns at once: the length is no secret
    }
}
