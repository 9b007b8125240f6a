using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace EdgeViT.Host.Service;

/// <summary>JSON responses of the HTTP API: every failure is <c>{"error": "...one line..."}</c>.</summary>
public static class HttpJson
{
    private static readonly JsonWriterOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Task Error(HttpContext ctx, int status, string message) =>
        Write(ctx, status, w => w.WriteString("error", message.ReplaceLineEndings(" ")));

    public static async Task Write(HttpContext ctx, int status, Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer, Compact))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        if (status == 413) ctx.Response.Headers.Connection = "close"; // the rest of an oversized body is not read
        await ctx.Response.Body.WriteAsync(buffer.WrittenMemory, ctx.RequestAborted);
    }
}
